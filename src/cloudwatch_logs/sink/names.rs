//! Checks of log group and log stream names, made when a sink is built, so
//! that a bad name fails at once with [`Error::Config`] rather than with the
//! first request.
//!
//! # Guarantees
//!
//! - A group name is accepted only with 1 to [`MAX_LOG_GROUP_NAME_CHARS`]
//!   characters, each from `a-z A-Z 0-9 . - _ / #`.
//! - A stream name is accepted only with 1 to [`MAX_LOG_STREAM_NAME_CHARS`]
//!   characters, none of them `:` or `*`.
//! - Lengths count characters, not bytes, as the service does.
//!
//! # Not guaranteed
//!
//! Only length and characters are checked: whether the group and stream
//! exist, whether the credentials may write them, and any other rule of the
//! service are found out by the service.

use crate::cloudwatch_logs::limits::{MAX_LOG_GROUP_NAME_CHARS, MAX_LOG_STREAM_NAME_CHARS};
use crate::error::Error;

/// `Ok` when CloudWatch Logs can accept `name` as a log group name.
pub(super) fn check_group_name(name: &str) -> Result<(), Error> {
    let chars = name.chars().count();
    let valid_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/' | '#'));
    if chars == 0 || chars > MAX_LOG_GROUP_NAME_CHARS || !valid_chars {
        return Err(Error::Config(format!(
            "invalid log group name {name:?}: 1 to {MAX_LOG_GROUP_NAME_CHARS} characters \
             from a-z A-Z 0-9 . - _ / #"
        )));
    }
    Ok(())
}

/// `Ok` when CloudWatch Logs can accept `name` as a log stream name.
pub(super) fn check_stream_name(name: &str) -> Result<(), Error> {
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_LOG_STREAM_NAME_CHARS || name.contains([':', '*']) {
        return Err(Error::Config(format!(
            "invalid log stream name {name:?}: 1 to {MAX_LOG_STREAM_NAME_CHARS} characters, \
             no ':' or '*'"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_group_name("/aws/lambda/my-fn_1.#").is_ok());
        assert!(check_group_name("").is_err());
        assert!(check_group_name("bad group").is_err());
        assert!(check_group_name(&"g".repeat(513)).is_err());
        assert!(check_stream_name("2024/01/01/[$LATEST]abc").is_ok());
        assert!(check_stream_name("a:b").is_err());
        assert!(check_stream_name("a*").is_err());
        assert!(check_stream_name("").is_err());
    }
}
