//! The reconcile diff: what a node must start, stop, restart or re-role so that its local
//! PIndexes match the plan. Pure: the caller passes the time and the local state.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use tessera_cfg::schema::CopyRole;

/// A copy the plan puts on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub pindex: String,
    pub index: String,
    /// Fingerprint of what the PIndex is built from (type, source, params): a change restarts it.
    pub definition: String,
    pub partitions: Vec<u32>,
    pub role: CopyRole,
}

/// A PIndex this node has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Local {
    pub pindex: String,
    pub index: String,
    pub definition: String,
    pub partitions: Vec<u32>,
    pub role: CopyRole,
    pub state: LocalState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalState {
    /// Caught up with its source partitions, following live.
    Running,
    /// Still catching up (counts against the backfill limit).
    Backfilling,
    /// Failed `attempts` times; try again at `retry_at_ms`.
    Failed { attempts: u32, retry_at_ms: u64 },
}

/// One thing to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Create (or open, if its files exist) and start feeding.
    Start {
        pindex: String,
        index: String,
        partitions: Vec<u32>,
        role: CopyRole,
    },
    /// Stop feeding and close; `delete` removes its files (it left the plan, or is rebuilt).
    Stop {
        pindex: String,
        delete: bool,
    },
    /// Close and reopen in place with the new definition (the partitioning is unchanged), or
    /// after a failure.
    Restart {
        pindex: String,
        definition: String,
    },
    ChangeRole {
        pindex: String,
        role: CopyRole,
    },
}

/// What the janitor should do now, and what waits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Diff {
    /// Stops first (they free resources), then role changes, restarts and starts.
    pub actions: Vec<Action>,
    /// PIndexes to start once a backfill slot frees up.
    pub queued: Vec<String>,
    /// Failed PIndexes waiting for their retry time.
    pub waiting: Vec<(String, u64)>,
}

/// The actions that bring `local` to `wanted`.
///
/// - a local PIndex the plan no longer has: stop and delete its files;
/// - a wanted one not local: start it, while fewer than `max_backfills` are backfilling; the
///   rest are queued (new PIndexes start by backfilling);
/// - in both: other partitions → rebuild (stop, delete, start); another definition → restart
///   in place; another role → change role; failed and due → restart, failed and not due → wait.
pub fn diff(wanted: &[Wanted], local: &[Local], now_ms: u64, max_backfills: usize) -> Diff {
    diff_with_files(wanted, local, &BTreeSet::new(), now_ms, max_backfills)
}

/// [`diff`], knowing which wanted PIndexes that are not local have files on the node
/// (`on_disk`): those resume from their committed checkpoints, reading only what their source
/// wrote since, so they start at once whatever the backfill limit (a node restarting with a
/// thousand PIndexes must not start them two at a time). A rebuild's files are deleted first:
/// it starts under the limit like a new copy.
pub fn diff_with_files(
    wanted: &[Wanted],
    local: &[Local],
    on_disk: &BTreeSet<String>,
    now_ms: u64,
    max_backfills: usize,
) -> Diff {
    let wanted: BTreeMap<&str, &Wanted> = wanted.iter().map(|w| (w.pindex.as_str(), w)).collect();
    let local: BTreeMap<&str, &Local> = local.iter().map(|l| (l.pindex.as_str(), l)).collect();
    let mut out = Diff::default();
    let (mut stops, mut roles, mut restarts, mut starts) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut backfilling = local
        .values()
        .filter(|l| wanted.contains_key(l.pindex.as_str()) && l.state == LocalState::Backfilling)
        .count();

    for (name, have) in &local {
        let Some(want) = wanted.get(name) else {
            stops.push(Action::Stop {
                pindex: name.to_string(),
                delete: true,
            });
            continue;
        };
        if have.partitions != want.partitions || have.index != want.index {
            stops.push(Action::Stop {
                pindex: name.to_string(),
                delete: true,
            });
            starts.push(*want);
            continue;
        }
        if let LocalState::Failed { retry_at_ms, .. } = have.state {
            if retry_at_ms > now_ms {
                out.waiting.push((name.to_string(), retry_at_ms));
                continue;
            }
            restarts.push(Action::Restart {
                pindex: name.to_string(),
                definition: want.definition.clone(),
            });
        } else if have.definition != want.definition {
            restarts.push(Action::Restart {
                pindex: name.to_string(),
                definition: want.definition.clone(),
            });
        }
        if have.role != want.role {
            roles.push(Action::ChangeRole {
                pindex: name.to_string(),
                role: want.role,
            });
        }
    }
    let mut resumes = Vec::new();
    for (name, want) in &wanted {
        if !local.contains_key(name) {
            if on_disk.contains(*name) {
                resumes.push(*want);
            } else {
                starts.push(*want);
            }
        }
    }
    for want in resumes {
        out.actions.push(Action::Start {
            pindex: want.pindex.clone(),
            index: want.index.clone(),
            partitions: want.partitions.clone(),
            role: want.role,
        });
    }
    starts.sort_by(|a, b| a.pindex.cmp(&b.pindex));
    for want in starts {
        if backfilling < max_backfills {
            backfilling += 1;
            out.actions.push(Action::Start {
                pindex: want.pindex.clone(),
                index: want.index.clone(),
                partitions: want.partitions.clone(),
                role: want.role,
            });
        } else {
            out.queued.push(want.pindex.clone());
        }
    }
    let starts = std::mem::take(&mut out.actions);
    out.actions = stops
        .into_iter()
        .chain(roles)
        .chain(restarts)
        .chain(starts)
        .collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn want(p: &str, def: &str, role: CopyRole) -> Wanted {
        Wanted {
            pindex: p.into(),
            index: "books".into(),
            definition: def.into(),
            partitions: vec![0, 1],
            role,
        }
    }

    fn have(p: &str, def: &str, role: CopyRole, state: LocalState) -> Local {
        Local {
            pindex: p.into(),
            index: "books".into(),
            definition: def.into(),
            partitions: vec![0, 1],
            role,
            state,
        }
    }

    use CopyRole::{Primary, Replica};

    #[test]
    fn matching_state_needs_nothing() {
        let d = diff(
            &[want("a", "d1", Primary)],
            &[have("a", "d1", Primary, LocalState::Running)],
            0,
            2,
        );
        assert_eq!(d, Diff::default());
    }

    #[test]
    fn stops_come_first_then_roles_restarts_and_limited_starts() {
        let wanted = [
            want("a", "d2", Primary),
            want("b", "d1", Replica),
            want("c", "d1", Primary),
            want("d", "d1", Primary),
            want("e", "d1", Primary),
        ];
        let local = [
            have("a", "d1", Primary, LocalState::Running),
            have("b", "d1", Primary, LocalState::Backfilling),
            have("gone", "d1", Primary, LocalState::Running),
        ];
        let d = diff(&wanted, &local, 0, 2);
        assert_eq!(
            d.actions,
            vec![
                Action::Stop {
                    pindex: "gone".into(),
                    delete: true
                },
                Action::ChangeRole {
                    pindex: "b".into(),
                    role: Replica
                },
                Action::Restart {
                    pindex: "a".into(),
                    definition: "d2".into()
                },
                Action::Start {
                    pindex: "c".into(),
                    index: "books".into(),
                    partitions: vec![0, 1],
                    role: Primary
                },
            ]
        );
        assert_eq!(
            d.queued,
            ["d", "e"],
            "one backfill running, limit 2: one start, the rest queued"
        );
    }

    #[test]
    fn pindexes_with_files_resume_at_once_whatever_the_backfill_limit() {
        let wanted: Vec<Wanted> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|p| want(p, "d1", Primary))
            .collect();
        let on_disk: BTreeSet<String> = ["b", "d", "e"].iter().map(|p| p.to_string()).collect();
        let d = diff_with_files(&wanted, &[], &on_disk, 0, 1);
        let started: Vec<&str> = d
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::Start { pindex, .. } => Some(pindex.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(started, ["b", "d", "e", "a"], "three resume, one new copy");
        assert_eq!(d.queued, ["c"], "the other new copy waits for the limit");
        // A rebuild deletes its files first: it starts under the limit.
        let mut moved = want("b", "d1", Primary);
        moved.partitions = vec![7];
        let d = diff_with_files(
            &[moved],
            &[have("b", "d1", Primary, LocalState::Running)],
            &on_disk,
            0,
            0,
        );
        assert_eq!(d.queued, ["b"]);
    }

    #[test]
    fn changed_partitions_rebuild_and_failures_back_off() {
        let mut moved = want("a", "d1", Primary);
        moved.partitions = vec![0, 1, 2];
        let d = diff(
            &[moved],
            &[have("a", "d1", Primary, LocalState::Running)],
            0,
            2,
        );
        assert!(
            matches!(
                &d.actions[..],
                [Action::Stop { delete: true, .. }, Action::Start { .. }]
            ),
            "{:?}",
            d.actions
        );

        let failed = have(
            "a",
            "d1",
            Primary,
            LocalState::Failed {
                attempts: 3,
                retry_at_ms: 5_000,
            },
        );
        let early = diff(
            &[want("a", "d1", Primary)],
            std::slice::from_ref(&failed),
            4_000,
            2,
        );
        assert!(early.actions.is_empty());
        assert_eq!(early.waiting, [("a".to_string(), 5_000)]);
        let due = diff(&[want("a", "d1", Primary)], &[failed], 5_000, 2);
        assert_eq!(
            due.actions,
            [Action::Restart {
                pindex: "a".into(),
                definition: "d1".into()
            }]
        );
    }

    #[test]
    fn applying_the_actions_reaches_a_fixed_point() {
        let wanted: Vec<Wanted> = (0..7)
            .map(|i| {
                want(
                    &format!("p{i}"),
                    "d",
                    if i % 2 == 0 { Primary } else { Replica },
                )
            })
            .collect();
        let mut local: Vec<Local> = vec![have("old", "d", Primary, LocalState::Running)];
        for _ in 0..10 {
            let d = diff(&wanted, &local, 0, 2);
            for action in d.actions {
                match action {
                    Action::Stop { pindex, .. } => local.retain(|l| l.pindex != pindex),
                    Action::Start {
                        pindex,
                        index,
                        partitions,
                        role,
                    } => local.push(Local {
                        pindex,
                        index,
                        definition: "d".into(),
                        partitions,
                        role,
                        state: LocalState::Backfilling,
                    }),
                    Action::Restart { .. } | Action::ChangeRole { .. } => unreachable!(),
                }
            }
            // Backfills finish between rounds.
            local.iter_mut().for_each(|l| l.state = LocalState::Running);
        }
        assert_eq!(local.len(), 7);
        assert_eq!(diff(&wanted, &local, 0, 2), Diff::default());
    }
}
