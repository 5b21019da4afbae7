use tessera_source::routing::partition_of;
use tessera_source::{Append, SourceLog};

use super::*;

const LOG: redb::TableDefinition<(&str, u32, u64), &[u8]> = redb::TableDefinition::new("log");

/// A data dir whose source `docs` (4 partitions) holds 40 documents, one entry damaged.
fn damaged() -> (tempfile::TempDir, u32) {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = SourceLog::open(&log_path(dir.path()), 4).unwrap();
        let items: Vec<Append> = (0..40)
            .map(|i| Append::Put {
                key: format!("k{i}"),
                doc: format!(r#"{{"n":{i}}}"#).into_bytes(),
            })
            .collect();
        log.append("docs", &items).unwrap();
    }
    let p = partition_of("k0", 4);
    let db = redb::Database::builder()
        .create(log_path(dir.path()))
        .unwrap();
    let wtx = db.begin_write().unwrap();
    wtx.open_table(LOG)
        .unwrap()
        .insert(("docs", p, 3), &[9u8, 1, 2][..])
        .unwrap();
    wtx.commit().unwrap();
    (dir, p)
}

#[test]
fn check_plan_dry_run_apply_and_rollback() {
    let (dir, p) = damaged();
    let data = dir.path();
    let original = std::fs::read(log_path(data)).unwrap();
    let report = check(data).unwrap();
    assert!(
        std::fs::read(log_path(data)).unwrap() == original,
        "a check changes nothing"
    );
    assert!(report.opens && report.findings.len() == 1, "{report:?}");
    let edits = plan(&report).expect("a plan");
    assert_eq!(
        edits.edits,
        vec![LogEdit::Delete {
            source: "docs".into(),
            partition: p,
            from_seq: 3,
            to_seq: 3
        }]
    );

    let dry = apply(data, &edits, true).unwrap();
    assert!(dry.dry_run && dry.backup.is_none());
    assert_eq!(
        std::fs::read(log_path(data)).unwrap(),
        original,
        "a dry run changes nothing"
    );
    assert!(workspace::Workspace::new(data).list().unwrap().is_empty());

    let done = apply(data, &edits, false).unwrap();
    let name = format!("docs/{p}");
    assert_eq!(done.deleted, dry.deleted, "the dry run said what apply did");
    assert_eq!(done.after, dry.after);
    assert_eq!(done.deleted[&name], 1);
    assert_eq!(done.after.entries[&name] + 1, done.before.entries[&name]);
    assert!(done.new_uuids.contains_key(&name), "{done:?}");
    assert!(check(data).unwrap().clean());
    let journal = workspace::Workspace::new(data).read_journal();
    assert_eq!(journal.len(), 1);
    assert_eq!(journal[0].backup, done.backup.clone().unwrap());

    let back = rollback(data, done.backup.as_deref().unwrap()).unwrap();
    assert_eq!(
        std::fs::read(log_path(data)).unwrap(),
        original,
        "byte for byte"
    );
    assert_eq!(back.crc32, crc32fast::hash(&original));
    assert_eq!(workspace::Workspace::new(data).read_journal().len(), 2);
}

#[test]
fn a_second_repair_and_a_running_source_are_refused_and_bad_edits_write_nothing() {
    let (dir, p) = damaged();
    let data = dir.path();
    let edits = plan(&check(data).unwrap()).unwrap();
    {
        let _other = workspace::Workspace::new(data).lock("apply").unwrap();
        assert!(matches!(
            apply(data, &edits, false),
            Err(RepairError::InUse(_))
        ));
    }
    {
        let _running = SourceLog::open(&log_path(data), 4).unwrap();
        assert!(matches!(
            apply(data, &edits, false),
            Err(RepairError::InUse(_))
        ));
    }
    // (Opening the log above rewrote its header; what follows must change nothing more.)
    let original = std::fs::read(log_path(data)).unwrap();
    // An append whose key routes elsewhere: refused, nothing written or backed up.
    let wrong = EditList {
        edits: vec![LogEdit::Append {
            source: "docs".into(),
            partition: (partition_of("x", 4) + 1) % 4,
            entries: vec![tessera_source::log::repair::NewEntry {
                key: "x".into(),
                doc: None,
            }],
        }],
    };
    assert!(matches!(
        apply(data, &wrong, false),
        Err(RepairError::Invalid(_))
    ));
    // Deleting elsewhere leaves the damaged entry: the result fails validation.
    let elsewhere = EditList {
        edits: vec![LogEdit::Delete {
            source: "docs".into(),
            partition: p,
            from_seq: 1,
            to_seq: 1,
        }],
    };
    assert!(matches!(
        apply(data, &elsewhere, false),
        Err(RepairError::Validation(_))
    ));
    assert!(std::fs::read(log_path(data)).unwrap() == original);
    assert!(workspace::Workspace::new(data).list().unwrap().is_empty());
    assert!(!log_path(data).with_extension("redb.repairing").exists());
}
