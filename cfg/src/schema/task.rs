//! Topology changes a supervisor asked for (`POST /api/ctl/topology-change`), as tasks: one
//! key per task, and a lock key naming the one running (a second change is refused while it
//! runs). The node that accepts a change writes the task, the lock and the node definitions it
//! changes in one transaction; the planner leader reports progress in the task and completes
//! it; cancelling puts the node definitions back as the task found them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::validate::{self, FieldError};
use super::Document;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskKind {
    /// `keep_nodes` become wanted, `eject_nodes` unwanted; copies move, throttled.
    Rebalance,
    /// `eject_nodes` are failed over at once: their copies go, survivors are promoted, and lost
    /// copies are rebuilt elsewhere.
    FailoverHard,
    /// Queries stop going to `eject_nodes` first; after a grace period they are failed over.
    FailoverGraceful,
    /// `eject_nodes` are evacuated (make before break) and stay defined, unwanted.
    Drain,
    /// `keep_nodes` come in as `eject_nodes` go: copies move straight from old to new.
    Swap,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    Running,
    Completed,
    Cancelled,
    Failed,
}

/// What a node definition was before a task changed it (for cancelling).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeBefore {
    pub wanted: bool,
    pub failed_over: bool,
    pub reads: bool,
}

/// How far a task is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskProgress {
    /// Copies the change needs built (the largest count of outstanding moves seen).
    pub moves_total: u64,
    pub moves_done: u64,
    /// Documents in the copies the change has built so far (as their janitors reported them).
    #[serde(default)]
    pub docs_moved: u64,
    /// Bytes the copies built so far fetched from peers' files (copies built from the source
    /// fetch none).
    #[serde(default)]
    pub bytes_copied: u64,
    /// Copies building now, waiting for a slot, and serving until replaced.
    pub moving: u64,
    pub waiting: u64,
    pub dropping: u64,
    pub percent: f64,
    /// Estimated seconds left, from the pace so far.
    #[serde(default)]
    pub eta_s: Option<f64>,
    /// Per node: copies coming in and going out now.
    #[serde(default)]
    pub per_node: BTreeMap<String, (u64, u64)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopologyTask {
    pub format_version: u32,
    pub id: String,
    #[serde(rename = "type")]
    pub kind: TaskKind,
    pub status: TaskStatus,
    pub keep_nodes: Vec<String>,
    pub eject_nodes: Vec<String>,
    /// The changed node definitions as they were.
    pub before: BTreeMap<String, NodeBefore>,
    pub created_ms: u64,
    pub updated_ms: u64,
    pub progress: TaskProgress,
    #[serde(default)]
    pub errors: Vec<String>,
    /// How it ended, in a sentence.
    #[serde(default)]
    pub summary: Option<String>,
}

impl Document for TopologyTask {
    const KIND: &'static str = "topology task";
    const FORMAT_VERSION: u32 = 1;

    fn validate(&self) -> Result<(), FieldError> {
        validate::ident("id", &self.id)?;
        for (i, n) in self.keep_nodes.iter().enumerate() {
            validate::ident(&format!("keep_nodes[{i}]"), n)?;
        }
        for (i, n) in self.eject_nodes.iter().enumerate() {
            validate::ident(&format!("eject_nodes[{i}]"), n)?;
        }
        Ok(())
    }
}

/// The lock naming the running task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopologyLock {
    pub format_version: u32,
    pub task: String,
}

impl Document for TopologyLock {
    const KIND: &'static str = "topology lock";
    const FORMAT_VERSION: u32 = 1;

    fn validate(&self) -> Result<(), FieldError> {
        validate::ident("task", &self.task)
    }
}
