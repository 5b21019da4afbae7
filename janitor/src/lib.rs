//! The janitor: makes a node's local PIndexes match the plan.
//!
//! [`diff`] is the pure core: (the plan's copies for this node, the local PIndexes, the time,
//! the backfill limit) → the actions to take, with no I/O. `janitor/README.md` explains the
//! rules. [`executor`] is the I/O around it: it watches the Cfg, opens PIndexes, runs their
//! feeds, keeps the status board ([`board`]), detects stalled feeds, and retries failures with
//! backoff. [`wanted`] decides, purely, which copies the node should host from the plans and
//! definitions read (holding an index whose plan does not match its definition or cannot be
//! read). [`incident`] tells a whole source history replaced (held for an operator) from a
//! rollback. [`feed`] streams a PIndex's source partitions into it (the client side of the source
//! protocol).

pub mod board;
pub mod diff;
pub mod executor;
pub mod feed;
pub mod incident;
mod stall;
pub mod wanted;

pub use diff::{diff, Action, Diff, Local, LocalState, Wanted};
