//! Sources: streams of `(record, CheckpointToken)`.
//!
//! (Being built: `FileSource`, `MemorySource`.)
