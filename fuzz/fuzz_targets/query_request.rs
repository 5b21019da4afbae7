#![no_main]
//! See `tessera_tests::fuzzing::query_request`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| tessera_tests::fuzzing::query_request(data));
