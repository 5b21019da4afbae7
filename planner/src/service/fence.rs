//! Leadership and fenced writes. The leader key (`planner/leader`) is created only if absent,
//! bound to the leader's lease; every plan write is a transaction that also compares the
//! leader key's revision with the one this leader created, so a deposed leader (its lease
//! expired, someone else created the key) cannot write.

use std::time::Duration;

use tessera_cfg::schema::{self, Document, IndexPlan, PlannerLeader};
use tessera_cfg::{Cfg, CfgError, Compare, LeaseKeeper, Op, Revision, Txn};

use super::PlannerError;

/// Proof of leadership: the revision at which this leader created the leader key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub key: String,
    pub revision: Revision,
}

/// Tries once to become leader. `Ok(None)`: someone else leads.
pub async fn campaign(
    cfg: &Cfg,
    me: &PlannerLeader,
    ttl: Duration,
) -> Result<Option<(LeaseKeeper, Fence)>, CfgError> {
    let lease = LeaseKeeper::grant(cfg.store().clone(), ttl).await?;
    let key = cfg.keys().planner_leader();
    // `since` is when this term began, not when the planner started.
    let record = PlannerLeader {
        since_unix_ms: tessera_cfg::unix_ms(),
        ..me.clone()
    };
    match cfg.put_doc(&key, &record, 0, Some(lease.id())).await {
        Ok(revision) => Ok(Some((lease, Fence { key, revision }))),
        Err(CfgError::AlreadyExists { .. }) => {
            lease.revoke().await?;
            Ok(None)
        }
        Err(e) => {
            let _ = lease.revoke().await;
            Err(e)
        }
    }
}

/// Waits until the leader key is gone (its holder resigned or its lease expired).
pub async fn wait_for_vacancy(cfg: &Cfg) -> Result<(), CfgError> {
    let key = cfg.keys().planner_leader();
    loop {
        let Some(current) = cfg.store().get(&key).await? else {
            return Ok(());
        };
        let mut watch = cfg.store().watch(&key, current.mod_revision + 1).await?;
        loop {
            match watch.next().await {
                Some(tessera_cfg::WatchEvent::Delete { key: k, .. }) if k == key => return Ok(()),
                Some(tessera_cfg::WatchEvent::Put(_)) => {}
                Some(_) => {}
                // Compacted or ended: look again.
                None => break,
            }
        }
    }
}

/// Writes (or deletes, with `None`) the plan of `index` if the leader key is still ours and
/// the stored plan is still at `cas` (0: absent).
pub async fn write_plan(
    cfg: &Cfg,
    fence: &Fence,
    index: &str,
    plan: Option<&IndexPlan>,
    cas: Revision,
) -> Result<(), PlannerError> {
    let key = cfg.keys().plan(index);
    let op = match plan {
        Some(plan) => {
            schema::check(&key, plan)?;
            Op::Put {
                key: key.clone(),
                value: schema::encode(plan),
                lease: None,
            }
        }
        None => Op::Delete { key: key.clone() },
    };
    let txn = Txn::new()
        .when(Compare::ModRevision {
            key: fence.key.clone(),
            revision: fence.revision,
        })
        .when(Compare::ModRevision {
            key: key.clone(),
            revision: cas,
        })
        .then(op);
    if cfg.store().txn(txn).await?.succeeded {
        return Ok(());
    }
    let leader = cfg.store().get(&fence.key).await?;
    if leader.is_none_or(|kv| kv.mod_revision != fence.revision) {
        return Err(PlannerError::Deposed);
    }
    Err(PlannerError::Conflict { key })
}

/// This planner's leader record.
pub fn leader_record(uuid: &str, incarnation: &str) -> PlannerLeader {
    PlannerLeader {
        format_version: PlannerLeader::FORMAT_VERSION,
        uuid: uuid.to_string(),
        incarnation: incarnation.to_string(),
        since_unix_ms: tessera_cfg::unix_ms(),
    }
}
