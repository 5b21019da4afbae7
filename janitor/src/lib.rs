//! The janitor: makes a node's local PIndexes match the plan.
//!
//! [`diff`] is the pure core: (the plan's copies for this node, the local PIndexes, the time,
//! the backfill limit) → the actions to take, with no I/O. `janitor/README.md` explains the
//! rules. The executor that runs PIndexes and feeds comes with the PIndex work.

pub mod diff;

pub use diff::{diff, Action, Diff, Local, LocalState, Wanted};
