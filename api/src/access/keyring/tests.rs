//! The mirror's bounds: unknown keys read within per-client budgets, a revocation that the
//! watch did not bring still refused past the staleness bound, a stale direct read never
//! putting a revoked key back, 503 when the Cfg cannot say.

use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use tessera_cfg::store::{Listing, Store, Txn, TxnOutcome, WatchStream};
use tessera_cfg::{KeyValue, LeaseId};

use super::*;

/// A store whose `get` can be held after it has read (to make a read that began before a
/// revocation return after it), and that can be made unreachable.
struct Gated {
    inner: Arc<dyn Store>,
    gate: tokio::sync::Mutex<()>,
    read: tokio::sync::Notify,
    down: AtomicBool,
}

impl Gated {
    fn check(&self) -> tessera_cfg::Result<()> {
        if self.down.load(Ordering::SeqCst) {
            return Err(CfgError::Unavailable {
                reason: "test: the store is down".into(),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl Store for Gated {
    fn backend(&self) -> &'static str {
        "gated"
    }
    async fn get(&self, key: &str) -> tessera_cfg::Result<Option<KeyValue>> {
        self.check()?;
        let value = self.inner.get(key).await;
        self.read.notify_one();
        let _held = self.gate.lock().await;
        value
    }
    async fn list(&self, prefix: &str) -> tessera_cfg::Result<Listing> {
        self.check()?;
        self.inner.list(prefix).await
    }
    async fn revision(&self) -> tessera_cfg::Result<Revision> {
        self.inner.revision().await
    }
    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        cas: Revision,
        lease: Option<LeaseId>,
    ) -> tessera_cfg::Result<Revision> {
        self.inner.put(key, value, cas, lease).await
    }
    async fn delete(&self, key: &str, cas: Revision) -> tessera_cfg::Result<Revision> {
        self.inner.delete(key, cas).await
    }
    async fn txn(&self, txn: Txn) -> tessera_cfg::Result<TxnOutcome> {
        self.inner.txn(txn).await
    }
    async fn watch(&self, prefix: &str, from: Revision) -> tessera_cfg::Result<WatchStream> {
        self.inner.watch(prefix, from).await
    }
    async fn compact(&self, revision: Revision) -> tessera_cfg::Result<()> {
        self.inner.compact(revision).await
    }
    async fn grant_lease(&self, ttl: Duration) -> tessera_cfg::Result<LeaseId> {
        self.inner.grant_lease(ttl).await
    }
    async fn keep_alive_lease(&self, lease: LeaseId) -> tessera_cfg::Result<()> {
        self.inner.keep_alive_lease(lease).await
    }
    async fn revoke_lease(&self, lease: LeaseId) -> tessera_cfg::Result<()> {
        self.inner.revoke_lease(lease).await
    }
}

/// The gated store, a Cfg over it (the ring's), and one straight over the store it wraps
/// (the test's own writes, which the gate must not hold).
fn gated() -> (Arc<Gated>, Cfg, Cfg) {
    let inner: Arc<dyn Store> =
        Arc::new(tessera_cfg::local::LocalStore::open_memory().expect("store"));
    let direct = Cfg::new(
        inner.clone(),
        tessera_cfg::KeySpace::new("t").expect("keys"),
    );
    let store = Arc::new(Gated {
        inner,
        gate: tokio::sync::Mutex::new(()),
        read: tokio::sync::Notify::new(),
        down: AtomicBool::new(false),
    });
    let cfg = Cfg::new(
        store.clone(),
        tessera_cfg::KeySpace::new("t").expect("keys"),
    );
    (store, cfg, direct)
}

fn monitor_key() -> (String, KeyRecord) {
    let roles = ["monitor".parse().expect("role")];
    key::make("k", &roles, 0, None).expect("key")
}

/// Revokes `record` in the Cfg: the watch event it makes.
async fn revoke(cfg: &Cfg, record: &KeyRecord) -> WatchEvent {
    let current = cfg.api_key(&record.id).await.expect("read").expect("there");
    let revoked = KeyRecord {
        revoked_ms: Some(1),
        ..current.value
    };
    cfg.put_api_key(&revoked, current.revision)
        .await
        .expect("revoke");
    let kv = cfg
        .store()
        .get(&cfg.keys().api_key(&record.id))
        .await
        .expect("read")
        .expect("there");
    WatchEvent::Put(kv)
}

const HOUR: Timing = Timing {
    stale_after: Duration::from_secs(3600),
    refresh: Duration::from_secs(3600),
};

#[test]
fn unknown_keys_read_the_cfg_within_a_budget_per_client() {
    let t0 = Instant::now();
    let mut misses = Misses::default();
    let a = Some(IpAddr::from([10, 0, 0, 1]));
    let b = Some(IpAddr::from([10, 0, 0, 2]));
    for _ in 0..MISS_READS_PER_CLIENT {
        assert!(misses.take(a, t0));
    }
    assert!(
        !misses.take(a, t0 + Duration::from_millis(999)),
        "a's budget"
    );
    // One client's made-up keys do not use up another's lookups.
    assert!(misses.take(b, t0), "b has its own budget");
    assert!(misses.take(a, t0 + Duration::from_secs(1)), "a new second");
    // The node-wide bound still holds for many clients.
    let mut allowed = 0;
    for i in 0..(MISS_READS_PER_NODE * 2) {
        let client = Some(IpAddr::from([10, 1, (i / 256) as u8, (i % 256) as u8]));
        allowed += u32::from(misses.take(client, t0 + Duration::from_secs(2)));
    }
    assert_eq!(allowed, MISS_READS_PER_NODE);
}

#[tokio::test]
async fn a_key_not_yet_in_the_mirror_is_read_from_the_cfg() {
    let (_, cfg, _) = gated();
    let ring = KeyRing::start(cfg.clone());
    let (token, record) = monitor_key();
    assert!(matches!(
        ring.check(&token, 1, None).await,
        Err(KeyCheckError::Unknown(_))
    ));
    cfg.put_api_key(&record, 0).await.expect("put");
    let who = ring.check(&token, 1, None).await.expect("found");
    assert!(who.allows(tessera_auth::Need::Monitor, None));
}

#[tokio::test(start_paused = true)]
async fn a_revocation_the_watch_missed_is_refused_past_the_bound() {
    let (store, cfg, _) = gated();
    let (token, record) = monitor_key();
    cfg.put_api_key(&record, 0).await.expect("put");
    let ring = KeyRing::unwatched(cfg.clone(), Timing::default());
    ring.relist().await.expect("listed");
    assert!(ring.check(&token, 1, None).await.is_ok());
    // Revoked while this node's watch is down: nothing tells the mirror.
    let _ = revoke(&cfg, &record).await;
    assert!(
        ring.check(&token, 1, None).await.is_ok(),
        "within the bound the mirror answers"
    );
    tokio::time::advance(Timing::default().stale_after + Duration::from_secs(1)).await;
    assert!(
        matches!(
            ring.check(&token, 1, None).await,
            Err(KeyCheckError::Key(KeyError::Revoked(_)))
        ),
        "past the bound the Cfg is asked"
    );
    // And when the Cfg cannot be asked, the call is not let through on memory (503).
    let (token2, record2) = monitor_key();
    cfg.put_api_key(&record2, 0).await.expect("put");
    ring.relist().await.expect("listed");
    tokio::time::advance(Timing::default().stale_after + Duration::from_secs(1)).await;
    store.down.store(true, Ordering::SeqCst);
    assert!(matches!(
        ring.check(&token2, 1, None).await,
        Err(KeyCheckError::Cfg(_))
    ));
}

#[tokio::test]
async fn a_read_begun_before_a_revocation_does_not_bring_the_key_back() {
    let (store, ring_cfg, cfg) = gated();
    let ring = KeyRing::unwatched(ring_cfg, HOUR);
    ring.relist().await.expect("listed (no keys yet)");
    let (token, record) = monitor_key();
    cfg.put_api_key(&record, 0).await.expect("put");

    // The first call finds the key missing and reads it; the read is held after it read.
    let held = store.gate.lock().await;
    let first = tokio::spawn({
        let (ring, token) = (ring.clone(), token.clone());
        async move { ring.check(&token, 1, None).await }
    });
    tokio::time::timeout(Duration::from_secs(10), store.read.notified())
        .await
        .expect("the first call's read within 10 s");
    // Meanwhile the key is revoked and the watch brings the revocation.
    let event = revoke(&cfg, &record).await;
    ring.apply(&event);
    drop(held);
    let first = tokio::time::timeout(Duration::from_secs(10), first)
        .await
        .expect("the first call within 10 s")
        .expect("joined");
    assert!(first.is_ok(), "the call in flight read the key unrevoked");
    // The stale read did not replace the revoked record.
    assert!(matches!(
        ring.check(&token, 2, None).await,
        Err(KeyCheckError::Key(KeyError::Revoked(_)))
    ));
}

#[tokio::test]
async fn a_delete_is_not_undone_by_an_older_listing_or_read() {
    let (_, cfg, _) = gated();
    let ring = KeyRing::unwatched(cfg.clone(), HOUR);
    let (token, record) = monitor_key();
    let put = cfg.put_api_key(&record, 0).await.expect("put");
    ring.relist().await.expect("listed");
    ring.apply(&WatchEvent::Delete {
        key: cfg.keys().api_key(&record.id),
        revision: put + 1,
    });
    if let Ok(mut m) = ring.mirror.write() {
        let old = vec![(record.clone(), put)];
        m.relist(old, put, Instant::now());
        m.offer(&record.id, Slot::Present(record.clone()), put, None);
    }
    assert!(matches!(
        ring.check(&token, 1, None).await,
        Err(KeyCheckError::Unknown(_))
    ));
}
