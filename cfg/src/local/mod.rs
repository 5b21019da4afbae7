//! The local backends (`embedded` file and `memory`), one engine over redb.

mod codec;
mod engine;
mod store;
mod watch;

pub use engine::{LocalStore, DEFAULT_HISTORY_LIMIT};
