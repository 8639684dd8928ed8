//! Fuzz target `wal_position`: hands libFuzzer's bytes to
//! `unistream::__fuzz::wal_position::run` (see there for what it checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| unistream::__fuzz::wal_position::run(data));
