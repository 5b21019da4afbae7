use std::sync::Arc;

use tessera_cfg::local::LocalStore;
use tessera_cfg::KeySpace;

use super::*;

async fn damaged_cfg() -> (Cfg, Revision, Revision) {
    let cfg = Cfg::new(
        Arc::new(LocalStore::open_memory().unwrap()),
        KeySpace::new("c").unwrap(),
    );
    let index = cfg.keys().resolve("indexes/books");
    let node = cfg.keys().resolve("nodes/n1");
    let r1 = cfg
        .store()
        .set(
            &index,
            b"{\"format_version\": 1, \"name\": \"bo".to_vec(),
            0,
        )
        .await
        .unwrap();
    let future = serde_json::json!({"format_version": 42, "uuid": "n1"}).to_string();
    let r2 = cfg
        .store()
        .set(&node, future.into_bytes(), 0)
        .await
        .unwrap();
    (cfg, r1, r2)
}

fn edits(index_rev: Revision, node_rev: Revision) -> EditList<CfgEdit> {
    EditList {
        edits: vec![
            CfgEdit::Replace {
                key: "indexes/books".into(),
                revision: index_rev,
                value: Some(
                    serde_json::json!({"name": "books", "uuid": "u1", "type": "fulltext",
                    "source": {"type": "tessera", "name": "books"}}),
                ),
                value_file: None,
            },
            CfgEdit::Delete {
                key: "nodes/n1".into(),
                revision: node_rev,
            },
        ],
    }
}

#[tokio::test]
async fn scan_names_both_the_edit_repairs_them_and_rollback_puts_them_back() {
    let (cfg, r1, r2) = damaged_cfg().await;
    let dir = tempfile::tempdir().unwrap();
    let report = scan(&cfg).await.unwrap();
    let kinds: Vec<(&str, &str)> = report
        .findings
        .iter()
        .map(|f| (f.key.rsplit_once("c/").map_or("", |(_, k)| k), f.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            ("indexes/books", "undecodable"),
            ("nodes/n1", "unknown_format")
        ],
        "{report:?}"
    );

    let dry = apply(&cfg, dir.path(), &edits(r1, r2), true).await.unwrap();
    assert!(dry.findings_after.is_empty(), "{:?}", dry.findings_after);
    assert_eq!(
        scan(&cfg).await.unwrap().findings.len(),
        2,
        "a dry run writes nothing"
    );

    // An edit on a stale revision: refused, nothing written.
    let stale = apply(&cfg, dir.path(), &edits(r1 - 1, r2), false).await;
    assert!(matches!(stale, Err(RepairError::InUse(_))), "{stale:?}");
    // A value (from a file) that breaks the schema: refused by field.
    let bad_file = dir.path().join("bad.json");
    std::fs::write(&bad_file, br#"{"name": "other"}"#).unwrap();
    let mut bad = edits(r1, r2);
    bad.edits[0] = CfgEdit::Replace {
        key: "indexes/books".into(),
        revision: r1,
        value: None,
        value_file: Some(bad_file.clone()),
    };
    assert!(matches!(
        apply(&cfg, dir.path(), &bad, false).await,
        Err(RepairError::Invalid(_))
    ));

    let done = apply(&cfg, dir.path(), &edits(r1, r2), false)
        .await
        .unwrap();
    assert_eq!(
        done.changes
            .iter()
            .map(|c| c.after.is_some())
            .collect::<Vec<_>>(),
        dry.changes
            .iter()
            .map(|c| c.after.is_some())
            .collect::<Vec<_>>()
    );
    assert!(scan(&cfg).await.unwrap().findings.is_empty());
    let id = done.backup.clone().unwrap();
    let record = cfg
        .store()
        .get(&cfg.keys().repair_record(&id))
        .await
        .unwrap();
    assert!(record.is_some(), "the journal entry is in the Cfg too");

    rollback(&cfg, dir.path(), &id).await.unwrap();
    let index = cfg
        .store()
        .get(&cfg.keys().resolve("indexes/books"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        index.value,
        b"{\"format_version\": 1, \"name\": \"bo".to_vec()
    );
    assert_eq!(scan(&cfg).await.unwrap().findings.len(), 2);
}
