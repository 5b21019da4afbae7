#![no_main]
//! See `tessera_tests::fuzzing::protocol_messages`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| tessera_tests::fuzzing::protocol_messages(data));
