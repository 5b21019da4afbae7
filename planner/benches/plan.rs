//! Planner figures: time to plan, and copies added against the lower bound, on the issue's
//! cases. `cargo bench -p tessera-planner --bench plan`.
//!
//! (a) 1 index × 1024 partitions in 64 PIndexes × 3 copies over 6, 12 and 48 nodes in 3 groups
//! (b) 100 such indexes over 100 nodes in 5 groups
//! (c) (b) plus one node      (d) (b) minus one node

use std::time::{Duration, Instant};

use tessera_planner::model::{IndexSpec, NodeSpec, NodeTag, PlanInput, PlanOutput};

fn nodes(count: usize, groups: usize) -> Vec<NodeSpec> {
    (0..count)
        .map(|i| NodeSpec {
            uuid: format!("n{i:03}"),
            group: format!("zone-{}", i % groups),
            weight: 1,
            tags: vec![NodeTag::Pindex],
            wanted: true,
        })
        .collect()
}

fn indexes(count: usize) -> Vec<IndexSpec> {
    (0..count)
        .map(|i| IndexSpec {
            name: format!("idx{i:03}"),
            source_partitions: 1024,
            max_partitions_per_pindex: Some(16),
            index_partitions: None,
            replicas: 2,
            frozen: false,
            spread_level: None,
        })
        .collect()
}

/// Median time of `runs` plans of `input`, and the last output.
fn time(input: &PlanInput, runs: usize) -> (Duration, PlanOutput) {
    let mut times = Vec::with_capacity(runs);
    let mut out = None;
    for _ in 0..runs {
        let started = Instant::now();
        out = Some(tessera_planner::plan(input));
        times.push(started.elapsed());
    }
    times.sort();
    (times[runs / 2], out.expect("at least one run"))
}

fn report(case: &str, input: &PlanInput, runs: usize) -> PlanOutput {
    let (median, out) = time(input, runs);
    println!(
        "{case:<34} {:>10.3} ms   copies_added {:>6}   min_copies_added {:>6}   ratio {:>5.3}   warnings {}",
        median.as_secs_f64() * 1e3,
        out.stats.copies_added,
        out.stats.min_copies_added,
        if out.stats.min_copies_added == 0 { 1.0 } else { out.stats.copies_added as f64 / out.stats.min_copies_added as f64 },
        out.warnings.len()
    );
    out
}

fn main() {
    for n in [6, 12, 48] {
        let input = PlanInput {
            nodes: nodes(n, 3),
            indexes: indexes(1),
            ..Default::default()
        };
        report(&format!("(a) 1x64x3 over {n} nodes/3 groups"), &input, 51);
    }
    let base = PlanInput {
        nodes: nodes(100, 5),
        indexes: indexes(100),
        ..Default::default()
    };
    let b = report("(b) 100x64x3 over 100 nodes/5 grp", &base, 5);

    let mut plus = base.clone();
    plus.nodes = nodes(101, 5);
    plus.previous_plan = Some(b.plan.clone());
    report("(c) (b) plus one node", &plus, 5);

    let mut minus = base.clone();
    minus.nodes.retain(|n| n.uuid != "n050");
    minus.previous_plan = Some(b.plan.clone());
    report("(d) (b) minus one node", &minus, 5);

    let mut again = base.clone();
    again.previous_plan = Some(b.plan);
    report("    (b) replanned (idempotence)", &again, 5);
}
