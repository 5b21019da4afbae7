use tessera_cfg::schema::{CopyPlan, CopyState, PIndexPlan};

use super::*;

fn copy(node: &str, role: CopyRole, state: CopyState) -> CopyPlan {
    CopyPlan {
        node: node.into(),
        role,
        state,
        can_read: true,
        can_write: true,
        target_role: None,
    }
}

fn plan(index: &str, copies: Vec<Vec<CopyPlan>>) -> IndexPlan {
    IndexPlan {
        format_version: 1,
        index: index.into(),
        index_uuid: "u".into(),
        pindexes: copies
            .into_iter()
            .enumerate()
            .map(|(i, copies)| PIndexPlan {
                name: format!("{index}_{i}"),
                source_partitions: vec![i as u32],
                copies,
            })
            .collect(),
        warnings: Vec::new(),
    }
}

/// The value of the series of `name` with exactly `labels`.
fn value(families: &[MetricFamily], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let family = families.iter().find(|f| f.name() == name)?;
    family
        .get_metric()
        .iter()
        .find(|m| {
            let got: Vec<(&str, &str)> = m
                .get_label()
                .iter()
                .map(|l| (l.name(), l.value()))
                .collect();
            labels.iter().all(|l| got.contains(l)) && got.len() == labels.len()
        })
        .map(|m| m.get_gauge().get_value())
}

#[test]
fn gauges_are_this_nodes_share() {
    use CopyRole::{Primary, Replica};
    let input = ScrapeInput {
        defined: Some(["docs".to_string()].into()),
        copies: copies_on(
            "a",
            &[plan(
                "docs",
                vec![
                    vec![
                        copy("a", Primary, CopyState::Active),
                        copy("b", Replica, CopyState::Active),
                    ],
                    vec![
                        copy("b", Primary, CopyState::Active),
                        copy("a", Replica, CopyState::Building),
                    ],
                    vec![
                        copy("a", Primary, CopyState::Dropping),
                        copy("c", Primary, CopyState::Building),
                    ],
                ],
            )],
        ),
        local: vec![
            LocalCopy {
                index: "docs".into(),
                role: Some(Primary),
                docs: 10,
                running: true,
                seqs: [(0, 5)].into(),
                pending_since_ms: Some(97_500),
            },
            LocalCopy {
                index: "docs".into(),
                role: Some(Replica),
                docs: 7,
                running: true,
                seqs: [(1, 2)].into(),
                pending_since_ms: None,
            },
            // A PIndex of an index deleted since: not exported.
            LocalCopy {
                index: "gone".into(),
                role: Some(Primary),
                docs: 3,
                running: true,
                ..LocalCopy::default()
            },
        ],
        highs: [("docs".to_string(), [(0, 9), (1, 2), (2, 4)].into())].into(),
        indexing: None,
        now_ms: 100_000,
    };
    let out = scraped(&input);
    let copies = |role, state| {
        value(
            &out,
            "tessera_pindex_copies",
            &[("index", "docs"), ("role", role), ("state", state)],
        )
    };
    assert_eq!(copies("primary", "active"), Some(1.0));
    assert_eq!(copies("replica", "building"), Some(1.0));
    assert_eq!(copies("primary", "dropping"), Some(1.0));
    assert_eq!(
        copies("replica", "active"),
        None,
        "b's copy is b's to report"
    );
    // Primaries only, so a sum over nodes counts each document once.
    let docs = &[("index", "docs")];
    assert_eq!(value(&out, "tessera_index_documents", docs), Some(10.0));
    assert_eq!(
        value(&out, "tessera_pindex_copies_running", docs),
        Some(2.0)
    );
    // Partition 0 is 4 behind, partition 1 caught up.
    assert_eq!(value(&out, "tessera_ingest_lag_seqs", docs), Some(4.0));
    assert_eq!(value(&out, "tessera_ingest_lag_seconds", docs), Some(2.5));
    for name in ["tessera_index_documents", "tessera_pindex_copies_running"] {
        assert_eq!(value(&out, name, &[("index", "gone")]), None, "{name}");
    }
}

#[test]
fn lag_in_seqs_is_left_out_when_the_source_did_not_answer() {
    let input = ScrapeInput {
        local: vec![LocalCopy {
            index: "docs".into(),
            running: true,
            seqs: [(0, 5)].into(),
            ..LocalCopy::default()
        }],
        ..ScrapeInput::default()
    };
    let out = scraped(&input);
    let docs = &[("index", "docs")];
    assert_eq!(value(&out, "tessera_ingest_lag_seqs", docs), None);
    assert_eq!(value(&out, "tessera_ingest_lag_seconds", docs), Some(0.0));
}
