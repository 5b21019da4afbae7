//! Automatic failover with a cap, and the cluster freeze. A node absent longer than the
//! failover delay is failed over by writing `failed_over` into its definition (so the
//! decision survives a change of leader and shows in the topology) and counting it in the
//! cluster control document; past `max_auto_failovers` since the operator last acknowledged
//! (`POST /api/ctl/failover/ack`), absent nodes are left as they are: their copies stay
//! planned, replicas serve, and health says why.

use std::collections::BTreeSet;

use tessera_cfg::schema::{ClusterControl, Document, Held};
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

/// Fails `nodes` over: their definitions first (what planning acts on), then the count.
/// Returns the control document as written.
pub async fn fail_over(
    cfg: &Cfg,
    control: Option<&Versioned<ClusterControl>>,
    nodes: &BTreeSet<String>,
) -> Result<Versioned<ClusterControl>, CfgError> {
    for uuid in nodes {
        // Lost to a concurrent change (it came back, or an operator acted): the next round
        // looks again.
        if cfg.fail_over_node(uuid).await? {
            tracing::warn!(
                node = uuid,
                "node absent past the failover delay: failed over"
            );
        }
    }
    let mut next = control.map(|c| c.value.clone()).unwrap_or(ClusterControl {
        format_version: ClusterControl::FORMAT_VERSION,
        ..ClusterControl::default()
    });
    next.auto_failovers += nodes.len() as u32;
    next.auto_failed_nodes.extend(nodes.iter().cloned());
    let revision = cfg
        .put_doc(
            &cfg.keys().control(),
            &next,
            control.map_or(0, |c| c.revision),
            None,
        )
        .await?;
    Ok(Versioned {
        value: next,
        revision,
    })
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
