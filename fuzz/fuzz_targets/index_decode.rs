#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferrovus_index::fuzzing::index_decode(data));
