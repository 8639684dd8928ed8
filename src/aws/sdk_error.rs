//! AWS SDK errors boxed for the crate's error types, with the service's
//! error code in the message. The SDK error itself is the `source` (its
//! text is not repeated in the message).

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// An SDK error boxed with its code in the message, for
/// [`CheckpointError::Backend`](crate::checkpoint::CheckpointError::Backend).
#[derive(Debug)]
pub(crate) struct SdkErrorBox(String, Box<dyn std::error::Error + Send + Sync + 'static>);

impl SdkErrorBox {
    pub(crate) fn new<E, R>(err: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        let message = match err.code() {
            Some(code) => format!("AWS SDK error, code {code}"),
            None => "AWS SDK error".to_owned(),
        };
        Self(message, Box::new(err))
    }
}

impl std::fmt::Display for SdkErrorBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SdkErrorBox {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.1)
    }
}
