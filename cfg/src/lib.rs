//! Tessera's Cfg: the shared configuration store everything in a cluster agrees through.
//!
//! - [`store`]: the [`Store`] trait, etcd's data model (revisions, CAS, transactions, watches,
//!   leases) with one behaviour across backends.
//! - [`local`] (`embedded` redb file, `memory`) and [`etcd`] backends.
//! - [`schema`]: the typed, versioned documents the cluster stores, with validation.
//! - [`keys`]: the key layout under `/tessera/<cluster>/`; no other crate builds key strings.
//! - [`cfg`]: [`Cfg`], the typed helpers over a store that other crates use.
//! - [`fenced`]: several writes that land together or not at all, on the revisions read.
//! - [`interleave`]: a store that runs another party's write just before the next
//!   transaction, for deterministic tests of races.
//! - [`snapshot`]: the whole cluster's documents at one revision (what planning reads).
//! - [`spec`]: parsing `--cfg etcd://...` / `embedded[:path]` / `memory` and opening the store.
//! - [`lease_keeper`]: keeps a lease alive in the background.
//! - [`limits`]: upper bounds on documents and on what an index definition may ask for.

mod api_key_docs;
mod backup_docs;
pub mod cfg;
pub mod error;
pub mod etcd;
pub mod fenced;
pub mod interleave;
pub mod keys;
pub mod lease_keeper;
pub mod limits;
pub mod local;
pub mod metered;
mod recovery_docs;
pub mod revision;
pub mod scan;
pub mod schema;
pub mod snapshot;
pub mod spec;
pub mod store;

pub use cfg::{Cfg, Unreadable, Versioned, VersionedList};
pub use error::{unix_ms, CfgError, Result};
pub use keys::{KeyKind, KeySpace};
pub use lease_keeper::LeaseKeeper;
pub use spec::{CfgSpec, EtcdAccess};
pub use store::{
    Compare, KeyValue, LeaseId, Listing, Op, Revision, Store, Txn, TxnOutcome, WatchEvent,
    WatchStream,
};
