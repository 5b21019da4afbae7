//! The cluster as queries see it, kept in memory: index definitions, plans, node definitions
//! and liveness, mirrored from a watch of the Cfg (listed whole at start and after a lost or
//! compacted watch), tagged with the store revision it reflects. A query routes from it
//! without reading the Cfg.
//!
//! The freshness rule: a query that must see the latest state (`at_plus`, which promises
//! read-your-write) reads the store's revision at its start (one small read) and is answered
//! from the mirror only once the mirror reflects that revision (or, past a short wait, from the
//! Cfg itself); any other query is answered from the mirror as it is (it trails the Cfg by the
//! watch's delay). Either way, a copy that is not where the mirror said makes the query re-read
//! the plan from the Cfg (`Scatter::refresh`), so a stale mirror costs a retry, never a wrong
//! answer. What the mirror cannot say is read from the Cfg: everything while it is not synced
//! (starting, or listing again), an index it does not know or has no plan of (created a
//! moment ago), a document it could not read (the Cfg says what is wrong with it).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tessera_cfg::schema::{self, Document, IndexDef, IndexPlan, NodeDef};
use tessera_cfg::{Cfg, KeyKind, Revision, WatchEvent};
use tokio::sync::watch;

use crate::view::View;

/// How long a query that must see the latest state waits for the mirror before reading the Cfg.
/// Short: the store's revision counts writes outside this cluster's keys too (another cluster
/// sharing the etcd), which the mirror never sees, so a mirror behind it may be as new as it
/// can be.
const CATCH_UP_WAIT: Duration = Duration::from_millis(50);
/// After a failed listing or watch, the next try.
const RETRY: Duration = Duration::from_millis(500);

/// The mirrored documents, as of `revision`.
#[derive(Debug, Default, Clone)]
pub struct Mirror {
    pub revision: Revision,
    defs: BTreeMap<String, IndexDef>,
    plans: BTreeMap<String, IndexPlan>,
    nodes: BTreeMap<String, NodeDef>,
    live: BTreeSet<String>,
    /// Documents that could not be read, by kind and name: what depends on them is read from
    /// the Cfg (which says what is wrong with them).
    unreadable: BTreeSet<(Kind, String)>,
}

/// The kinds of documents mirrored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    IndexDef,
    Plan,
    NodeDef,
}

impl Mirror {
    /// Applies one change of the key of kind `kind`.
    pub fn apply(&mut self, kind: KeyKind, event: &WatchEvent) {
        let Some(revision) = event.revision() else {
            return;
        };
        self.revision = self.revision.max(revision);
        let bytes = match event {
            WatchEvent::Put(kv) => Some((kv.key.as_str(), kv.value.as_slice())),
            _ => None,
        };
        fn put<T: Document>(
            map: &mut BTreeMap<String, T>,
            unreadable: &mut BTreeSet<(Kind, String)>,
            kind: Kind,
            name: &str,
            bytes: Option<(&str, &[u8])>,
        ) {
            let id = (kind, name.to_string());
            unreadable.remove(&id);
            match bytes.map(|(key, value)| schema::decode::<T>(key, value)) {
                Some(Ok(doc)) => {
                    map.insert(name.to_string(), doc);
                }
                Some(Err(_)) => {
                    map.remove(name);
                    unreadable.insert(id);
                }
                None => {
                    map.remove(name);
                }
            }
        }
        let unreadable = &mut self.unreadable;
        match &kind {
            KeyKind::IndexDef(name) => put(&mut self.defs, unreadable, Kind::IndexDef, name, bytes),
            KeyKind::Plan(name) => put(&mut self.plans, unreadable, Kind::Plan, name, bytes),
            KeyKind::NodeDef(uuid) => put(&mut self.nodes, unreadable, Kind::NodeDef, uuid, bytes),
            // A liveness key that exists means the node holds its lease, whatever it says.
            KeyKind::Liveness(uuid) => match bytes {
                Some(_) => {
                    self.live.insert(uuid.clone());
                }
                None => {
                    self.live.remove(uuid);
                }
            },
            _ => {}
        }
    }

    /// Index `name`'s definition; `None` when the mirror cannot say (unreadable, or absent:
    /// an index created a moment ago may not have reached the mirror, so the caller asks the
    /// Cfg, which is the word on absence).
    /// Every readable index definition, by name.
    pub fn defs(&self) -> &BTreeMap<String, IndexDef> {
        &self.defs
    }

    /// Every readable plan, by index.
    pub fn plans(&self) -> &BTreeMap<String, IndexPlan> {
        &self.plans
    }

    pub fn index_def(&self, name: &str) -> Option<IndexDef> {
        if self
            .unreadable
            .contains(&(Kind::IndexDef, name.to_string()))
        {
            return None;
        }
        self.defs.get(name).cloned()
    }

    /// The view of index `name`, as `View::load` reads it from the Cfg; `None` when the mirror
    /// cannot say: a document it depends on is unreadable, or the index is unknown or not
    /// planned here yet (the caller reads the Cfg, which says why).
    pub fn view(&self, name: &str) -> Option<View> {
        let depends = [
            (Kind::IndexDef, name.to_string()),
            (Kind::Plan, name.to_string()),
        ];
        let node_unreadable = self.unreadable.iter().any(|(k, _)| *k == Kind::NodeDef);
        if node_unreadable || depends.iter().any(|k| self.unreadable.contains(k)) {
            return None;
        }
        let plan = self.plans.get(name)?.clone();
        Some(View {
            plan,
            addresses: self
                .nodes
                .values()
                .map(|n| (n.uuid.clone(), n.host_port.clone()))
                .collect(),
            live: self.live.clone(),
            no_reads: self
                .nodes
                .values()
                .filter(|n| !n.reads)
                .map(|n| n.uuid.clone())
                .collect(),
        })
    }
}

/// How fresh the cluster a request routes from must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// The mirror as it is.
    Mirror,
    /// At least as new as the Cfg at this store revision (read at the request's start).
    AtLeast(Revision),
}

/// The mirror and its maintenance. Cheap to clone.
#[derive(Clone)]
pub struct ClusterView {
    /// `None` while not synced.
    mirror: Arc<RwLock<Option<Mirror>>>,
    /// The revision the mirror reflects (0 while not synced).
    revision: watch::Receiver<Revision>,
}

impl ClusterView {
    /// Starts mirroring `cfg`, for the life of the process (or of the runtime running it).
    pub fn start(cfg: Cfg) -> Self {
        let mirror = Arc::new(RwLock::new(None));
        let (tx, revision) = watch::channel(0);
        tokio::spawn(maintain(cfg, mirror.clone(), tx));
        Self { mirror, revision }
    }

    /// What `read` finds in the mirror, once it is as fresh as `fresh` asks; `None` when it is
    /// not synced, does not get there within a short wait, or `read` cannot say.
    pub async fn read<T>(
        &self,
        fresh: Freshness,
        read: impl Fn(&Mirror) -> Option<T>,
    ) -> Option<T> {
        if let Freshness::AtLeast(revision) = fresh {
            let mut rx = self.revision.clone();
            let reached = {
                let caught_up = rx.wait_for(|r| *r >= revision);
                matches!(
                    tokio::time::timeout(CATCH_UP_WAIT, caught_up).await,
                    Ok(Ok(_))
                )
            };
            if !reached {
                return None;
            }
        }
        let guard = self.mirror.read().ok()?;
        let mirror = guard.as_ref()?;
        match fresh {
            Freshness::AtLeast(revision) if mirror.revision < revision => None,
            _ => read(mirror),
        }
    }
}

/// Lists the Cfg, then follows its watch; lists again after a lost or compacted watch.
async fn maintain(
    cfg: Cfg,
    mirror: Arc<RwLock<Option<Mirror>>>,
    revision: watch::Sender<Revision>,
) {
    let root = cfg.keys().root().to_string();
    loop {
        let listed = match cfg.store().list(&root).await {
            Ok(listed) => listed,
            Err(e) => {
                tracing::debug!(error = %e, "cluster view: listing the Cfg failed; retrying");
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        let mut fresh = Mirror {
            revision: listed.revision,
            ..Mirror::default()
        };
        for kv in listed.kvs {
            let kind = cfg.keys().kind(&kv.key);
            let event = WatchEvent::Put(kv);
            fresh.apply(kind, &event);
        }
        fresh.revision = listed.revision;
        let Ok(mut watching) = cfg.store().watch(&root, listed.revision + 1).await else {
            tokio::time::sleep(RETRY).await;
            continue;
        };
        install(&mirror, &revision, Some(fresh));
        while let Some(event) = watching.next().await {
            let Some(key) = event.key() else { break }; // compacted: list again
            let kind = cfg.keys().kind(key);
            let reflected = match mirror.write() {
                Ok(mut guard) => guard.as_mut().map(|m| {
                    m.apply(kind, &event);
                    m.revision
                }),
                Err(_) => None,
            };
            if let Some(r) = reflected {
                revision.send_replace(r);
            }
        }
        // The watch ended: queries read the Cfg until the mirror is listed again.
        install(&mirror, &revision, None);
    }
}

fn install(
    mirror: &RwLock<Option<Mirror>>,
    revision: &watch::Sender<Revision>,
    fresh: Option<Mirror>,
) {
    let reflected = fresh.as_ref().map_or(0, |m| m.revision);
    if let Ok(mut guard) = mirror.write() {
        *guard = fresh;
    }
    revision.send_replace(reflected);
}

#[cfg(test)]
mod tests;
