#![no_main]
//! See `tessera_tests::fuzzing::bulk_ndjson`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| tessera_tests::fuzzing::bulk_ndjson(data));
