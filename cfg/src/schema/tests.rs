use serde_json::json;

use super::*;
use crate::error::CfgError;

fn index_json() -> serde_json::Value {
    json!({
        "name": "books", "uuid": "u1", "type": "fulltext",
        "source": {"type": "tessera", "name": "docs", "params": {"url": "http://127.0.0.1:9200"}},
        "plan": {"max_partitions_per_pindex": 64, "replicas": 1}
    })
}

fn invalid_field(result: crate::Result<IndexDef>) -> String {
    match result {
        Err(CfgError::Invalid { field, key, .. }) => {
            assert_eq!(key, "k");
            field
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
}

fn with(mut v: serde_json::Value, path: &[&str], new: serde_json::Value) -> Vec<u8> {
    let mut cur = &mut v;
    for p in &path[..path.len() - 1] {
        cur = &mut cur[*p];
    }
    cur[path[path.len() - 1]] = new;
    serde_json::to_vec(&v).unwrap()
}

#[test]
fn input_without_format_version_gets_the_current_one_and_round_trips() {
    let def: IndexDef = decode_input("k", &serde_json::to_vec(&index_json()).unwrap()).unwrap();
    assert_eq!(def.format_version, 1);
    assert_eq!(def.plan.replicas, 1);
    let again: IndexDef = decode("k", &encode(&def)).unwrap();
    assert_eq!(again, def);
}

#[test]
fn validation_names_the_field() {
    let v = index_json();
    let cases: Vec<(&[&str], serde_json::Value, &str)> = vec![
        (&["plan", "replicas"], json!(4), "plan.replicas"),
        (&["name"], json!("9books"), "name"),
        (&["name"], json!("a".repeat(65)), "name"),
        (&["name"], json!("bo oks"), "name"),
        (&["type"], json!("vector"), "type"),
        (
            &["plan", "max_partitions_per_pindex"],
            json!(0),
            "plan.max_partitions_per_pindex",
        ),
        (
            &["plan", "index_partitions"],
            json!(0),
            "plan.index_partitions",
        ),
        (&["plan", "replicas"], json!("two"), "plan.replicas"),
        (&["plan", "bogus"], json!(1), "plan"),
        (&["format_version"], json!(99), "format_version"),
    ];
    for (path, value, field) in cases {
        let got = invalid_field(decode_input("k", &with(v.clone(), path, value.clone())));
        assert!(
            got.starts_with(field),
            "{path:?}={value}: error names `{got}`, wanted `{field}`"
        );
    }
}

#[test]
fn replicas_zero_to_three_are_accepted() {
    for r in 0..=3 {
        let def: IndexDef = decode_input("k", &with(index_json(), &["plan", "replicas"], json!(r)))
            .unwrap_or_else(|e| panic!("replicas {r}: {e}"));
        assert_eq!(def.plan.replicas, r);
    }
}

#[test]
fn stored_garbage_is_corrupt_naming_the_key() {
    for bytes in [&b"{not json"[..], b"[1,2]", b"{\"format_version\": 1}"] {
        match decode::<IndexDef>("/tessera/c/indexes/x", bytes) {
            Err(CfgError::Corrupt { key, .. }) => assert_eq!(key, "/tessera/c/indexes/x"),
            other => panic!(
                "{:?}: expected Corrupt, got {other:?}",
                String::from_utf8_lossy(bytes)
            ),
        }
    }
}

#[test]
fn stored_newer_format_is_a_typed_error() {
    let mut v = index_json();
    v["format_version"] = json!(7);
    match decode::<IndexDef>("key1", &serde_json::to_vec(&v).unwrap()) {
        Err(CfgError::UnknownFormatVersion {
            key,
            found,
            supported,
        }) => {
            assert_eq!((key.as_str(), found, supported), ("key1", 7, 1));
        }
        other => panic!("expected UnknownFormatVersion, got {other:?}"),
    }
}

#[test]
fn node_def_checks_tags_group_weight_and_address() {
    let good = json!({"uuid": "n1", "incarnation": "i1", "host_port": "127.0.0.1:9100",
                      "tags": ["pindex", "planner"], "group": "zone-a/rack-1", "weight": 2});
    let def: NodeDef = decode_input("k", &serde_json::to_vec(&good).unwrap()).unwrap();
    assert!(def.tags.contains(&NodeTag::Planner));
    let cases: Vec<(&str, serde_json::Value, &str)> = vec![
        ("tags", json!(["pindex", "cook"]), "tags"),
        ("group", json!("zone-a//rack"), "group"),
        ("weight", json!(0), "weight"),
        ("host_port", json!("nowhere"), "host_port"),
        ("uuid", json!(""), "uuid"),
    ];
    for (name, value, field) in cases {
        let mut v = good.clone();
        v[name] = value;
        match decode_input::<NodeDef>("k", &serde_json::to_vec(&v).unwrap()) {
            Err(CfgError::Invalid { field: got, .. }) => assert!(got.starts_with(field), "{got}"),
            other => panic!("{name}: expected Invalid, got {other:?}"),
        }
    }
}

#[test]
fn plan_rejects_two_copies_on_one_node_and_double_coverage() {
    let plan = |copies: serde_json::Value, parts2: serde_json::Value| {
        json!({"index": "books", "index_uuid": "u1", "pindexes": [
            {"name": "books_0", "source_partitions": [0, 1], "copies": copies},
            {"name": "books_1", "source_partitions": parts2, "copies": []}]})
    };
    let copy = |node: &str, role: &str| json!({"node": node, "role": role, "state": "active", "can_read": true, "can_write": true});
    let ok = plan(
        json!([copy("n1", "primary"), copy("n2", "replica")]),
        json!([2]),
    );
    decode_input::<IndexPlan>("k", &serde_json::to_vec(&ok).unwrap()).unwrap();
    let same_node = plan(
        json!([copy("n1", "primary"), copy("n1", "replica")]),
        json!([2]),
    );
    let overlap = plan(json!([copy("n1", "primary")]), json!([1]));
    let two_primaries = plan(
        json!([copy("n1", "primary"), copy("n2", "primary")]),
        json!([2]),
    );
    for (doc, field) in [
        (same_node, "pindexes[0].copies[1].node"),
        (overlap, "pindexes[1].source_partitions"),
        (two_primaries, "pindexes[0].copies"),
    ] {
        match decode_input::<IndexPlan>("k", &serde_json::to_vec(&doc).unwrap()) {
            Err(CfgError::Invalid { field: got, .. }) => assert_eq!(got, field),
            other => panic!("expected Invalid at {field}, got {other:?}"),
        }
    }
}

#[test]
fn index_def_bounds_partitions_and_pindexes() {
    let base = json!({"name": "books", "uuid": "u1", "type": "fulltext",
                      "source": {"type": "tessera", "name": "books"}});
    let with = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut v = base.clone();
        edit(&mut v);
        decode_input::<IndexDef>("k", &serde_json::to_vec(&v).unwrap())
    };
    with(&|v| v["source"]["partitions"] = json!(crate::limits::MAX_SOURCE_PARTITIONS))
        .expect("the largest source is allowed (64 per PIndex: 256 PIndexes)");
    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "source.partitions",
            Box::new(|v| v["source"]["partitions"] = json!(4_000_000_000u32)),
        ),
        (
            "plan.index_partitions",
            Box::new(|v| v["plan"] = json!({"index_partitions": 1_000_000})),
        ),
        (
            "plan.max_partitions_per_pindex",
            Box::new(|v| {
                v["source"]["partitions"] = json!(4096);
                v["plan"] = json!({"max_partitions_per_pindex": 1});
            }),
        ),
    ];
    for (field, edit) in cases {
        match with(&*edit) {
            Err(CfgError::Invalid {
                field: got, reason, ..
            }) => {
                assert_eq!(got, field, "{reason}")
            }
            other => panic!("{field}: expected Invalid, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_value_past_the_store_limit_is_refused_before_writing() {
    let cfg = crate::Cfg::new(
        std::sync::Arc::new(crate::local::LocalStore::open_memory().unwrap()),
        crate::KeySpace::new("t").unwrap(),
    );
    let big = vec![b'x'; crate::limits::MAX_VALUE_BYTES + 1];
    let refused = cfg.store().put("/tessera/t/x", big.clone(), 0, None).await;
    assert!(
        matches!(refused, Err(CfgError::TooLarge { .. })),
        "{refused:?}"
    );
    let txn = crate::Txn::default().then(crate::Op::Put {
        key: "/tessera/t/y".into(),
        value: big,
        lease: None,
    });
    let refused = cfg.store().txn(txn).await;
    assert!(
        matches!(refused, Err(CfgError::TooLarge { .. })),
        "{refused:?}"
    );
    assert!(cfg.store().get("/tessera/t/x").await.unwrap().is_none());
}

#[tokio::test]
async fn an_ended_task_releases_the_lock_only_if_the_lock_is_its_own() {
    use crate::schema::{TaskKind, TaskStatus, TopologyLock, TopologyTask};
    let cfg = crate::Cfg::new(
        std::sync::Arc::new(crate::local::LocalStore::open_memory().unwrap()),
        crate::KeySpace::new("t").unwrap(),
    );
    let task = |id: &str| TopologyTask {
        format_version: 1,
        id: id.into(),
        kind: TaskKind::Rebalance,
        status: TaskStatus::Running,
        keep_nodes: vec![],
        eject_nodes: vec![],
        before: Default::default(),
        created_ms: 1,
        updated_ms: 1,
        progress: Default::default(),
        errors: vec![],
        summary: None,
    };
    let lock_key = cfg.keys().topology_lock();
    let old = task("t-old");
    assert!(cfg.put_task(&old, 0).await.unwrap());
    let old_rev = cfg
        .get_doc::<TopologyTask>(&cfg.keys().task("t-old"))
        .await
        .unwrap()
        .unwrap()
        .revision;
    // The lock is another task's by now.
    let lock = TopologyLock {
        format_version: 1,
        task: "t-new".into(),
    };
    cfg.put_doc(&lock_key, &lock, 0, None).await.unwrap();
    let mut ended = old.clone();
    ended.status = TaskStatus::Completed;
    assert!(cfg.put_task(&ended, old_rev).await.unwrap());
    let held = cfg.get_doc::<TopologyLock>(&lock_key).await.unwrap();
    assert_eq!(held.map(|l| l.value.task).as_deref(), Some("t-new"));
    // Its own task ending releases it.
    let new = task("t-new");
    assert!(cfg.put_task(&new, 0).await.unwrap());
    let rev = cfg
        .get_doc::<TopologyTask>(&cfg.keys().task("t-new"))
        .await
        .unwrap()
        .unwrap()
        .revision;
    let mut ended = new;
    ended.status = TaskStatus::Cancelled;
    assert!(cfg.put_task(&ended, rev).await.unwrap());
    assert!(cfg.store().get(&lock_key).await.unwrap().is_none());
}
