//! The recovery's state machine. A recovery covers the PIndexes missing when it began; each
//! goes `missing → fetching → verifying → catching_up → recovered` (or `failed`, with the
//! reason), driven by the janitor of the node the plan places it on ([`work_for`] says what
//! that janitor has to do, [`step`] records how far it got). The operator commits recovered
//! PIndexes (readable from then on), then ends the recovery (what is not committed goes back to
//! the planner's normal handling) or aborts it (what is not committed is undone: the fetched
//! files are removed and the copy rebuilds from the source, as without the recovery).
//!
//! Every operator step is idempotent: committing what is committed, ending what ended and
//! aborting what was aborted change nothing and succeed. Steps are recorded under the node's
//! incarnation, so a node restarted mid-fetch fetches again.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use tessera_cfg::schema::{
    PIndexRecoveryState as State, RecoverFrom, Recovery, RecoveryPIndex, RecoveryStatus, Undo,
};

use crate::missing::MissingPIndex;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecoveryError {
    #[error("recovery `{id}` is {status}, not running")]
    NotRunning { id: String, status: &'static str },
    #[error("not PIndexes of this recovery: {}", .0.join(", "))]
    UnknownPIndexes(Vec<String>),
    #[error("not recovered yet (commit only recovered PIndexes): {}", .0.join(", "))]
    NotRecovered(Vec<String>),
}

fn status_word(s: RecoveryStatus) -> &'static str {
    match s {
        RecoveryStatus::Running => "running",
        RecoveryStatus::Ended => "ended",
        RecoveryStatus::Aborted => "aborted",
    }
}

/// Where one missing PIndex's data will come from, as decided at begin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataSource {
    /// In words, for the operator (`snapshot local/S: download`).
    pub from: String,
    /// Built from the source instead of fetched.
    pub rebuild: bool,
    pub bytes: u64,
    /// Why it rebuilds, when it does.
    pub reason: Option<String>,
}

/// A new running recovery of `missing`, each PIndex's data from `sources` (a PIndex absent
/// there rebuilds from the source).
pub fn begin(
    id: &str,
    from: RecoverFrom,
    missing: &[MissingPIndex],
    sources: &BTreeMap<String, DataSource>,
    now_ms: u64,
) -> Recovery {
    let indexes: BTreeSet<String> = missing.iter().map(|m| m.index.clone()).collect();
    let pindexes = missing
        .iter()
        .map(|m| {
            let source = sources.get(&m.pindex);
            let entry = RecoveryPIndex {
                index: m.index.clone(),
                node: m.node.clone(),
                state: State::Missing,
                from: source.map_or_else(|| "source".to_string(), |s| s.from.clone()),
                rebuild: source.is_none_or(|s| s.rebuild),
                bytes_total: source.map_or(0, |s| s.bytes),
                bytes_done: 0,
                committed: false,
                undo: None,
                reason: source.and_then(|s| s.reason.clone()),
                incarnation: None,
                updated_ms: now_ms,
            };
            (m.pindex.clone(), entry)
        })
        .collect();
    Recovery {
        format_version: 1,
        id: id.to_string(),
        status: RecoveryStatus::Running,
        from,
        indexes: indexes.into_iter().collect(),
        pindexes,
        created_ms: now_ms,
        updated_ms: now_ms,
        summary: None,
        auto: false,
    }
}

/// Commits `pindexes` (every recovered one when `None`): they become readable. Returns those
/// newly committed. Committing only what is committed already succeeds whatever the status.
pub fn commit(
    r: &mut Recovery,
    pindexes: Option<&[String]>,
    now_ms: u64,
) -> Result<Vec<String>, RecoveryError> {
    let named: Vec<String> = match pindexes {
        Some(list) => {
            let unknown: Vec<String> = list
                .iter()
                .filter(|p| !r.pindexes.contains_key(*p))
                .cloned()
                .collect();
            if !unknown.is_empty() {
                return Err(RecoveryError::UnknownPIndexes(unknown));
            }
            list.to_vec()
        }
        None => r
            .pindexes
            .iter()
            .filter(|(_, p)| p.state == State::Recovered)
            .map(|(n, _)| n.clone())
            .collect(),
    };
    let fresh: Vec<String> = named
        .into_iter()
        .filter(|n| !r.pindexes[n].committed)
        .collect();
    if fresh.is_empty() {
        return Ok(fresh);
    }
    if r.status != RecoveryStatus::Running {
        return Err(not_running(r));
    }
    let not_yet: Vec<String> = fresh
        .iter()
        .filter(|n| r.pindexes[*n].state != State::Recovered)
        .map(|n| format!("{n} ({})", state_word(r.pindexes[n].state)))
        .collect();
    if !not_yet.is_empty() {
        return Err(RecoveryError::NotRecovered(not_yet));
    }
    for n in &fresh {
        if let Some(p) = r.pindexes.get_mut(n) {
            p.committed = true;
            p.updated_ms = now_ms;
        }
    }
    r.updated_ms = now_ms;
    Ok(fresh)
}

/// What the planner does with an uncommitted PIndex once the recovery is over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Handover {
    pub pindex: String,
    pub node: Option<String>,
    pub state: State,
    /// In words.
    pub next: String,
}

/// Ends the recovery: committed PIndexes stay readable, the others go back to the planner's
/// normal handling (described per PIndex). Ending an ended recovery answers the same.
pub fn end(r: &mut Recovery, now_ms: u64) -> Result<Vec<Handover>, RecoveryError> {
    match r.status {
        RecoveryStatus::Aborted => return Err(not_running(r)),
        RecoveryStatus::Ended => {}
        RecoveryStatus::Running => {
            r.status = RecoveryStatus::Ended;
            r.updated_ms = now_ms;
            let committed = r.pindexes.values().filter(|p| p.committed).count();
            r.summary = Some(format!(
                "ended: {committed} of {} PIndexes committed",
                r.pindexes.len()
            ));
        }
    }
    Ok(r.pindexes
        .iter()
        .filter(|(_, p)| !p.committed)
        .map(|(name, p)| {
            let on = p.node.as_deref().unwrap_or("the node the planner picks");
            let next = match p.state {
                State::CatchingUp | State::Recovered => {
                    format!("readable on {on} once caught up with the source (its recovered files are kept)")
                }
                State::Missing | State::Fetching | State::Verifying | State::Failed => {
                    format!("built from the source on {on}")
                }
            };
            Handover {
                pindex: name.clone(),
                node: p.node.clone(),
                state: p.state,
                next,
            }
        })
        .collect())
}

/// Aborts the recovery: what is not committed is undone (its node removes what it fetched and
/// the copy rebuilds from the source). Aborting an aborted recovery changes nothing.
pub fn abort(r: &mut Recovery, now_ms: u64) -> Result<(), RecoveryError> {
    match r.status {
        RecoveryStatus::Ended => return Err(not_running(r)),
        RecoveryStatus::Aborted => return Ok(()),
        RecoveryStatus::Running => {}
    }
    r.status = RecoveryStatus::Aborted;
    r.updated_ms = now_ms;
    let mut pending = 0;
    for p in r.pindexes.values_mut().filter(|p| !p.committed) {
        // A PIndex nothing was done to has nothing to undo.
        if p.state != State::Missing && p.node.is_some() {
            p.undo = Some(Undo::Pending);
            pending += 1;
        }
    }
    r.summary = Some(format!(
        "aborted: {pending} PIndexes to undo, {} committed kept",
        r.pindexes.values().filter(|p| p.committed).count()
    ));
    Ok(())
}

/// What a node's janitor has to do for one recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Work {
    /// Remove what the copy holds and fetch the PIndex's files from the snapshot.
    Fetch { pindex: String },
    /// The copy rebuilds from the source (the plan's normal way); watch it catch up.
    Rebuild { pindex: String },
    /// Opened: report `catching_up` until the copy has caught up, then `recovered`.
    Watch { pindex: String },
    /// An aborted recovery's fetched files go; the copy rebuilds from the source.
    Undo { pindex: String },
}

/// Whether `r` may still ask anything of a janitor: running, or aborted with undos pending.
pub fn asks_janitors(r: &Recovery) -> bool {
    match r.status {
        RecoveryStatus::Running => true,
        RecoveryStatus::Aborted => r.pindexes.values().any(|p| p.undo == Some(Undo::Pending)),
        RecoveryStatus::Ended => false,
    }
}

/// The work for node `node` (running as `incarnation`) in `r`; `placed_here` tells the
/// PIndexes the plan places on this node. A PIndex the recovery found with no copy placed is
/// claimed by the first node the plan then places it on (its first step names the node). A
/// PIndex a previous incarnation was fetching or verifying is fetched again (the fetch lands
/// whole or not at all).
pub fn work_for(
    r: &Recovery,
    node: &str,
    incarnation: &str,
    placed_here: impl Fn(&str) -> bool,
) -> Vec<Work> {
    let mine = r
        .pindexes
        .iter()
        .filter(|(name, p)| match p.node.as_deref() {
            Some(n) => n == node,
            None => r.status == RecoveryStatus::Running && placed_here(name),
        });
    match r.status {
        RecoveryStatus::Running => mine
            .filter(|(_, p)| !p.committed)
            .filter_map(|(name, p)| {
                let pindex = name.clone();
                let again = p.incarnation.as_deref() != Some(incarnation);
                match p.state {
                    State::Missing | State::Fetching | State::Verifying
                        if p.state == State::Missing || again =>
                    {
                        Some(if p.rebuild {
                            Work::Rebuild { pindex }
                        } else {
                            Work::Fetch { pindex }
                        })
                    }
                    // Opened by this incarnation (a step may not have been written).
                    State::Verifying | State::CatchingUp => Some(Work::Watch { pindex }),
                    _ => None,
                }
            })
            .collect(),
        RecoveryStatus::Aborted => mine
            .filter(|(_, p)| p.undo == Some(Undo::Pending))
            .map(|(name, _)| Work::Undo {
                pindex: name.clone(),
            })
            .collect(),
        RecoveryStatus::Ended => Vec::new(),
    }
}

/// How far one PIndex got, as its janitor tells it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Step {
    /// The node doing it: claims a PIndex the recovery found unplaced (refused when another
    /// node claimed it first).
    pub node: Option<String>,
    pub bytes_done: Option<u64>,
    /// Replaces the estimate made at begin, once the fetch knows.
    pub bytes_total: Option<u64>,
    /// Fell back to a rebuild from the source.
    pub rebuild: bool,
    pub reason: Option<String>,
}

/// Records that `pindex` reached `to`, done by `incarnation`. `false` when there is nothing
/// to record (not running, not this recovery's, or already so).
pub fn step(
    r: &mut Recovery,
    pindex: &str,
    to: State,
    incarnation: &str,
    s: Step,
    now_ms: u64,
) -> bool {
    if r.status != RecoveryStatus::Running {
        return false;
    }
    let Some(p) = r.pindexes.get_mut(pindex) else {
        return false;
    };
    if p.committed {
        return false;
    }
    if let (Some(node), Some(other)) = (&s.node, &p.node) {
        if node != other {
            return false;
        }
    }
    let before = p.clone();
    if let Some(node) = s.node {
        p.node = Some(node);
    }
    p.state = to;
    p.incarnation = Some(incarnation.to_string());
    if let Some(done) = s.bytes_done {
        p.bytes_done = done;
    }
    if let Some(total) = s.bytes_total {
        p.bytes_total = total;
    }
    if s.rebuild {
        p.rebuild = true;
        p.from = "source".into();
    }
    if s.reason.is_some() {
        p.reason = s.reason;
    }
    let mut after = p.clone();
    after.updated_ms = before.updated_ms;
    if after == before {
        return false;
    }
    p.updated_ms = now_ms;
    r.updated_ms = now_ms;
    true
}

/// Records that an aborted recovery's work on `pindex` is undone.
pub fn undone(r: &mut Recovery, pindex: &str, now_ms: u64) -> bool {
    match r.pindexes.get_mut(pindex) {
        Some(p) if p.undo == Some(Undo::Pending) => {
            p.undo = Some(Undo::Done);
            p.updated_ms = now_ms;
            r.updated_ms = now_ms;
            if r.pindexes.values().all(|p| p.undo != Some(Undo::Pending)) {
                r.summary = Some("aborted: everything not committed is undone".into());
            }
            true
        }
        _ => false,
    }
}

/// A recovery at a glance.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Progress {
    pub pindexes_total: usize,
    /// PIndexes per state (`missing`, `fetching`, ...).
    pub states: BTreeMap<String, usize>,
    pub committed: usize,
    pub undo_pending: usize,
    pub bytes_total: u64,
    pub bytes_done: u64,
    pub percent: f64,
    /// Seconds left at the pace so far, while bytes are being fetched.
    pub eta_s: Option<f64>,
}

/// The recovery's progress at `now_ms`: bytes for fetched PIndexes; a PIndex counts as done
/// once recovered.
pub fn progress(r: &Recovery, now_ms: u64) -> Progress {
    let mut out = Progress {
        pindexes_total: r.pindexes.len(),
        ..Progress::default()
    };
    for p in r.pindexes.values() {
        *out.states
            .entry(state_word(p.state).to_string())
            .or_default() += 1;
        out.committed += usize::from(p.committed);
        out.undo_pending += usize::from(p.undo == Some(Undo::Pending));
        out.bytes_total += p.bytes_total;
        out.bytes_done += p.bytes_done.min(p.bytes_total);
    }
    let done = r
        .pindexes
        .values()
        .filter(|p| p.committed || p.state == State::Recovered)
        .count();
    out.percent = if out.pindexes_total == 0 {
        100.0
    } else {
        (done as f64 * 100.0 / out.pindexes_total as f64 * 10.0).round() / 10.0
    };
    let elapsed_s = now_ms.saturating_sub(r.created_ms) as f64 / 1000.0;
    if r.status == RecoveryStatus::Running && out.bytes_done > 0 && elapsed_s > 0.0 {
        let rate = out.bytes_done as f64 / elapsed_s;
        out.eta_s = Some(((out.bytes_total - out.bytes_done) as f64 / rate * 10.0).round() / 10.0);
    }
    out
}

/// A state as the API spells it.
pub fn state_word(s: State) -> &'static str {
    match s {
        State::Missing => "missing",
        State::Fetching => "fetching",
        State::Verifying => "verifying",
        State::CatchingUp => "catching_up",
        State::Recovered => "recovered",
        State::Failed => "failed",
    }
}

fn not_running(r: &Recovery) -> RecoveryError {
    RecoveryError::NotRunning {
        id: r.id.clone(),
        status: status_word(r.status),
    }
}

#[cfg(test)]
mod tests;
