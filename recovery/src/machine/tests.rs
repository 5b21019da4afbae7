use super::*;

fn missing(pindex: &str, node: Option<&str>) -> MissingPIndex {
    MissingPIndex {
        index: "books".into(),
        pindex: pindex.into(),
        partitions: vec![0],
        node: node.map(str::to_string),
    }
}

fn snapshot_source(bytes: u64) -> DataSource {
    DataSource {
        from: "snapshot local/s1: download".into(),
        rebuild: false,
        bytes,
        reason: None,
    }
}

/// p1 and p2 fetched on n1 and n2; p3 rebuilds (not in the snapshot); p4 has no node yet.
fn started() -> Recovery {
    let m = [
        missing("p1", Some("n1")),
        missing("p2", Some("n2")),
        missing("p3", Some("n1")),
        missing("p4", None),
    ];
    let sources = [
        ("p1".to_string(), snapshot_source(100)),
        ("p2".to_string(), snapshot_source(300)),
    ]
    .into();
    let from = RecoverFrom::Snapshot {
        repo: "local".into(),
        id: "s1".into(),
    };
    begin("r1", from, &m, &sources, 1_000)
}

/// `started`, with p1 recovered and committed and p2 catching up.
fn midway() -> Recovery {
    let mut r = started();
    step(&mut r, "p1", State::Recovered, "i1", Step::default(), 2_000);
    commit(&mut r, None, 2_100).unwrap();
    step(
        &mut r,
        "p2",
        State::CatchingUp,
        "i2",
        Step::default(),
        2_200,
    );
    r
}

fn names(work: &[Work]) -> Vec<String> {
    work.iter()
        .map(|w| match w {
            Work::Fetch { pindex } => format!("fetch {pindex}"),
            Work::Rebuild { pindex } => format!("rebuild {pindex}"),
            Work::Watch { pindex } => format!("watch {pindex}"),
            Work::Undo { pindex } => format!("undo {pindex}"),
        })
        .collect()
}

#[test]
fn begin_records_each_missing_pindex_and_where_its_data_comes_from() {
    let r = started();
    assert_eq!(r.indexes, ["books"]);
    assert_eq!(r.pindexes.len(), 4);
    assert!(!r.pindexes["p1"].rebuild);
    assert_eq!(r.pindexes["p2"].bytes_total, 300);
    assert!(r.pindexes["p3"].rebuild, "not in the snapshot: rebuilt");
    assert_eq!(r.pindexes["p3"].from, "source");
    assert_eq!(
        names(&work_for(&r, "n1", "i1", |_| false)),
        ["fetch p1", "rebuild p3"]
    );
    assert_eq!(names(&work_for(&r, "n2", "i2", |_| false)), ["fetch p2"]);
    let p = progress(&r, 2_000);
    assert_eq!((p.pindexes_total, p.bytes_total, p.percent), (4, 400, 0.0));
    assert_eq!(p.states["missing"], 4);
}

#[test]
fn steps_advance_and_a_restarted_node_fetches_again() {
    let mut r = started();
    let fetching = Step {
        bytes_done: Some(50),
        ..Step::default()
    };
    assert!(step(
        &mut r,
        "p1",
        State::Fetching,
        "i1",
        fetching.clone(),
        2_000
    ));
    assert!(
        !step(&mut r, "p1", State::Fetching, "i1", fetching, 2_500),
        "the same step again changes nothing"
    );
    assert!(
        work_for(&r, "n1", "i1", |_| false).iter().all(|w| w
            != &Work::Fetch {
                pindex: "p1".into()
            }),
        "the incarnation fetching it is not asked again"
    );
    assert_eq!(
        names(&work_for(&r, "n1", "i1-restarted", |_| false))[0],
        "fetch p1",
        "a restarted node fetches again"
    );
    let p = progress(&r, 3_000);
    assert_eq!(p.bytes_done, 50);
    assert_eq!(p.eta_s, Some(14.0), "350 bytes left at 25 bytes/s");
    assert!(step(
        &mut r,
        "p1",
        State::CatchingUp,
        "i1",
        Step::default(),
        3_000
    ));
    assert_eq!(names(&work_for(&r, "n1", "i1", |_| false))[0], "watch p1");
    assert!(step(
        &mut r,
        "p1",
        State::Recovered,
        "i1",
        Step::default(),
        4_000
    ));
    assert!(!names(&work_for(&r, "n1", "i1", |_| false)).contains(&"watch p1".to_string()));
    assert!(!step(
        &mut r,
        "nope",
        State::Recovered,
        "i1",
        Step::default(),
        4_000
    ));
}

#[test]
fn commit_takes_recovered_pindexes_only_and_is_idempotent() {
    let mut r = started();
    step(&mut r, "p1", State::Recovered, "i1", Step::default(), 2_000);
    assert_eq!(
        commit(&mut r, Some(&["p2".into()]), 3_000),
        Err(RecoveryError::NotRecovered(vec!["p2 (missing)".into()]))
    );
    assert_eq!(
        commit(&mut r, Some(&["zz".into()]), 3_000),
        Err(RecoveryError::UnknownPIndexes(vec!["zz".into()]))
    );
    assert_eq!(commit(&mut r, None, 3_000), Ok(vec!["p1".to_string()]));
    assert_eq!(
        commit(&mut r, None, 3_100),
        Ok(vec![]),
        "again: nothing new"
    );
    assert_eq!(commit(&mut r, Some(&["p1".into()]), 3_200), Ok(vec![]));
    assert!(r.pindexes["p1"].committed);
    assert!(
        !step(&mut r, "p1", State::Failed, "i1", Step::default(), 4_000),
        "a committed PIndex no longer moves"
    );
    let held: Vec<_> = r.holds().collect();
    assert_eq!(held, ["p2", "p3", "p4"], "committed p1 is not held");
}

#[test]
fn end_hands_the_rest_to_the_planner_and_is_idempotent() {
    let mut r = midway();
    let first = end(&mut r, 3_000).unwrap();
    assert_eq!(r.status, RecoveryStatus::Ended);
    let said: Vec<(&str, bool)> = first
        .iter()
        .map(|h| (h.pindex.as_str(), h.next.starts_with("readable")))
        .collect();
    assert_eq!(said, [("p2", true), ("p3", false), ("p4", false)]);
    assert_eq!(
        end(&mut r, 4_000).unwrap(),
        first,
        "ending again answers the same"
    );
    assert_eq!(r.holds().count(), 0, "nothing held once ended");
    assert!(!asks_janitors(&r));
    assert!(matches!(
        abort(&mut r, 5_000),
        Err(RecoveryError::NotRunning { .. })
    ));
    assert_eq!(commit(&mut r, Some(&["p1".into()]), 5_000), Ok(vec![]));
    assert!(matches!(
        commit(&mut r, Some(&["p2".into()]), 5_000),
        Err(RecoveryError::NotRunning { .. })
    ));
}

#[test]
fn abort_undoes_what_is_not_committed_and_is_idempotent() {
    let mut r = midway();
    step(
        &mut r,
        "p3",
        State::CatchingUp,
        "i1",
        Step::default(),
        2_200,
    );
    abort(&mut r, 3_000).unwrap();
    assert_eq!(r.status, RecoveryStatus::Aborted);
    assert_eq!(r.pindexes["p1"].undo, None, "committed stays");
    assert_eq!(r.pindexes["p4"].undo, None, "nothing was done to it");
    assert_eq!(names(&work_for(&r, "n1", "i1", |_| false)), ["undo p3"]);
    assert_eq!(names(&work_for(&r, "n2", "i2", |_| false)), ["undo p2"]);
    let r_again = {
        let mut again = r.clone();
        abort(&mut again, 4_000).unwrap();
        again
    };
    assert_eq!(r_again, r, "aborting again changes nothing");
    let held: Vec<_> = r.holds().collect();
    assert_eq!(held, ["p2", "p3"], "held until undone");
    assert!(undone(&mut r, "p2", 5_000));
    assert!(!undone(&mut r, "p2", 5_000));
    assert!(asks_janitors(&r), "an undo is still pending");
    assert!(undone(&mut r, "p3", 5_000));
    assert_eq!(r.holds().count(), 0);
    assert!(!asks_janitors(&r));
    assert!(work_for(&r, "n1", "i1", |_| false).is_empty());
    assert_eq!(progress(&r, 6_000).undo_pending, 0);
    assert!(!step(
        &mut r,
        "p2",
        State::Recovered,
        "i2",
        Step::default(),
        6_000
    ));
}

#[test]
fn an_unplaced_pindex_is_claimed_by_the_first_node_placed_with_it() {
    let mut r = started();
    let placed = |p: &str| p == "p4";
    assert_eq!(names(&work_for(&r, "n3", "i3", placed)), ["rebuild p4"]);
    let claim = |node: &str| Step {
        node: Some(node.into()),
        ..Step::default()
    };
    assert!(step(
        &mut r,
        "p4",
        State::CatchingUp,
        "i3",
        claim("n3"),
        2_000
    ));
    assert_eq!(r.pindexes["p4"].node.as_deref(), Some("n3"));
    assert!(
        !step(&mut r, "p4", State::CatchingUp, "i9", claim("n9"), 2_100),
        "claimed by another node first"
    );
    assert!(
        names(&work_for(&r, "n9", "i9", placed)).is_empty(),
        "n3 has it now"
    );
    assert_eq!(names(&work_for(&r, "n3", "i3", placed)), ["watch p4"]);
}
