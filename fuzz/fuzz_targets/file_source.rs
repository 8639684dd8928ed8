//! Fuzz target `file_source`: hands libFuzzer's bytes to
//! `unistream::__fuzz::file_source::run` (see there for what it checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| unistream::__fuzz::file_source::run(data));
