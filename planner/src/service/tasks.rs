//! The planner leader's side of topology tasks: each round it reports the running task's
//! progress (moves done of total, pace, time left, per node), carries out the delayed step of
//! a graceful failover (after the grace period, the nodes are failed over), and completes the
//! task once the stored plans have reached the target and ejected nodes hold nothing. The
//! decisions are plain functions ([`advance`]); [`run`] does the Cfg writes.

use std::collections::BTreeMap;

use tessera_cfg::schema::{
    self, CopyState, IndexPlan, NodeDef, TaskKind, TaskStatus, TopologyTask,
};
use tessera_cfg::{Cfg, CfgError, Versioned};

use crate::orchestrate::Progress;

/// How long queries have to finish on a node being failed over gracefully.
pub const GRACE_MS: u64 = 2_000;

/// What a round decides for the running task.
#[derive(Debug, Clone, PartialEq)]
pub struct Advance {
    pub task: TopologyTask,
    pub done: bool,
    /// Nodes to fail over now (graceful failover, grace over).
    pub fail_over: Vec<String>,
    /// When to look again even without changes (unix ms).
    pub wake_at_ms: Option<u64>,
}

/// What the copies completed since the last round hold: their documents, and the bytes the
/// ones copied from a peer fetched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Moved {
    pub docs: u64,
    pub bytes: u64,
}

/// The task as of this round.
pub fn advance(
    task: &TopologyTask,
    progress: &Progress,
    moved: Moved,
    plans: &BTreeMap<String, IndexPlan>,
    nodes: &BTreeMap<String, NodeDef>,
    now_ms: u64,
) -> Advance {
    let mut next = task.clone();
    let mut fail_over = Vec::new();
    let mut wake_at_ms = None;
    if task.kind == TaskKind::FailoverGraceful {
        let pending: Vec<String> = task
            .eject_nodes
            .iter()
            .filter(|n| nodes.get(*n).is_some_and(|d| !d.failed_over))
            .cloned()
            .collect();
        if !pending.is_empty() {
            let at = task.created_ms + GRACE_MS;
            if now_ms >= at {
                fail_over = pending;
            } else {
                wake_at_ms = Some(at);
            }
        }
    }
    let outstanding = progress.remaining() as u64;
    let p = &mut next.progress;
    p.moves_total = p.moves_total.max(outstanding + p.moves_done);
    p.moves_done = p.moves_total - outstanding;
    p.docs_moved += moved.docs;
    p.bytes_copied += moved.bytes;
    p.moving = progress.moving as u64;
    p.waiting = progress.waiting as u64;
    p.dropping = progress.dropping as u64;
    p.percent = if p.moves_total == 0 {
        100.0
    } else {
        (p.moves_done as f64 * 100.0 / p.moves_total as f64 * 10.0).round() / 10.0
    };
    let elapsed_s = now_ms.saturating_sub(task.created_ms) as f64 / 1000.0;
    p.eta_s = (p.moves_done > 0)
        .then(|| (elapsed_s / p.moves_done as f64 * outstanding as f64 * 10.0).round() / 10.0);
    p.per_node = progress
        .per_node
        .iter()
        .map(|(n, (i, o))| (n.clone(), (*i as u64, *o as u64)))
        .collect();
    let ejected_hold = plans
        .values()
        .flat_map(|p| &p.pindexes)
        .any(|p| p.copies.iter().any(|c| task.eject_nodes.contains(&c.node)));
    let settled = outstanding == 0 && progress.dropping == 0;
    let waiting_for_failover =
        task.kind == TaskKind::FailoverGraceful && (!fail_over.is_empty() || wake_at_ms.is_some());
    let done = settled && !ejected_hold && !waiting_for_failover;
    if done {
        next.status = TaskStatus::Completed;
        next.summary = Some(format!(
            "{} copies moved in {elapsed_s:.1} s",
            next.progress.moves_total
        ));
        next.progress.percent = 100.0;
        next.progress.eta_s = Some(0.0);
    }
    // A PIndex whose only copy sits on an ejected node has nowhere to go: say so instead of
    // leaving the task waiting without a reason.
    let stuck = plans.values().flat_map(|p| &p.pindexes).any(|p| {
        p.copies.len() == 1
            && p.copies[0].state != CopyState::Dropping
            && task.eject_nodes.contains(&p.copies[0].node)
            && task.kind != TaskKind::FailoverHard
    });
    if stuck && settled {
        let message = "some PIndexes have no other node to go to".to_string();
        if !next.errors.contains(&message) {
            next.errors.push(message);
        }
    }
    Advance {
        task: next,
        done,
        fail_over,
        wake_at_ms,
    }
}

/// Reads the running task, if any.
pub async fn running(cfg: &Cfg) -> Result<Option<Versioned<TopologyTask>>, CfgError> {
    let Some(lock) = cfg
        .get_doc::<schema::TopologyLock>(&cfg.keys().topology_lock())
        .await?
    else {
        return Ok(None);
    };
    cfg.get_doc::<TopologyTask>(&cfg.keys().task(&lock.value.task))
        .await
}

/// Applies a round's decision: fails nodes over, writes the task, releases the lock when done.
/// A lost race (the task was cancelled meanwhile) is left to the next round.
pub async fn run(
    cfg: &Cfg,
    current: &Versioned<TopologyTask>,
    decision: Advance,
    now_ms: u64,
    defs: &BTreeMap<String, Versioned<NodeDef>>,
) -> Result<(), CfgError> {
    for uuid in &decision.fail_over {
        let Some(def) = defs.get(uuid) else { continue };
        // On the definition as read, and only while the task is still running as read: a
        // cancel in between (which restores the definitions) wins. A lost race is left to the
        // next round.
        let still_running = cfg
            .fenced()
            .unchanged(&cfg.keys().task(&current.value.id), current.revision);
        if cfg.fail_over_node(def, still_running).await? {
            tracing::info!(
                node = uuid,
                task = current.value.id,
                "graceful failover: node failed over"
            );
        }
    }
    let mut task = decision.task;
    if task == current.value && !decision.done {
        return Ok(());
    }
    task.updated_ms = now_ms;
    if decision.done {
        tracing::info!(task = task.id, summary = ?task.summary, "topology task completed");
    }
    // A lost race (the task was cancelled meanwhile) is left to the next round.
    cfg.put_task(&task, current.revision).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_cfg::schema::{TaskProgress, TopologyTask};

    fn task(kind: TaskKind) -> TopologyTask {
        TopologyTask {
            format_version: 1,
            id: "t1".into(),
            kind,
            status: TaskStatus::Running,
            keep_nodes: vec![],
            eject_nodes: vec!["n1".into()],
            before: Default::default(),
            created_ms: 1_000,
            updated_ms: 1_000,
            progress: TaskProgress::default(),
            errors: vec![],
            summary: None,
        }
    }

    fn moving(moving: usize, waiting: usize, dropping: usize) -> Progress {
        Progress {
            moving,
            waiting,
            dropping,
            ..Progress::default()
        }
    }

    #[test]
    fn progress_counts_up_and_the_task_completes_when_settled() {
        let plans = BTreeMap::new();
        let nodes = BTreeMap::new();
        let first = advance(
            &task(TaskKind::Drain),
            &moving(2, 6, 2),
            Moved::default(),
            &plans,
            &nodes,
            2_000,
        );
        assert_eq!(
            (
                first.task.progress.moves_total,
                first.task.progress.moves_done
            ),
            (8, 0)
        );
        assert!(!first.done);
        let half = Moved {
            docs: 500,
            bytes: 4096,
        };
        let second = advance(&first.task, &moving(2, 2, 2), half, &plans, &nodes, 6_000);
        assert_eq!(second.task.progress.moves_done, 4);
        assert_eq!(second.task.progress.percent, 50.0);
        assert_eq!(second.task.progress.docs_moved, 500);
        assert_eq!(second.task.progress.eta_s, Some(5.0));
        let last = advance(&second.task, &moving(0, 0, 0), half, &plans, &nodes, 9_000);
        assert!(last.done);
        assert_eq!(last.task.status, TaskStatus::Completed);
        assert_eq!(last.task.progress.docs_moved, 1000);
        assert_eq!(last.task.progress.bytes_copied, 8192);
    }

    #[test]
    fn a_graceful_failover_waits_for_the_grace_period() {
        let plans = BTreeMap::new();
        let node: NodeDef =
            serde_json::from_value(serde_json::json!({"format_version": 1, "uuid": "n1",
            "incarnation": "i", "host_port": "127.0.0.1:1", "tags": ["pindex"], "weight": 1}))
            .expect("a node");
        let nodes = BTreeMap::from([("n1".to_string(), node)]);
        let early = advance(
            &task(TaskKind::FailoverGraceful),
            &moving(0, 0, 0),
            Moved::default(),
            &plans,
            &nodes,
            1_500,
        );
        assert!(early.fail_over.is_empty() && !early.done);
        assert_eq!(early.wake_at_ms, Some(1_000 + GRACE_MS));
        let later = advance(
            &task(TaskKind::FailoverGraceful),
            &moving(0, 0, 0),
            Moved::default(),
            &plans,
            &nodes,
            1_000 + GRACE_MS,
        );
        assert_eq!(later.fail_over, vec!["n1".to_string()]);
        assert!(!later.done, "done only once the node is failed over");
    }
}
