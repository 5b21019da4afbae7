//! Automatic failover with a cap, and the cluster freeze. A node absent longer than the
//! failover delay is failed over by writing `failed_over` into its definition (so the
//! decision survives a change of leader and shows in the topology) and counting it in the
//! cluster control document; past `max_auto_failovers` since the operator last acknowledged
//! (`POST /api/ctl/failover/ack`), absent nodes are left as they are: their copies stay
//! planned, replicas serve, and health says why.

use std::collections::{BTreeMap, BTreeSet};

use tessera_cfg::schema::{ClusterControl, Document, Held, NodeDef};
use tessera_cfg::{Cfg, CfgError, Versioned};

/// Which of `candidates` (absent past the delay, not failed over yet) may be failed over now.
pub fn allowed(
    control: &ClusterControl,
    candidates: &BTreeSet<String>,
    cap: u32,
) -> BTreeSet<String> {
    let room = cap.saturating_sub(control.auto_failovers) as usize;
    candidates.iter().take(room).cloned().collect()
}

pub async fn read(cfg: &Cfg) -> Result<Option<Versioned<ClusterControl>>, CfgError> {
    cfg.get_doc::<ClusterControl>(&cfg.keys().control()).await
}

/// Fails `nodes` over, each in one transaction with its count: the node's definition on the
/// revision this round read (`defs`) and the control document on its revision. A node whose
/// definition changed since (it came back, an operator acted) is not failed over and not
/// counted; the next round looks again. Returns the nodes failed over and the control
/// document as it is now.
pub async fn fail_over(
    cfg: &Cfg,
    control: Option<&Versioned<ClusterControl>>,
    nodes: &BTreeSet<String>,
    defs: &BTreeMap<String, Versioned<NodeDef>>,
) -> Result<(BTreeSet<String>, Option<Versioned<ClusterControl>>), CfgError> {
    let mut control = control.cloned();
    let mut landed = BTreeSet::new();
    for uuid in nodes {
        let Some(def) = defs.get(uuid) else { continue };
        let mut next = control
            .as_ref()
            .map(|c| c.value.clone())
            .unwrap_or(ClusterControl {
                format_version: ClusterControl::FORMAT_VERSION,
                ..ClusterControl::default()
            });
        next.auto_failovers += 1;
        next.auto_failed_nodes.push(uuid.clone());
        let key = cfg.keys().control();
        let count = cfg
            .fenced()
            .put(&key, &next, control.as_ref().map_or(0, |c| c.revision))?;
        if !cfg.fail_over_node(def, count).await? {
            tracing::info!(
                node = uuid,
                "node changed since it was read; failover left to the next round"
            );
            // The control document may have changed too: read it again before the next node.
            control = read(cfg).await?;
            continue;
        }
        tracing::warn!(
            node = uuid,
            "node absent past the failover delay: failed over"
        );
        landed.insert(uuid.clone());
        control = read(cfg).await?;
    }
    Ok((landed, control))
}

/// Records what the leader holds back (see [`Held`]) when it differs from what `control` (the
/// document as this round last read or wrote it) says; a concurrent change of the document is
/// left to the next round.
pub async fn record_held(
    cfg: &Cfg,
    control: Option<&Versioned<ClusterControl>>,
    held: Held,
) -> Result<(), CfgError> {
    if control
        .as_ref()
        .map_or(held.is_empty(), |c| c.value.held == held)
    {
        return Ok(());
    }
    let mut next = control.map(|c| c.value.clone()).unwrap_or(ClusterControl {
        format_version: ClusterControl::FORMAT_VERSION,
        ..ClusterControl::default()
    });
    next.held = held;
    let cas = control.map_or(0, |c| c.revision);
    match cfg.put_doc(&cfg.keys().control(), &next, cas, None).await {
        Ok(_) | Err(CfgError::CasMismatch { .. }) | Err(CfgError::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_counts_failovers_since_the_last_acknowledgement() {
        let nodes: BTreeSet<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
        let mut control = ClusterControl::default();
        assert_eq!(allowed(&control, &nodes, 1).len(), 1);
        assert_eq!(allowed(&control, &nodes, 5).len(), 2);
        assert!(
            allowed(&control, &nodes, 0).is_empty(),
            "0 disables automatic failover"
        );
        control.auto_failovers = 1;
        assert!(allowed(&control, &nodes, 1).is_empty());
    }
}
