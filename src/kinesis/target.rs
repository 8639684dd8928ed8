//! Which stream a Kinesis client talks to: by name or by ARN.

use std::fmt;

/// A Kinesis data stream, named or by ARN (needed for cross-account access).
///
/// Anything that converts into a string converts into a target: text that
/// starts with `arn:` is an ARN, anything else a stream name.
///
/// ```
/// use unistream::kinesis::StreamTarget;
///
/// assert_eq!(StreamTarget::from("orders"), StreamTarget::Name("orders".into()));
/// assert!(matches!(
///     StreamTarget::from("arn:aws:kinesis:us-east-1:123456789012:stream/orders"),
///     StreamTarget::Arn(_)
/// ));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StreamTarget {
    /// The stream's name, in the client's account and region.
    Name(String),
    /// The stream's ARN.
    Arn(String),
}

impl StreamTarget {
    /// The name, if this target is a name.
    pub fn name(&self) -> Option<&str> {
        match self {
            StreamTarget::Name(name) => Some(name),
            StreamTarget::Arn(_) => None,
        }
    }

    /// The ARN, if this target is an ARN.
    pub fn arn(&self) -> Option<&str> {
        match self {
            StreamTarget::Arn(arn) => Some(arn),
            StreamTarget::Name(_) => None,
        }
    }
}

impl From<String> for StreamTarget {
    fn from(text: String) -> Self {
        if text.starts_with("arn:") {
            StreamTarget::Arn(text)
        } else {
            StreamTarget::Name(text)
        }
    }
}

impl From<&str> for StreamTarget {
    fn from(text: &str) -> Self {
        StreamTarget::from(text.to_owned())
    }
}

impl From<&String> for StreamTarget {
    fn from(text: &String) -> Self {
        StreamTarget::from(text.clone())
    }
}

impl fmt::Display for StreamTarget {
    /// `kinesis stream NAME` or `kinesis stream ARN`, as error messages
    /// name targets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamTarget::Name(s) | StreamTarget::Arn(s) => write!(f, "kinesis stream {s}"),
        }
    }
}
