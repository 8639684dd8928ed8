//! Helpers shared by the integration tests. Each test binary includes this
//! module with `mod support;` and uses the parts it needs.
#![allow(dead_code)]

pub mod emulators;
pub mod wal;
