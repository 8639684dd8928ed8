//! An HTTP client for the AWS SDKs that answers in process: every request
//! goes to a closure, which gives the response (at once, later, or never).
//! Below the SDK's own mocks (`aws-smithy-mocks`), for what they cannot
//! do: a response that takes time, or an SDK measured without a network.

use std::fmt;
use std::sync::Arc;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;

/// The answer to one request.
type Answer = dyn Fn(HttpRequest) -> HttpConnectorFuture + Send + Sync;

/// An HTTP client whose every request is answered by a closure.
#[derive(Clone)]
pub struct AnsweringHttpClient {
    answer: Arc<Answer>,
}

impl AnsweringHttpClient {
    /// Answers every request with `answer`.
    pub fn new(
        answer: impl Fn(HttpRequest) -> HttpConnectorFuture + Send + Sync + 'static,
    ) -> Self {
        Self {
            answer: Arc::new(answer),
        }
    }
}

impl fmt::Debug for AnsweringHttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AnsweringHttpClient")
    }
}

impl HttpConnector for AnsweringHttpClient {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        (self.answer)(request)
    }
}

impl HttpClient for AnsweringHttpClient {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}
