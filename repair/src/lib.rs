//! Offline repair of what a node keeps on disk, one shape for every kind of state (the model
//! is Pravega's durable-log repair, without its single backup slot and interactive edits):
//!
//! - a repair runs only while the process owning the data is stopped (the data's own lock —
//!   the source log's redb file lock) and one repair at a time per data dir
//!   ([`workspace::RepairLock`]);
//! - edits come from a file ([`edits::EditList`], JSON or YAML); a dry run applies them to a
//!   scratch copy and reports exactly what `apply` would change;
//! - `apply` backs the original up first (a named backup per repair, any number of them),
//!   writes the result beside the original, validates it against the counts (entries =
//!   before + added − deleted, every entry readable, the present keys as the entries say),
//!   and only then swaps it in with a rename; `rollback ID` puts a backup back byte for byte;
//! - every apply and rollback appends a line to the journal in the data dir.
//!
//! [`source`] repairs the reference source's log. The format-level work (reading entries
//! raw, applying edits) is `tessera_source::log::repair`'s; this crate is the workflow.

pub mod cfg;
pub mod edits;
pub mod error;
pub mod pindex;
pub mod salvage;
pub mod source;
pub mod workspace;

pub use error::RepairError;
