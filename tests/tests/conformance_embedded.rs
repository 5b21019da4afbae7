//! The Store conformance suite on the embedded (redb file) backend.
tessera_tests::conformance_tests!(tessera_tests::conformance::embedded);
