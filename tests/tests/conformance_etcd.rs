//! The Store conformance suite on a real etcd process started by the test rig.
tessera_tests::conformance_tests!(tessera_tests::conformance::etcd);
