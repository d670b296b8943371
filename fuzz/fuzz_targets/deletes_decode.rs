#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferrovus_core::fuzzing::deletes_decode(data));
