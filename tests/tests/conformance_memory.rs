//! The Store conformance suite on the in-memory backend.
tessera_tests::conformance_tests!(tessera_tests::conformance::memory);
