//! Fuzz target `checkpoint_json`: hands libFuzzer's bytes to
//! `unistream::__fuzz::checkpoint_json::run` (see there for what it checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| unistream::__fuzz::checkpoint_json::run(data));
