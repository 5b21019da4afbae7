//! Helpers of the tests where PIndexes go missing: an index without replicas, and the node
//! holding most of its copies killed with its data dir.

use std::collections::BTreeSet;
use std::time::Duration;

use super::drill::Drill;
use super::{http, wait_for};

/// Creates `books` over the drill's source with `pindexes` PIndexes and no replicas, and
/// waits until it is built.
pub fn books_without_replicas(drill: &Drill, pindexes: u32) {
    define_books(drill.a_live_node(), &drill.source, pindexes);
    drill.wait_green("the index built", Duration::from_secs(60));
}

/// Defines `books` (over the source at `source`, `pindexes` PIndexes, no replicas) through
/// `node`: the same definition in whichever cluster `node` belongs to.
pub fn define_books(node: &str, source: &str, pindexes: u32) {
    let (status, body) = define_books_with(node, source, pindexes, "");
    assert_eq!(status, 200, "{body}");
}

/// Like [`define_books`] with `more` fields in the definition (`, "recovery": ...`), unchecked.
pub fn define_books_with(
    node: &str,
    source: &str,
    pindexes: u32,
    more: &str,
) -> (u16, serde_json::Value) {
    let index = format!(
        r#"{{"type": "fulltext", "source": {{"type": "tessera", "name": "docs", "partitions": 64, "params": {{"url": "http://{source}"}}}},
            "plan": {{"index_partitions": {pindexes}, "replicas": 0}},
            "params": {{"mapping": {{"fields": {{"title": {{"type": "text"}}, "n": {{"type": "i64"}}}}}}}}{more}}}"#
    );
    http(node, "PUT", "/api/index/books", &index)
}

/// Kills the node among `among` holding the most copies of `books` and deletes its data
/// dir; waits until it is failed over and health names exactly its PIndexes as missing.
/// Returns the node's uuid and those PIndexes.
pub fn lose_the_busiest_node(drill: &mut Drill, among: &[usize]) -> (String, BTreeSet<String>) {
    let victim = *among
        .iter()
        .max_by_key(|&&i| drill.copies_on(&drill.uuid_of(i)))
        .expect("a node");
    let uuid = drill.uuid_of(victim);
    let plan = drill.plan();
    let held: BTreeSet<String> = plan["pindexes"]
        .as_array()
        .expect("pindexes")
        .iter()
        .filter(|p| {
            p["copies"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["node"] == uuid.as_str()))
        })
        .map(|p| p["name"].as_str().expect("a name").to_string())
        .collect();
    assert!(!held.is_empty(), "the victim holds PIndexes: {plan}");
    drill.kill(victim);
    std::fs::remove_dir_all(drill.scratch.path().join(format!("node{victim}")))
        .expect("delete the data dir");
    wait_for("its PIndexes missing", Duration::from_secs(30), || {
        (missing_of(drill) == held).then_some(())
    });
    (uuid, held)
}

/// The PIndexes of `books` health names missing.
pub fn missing_of(drill: &Drill) -> BTreeSet<String> {
    drill.health()["missing"]["books"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p.as_str().map(str::to_string))
        .collect()
}
