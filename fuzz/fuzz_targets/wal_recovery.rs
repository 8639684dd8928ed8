//! Fuzz target `wal_recovery`: hands libFuzzer's bytes to
//! `unistream::__fuzz::wal_recovery::run` (see there for what it checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| unistream::__fuzz::wal_recovery::run(data));
