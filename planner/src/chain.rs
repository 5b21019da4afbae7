//! The shortest chain of hand-overs from an overloaded node to an underloaded one, found
//! breadth-first. Balancing uses it when no direct step exists: each node on the chain passes
//! one item (a copy, or a primary role) to the next, so only the ends change their counts.

use std::collections::VecDeque;

/// One step of a chain: `(work, from, to)`.
pub(crate) type Step = (usize, usize, usize);

/// `edges(x, seen)` lists `(y, work)` hand-overs from node `x` to nodes `y` not yet seen; the
/// first path from any donor to any receiver is returned, donor first.
pub(crate) fn shortest_chain(
    nodes: usize,
    donors: &[usize],
    receivers: &[usize],
    mut edges: impl FnMut(usize, &[bool]) -> Vec<(usize, usize)>,
) -> Option<Vec<Step>> {
    let mut is_receiver = vec![false; nodes];
    for &r in receivers {
        is_receiver[r] = true;
    }
    let mut parent: Vec<Option<(usize, usize)>> = vec![None; nodes];
    let mut seen = vec![false; nodes];
    let mut queue = VecDeque::new();
    for &d in donors {
        seen[d] = true;
        queue.push_back(d);
    }
    while let Some(x) = queue.pop_front() {
        for (y, w) in edges(x, &seen) {
            if seen[y] {
                continue;
            }
            seen[y] = true;
            parent[y] = Some((x, w));
            if is_receiver[y] {
                let mut chain = Vec::new();
                let mut at = y;
                while let Some((prev, w)) = parent[at] {
                    chain.push((w, prev, at));
                    at = prev;
                }
                chain.reverse();
                return Some(chain);
            }
            queue.push_back(y);
        }
    }
    None
}
