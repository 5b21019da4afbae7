//! The node's copy report (`reports/<node>`): what the planner learns from this janitor —
//! the PIndexes caught up (with their documents, and the bytes copied from a peer to build
//! them), PIndex files on disk it does not host,
//! stalled feeds, feeds held by an incident, and the newest plan it acted on. Written again
//! only when one of those changes.

use std::collections::BTreeMap;

use tessera_cfg::schema::{CopyReport, Document};

use super::Executor;

/// What a copy report said, to write it again only when it changes.
#[derive(Debug, PartialEq)]
pub(super) struct Reported {
    caught_up: std::collections::BTreeSet<String>,
    /// Unhosted PIndexes whose files are on disk.
    on_disk: std::collections::BTreeSet<String>,
    stalled: BTreeMap<String, String>,
    incidents: BTreeMap<String, String>,
    /// The newest plan acted on.
    plans_seen: tessera_cfg::Revision,
    copied_bytes: BTreeMap<String, u64>,
}

impl Executor {
    /// Tells the planner which local copies have caught up (it marks them `active`).
    pub(super) async fn report(
        &mut self,
        on_disk: std::collections::BTreeSet<String>,
        plans_seen: tessera_cfg::Revision,
    ) -> Result<(), tessera_cfg::CfgError> {
        let caught_up: std::collections::BTreeSet<String> = self
            .hosted
            .iter()
            .filter(|(_, h)| h.caught_up)
            .map(|(n, _)| n.clone())
            .collect();
        let stalled: BTreeMap<String, String> = self
            .hosted
            .iter()
            .filter_map(|(n, h)| Some((n.clone(), h.stalled.clone()?)))
            .collect();
        let incidents: BTreeMap<String, String> = self
            .hosted
            .iter()
            .filter_map(|(n, h)| Some((n.clone(), h.feed.status().incident?)))
            .collect();
        let copied_bytes: BTreeMap<String, u64> = self
            .hosted
            .iter()
            .filter(|(_, h)| h.caught_up)
            .filter_map(|(n, h)| Some((n.clone(), h.copied_bytes?)))
            .collect();
        // Written again when what it says changes, and when a newer plan of an index hosted
        // here was acted on (the planner trusts "caught up" only for plans it has seen).
        let state = Reported {
            caught_up: caught_up.clone(),
            on_disk: on_disk.clone(),
            stalled: stalled.clone(),
            incidents: incidents.clone(),
            plans_seen,
            copied_bytes: copied_bytes.clone(),
        };
        if self.reported.as_ref() == Some(&state) {
            return Ok(());
        }
        let key = self.cfg.keys().report(&self.node);
        let docs = caught_up
            .iter()
            .filter_map(|n| {
                let feed = self.hosted.get(n)?.feed.status();
                Some((n.clone(), feed.docs))
            })
            .collect();
        let doc = CopyReport {
            format_version: CopyReport::FORMAT_VERSION,
            node: self.node.clone(),
            incarnation: self.incarnation.clone(),
            caught_up: caught_up.clone(),
            docs,
            on_disk,
            stalled,
            plans_seen,
            incidents,
            copied_bytes,
        };
        let cas = self
            .cfg
            .store()
            .get(&key)
            .await?
            .map_or(0, |kv| kv.mod_revision);
        self.cfg.put_doc(&key, &doc, cas, None).await?;
        self.reported = Some(state);
        Ok(())
    }
}
