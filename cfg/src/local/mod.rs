//! The local backends (`embedded` file and `memory`), one engine over redb.

mod codec;
mod engine;
mod watch;

pub(crate) use engine::check_txn_keys;
pub use engine::{LocalStore, DEFAULT_HISTORY_LIMIT};
