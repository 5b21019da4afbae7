//! Checking a topology change and working out what it does to the node definitions: pure
//! functions over plain data, so the refusals ("eject the last node", "replicas more than
//! the remaining nodes", an unknown uuid) are tested without a cluster.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use tessera_cfg::schema::{IndexDef, NodeBefore, NodeDef, TaskKind};

/// The body of `POST /api/ctl/topology-change`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeRequest {
    #[serde(rename = "type")]
    pub kind: TaskKind,
    #[serde(default)]
    pub keep_nodes: Vec<String>,
    #[serde(default)]
    pub eject_nodes: Vec<String>,
    #[serde(default)]
    pub dry_run: bool,
}

/// A refusal: the field at fault and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub field: String,
    pub message: String,
}

fn refuse(field: impl Into<String>, message: impl Into<String>) -> Refusal {
    Refusal {
        field: field.into(),
        message: message.into(),
    }
}

/// What a node definition looks like before a task changes it.
pub fn before(def: &NodeDef) -> NodeBefore {
    NodeBefore {
        wanted: def.wanted,
        failed_over: def.failed_over,
        reads: def.reads,
    }
}

/// The node definitions the change writes (only those it changes), or why it cannot be met.
pub fn apply(
    request: &ChangeRequest,
    nodes: &BTreeMap<String, NodeDef>,
    indexes: &[IndexDef],
) -> Result<BTreeMap<String, NodeDef>, Refusal> {
    let needs_eject = !matches!(request.kind, TaskKind::Rebalance);
    if needs_eject && request.eject_nodes.is_empty() {
        return Err(refuse(
            "eject_nodes",
            "this change needs at least one node to eject",
        ));
    }
    if request.kind == TaskKind::Swap && request.keep_nodes.is_empty() {
        return Err(refuse("keep_nodes", "a swap needs the node(s) coming in"));
    }
    for (field, list) in [
        ("keep_nodes", &request.keep_nodes),
        ("eject_nodes", &request.eject_nodes),
    ] {
        let mut seen = BTreeSet::new();
        for (i, uuid) in list.iter().enumerate() {
            if !nodes.contains_key(uuid) {
                return Err(refuse(
                    format!("{field}[{i}]"),
                    format!("unknown node uuid `{uuid}`"),
                ));
            }
            if !seen.insert(uuid) {
                return Err(refuse(
                    format!("{field}[{i}]"),
                    format!("node `{uuid}` is listed twice"),
                ));
            }
        }
    }
    if let Some((i, uuid)) = request
        .eject_nodes
        .iter()
        .enumerate()
        .find(|(_, u)| request.keep_nodes.contains(u))
    {
        return Err(refuse(
            format!("eject_nodes[{i}]"),
            format!("node `{uuid}` is both kept and ejected"),
        ));
    }
    let mut changed = BTreeMap::new();
    for uuid in &request.keep_nodes {
        let mut def = nodes[uuid].clone();
        def.wanted = true;
        def.set_failed_over(false);
        def.reads = true;
        changed.insert(uuid.clone(), def);
    }
    for uuid in &request.eject_nodes {
        let mut def = nodes[uuid].clone();
        def.wanted = false;
        match request.kind {
            TaskKind::FailoverHard => def.set_failed_over(true),
            TaskKind::FailoverGraceful => def.reads = false,
            TaskKind::Rebalance | TaskKind::Drain | TaskKind::Swap => {}
        }
        changed.insert(uuid.clone(), def);
    }
    // What remains to hold PIndexes.
    let remaining = nodes
        .values()
        .map(|d| changed.get(&d.uuid).unwrap_or(d))
        .filter(|d| tessera_planner::service::inputs::eligible(d))
        .count();
    if remaining == 0 {
        return Err(refuse(
            "eject_nodes",
            "the change would leave no wanted node to hold PIndexes (ejecting the last node)",
        ));
    }
    for def in indexes {
        let copies = 1 + def.plan.replicas as usize;
        if copies > remaining {
            return Err(refuse(
                "eject_nodes",
                format!(
                    "index `{}` wants {copies} copies on distinct nodes, but only {remaining} node(s) would remain",
                    def.name
                ),
            ));
        }
    }
    // Leave out what does not change.
    changed.retain(|uuid, def| nodes.get(uuid) != Some(def));
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(uuid: &str) -> NodeDef {
        serde_json::from_value(
            serde_json::json!({"format_version": 1, "uuid": uuid, "incarnation": "i",
            "host_port": "127.0.0.1:1", "tags": ["pindex"], "weight": 1}),
        )
        .expect("a node")
    }

    fn index(replicas: u32) -> IndexDef {
        serde_json::from_value(serde_json::json!({"format_version": 1, "name": "books", "uuid": "u", "type": "fulltext",
            "source": {"type": "tessera", "name": "s"}, "plan": {"replicas": replicas}}))
        .expect("an index")
    }

    fn request(kind: TaskKind, keep: &[&str], eject: &[&str]) -> ChangeRequest {
        ChangeRequest {
            kind,
            keep_nodes: keep.iter().map(|s| s.to_string()).collect(),
            eject_nodes: eject.iter().map(|s| s.to_string()).collect(),
            dry_run: false,
        }
    }

    fn nodes(list: &[&str]) -> BTreeMap<String, NodeDef> {
        list.iter().map(|u| (u.to_string(), node(u))).collect()
    }

    #[test]
    fn refusals_name_the_field() {
        let three = nodes(&["a", "b", "c"]);
        let refusal =
            |r: ChangeRequest, indexes: &[IndexDef]| apply(&r, &three, indexes).unwrap_err();
        assert_eq!(
            refusal(request(TaskKind::Drain, &[], &["x"]), &[]).field,
            "eject_nodes[0]"
        );
        assert_eq!(
            refusal(request(TaskKind::Drain, &[], &[]), &[]).field,
            "eject_nodes"
        );
        assert_eq!(
            refusal(request(TaskKind::Swap, &[], &["a"]), &[]).field,
            "keep_nodes"
        );
        assert!(
            refusal(request(TaskKind::Drain, &[], &["a", "b", "c"]), &[])
                .message
                .contains("last node")
        );
        let too_few = refusal(
            request(TaskKind::FailoverHard, &[], &["a", "b"]),
            &[index(1)],
        );
        assert!(too_few.message.contains("wants 2 copies"), "{too_few:?}");
        assert_eq!(
            refusal(request(TaskKind::Rebalance, &["a"], &["a"]), &[]).field,
            "eject_nodes[0]"
        );
    }

    #[test]
    fn each_kind_changes_what_it_should() {
        let mut all = nodes(&["a", "b", "c"]);
        all.get_mut("c").unwrap().wanted = false;
        let hard = apply(
            &request(TaskKind::FailoverHard, &[], &["a"]),
            &all,
            &[index(0)],
        )
        .unwrap();
        assert!(hard["a"].failed_over && !hard["a"].wanted);
        let graceful = apply(&request(TaskKind::FailoverGraceful, &[], &["a"]), &all, &[]).unwrap();
        assert!(!graceful["a"].reads && !graceful["a"].failed_over);
        let swap = apply(&request(TaskKind::Swap, &["c"], &["a"]), &all, &[index(1)]).unwrap();
        assert!(swap["c"].wanted && !swap["a"].wanted);
        // Nothing to change: nothing written.
        assert!(apply(&request(TaskKind::Rebalance, &["a"], &[]), &all, &[])
            .unwrap()
            .is_empty());
    }
}
