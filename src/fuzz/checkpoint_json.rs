//! Fuzz body of the JSON checkpoint document read by
//! [`JsonFileCheckpointStore`]: any file contents load as positions or fail
//! with [`CheckpointError::Corrupt`], never a panic, and a document that
//! loads survives a save and a reload with every position intact.

use super::scratch::ScratchDir;
use crate::checkpoint::{CheckpointError, CheckpointStore, JsonFileCheckpointStore, Position};

const ADDED: &str = "partition added by the fuzz body";

/// Loads `data` as a checkpoint document, then saves one more partition
/// and checks that a fresh store reads every position back.
pub fn run(data: &[u8]) {
    let scratch = ScratchDir::new();
    let path = scratch.path().join("checkpoints.json");
    std::fs::write(&path, data).expect("fuzz body: writing the document");
    super::runtime().block_on(async {
        let store = JsonFileCheckpointStore::new(&path);
        let mut positions = match store.positions().await {
            Ok(positions) => positions,
            Err(CheckpointError::Corrupt { .. }) => {
                assert!(
                    store.save(ADDED, &Position::End).await.is_err(),
                    "a document that does not parse is never overwritten"
                );
                assert_eq!(std::fs::read(&path).ok().as_deref(), Some(data));
                return;
            }
            Err(error) => panic!("loading a document failed with {error:?}, not Corrupt"),
        };
        store
            .save(ADDED, &Position::Offset(7))
            .await
            .expect("saving over a document that loads");
        positions.insert(ADDED.to_owned(), Position::Offset(7));
        let reopened = JsonFileCheckpointStore::new(&path);
        assert_eq!(
            reopened
                .positions()
                .await
                .expect("reloading a saved document"),
            positions,
            "every position survives a save"
        );
    });
}
