//! Fuzz target `kpl_deaggregate`: hands libFuzzer's bytes to
//! `unistream::__fuzz::kpl_deaggregate::run` (see there for what it checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| unistream::__fuzz::kpl_deaggregate::run(data));
