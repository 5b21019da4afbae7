use tessera_index::fulltext::FulltextPIndex;
use tessera_index::mapping::Mapping;
use tessera_index::{Change, PIndex};

use super::*;

/// A data dir with PIndex `docs_0` holding 10 documents of partition 0.
fn data_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mapping = Mapping::from_params(&serde_json::Value::Null).unwrap();
    let mut p = FulltextPIndex::open(&dir.path().join("pindexes/docs_0"), &mapping).unwrap();
    for i in 0..10u64 {
        let key = format!("k{i}");
        p.apply(
            0,
            "u",
            i + 1,
            Change::Put {
                key: &key,
                doc: br#"{"a": 1}"#,
            },
        )
        .unwrap();
    }
    p.commit().unwrap();
    dir
}

#[test]
fn rebuild_sets_the_directory_aside_and_rollback_puts_it_back() {
    let dir = data_dir();
    let edits = EditList {
        edits: vec![PIndexEdit::Rebuild],
    };
    let dry = apply(dir.path(), "docs_0", &edits, true).unwrap();
    assert!(dry.rebuilt && dry.backup.is_none());
    assert!(
        dir.path().join("pindexes/docs_0").is_dir(),
        "a dry run changes nothing"
    );
    let done = apply(dir.path(), "docs_0", &edits, false).unwrap();
    assert_eq!((done.docs_before, done.lowered.clone()), (10, vec![0]));
    assert!(
        !dir.path().join("pindexes/docs_0").exists(),
        "set aside: the node rebuilds it"
    );
    rollback(dir.path(), done.backup.as_deref().unwrap()).unwrap();
    assert_eq!(inspect(dir.path(), "docs_0").unwrap().docs, 10);
    // Mixed with other edits, rebuild is refused.
    let mixed = EditList {
        edits: vec![PIndexEdit::Rebuild, PIndexEdit::DropOrphans],
    };
    assert!(matches!(
        apply(dir.path(), "docs_0", &mixed, false),
        Err(RepairError::Invalid(_))
    ));
}

#[test]
fn names_and_directories_are_located_and_bad_ones_refused() {
    let (data, name) = locate(Path::new("/d"), "/d/pindexes/books_0-3/").unwrap();
    assert_eq!((data, name.as_str()), (PathBuf::from("/d"), "books_0-3"));
    let (data, name) = locate(Path::new("/d"), "books_0-3").unwrap();
    assert_eq!((data, name.as_str()), (PathBuf::from("/d"), "books_0-3"));
    assert!(locate(Path::new("/d"), "/tmp/books_0-3").is_err());
    assert!(pindex_dir(Path::new("/d"), "..").is_err());
    assert!(pindex_dir(Path::new("/d"), "").is_err());
}
