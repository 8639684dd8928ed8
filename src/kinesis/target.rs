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
    /// The stream in metrics labels and spans: its name, or its ARN.
    pub(crate) fn label_name(&self) -> &str {
        match self {
            StreamTarget::Name(name) => name,
            StreamTarget::Arn(arn) => arn,
        }
    }

    /// The name, if this target is a name.
    pub fn name(&self) -> Option<&str> {
        match self {
            StreamTarget::Name(name) => Some(name),
            StreamTarget::Arn(_) => None,
        }
    }

    /// Whether Kinesis can accept this name or ARN: a name is 1 to 128
    /// characters of `a-z A-Z 0-9 _ . -`; an ARN (at most 2048 characters)
    /// names a Kinesis stream (`arn:<partition>:kinesis:<region>:<account>:stream/<name>`)
    /// with such a name.
    ///
    /// ```
    /// use unistream::kinesis::StreamTarget;
    ///
    /// assert!(StreamTarget::from("orders-v2.eu_1").check().is_ok());
    /// assert!(StreamTarget::from("arn:aws:kinesis:us-east-1:123456789012:stream/orders").check().is_ok());
    /// assert!(StreamTarget::from("").check().is_err());
    /// assert!(StreamTarget::from("orders/v2").check().is_err());
    /// assert!(StreamTarget::from("arn:aws:sqs:us-east-1:123456789012:orders").check().is_err());
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Config`](crate::Error::Config) saying what is wrong.
    pub fn check(&self) -> Result<(), crate::Error> {
        let bad = |why: String| Err(crate::Error::Config(why));
        match self {
            StreamTarget::Name(name) => check_name(name).or_else(bad),
            StreamTarget::Arn(arn) => {
                if arn.len() > 2048 {
                    return bad(format!(
                        "stream ARN of {} characters (at most 2048)",
                        arn.len()
                    ));
                }
                // arn:partition:service:region:account:resource
                let parts: Vec<&str> = arn.splitn(6, ':').collect();
                match parts.as_slice() {
                    ["arn", _, "kinesis", _, _, resource] => {
                        match resource.strip_prefix("stream/") {
                            Some(name) => check_name(name)
                                .or_else(|why| bad(format!("{why} (in ARN {arn:?})"))),
                            None => bad(format!(
                                "ARN {arn:?} does not name a stream (`stream/<name>`)"
                            )),
                        }
                    }
                    _ => bad(format!(
                        "ARN {arn:?} is not a Kinesis ARN (`arn:<partition>:kinesis:…`)"
                    )),
                }
            }
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

/// The stream name rule of `CreateStream`.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 128 {
        return Err(format!(
            "stream name {name:?} has {} characters (1 to 128)",
            name.chars().count()
        ));
    }
    match name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        Some(c) => Err(format!(
            "stream name {name:?} holds {c:?} (only a-z A-Z 0-9 _ . - are allowed)"
        )),
        None => Ok(()),
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
