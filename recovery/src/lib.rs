//! Recovery of missing PIndexes, the pure part (`README.md` beside this crate explains the
//! method). [`missing`] tells which PIndexes no copy can serve and which node the plan has put
//! each on; [`machine`] is the recovery's state machine: beginning one, the steps a janitor
//! reports per PIndex, commit, end and abort, and its progress. No I/O and no clock: the API
//! and the janitor read and write the Cfg around these functions and pass the time in.

pub mod machine;
pub mod missing;

pub use machine::{Progress, RecoveryError};
pub use missing::{missing, MissingPIndex};
