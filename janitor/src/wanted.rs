//! Which copies this node should host, from the index definitions and plans it read: a pure
//! function, so the rules that keep data safe are tested without a Cfg.
//!
//! A plan is acted on only when it belongs to the definition read with it (same index uuid).
//! When it does not — the index was updated, or deleted and created again, and the planner has
//! not written the new plan yet — or when the definition or plan cannot be read, the index is
//! *held*: the PIndexes of it this node has stay exactly as they are, none starts, none stops,
//! until a plan of the current definition arrives. While any plan is unreadable, no PIndex
//! directory is removed as unplanned: the unreadable plan may name it.

use std::collections::{BTreeMap, BTreeSet};

use tessera_cfg::schema::{IndexDef, IndexPlan};
use tessera_cfg::{KeyKind, KeySpace, Revision, VersionedList};

use crate::diff::{Local, Wanted};

/// The fingerprint of what a PIndex is built from: a change of type, source or params
/// restarts it; a change of replicas does not.
pub fn definition_fingerprint(def: &IndexDef) -> String {
    let basis =
        serde_json::json!({"type": def.index_type, "source": def.source, "params": def.params});
    format!("{:08x}", crc32fast::hash(basis.to_string().as_bytes()))
}

/// What this node should host, and what it must leave alone.
#[derive(Debug, Clone, Default)]
pub struct WantedView {
    /// The copies the plans put on this node (and the held ones it keeps).
    pub wanted: Vec<Wanted>,
    /// The readable index definitions, by name.
    pub defs: BTreeMap<String, IndexDef>,
    /// Every PIndex name some plan names, for removing directories no plan can use; `None`
    /// when a plan is unreadable (remove nothing).
    pub planned: Option<BTreeSet<String>>,
    /// Indexes held, with why.
    pub held: BTreeMap<String, String>,
    /// The newest revision among the plans of indexes with copies here: a copy report says it
    /// answers plans up to it, so the planner never takes an older "caught up" for a newer plan.
    pub plans_seen: Revision,
}

/// The copies `node` should host given `defs` and `plans` (as read), keeping the `local`
/// PIndexes of held indexes as they are.
pub fn wanted_copies(
    node: &str,
    keys: &KeySpace,
    defs: VersionedList<IndexDef>,
    plans: VersionedList<IndexPlan>,
    local: &[Local],
) -> WantedView {
    let mut held: BTreeMap<String, String> = BTreeMap::new();
    for u in defs.skipped.iter().chain(&plans.skipped) {
        match keys.kind(&u.key) {
            KeyKind::IndexDef(name) => {
                held.insert(name, format!("definition unreadable: {}", u.error));
            }
            KeyKind::Plan(name) => {
                held.insert(name, format!("plan unreadable: {}", u.error));
            }
            _ => {}
        }
    }
    let defs: BTreeMap<String, IndexDef> = defs
        .items
        .into_iter()
        .map(|d| (d.value.name.clone(), d.value))
        .collect();
    let mut view = WantedView {
        planned: plans.skipped.is_empty().then(BTreeSet::new),
        ..WantedView::default()
    };
    for plan in &plans.items {
        let plan_index = &plan.value.index;
        if let Some(planned) = view.planned.as_mut() {
            planned.extend(plan.value.pindexes.iter().map(|p| p.name.clone()));
        }
        let Some(def) = defs.get(plan_index) else {
            continue;
        };
        if def.uuid != plan.value.index_uuid {
            held.entry(plan_index.clone()).or_insert_with(|| {
                format!(
                    "plan is of index uuid {}, the definition is {}; waiting for the planner",
                    plan.value.index_uuid, def.uuid
                )
            });
            continue;
        }
        if held.contains_key(plan_index) {
            continue;
        }
        for p in &plan.value.pindexes {
            if let Some(copy) = p.copies.iter().find(|c| c.node == node) {
                view.plans_seen = view.plans_seen.max(plan.revision);
                view.wanted.push(Wanted {
                    pindex: p.name.clone(),
                    index: def.name.clone(),
                    definition: definition_fingerprint(def),
                    partitions: p.source_partitions.clone(),
                    role: copy.role,
                });
            }
        }
    }
    for l in local.iter().filter(|l| held.contains_key(&l.index)) {
        view.wanted.push(Wanted {
            pindex: l.pindex.clone(),
            index: l.index.clone(),
            definition: l.definition.clone(),
            partitions: l.partitions.clone(),
            role: l.role,
        });
    }
    view.defs = defs;
    view.held = held;
    view
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::{diff, LocalState};
    use serde_json::json;
    use tessera_cfg::{CfgError, Unreadable, Versioned};

    fn def(name: &str, uuid: &str) -> Versioned<IndexDef> {
        Versioned {
            value: serde_json::from_value(json!({"format_version": 1, "name": name, "uuid": uuid,
                "type": "fulltext", "source": {"type": "tessera", "name": "s"}}))
            .expect("a definition"),
            revision: 1,
        }
    }

    fn plan(index: &str, uuid: &str, node: &str, revision: Revision) -> Versioned<IndexPlan> {
        Versioned {
            value: serde_json::from_value(json!({"format_version": 1, "index": index,
                "index_uuid": uuid, "pindexes": [{"name": format!("{index}_0-0"),
                "source_partitions": [0], "copies": [{"node": node, "role": "primary",
                "state": "active", "can_read": true, "can_write": true}]}]}))
            .expect("a plan"),
            revision,
        }
    }

    fn list<T>(items: Vec<Versioned<T>>, skipped: &[&str]) -> VersionedList<T> {
        VersionedList {
            items,
            revision: 10,
            skipped: skipped
                .iter()
                .map(|k| Unreadable {
                    key: k.to_string(),
                    error: CfgError::Corrupt {
                        key: k.to_string(),
                        reason: "bad".into(),
                    },
                })
                .collect(),
        }
    }

    fn hosting(index: &str, definition: &str) -> Local {
        Local {
            pindex: format!("{index}_0-0"),
            index: index.into(),
            definition: definition.into(),
            partitions: vec![0],
            role: tessera_cfg::schema::CopyRole::Primary,
            state: LocalState::Running,
        }
    }

    fn keys() -> KeySpace {
        KeySpace::new("t").expect("keys")
    }

    #[test]
    fn a_plan_of_another_index_uuid_holds_what_is_hosted_and_starts_nothing() {
        // `books` was re-created (uuid u2); the stored plan is still the old one's, and puts a
        // copy on this node that it does not have yet.
        let view = wanted_copies(
            "n1",
            &keys(),
            list(vec![def("books", "u2")], &[]),
            list(vec![plan("books", "u1", "n1", 5)], &[]),
            &[],
        );
        assert!(view.wanted.is_empty(), "no copy of the old plan starts");
        assert!(view.held.contains_key("books"));
        // And what it hosts of the index stays (no stop, no delete).
        let local = [hosting("books", "f")];
        let view = wanted_copies(
            "n1",
            &keys(),
            list(vec![def("books", "u2")], &[]),
            list(vec![plan("books", "u1", "n2", 5)], &[]),
            &local,
        );
        assert!(diff(&view.wanted, &local, 0, 2).actions.is_empty());
    }

    #[test]
    fn unreadable_documents_hold_their_index_and_keep_every_directory() {
        let local = [hosting("books", "f"), hosting("films", "f")];
        let k = keys();
        let view = wanted_copies(
            "n1",
            &k,
            list(vec![def("films", "u1")], &[&k.index_def("books")]),
            list(vec![plan("books", "u1", "n1", 5)], &[&k.plan("films")]),
            &local,
        );
        assert_eq!(view.held.len(), 2, "{:?}", view.held);
        assert!(
            diff(&view.wanted, &local, 0, 2).actions.is_empty(),
            "nothing of a held index is stopped or deleted"
        );
        assert_eq!(
            view.planned, None,
            "an unreadable plan may name any directory"
        );
    }

    #[test]
    fn a_matching_plan_is_followed_and_its_revision_reported() {
        let view = wanted_copies(
            "n1",
            &keys(),
            list(vec![def("books", "u1"), def("films", "u1")], &[]),
            list(
                vec![plan("books", "u1", "n1", 7), plan("films", "u1", "n2", 9)],
                &[],
            ),
            &[],
        );
        assert_eq!(view.wanted.len(), 1);
        assert_eq!(view.plans_seen, 7, "only plans with copies here count");
        assert_eq!(view.planned.map(|p| p.len()), Some(2));
    }
}
