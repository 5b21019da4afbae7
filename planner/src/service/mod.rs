//! The planner service: the I/O around [`crate::plan`]. It campaigns for leadership
//! ([`fence`]); only the leader plans. The leader re-plans when index definitions, node
//! definitions or liveness change (watched, debounced), when a node's absence outlasts the
//! failover delay, and on a periodic resync; it writes only the per-index plans that changed,
//! each in a transaction fenced on its leadership.

pub mod control;
pub mod fence;
pub mod inputs;
pub mod tasks;
pub mod what_if;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tessera_cfg::schema::{Held, PlannerLeader};
use tessera_cfg::{Cfg, CfgError, KeyKind, WatchEvent};
use tokio::sync::watch;
use tokio::time::Instant;

pub use fence::Fence;
use inputs::Gathered;

use crate::defaults;
use crate::model::PlanOutput;
use crate::orchestrate;

/// How soon a round that could not write some plans is retried.
const PLAN_RETRY: Duration = Duration::from_secs(1);

/// Why a planning round or the service stopped.
#[derive(Debug, thiserror::Error)]
pub enum PlannerError {
    #[error(transparent)]
    Cfg(#[from] CfgError),
    /// The leader key is no longer ours: another planner leads now.
    #[error("deposed: another planner holds the leader key")]
    Deposed,
    /// A stored plan changed under us (someone else wrote it); the next round re-reads.
    #[error("{key} changed concurrently")]
    Conflict { key: String },
}

/// Timings of the service.
#[derive(Debug, Clone)]
pub struct PlannerOptions {
    /// TTL of the leader lease: how long a dead leader blocks the others.
    pub lease_ttl: Duration,
    /// The least time between two rounds started by changes: a burst is planned once or
    /// twice, not once per change. A change after a quiet spell is planned after
    /// [`tessera_cfg::store::SETTLE`] only (writes made together land in one round).
    pub debounce: Duration,
    /// Re-plan this often even without changes.
    pub resync: Duration,
    /// A node absent this long counts as failed (a restart within it is not a failover).
    pub failover_delay: Duration,
    /// How many moves may be under way (per node in and out, and cluster-wide).
    pub move_limits: crate::orchestrate::Limits,
    /// Automatic failovers allowed before an operator acknowledges them (0: none).
    pub max_auto_failovers: u32,
}

/// Nodes failed over this round, absent nodes the cap holds, and the control document as it
/// is after the failovers.
type Failovers = (
    BTreeSet<String>,
    Vec<String>,
    Option<tessera_cfg::Versioned<tessera_cfg::schema::ClusterControl>>,
);

/// What a round's writing did: the plans wanted per index, how many it wrote and deleted,
/// and the indexes it could not write (or held back), with why.
#[derive(Debug, Default)]
struct Written {
    wanted: BTreeMap<String, tessera_cfg::schema::IndexPlan>,
    written: usize,
    deleted: usize,
    failed: BTreeMap<String, String>,
}

impl Default for PlannerOptions {
    fn default() -> Self {
        Self {
            lease_ttl: Duration::from_millis(defaults::LEASE_TTL_MS),
            debounce: Duration::from_millis(defaults::DEBOUNCE_MS),
            resync: Duration::from_millis(defaults::RESYNC_MS),
            failover_delay: Duration::from_millis(defaults::FAILOVER_DELAY_MS),
            move_limits: crate::orchestrate::Limits::default(),
            max_auto_failovers: defaults::MAX_AUTO_FAILOVERS,
        }
    }
}

/// Counters for tests and status pages.
#[derive(Debug, Default)]
pub struct PlannerStats {
    pub is_leader: AtomicBool,
    pub rounds: AtomicU64,
    pub plans_written: AtomicU64,
    pub terms: AtomicU64,
    /// Campaigns lost to a sitting leader (each followed by waiting for the seat to free).
    pub standbys: AtomicU64,
}

/// One planner: campaigns, and plans while it leads.
pub struct PlannerService {
    cfg: Cfg,
    me: PlannerLeader,
    options: PlannerOptions,
    stats: Arc<PlannerStats>,
    /// When each absent node was first seen absent (this term).
    absent_since: BTreeMap<String, Instant>,
}

/// What one round did.
#[derive(Debug, Clone, Default)]
pub struct RoundReport {
    pub plans_written: usize,
    pub plans_deleted: usize,
    pub copies_added: usize,
    /// When the next node absence turns into a failure (a reason to plan again then).
    pub next_failover: Option<Instant>,
    /// How far the stored plans are from the planner's target.
    pub progress: crate::orchestrate::Progress,
    /// Indexes whose plans could not be written (or were held back) this round, and why;
    /// the round is retried soon while any are.
    pub plan_errors: BTreeMap<String, String>,
}

impl PlannerService {
    /// `uuid`/`incarnation` identify this planner in the leader key.
    pub fn new(cfg: Cfg, uuid: &str, incarnation: &str, options: PlannerOptions) -> Self {
        Self {
            cfg,
            me: fence::leader_record(uuid, incarnation),
            options,
            stats: Arc::default(),
            absent_since: BTreeMap::new(),
        }
    }

    pub fn stats(&self) -> Arc<PlannerStats> {
        self.stats.clone()
    }

    /// Campaigns and plans until `shutdown` turns true. Leadership lost (lease expired,
    /// deposed) means campaigning again; Cfg errors are retried.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        loop {
            let stopping = *shutdown.borrow();
            if stopping {
                return;
            }
            let attempt = {
                let mut campaign =
                    std::pin::pin!(fence::campaign(&self.cfg, &self.me, self.options.lease_ttl));
                tokio::select! {
                r = &mut campaign => r,
                _ = shutdown.changed() => {
                    // A campaign in flight may win as the planner stops (another leader just
                    // resigned): finish it, bounded, and resign, or the leader key would
                    // outlive this planner until its lease expired.
                    let finished = tokio::time::timeout(Duration::from_secs(5), campaign).await;
                    if let Ok(Ok(Some((lease, _)))) = finished {
                        let _ = lease.revoke().await;
                    }
                    return;
                }
                }
            };
            match attempt {
                Ok(Some((lease, fence))) => {
                    self.stats.terms.fetch_add(1, Ordering::Relaxed);
                    self.stats.is_leader.store(true, Ordering::Relaxed);
                    tessera_telemetry::metrics().planner_leader.set(1);
                    tracing::info!(
                        planner = self.me.uuid,
                        revision = fence.revision,
                        "planner leadership won"
                    );
                    self.lead(lease, fence, &mut shutdown).await;
                    self.stats.is_leader.store(false, Ordering::Relaxed);
                    tessera_telemetry::metrics().planner_leader.set(0);
                }
                Ok(None) => {
                    self.stats.standbys.fetch_add(1, Ordering::Relaxed);
                    tokio::select! {
                        r = fence::wait_for_vacancy(&self.cfg) => {
                            if let Err(e) = r {
                                tracing::warn!(error = %e, "watching the planner leader key failed; retrying");
                                tokio::time::sleep(Duration::from_secs(1)).await;
                            }
                        }
                        _ = shutdown.changed() => return,
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "planner campaign failed; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = shutdown.changed() => return,
                    }
                }
            }
        }
    }

    /// Plans while leading; returns when leadership ends or on shutdown (resigning then).
    async fn lead(
        &mut self,
        lease: tessera_cfg::LeaseKeeper,
        fence: Fence,
        shutdown: &mut watch::Receiver<bool>,
    ) {
        self.absent_since.clear();
        let mut lost = lease.lost();
        let root = self.cfg.keys().root().to_string();
        let mut changes = None;
        let mut due = Some(Instant::now());
        let mut resync_at = Instant::now() + self.options.resync;
        let mut last_round: Option<Instant> = None;
        loop {
            if changes.is_none() {
                match self.cfg.store().watch(&root, 0).await {
                    Ok(w) => changes = Some(w),
                    Err(e) => {
                        tracing::warn!(error = %e, "planner cannot watch the Cfg; relying on resync")
                    }
                }
            }
            let wake = due.map_or(resync_at, |d| d.min(resync_at));
            tokio::select! {
                _ = shutdown.changed() => {
                    let _ = lease.revoke().await;
                    return;
                }
                () = until_true(&mut lost) => {
                    tracing::warn!(planner = self.me.uuid, "planner lease lost; stepping down");
                    return;
                }
                event = tessera_cfg::store::next_change(&mut changes) => match event {
                    Some(event) if self.triggers(&event) => {
                        let soon = tessera_cfg::store::next_round(Instant::now(), last_round, self.options.debounce);
                        due = Some(due.map_or(soon, |d| d.min(soon)));
                    }
                    Some(_) => {}
                    None => {
                        // Watch ended (compacted or closed): re-watch and re-plan.
                        changes = None;
                        due = Some(Instant::now());
                    }
                },
                () = tokio::time::sleep_until(wake) => {
                    resync_at = Instant::now() + self.options.resync;
                    last_round = Some(Instant::now());
                    let timer = tessera_telemetry::metrics().planner_round_duration.start_timer();
                    let round = self.round(&fence).await;
                    timer.observe_duration();
                    let outcome = if round.is_ok() { "ok" } else { "error" };
                    tessera_telemetry::metrics().planner_rounds.with_label_values(&[outcome]).inc();
                    match round {
                        Ok(report) => {
                            let moves = &tessera_telemetry::metrics().planner_moves;
                            moves.with_label_values(&["moving"]).set(report.progress.moving as i64);
                            moves.with_label_values(&["waiting"]).set(report.progress.waiting as i64);
                            moves.with_label_values(&["dropping"]).set(report.progress.dropping as i64);
                            due = report.next_failover;
                        }
                        Err(PlannerError::Deposed) => {
                            tracing::warn!(planner = self.me.uuid, "deposed while planning; stepping down");
                            return;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "planning round failed; retrying");
                            due = Some(Instant::now() + Duration::from_secs(1));
                        }
                    }
                }
            }
        }
    }

    fn triggers(&self, event: &WatchEvent) -> bool {
        let Some(key) = event.key() else { return true };
        matches!(
            self.cfg.keys().kind(key),
            KeyKind::IndexDef(_)
                | KeyKind::NodeDef(_)
                | KeyKind::Liveness(_)
                | KeyKind::CopyReport(_)
                | KeyKind::Task(_)
                | KeyKind::TopologyLock
                // A recovery begun, committed, ended or aborted changes what is held.
                | KeyKind::Recovery(_)
                // Freeze, unfreeze and a failover acknowledgement take effect at once (the
                // leader's own `held` record triggers one more round, which writes nothing).
                | KeyKind::Control
        )
    }

    /// Nodes absent for longer than the failover delay, and when the next one will be.
    fn failed_nodes(&mut self, gathered: &Gathered) -> (BTreeSet<String>, Option<Instant>) {
        let now = Instant::now();
        let absent = gathered.absent_nodes();
        self.absent_since.retain(|uuid, _| absent.contains(uuid));
        let mut failed = BTreeSet::new();
        let mut next = None::<Instant>;
        for uuid in absent {
            let since = *self.absent_since.entry(uuid.clone()).or_insert(now);
            let at = since + self.options.failover_delay;
            if at <= now {
                failed.insert(uuid);
            } else {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
        (failed, next)
    }

    /// One planning round: read, fail over absent nodes (up to the cap), plan, write the plans
    /// that changed (fenced), advance the running topology task.
    pub async fn round(&mut self, fence: &Fence) -> Result<RoundReport, PlannerError> {
        self.stats.rounds.fetch_add(1, Ordering::Relaxed);
        let gathered = inputs::gather(&self.cfg).await?;
        let (absent, next_failover) = self.failed_nodes(&gathered);
        let control = control::read(&self.cfg).await?;
        let settings = control
            .as_ref()
            .map(|c| c.value.clone())
            .unwrap_or_default();
        let (accepted, held_failovers, control) = self
            .automatic_failovers(&gathered, absent, control, &settings)
            .await?;
        // Failed: failed over by a supervisor or automatically (now or before).
        let mut failed = accepted;
        failed.extend(gathered.failed_over_nodes());
        let (out, wanted, progress) = self
            .plan_and_write(fence, &gathered, &failed, control.as_ref(), held_failovers)
            .await?;
        let mut report = RoundReport {
            copies_added: out.stats.copies_added,
            next_failover,
            progress,
            ..RoundReport::default()
        };
        report.plans_written = wanted.written;
        report.plans_deleted = wanted.deleted;
        report.plan_errors = wanted.failed;
        if let Some(wake) = self
            .advance_task(&gathered, &report.progress, &wanted.wanted)
            .await?
        {
            report.next_failover = Some(report.next_failover.map_or(wake, |n| n.min(wake)));
        }
        if !report.plan_errors.is_empty() {
            // One index failing does not stop the others; it is retried soon, not only at the
            // next change or resync.
            let retry = Instant::now() + PLAN_RETRY;
            report.next_failover = Some(report.next_failover.map_or(retry, |n| n.min(retry)));
        }
        if report.plans_written + report.plans_deleted > 0 {
            tracing::info!(
                written = report.plans_written,
                deleted = report.plans_deleted,
                copies_added = out.stats.copies_added,
                moving = report.progress.moving,
                waiting = report.progress.waiting,
                dropping = report.progress.dropping,
                warnings = out.warnings.len(),
                elapsed_ms = out.stats.elapsed_ms,
                "plans updated"
            );
        }
        Ok(report)
    }

    /// Nodes absent past the delay and not failed over yet: failed over now, up to the cap;
    /// returns those failed over, those the cap holds, and the control document as it is now.
    async fn automatic_failovers(
        &self,
        gathered: &Gathered,
        absent: BTreeSet<String>,
        control: Option<tessera_cfg::Versioned<tessera_cfg::schema::ClusterControl>>,
        settings: &tessera_cfg::schema::ClusterControl,
    ) -> Result<Failovers, PlannerError> {
        let candidates: BTreeSet<String> = absent
            .into_iter()
            .filter(|u| {
                gathered
                    .node_defs
                    .get(u)
                    .is_some_and(|d| !d.value.failed_over)
            })
            .collect();
        let accepted = control::allowed(settings, &candidates, self.options.max_auto_failovers);
        if accepted.len() < candidates.len() {
            tracing::warn!(
                nodes = ?candidates.difference(&accepted).collect::<Vec<_>>(),
                done = settings.auto_failovers,
                cap = self.options.max_auto_failovers,
                "absent nodes not failed over: the automatic failover cap is reached; acknowledge with POST /api/ctl/failover/ack"
            );
        }
        let held = candidates.difference(&accepted).cloned().collect();
        if accepted.is_empty() {
            return Ok((accepted, held, control));
        }
        // Only failovers whose writes landed count, and only they are planned as failed: a
        // node that raced back keeps its copies.
        let (landed, control) =
            control::fail_over(&self.cfg, control.as_ref(), &accepted, &gathered.node_defs).await?;
        Ok((landed, held, control))
    }

    /// Plans (frozen: targets stay, no move starts), records what is held, and writes the
    /// plans that changed; returns the planner's output, the plans wanted with the counts
    /// written and deleted, and the transition's progress.
    async fn plan_and_write(
        &self,
        fence: &Fence,
        gathered: &Gathered,
        failed: &BTreeSet<String>,
        control: Option<&tessera_cfg::Versioned<tessera_cfg::schema::ClusterControl>>,
        held_failovers: Vec<String>,
    ) -> Result<(PlanOutput, Written, orchestrate::Progress), PlannerError> {
        let frozen = control.is_some_and(|c| c.value.frozen);
        let mut input = gathered.to_input(failed);
        let mut limits = self.options.move_limits;
        // While frozen, what an unfrozen round would build is worth saying (it is held).
        let moves_frozen = if frozen {
            crate::plan(&input).stats.copies_added as u64
        } else {
            0
        };
        if frozen {
            // Maintenance: targets stay as stored, no move starts; moves under way finish.
            for index in &mut input.indexes {
                index.frozen = true;
            }
            limits.cluster = 0;
        }

        let out = crate::plan_timed(&input);
        let (wanted, progress) = gathered.to_index_plans(&out, failed, limits);
        let mut done = self.write_plans(fence, gathered, wanted).await?;
        for (index, why) in &gathered.held_indexes {
            done.failed.insert(index.clone(), format!("held: {why}"));
        }
        control::record_held(
            &self.cfg,
            control,
            Held {
                failovers: held_failovers,
                moves_frozen,
                plan_errors: done.failed.clone(),
            },
        )
        .await?;
        Ok((out, done, progress))
    }

    /// Writes the plans that changed and deletes those of indexes gone. A failure is the
    /// index's alone (a plan past the size limit, a concurrent write, a store error): it is
    /// named in the result and the rest are written. Only losing the leadership stops it.
    async fn write_plans(
        &self,
        fence: &Fence,
        gathered: &Gathered,
        wanted: BTreeMap<String, tessera_cfg::schema::IndexPlan>,
    ) -> Result<Written, PlannerError> {
        let mut done = Written::default();
        let held = &gathered.held_indexes;
        for (index, plan) in &wanted {
            let current = gathered.plans.get(index);
            if held.contains_key(index) || current.is_some_and(|c| &c.value == plan) {
                continue;
            }
            let cas = current.map_or(0, |c| c.revision);
            match fence::write_plan(&self.cfg, fence, index, Some(plan), cas).await {
                Ok(()) => {
                    done.written += 1;
                    self.stats.plans_written.fetch_add(1, Ordering::Relaxed);
                }
                Err(PlannerError::Deposed) => return Err(PlannerError::Deposed),
                Err(e) => {
                    tracing::warn!(index, error = %e, "could not write the plan; the other indexes are planned, this one is retried");
                    done.failed.insert(index.clone(), e.to_string());
                }
            }
        }
        for (index, stale) in &gathered.plans {
            if wanted.contains_key(index) || held.contains_key(index) {
                continue;
            }
            match fence::write_plan(&self.cfg, fence, index, None, stale.revision).await {
                Ok(()) => done.deleted += 1,
                Err(PlannerError::Deposed) => return Err(PlannerError::Deposed),
                Err(e) => {
                    tracing::warn!(index, error = %e, "could not delete the plan of a deleted index; retried");
                    done.failed.insert(index.clone(), e.to_string());
                }
            }
        }
        done.wanted = wanted;
        Ok(done)
    }

    /// Advances the running topology task, if any; returns when to look again (a graceful
    /// failover's delayed step). A task newer than what this round read waits for the next
    /// round (which its own write triggers): judged on older data, a change could look
    /// finished before it began.
    async fn advance_task(
        &self,
        gathered: &Gathered,
        progress: &orchestrate::Progress,
        wanted: &BTreeMap<String, tessera_cfg::schema::IndexPlan>,
    ) -> Result<Option<Instant>, PlannerError> {
        let Some(task) = tasks::running(&self.cfg)
            .await?
            .filter(|t| t.revision <= gathered.revision)
        else {
            return Ok(None);
        };
        let now = tessera_cfg::unix_ms();
        let nodes = gathered
            .node_defs
            .iter()
            .map(|(k, v)| (k.clone(), v.value.clone()))
            .collect();
        let of = |figures: &BTreeMap<(String, String), u64>| -> u64 {
            progress
                .completed
                .iter()
                .filter_map(|(pindex, node)| figures.get(&(node.clone(), pindex.clone())))
                .sum()
        };
        let moved = tasks::Moved {
            docs: of(&gathered.docs),
            bytes: of(&gathered.copied_bytes),
        };
        let decision = tasks::advance(&task.value, progress, moved, wanted, &nodes, now);
        let kind = serde_json::to_value(decision.task.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let m = tessera_telemetry::metrics();
        m.task_progress
            .with_label_values(&[kind.as_str()])
            .set(decision.task.progress.percent / 100.0);
        m.task_running
            .with_label_values(&[kind.as_str()])
            .set(i64::from(!decision.done));
        let wake = decision
            .wake_at_ms
            .map(|at| Instant::now() + Duration::from_millis(at.saturating_sub(now)));
        tasks::run(&self.cfg, &task, decision, now, &gathered.node_defs).await?;
        Ok(wake)
    }
}

/// Resolves once the flag is true (or its sender is gone).
async fn until_true(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|v| *v).await;
}
