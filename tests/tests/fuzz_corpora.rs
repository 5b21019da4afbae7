//! Every input in the committed fuzz corpora (`fuzz/corpus/<target>/`) replayed through its
//! target's body on stable Rust: a crash `scripts/fuzz.sh` once found stays fixed once its
//! input is in the corpus.

use std::path::Path;

fn replay(target: &str, body: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("the corpus {} cannot be read: {e}", dir.display()));
    let mut replayed = 0;
    for entry in entries {
        let path = entry.expect("a corpus entry").path();
        let data = std::fs::read(&path).expect("a corpus input");
        let outcome = std::panic::catch_unwind(|| body(&data));
        assert!(outcome.is_ok(), "{target}: {} panics", path.display());
        replayed += 1;
    }
    assert!(replayed > 0, "{target}: the corpus is empty");
}

#[test]
fn query_requests() {
    replay("query_request", tessera_tests::fuzzing::query_request);
}

#[test]
fn query_strings() {
    replay("query_string", tessera_tests::fuzzing::query_string);
}

#[test]
fn bulk_bodies() {
    replay("bulk_ndjson", tessera_tests::fuzzing::bulk_ndjson);
}

#[test]
fn cfg_documents() {
    replay("cfg_documents", tessera_tests::fuzzing::cfg_documents);
}

#[test]
fn protocol_messages() {
    replay(
        "protocol_messages",
        tessera_tests::fuzzing::protocol_messages,
    );
}
