//! The janitor: makes a node's local PIndexes match the plan.
//!
//! [`diff`] is the pure core: (the plan's copies for this node, the local PIndexes, the time,
//! the backfill limit) → the actions to take, with no I/O. `janitor/README.md` explains the
//! rules. [`executor`] is the I/O around it: it watches the Cfg, opens PIndexes, runs their
//! feeds, and retries failures with backoff. [`feed`] streams a PIndex's source partitions into
//! it (the client side of the source protocol).

pub mod diff;
pub mod executor;
pub mod feed;

pub use diff::{diff, Action, Diff, Local, LocalState, Wanted};
