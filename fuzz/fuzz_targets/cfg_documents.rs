#![no_main]
//! See `tessera_tests::fuzzing::cfg_documents`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| tessera_tests::fuzzing::cfg_documents(data));
