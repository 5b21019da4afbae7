//! The one Store conformance suite. Each case is a function over a fresh store; the
//! [`conformance_tests!`](crate::conformance_tests) macro turns every case into a test for one
//! backend, so memory, embedded and etcd run exactly the same checks.

mod kv;
mod lease;
mod typed;
mod watch;

pub use kv::*;
pub use lease::*;
pub use typed::*;
pub use watch::*;

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use tessera_cfg::etcd::{EtcdOptions, EtcdStore};
use tessera_cfg::local::LocalStore;
use tessera_cfg::Store;

use crate::etcd::EtcdCluster;

/// A store under test and whatever keeps it alive (temp dir, etcd process).
pub struct Fixture {
    pub store: Arc<dyn Store>,
    _guard: Box<dyn Any + Send>,
}

pub async fn memory() -> Fixture {
    crate::init_tracing();
    Fixture {
        store: Arc::new(LocalStore::open_memory().expect("open memory store")),
        _guard: Box::new(()),
    }
}

pub async fn embedded() -> Fixture {
    crate::init_tracing();
    let dir = tempfile::tempdir().expect("temp dir");
    let store = LocalStore::open_file(&dir.path().join("cfg.redb")).expect("open embedded store");
    Fixture {
        store: Arc::new(store),
        _guard: Box::new(dir),
    }
}

pub async fn etcd() -> Fixture {
    crate::init_tracing();
    let cluster = tokio::task::spawn_blocking(EtcdCluster::single)
        .await
        .expect("start etcd");
    let store = EtcdStore::connect(EtcdOptions::new(cluster.endpoints()))
        .await
        .expect("connect etcd");
    Fixture {
        store: Arc::new(store),
        _guard: Box::new(cluster),
    }
}

/// Generates one `#[tokio::test]` per conformance case, for the backend built by `$fixture`.
#[macro_export]
macro_rules! conformance_tests {
    ($fixture:path) => {
        $crate::conformance_tests!(@cases $fixture;
            get_put_create_only,
            cas_update_and_mismatch,
            delete_semantics,
            list_prefix_sorted_with_revision,
            revisions_are_monotonic_and_create_revision_sticks,
            txn_all_or_nothing,
            txn_rejects_duplicate_keys,
            watch_replays_from_revision,
            watch_from_now_sees_only_new,
            watch_txn_events_share_revision,
            watch_compacted_then_relist,
            lease_expiry_deletes_keys_and_watchers_see_it,
            lease_keep_alive_and_revoke,
            lease_keeper_keeps_key_alive,
            concurrent_cas_loses_no_update,
            typed_cfg_validates_and_reports_corrupt
        );
    };
    (@cases $fixture:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let fixture = $fixture().await;
                $crate::conformance::$case(fixture.store.clone()).await;
            }
        )*
    };
}

pub(crate) const T: Duration = Duration::from_secs(10);

pub(crate) fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}
