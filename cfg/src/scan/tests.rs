use super::*;

fn kv(keys: &KeySpace, rel: &str, value: serde_json::Value, revision: Revision) -> KeyValue {
    KeyValue {
        key: format!("{}{rel}", keys.root()),
        value: value.to_string().into_bytes(),
        create_revision: revision,
        mod_revision: revision,
        lease: None,
    }
}

fn node(uuid: &str) -> serde_json::Value {
    serde_json::json!({"format_version": 1, "uuid": uuid, "incarnation": "i", "host_port": "127.0.0.1:1",
        "tags": ["pindex"], "group": "", "weight": 1, "wanted": true, "failed_over": false, "reads": true, "extras": {}})
}

#[test]
fn damaged_future_and_dangling_documents_are_named() {
    let keys = KeySpace::new("c").unwrap();
    let mut corrupt = kv(&keys, "indexes/books", serde_json::json!({}), 5);
    corrupt.value = b"{\"format_version\": 1, \"name\": ".to_vec();
    let mut future = node("n2");
    future["format_version"] = serde_json::json!(99);
    let kvs = vec![
        corrupt,
        kv(&keys, "nodes/n1", node("n1"), 6),
        kv(&keys, "nodes/n2", future, 7),
        kv(&keys, "nodes/n3", node("someone-else"), 8),
        kv(
            &keys,
            "plans/gone",
            serde_json::json!({"format_version": 1, "index": "gone", "index_uuid": "u", "pindexes": [
                {"name": "gone_0", "source_partitions": [0], "copies": [
                    {"node": "n1", "role": "primary", "state": "active", "can_read": true, "can_write": true},
                    {"node": "n9", "role": "replica", "state": "active", "can_read": true, "can_write": true}]}]}),
            9,
        ),
        kv(
            &keys,
            "topology/lock",
            serde_json::json!({"format_version": 1, "task": "t-missing"}),
            10,
        ),
    ];
    let found = scan(&keys, &kvs);
    let at = |rel: &str| -> Vec<(&str, &str)> {
        found
            .iter()
            .filter(|f| f.key == format!("{}{rel}", keys.root()))
            .map(|f| (f.kind, f.what.as_str()))
            .collect()
    };
    assert!(
        matches!(at("indexes/books")[..], [("undecodable", _)]),
        "{found:?}"
    );
    assert!(
        matches!(at("nodes/n2")[..], [("unknown_format", w)] if w.contains("99")),
        "{found:?}"
    );
    assert!(
        matches!(at("nodes/n3")[..], [("invalid", w)] if w.contains("someone-else")),
        "{found:?}"
    );
    assert!(at("nodes/n1").is_empty(), "{found:?}");
    let plan = at("plans/gone");
    assert_eq!(plan.len(), 2, "{found:?}");
    assert!(plan.iter().any(|(_, w)| w.contains("index `gone`")));
    assert!(plan.iter().any(|(_, w)| w.contains("`n9`")));
    assert!(
        matches!(at("topology/lock")[..], [("dangling", w)] if w.contains("t-missing")),
        "{found:?}"
    );
    assert!(found.iter().all(|f| f.revision > 0));
}
