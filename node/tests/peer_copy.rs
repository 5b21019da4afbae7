//! New copies built from a peer's files, on real etcd and processes: a node added to three
//! gets its copies by fetching the files of readable copies on the others (then feeds on from
//! their checkpoints); with the copy slowed down, the source and the serving peer killed
//! mid-copy, the copy falls back to the source and the counts end exact.

mod common;

use std::time::Duration;

use common::backup::ingest;
use common::drill::*;
use common::{http, wait_for};
use serde_json::Value;

/// The local entries of `books`' PIndexes on `node`, by name.
fn locals(node: &str) -> Vec<(String, Value)> {
    let Some((_, status)) = common::try_http(node, "GET", "/api/index/books/status", "") else {
        return Vec::new();
    };
    status["pindexes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| !p["local"].is_null())
        .map(|p| {
            let name = p["name"].as_str().unwrap_or("?").to_string();
            (name, p["local"].clone())
        })
        .collect()
}

/// Documents `from..to` (keys `d<i>`) written to the source.
fn ingest_range(source: &str, from: usize, to: usize) {
    let body: String = (from..to)
        .map(|i| format!("{{\"key\":\"d{i}\",\"doc\":{{\"title\":\"document {i}\",\"n\":{i}}}}}\n"))
        .collect();
    let (status, answer) = http(source, "POST", "/api/source/docs/bulk", &body);
    assert_eq!(status, 200, "{answer}");
}

#[test]
fn a_new_node_gets_its_copies_from_peers_and_feeds_on_from_them() {
    let mut drill = Drill::start(3, 30_000).with_index();
    ingest(&drill.source, 3000, |i| format!("document {i}"));
    assert_exact(&drill.addresses[0], 3000);
    let new = drill.add_node();
    let uuid = drill.uuid_of(new);
    wait_for(
        "copies moving to the new node",
        Duration::from_secs(30),
        || (drill.copies_on(&uuid) > 0).then_some(()),
    );
    drill.wait_green("the rebalance finished", Duration::from_secs(90));
    let here = locals(&drill.addresses[new]);
    assert_eq!(here.len(), drill.copies_on(&uuid), "{here:?}");
    for (name, local) in &here {
        let from = local["copied_from"].as_str().unwrap_or("");
        assert!(
            from.starts_with("peer "),
            "{name} was not copied from a peer: {local}"
        );
        assert!(local["copying"].is_null(), "{name}: {local}");
    }
    // Their feeds go on from the copied checkpoints.
    ingest_range(&drill.source, 3000, 3500);
    assert_exact(&drill.addresses[new], 3500);
}

#[test]
fn a_copy_whose_peer_and_source_die_mid_way_falls_back_and_ends_exact() {
    let mut drill = Drill::start(3, 2_000).with_index();
    ingest(&drill.source, 4000, |i| format!("document {i}"));
    assert_exact(&drill.addresses[0], 4000);
    // Slowed down to 4 kB/s, so that the copies are still under way when things die.
    let new = drill.add_node_with(&["--recovery-max-bytes-per-sec", "4000"]);
    let (pindex, from) = wait_for("a copy under way", Duration::from_secs(30), || {
        locals(&drill.addresses[new])
            .into_iter()
            .find_map(|(name, local)| {
                let from = local["copying"]["from"].as_str()?.to_string();
                Some((name, from))
            })
    });
    let peer_uuid = from
        .strip_prefix("peer ")
        .and_then(|s| s.split(' ').next())
        .expect("the serving peer's uuid")
        .to_string();
    let peer = (0..3)
        .find(|&i| drill.uuid_of(i) == peer_uuid)
        .expect("the serving peer is one of the three");

    // The source dies, then the serving peer: the copy cannot finish, and the fallback (the
    // source) is not there yet either.
    drill._source_proc.0.kill().expect("kill -9 the source");
    drill._source_proc.0.wait().expect("reaped");
    drill.kill(peer);
    wait_for("the copy given up", Duration::from_secs(60), || {
        let local = locals(&drill.addresses[new])
            .into_iter()
            .find(|(name, _)| *name == pindex)?;
        local.1["copying"].is_null().then_some(())
    });
    let dir = drill.scratch.path().join("source");
    let args = ["source", "--bind", &drill.source, "--partitions", "64"];
    drill._source_proc = common::serve(&dir, &args, &drill.source);
    drill.wait_settled("everything placed and caught up", Duration::from_secs(120));
    let survivor = drill.addresses[new].clone();
    assert_exact(&survivor, 4000);
    for (name, local) in locals(&survivor) {
        let from = local["copied_from"].as_str().unwrap_or("");
        assert!(
            name != pindex || !from.contains(&peer_uuid),
            "{name} claims files from the peer killed mid-copy: {local}"
        );
    }
}
