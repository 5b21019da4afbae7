//! The two numbers everything in the store is addressed by. Apart from the store trait so that
//! the error type can name them without importing the trait that returns it.

/// A store revision (etcd's `mod_revision`). 0 means "absent" in CAS positions.
pub type Revision = i64;

/// A lease id, as granted by the store.
pub type LeaseId = i64;
