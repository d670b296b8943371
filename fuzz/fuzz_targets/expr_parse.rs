#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferrovus_core::fuzzing::expr_parse(data));
