//! The moves from one plan to the next, and the count of copies added.

use std::collections::BTreeMap;

use crate::model::{Action, CopyRole, Move, Plan};

/// Moves from `previous` to `next`, ordered so that promotions come first (a lost primary is
/// replaced before anything else), then adds, demotions and finally removes (make before
/// break). Within an action: by PIndex, then node.
pub fn moves(previous: &Plan, next: &Plan) -> Vec<Move> {
    let before = copies_by_pindex(previous);
    let after = copies_by_pindex(next);
    let mut out = Vec::new();
    for (pindex, new_copies) in &after {
        let old_copies = before.get(pindex);
        for (node, &role) in new_copies {
            match old_copies.and_then(|c| c.get(node)) {
                None => out.push(mv(pindex, node, Action::Add, role)),
                Some(&old) if old != role => {
                    let action = match role {
                        CopyRole::Primary => Action::Promote,
                        CopyRole::Replica => Action::Demote,
                    };
                    out.push(mv(pindex, node, action, role));
                }
                Some(_) => {}
            }
        }
    }
    for (pindex, old_copies) in &before {
        let new_copies = after.get(pindex);
        for (node, &role) in old_copies {
            if new_copies.is_none_or(|c| !c.contains_key(node)) {
                out.push(mv(pindex, node, Action::Remove, role));
            }
        }
    }
    out.sort_by(|a, b| (a.action, &a.pindex, &a.node).cmp(&(b.action, &b.pindex, &b.node)));
    out
}

/// Copies in `next` on a node that did not hold that PIndex in `previous`.
pub fn copies_added(moves: &[Move]) -> usize {
    moves.iter().filter(|m| m.action == Action::Add).count()
}

fn copies_by_pindex(plan: &Plan) -> BTreeMap<&str, BTreeMap<&str, CopyRole>> {
    plan.pindexes
        .iter()
        .map(|p| {
            (
                p.name.as_str(),
                p.copies.iter().map(|c| (c.node.as_str(), c.role)).collect(),
            )
        })
        .collect()
}

fn mv(pindex: &str, node: &str, action: Action, role: CopyRole) -> Move {
    Move {
        pindex: pindex.to_string(),
        node: node.to_string(),
        action,
        role,
    }
}
