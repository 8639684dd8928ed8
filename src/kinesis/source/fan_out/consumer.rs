//! The registered consumer a fan-out source reads as: found or registered
//! once per source, waited for until `ACTIVE`, deregistered on drop when
//! asked.
//!
//! Registration is idempotent for the source: `RegisterStreamConsumer`
//! answering `ResourceInUseException` means the consumer exists, and
//! `DescribeStreamConsumer` gives its ARN. A consumer being deleted
//! (`DELETING`) is waited out and registered again. Every shard reader asks
//! for the ARN; the first does the work, the others wait for it, and a
//! failure is tried again by the next reader that asks.

use aws_sdk_kinesis::error::SdkError;
use aws_sdk_kinesis::types::{Consumer, ConsumerDescription, ConsumerStatus};
use tokio::sync::OnceCell;
use tokio::time::Instant;

use super::{EnhancedFanOut, FanOutError};
use crate::kinesis::source::failure::{classify, Failure};
use crate::kinesis::source::retrieval::Retries;
use crate::kinesis::source::SourceConfig;
use crate::kinesis::StreamTarget;
use crate::Error;

/// The consumer of one source (shared by its shard readers).
#[derive(Debug)]
pub(crate) struct FanOutConsumer {
    settings: EnhancedFanOut,
    client: aws_sdk_kinesis::Client,
    arn: OnceCell<String>,
}

/// A consumer's ARN and status, from either call that describes it.
struct Described {
    arn: String,
    status: ConsumerStatus,
}

impl From<Consumer> for Described {
    fn from(c: Consumer) -> Self {
        Self {
            arn: c.consumer_arn,
            status: c.consumer_status,
        }
    }
}

impl From<ConsumerDescription> for Described {
    fn from(c: ConsumerDescription) -> Self {
        Self {
            arn: c.consumer_arn,
            status: c.consumer_status,
        }
    }
}

impl FanOutConsumer {
    pub(crate) fn new(settings: EnhancedFanOut, client: aws_sdk_kinesis::Client) -> Self {
        Self {
            settings,
            client,
            arn: OnceCell::new(),
        }
    }

    /// The consumer's ARN once it is `ACTIVE`, registering it if needed.
    pub(crate) async fn arn(
        &self,
        stream: &StreamTarget,
        config: &SourceConfig,
    ) -> Result<&str, Error> {
        self.arn
            .get_or_try_init(|| self.resolve(stream, config))
            .await
            .map(String::as_str)
    }

    /// `"kinesis stream NAME consumer C"`, the target named in errors.
    fn target(&self, stream: &StreamTarget) -> String {
        format!("{stream} consumer {}", self.settings.consumer_name)
    }

    async fn resolve(&self, stream: &StreamTarget, config: &SourceConfig) -> Result<String, Error> {
        let stream_arn = self.stream_arn(stream, config).await?;
        let started = Instant::now();
        let deadline = started + self.settings.activation_timeout;
        loop {
            let mut consumer = self.register(stream, &stream_arn, config).await?;
            loop {
                match consumer.status {
                    ConsumerStatus::Active => {
                        tracing::info!(consumer = %self.settings.consumer_name, arn = %consumer.arn, "enhanced fan-out consumer active");
                        return Ok(consumer.arn);
                    }
                    ref status if Instant::now() >= deadline => {
                        return Err(Error::target(
                            self.target(stream),
                            FanOutError::NotActive {
                                consumer: self.settings.consumer_name.clone(),
                                status: status.as_str().to_owned(),
                                waited: started.elapsed(),
                            },
                        ))
                    }
                    _ => {}
                }
                tokio::time::sleep(self.settings.activation_poll).await;
                match self.describe(stream, &consumer.arn, config).await? {
                    Some(described) => consumer = described,
                    // Deleted meanwhile: register it again.
                    None => break,
                }
            }
        }
    }

    async fn stream_arn(
        &self,
        stream: &StreamTarget,
        config: &SourceConfig,
    ) -> Result<String, Error> {
        let name = match stream {
            StreamTarget::Arn(arn) => return Ok(arn.clone()),
            StreamTarget::Name(name) => name,
        };
        let mut retries = Retries::new();
        loop {
            match self
                .client
                .describe_stream_summary()
                .stream_name(name)
                .send()
                .await
            {
                Ok(out) => {
                    return out
                        .stream_description_summary
                        .map(|s| s.stream_arn)
                        .ok_or_else(|| {
                            Error::target(
                                stream.to_string(),
                                "DescribeStreamSummary answered without the stream",
                            )
                        })
                }
                Err(err) => {
                    wait(
                        &mut retries,
                        classify(&err),
                        config,
                        stream.to_string(),
                        err,
                    )
                    .await?
                }
            }
        }
    }

    /// Registers the consumer, or describes it when it exists.
    async fn register(
        &self,
        stream: &StreamTarget,
        stream_arn: &str,
        config: &SourceConfig,
    ) -> Result<Described, Error> {
        let name = &self.settings.consumer_name;
        let mut retries = Retries::new();
        loop {
            let result = self
                .client
                .register_stream_consumer()
                .stream_arn(stream_arn)
                .consumer_name(name)
                .send()
                .await;
            match result {
                Ok(out) => {
                    tracing::info!(consumer = %name, "enhanced fan-out consumer registered");
                    return out.consumer.map(Described::from).ok_or_else(|| {
                        Error::target(
                            self.target(stream),
                            FanOutError::NoConsumer {
                                operation: "RegisterStreamConsumer",
                                consumer: name.clone(),
                            },
                        )
                    });
                }
                Err(SdkError::ServiceError(e)) if e.err().is_resource_in_use_exception() => {
                    return self.describe_by_name(stream, stream_arn, config).await;
                }
                Err(err) => {
                    // `LimitExceededException` is both the call rate and the
                    // 20 consumers a stream may have: retried, but counted.
                    let class = match classify(&err) {
                        Failure::Throttled => Failure::Transient,
                        class => class,
                    };
                    wait(&mut retries, class, config, self.target(stream), err).await?
                }
            }
        }
    }

    async fn describe_by_name(
        &self,
        stream: &StreamTarget,
        stream_arn: &str,
        config: &SourceConfig,
    ) -> Result<Described, Error> {
        let name = &self.settings.consumer_name;
        let mut retries = Retries::new();
        loop {
            let result = self
                .client
                .describe_stream_consumer()
                .stream_arn(stream_arn)
                .consumer_name(name)
                .send()
                .await;
            match result {
                Ok(out) => {
                    return out
                        .consumer_description
                        .map(Described::from)
                        .ok_or_else(|| {
                            Error::target(
                                self.target(stream),
                                FanOutError::NoConsumer {
                                    operation: "DescribeStreamConsumer",
                                    consumer: name.clone(),
                                },
                            )
                        })
                }
                Err(err) => {
                    let class = classify(&err);
                    wait(&mut retries, class, config, self.target(stream), err).await?
                }
            }
        }
    }

    /// The consumer's current status; `None` once it no longer exists.
    async fn describe(
        &self,
        stream: &StreamTarget,
        consumer_arn: &str,
        config: &SourceConfig,
    ) -> Result<Option<Described>, Error> {
        let mut retries = Retries::new();
        loop {
            let result = self
                .client
                .describe_stream_consumer()
                .consumer_arn(consumer_arn)
                .send()
                .await;
            match result {
                Ok(out) => return Ok(out.consumer_description.map(Described::from)),
                Err(SdkError::ServiceError(e)) if e.err().is_resource_not_found_exception() => {
                    return Ok(None)
                }
                Err(err) => {
                    let class = classify(&err);
                    wait(&mut retries, class, config, self.target(stream), err).await?
                }
            }
        }
    }
}

impl Drop for FanOutConsumer {
    fn drop(&mut self) {
        if !self.settings.deregister_on_shutdown {
            return;
        }
        let Some(arn) = self.arn.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(consumer = %self.settings.consumer_name, "no Tokio runtime: enhanced fan-out consumer not deregistered");
            return;
        };
        let client = self.client.clone();
        let name = self.settings.consumer_name.clone();
        runtime.spawn(async move {
            match client
                .deregister_stream_consumer()
                .consumer_arn(&arn)
                .send()
                .await
            {
                Ok(_) => tracing::info!(consumer = %name, "enhanced fan-out consumer deregistered"),
                Err(err) => tracing::warn!(consumer = %name, error = %aws_sdk_kinesis::error::DisplayErrorContext(&err), "enhanced fan-out consumer not deregistered"),
            }
        });
    }
}

/// Waits before another attempt, or fails with `err` naming `target`.
async fn wait<E>(
    retries: &mut Retries,
    class: Failure,
    config: &SourceConfig,
    target: String,
    err: E,
) -> Result<(), Error>
where
    E: Into<Box<dyn std::error::Error + Send + Sync>> + std::fmt::Display,
{
    match retries.delay(class, config) {
        Some(delay) => {
            tracing::debug!(%target, ?class, ?delay, error = %err, "kinesis consumer call failed; retrying");
            tokio::time::sleep(delay).await;
            Ok(())
        }
        None => Err(Error::target(target, err)),
    }
}
