//! Error messages name their cause once: an error that returns another from
//! `source()` does not repeat that error's message in its own, so reporters
//! walking the chain (`anyhow`, `eyre`, `tracing`) print each cause once;
//! `ErrorChain` prints the whole chain on one line.

use std::error::Error as StdError;

use futures::TryStreamExt;
use unistream::checkpoint::CheckpointError;
use unistream::codec::CodecError;
use unistream::lease::LeaseError;
use unistream::source::FileSource;
use unistream::{Error, ErrorChain};

/// The messages of `error` and its causes, outermost first.
fn chain(error: &(dyn StdError + 'static)) -> Vec<String> {
    let mut messages = vec![error.to_string()];
    let mut cause = error.source();
    while let Some(next) = cause {
        messages.push(next.to_string());
        cause = next.source();
    }
    messages
}

/// Every message of the chain leaves out the message of its source.
fn assert_no_repeats(error: &(dyn StdError + 'static)) -> Vec<String> {
    let messages = chain(error);
    for pair in messages.windows(2) {
        assert!(
            !pair[0].contains(&pair[1]),
            "{:?} repeats its source {:?} (chain {messages:?})",
            pair[0],
            pair[1]
        );
    }
    messages
}

const ROOT: &str = "the root cause: connection reset by peer";

fn root() -> std::io::Error {
    std::io::Error::other(ROOT)
}

#[test]
fn no_error_of_the_crate_repeats_its_source() {
    let errors: Vec<Error> = vec![
        Error::io("open", "/tmp/x.jsonl", root()),
        Error::target("kinesis stream orders", root()),
        Error::handler(root()),
        Error::DeadLetter(Box::new(Error::target("file dead.jsonl", root()))),
        Error::Checkpoint(CheckpointError::backend("lease table t", root())),
        Error::Codec(CodecError::decode("json", root())),
        Error::Lease(LeaseError::backend("t", root())),
    ];
    for error in &errors {
        let messages = assert_no_repeats(error);
        // The root cause is in the chain exactly once.
        assert_eq!(
            messages.iter().filter(|m| m.contains(ROOT)).count(),
            1,
            "{messages:?}"
        );
        assert!(ErrorChain(error).to_string().contains(ROOT));
    }
}

#[tokio::test]
async fn a_line_that_does_not_decode_names_file_and_offset_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.jsonl");
    std::fs::write(&path, "1\nnope\n3\n").unwrap();
    let error = FileSource::<u32>::new(&path)
        .stream()
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
    let messages = assert_no_repeats(&error);
    let line = ErrorChain(&error).to_string();
    assert_eq!(line.matches("offset 2").count(), 1, "{line}");
    assert!(messages.len() >= 3, "{messages:?}");
}

/// The check above can fail: an error that prints its source is caught.
#[test]
#[should_panic(expected = "repeats its source")]
fn the_check_catches_a_message_that_repeats_its_source() {
    #[derive(Debug)]
    struct Repeats(std::io::Error);
    impl std::fmt::Display for Repeats {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "failed: {}", self.0)
        }
    }
    impl StdError for Repeats {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&self.0)
        }
    }
    assert_no_repeats(&Repeats(root()));
}
