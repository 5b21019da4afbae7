//! `tessera plan what-if`: the example input, bad input, and a live cluster with changes.

use std::path::Path;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_tessera");

fn what_if(args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .args(["plan", "what-if"])
        .args(args)
        .env("TESSERA_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tessera");
    let mut pipe = child.stdin.take().expect("stdin");
    pipe.write_all(stdin.unwrap_or("").as_bytes())
        .expect("write stdin");
    drop(pipe);
    child.wait_with_output().expect("wait")
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object on stdout")
}

fn example() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/cluster.json")
        .to_string_lossy()
        .into_owned()
}

#[test]
fn the_example_plans_and_replanning_its_output_changes_nothing() {
    let out = json(&what_if(&["--input", &example()], None));
    let pindexes = out["plan"]["pindexes"].as_array().expect("pindexes");
    assert_eq!(pindexes.len(), 8 + 4, "books in 8, authors in 4");
    for p in pindexes {
        let copies = p["copies"].as_array().unwrap();
        assert_eq!(copies.iter().filter(|c| c["role"] == "primary").count(), 1);
        assert!(
            copies.iter().all(|c| c["node"] != "n5"),
            "n5 is not tagged pindex"
        );
    }
    assert_eq!(
        out["stats"]["copies_added"],
        out["stats"]["min_copies_added"]
    );
    assert!(out["stats"]["elapsed_ms"].as_f64().is_some());
    assert!(out["moves"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["action"] == "add"));

    let mut input: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(example()).unwrap()).unwrap();
    input["previous_plan"] = out["plan"].clone();
    let again = json(&what_if(&["--input", "-"], Some(&input.to_string())));
    assert_eq!(again["plan"], out["plan"]);
    assert_eq!(again["moves"].as_array().unwrap().len(), 0);

    // Unknown nodes in the previous plan: a warning, and the copies are re-placed.
    input["nodes"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["uuid"] != "n2");
    let shrunk = json(&what_if(&["--input", "-"], Some(&input.to_string())));
    assert!(shrunk["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w["message"].as_str().unwrap().contains("unknown nodes n2")));
    assert!(shrunk["stats"]["copies_added"].as_u64().unwrap() > 0);
}

#[test]
fn bad_input_names_the_item_and_exits_non_zero() {
    let cases = [
        (r#"{"nodes": [], "indexes": [], "surprise": 1}"#, "surprise"),
        (
            r#"{"nodes": [{"uuid": "n1"}, {"uuid": "n1"}], "indexes": []}"#,
            "nodes[1].uuid",
        ),
        (
            r#"{"nodes": [], "indexes": [{"name": "a", "source_partitions": 8, "replicas": 4}]}"#,
            "indexes[0].replicas",
        ),
        (
            r#"{"nodes": [], "indexes": [{"name": "a", "source_partitions": 0}]}"#,
            "indexes[0].source_partitions",
        ),
        (
            r#"{"nodes": [{"uuid": "n1", "weight": 0}], "indexes": []}"#,
            "nodes[0].weight",
        ),
        (
            r#"{"nodes": [{"uuid": "n1", "tags": ["chef"]}], "indexes": []}"#,
            "nodes[0].tags",
        ),
        ("not json", "line 1"),
    ];
    for (input, item) in cases {
        let out = what_if(&["--input", "-"], Some(input));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{input}: {stderr}");
        assert!(
            stderr.contains(item),
            "{input}: error should name `{item}`: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{input}: nothing on stdout on error");
    }
}

#[test]
fn what_if_against_a_live_cluster_with_an_added_node() {
    let dir = tempfile::tempdir().unwrap();
    let tessera = |args: &[&str]| {
        Command::new(BIN)
            .arg("--data-dir")
            .arg(dir.path())
            .args(args)
            .env("TESSERA_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .expect("run tessera")
    };
    for (uuid, zone) in [("n1", "zone-a"), ("n2", "zone-b")] {
        let def = format!(
            r#"{{"uuid":"{uuid}","incarnation":"i1","host_port":"127.0.0.1:9100","tags":["pindex"],"group":"{zone}","weight":1,"failed_over":true}}"#
        );
        let out = tessera(&["cfg", "put", &format!("nodes/{uuid}"), "--value", &def]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let books = r#"{"name":"books","uuid":"u1","type":"fulltext","source":{"type":"tessera","name":"docs","partitions":64},"plan":{"max_partitions_per_pindex":16,"replicas":1}}"#;
    assert!(tessera(&["cfg", "put", "indexes/books", "--value", books])
        .status
        .success());

    // Both nodes failed over (the leader's rule: a node loses its copies once failed over, not
    // merely for being down): nothing can be placed.
    let out = json(&tessera(&["plan", "what-if"]));
    assert!(out["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w["message"]
            .as_str()
            .unwrap()
            .contains("no node can hold copies")));

    let out = json(&tessera(&[
        "plan",
        "what-if",
        "--add-node",
        "n3:zone-c:2",
        "--add-node",
        "n4:zone-a",
    ]));
    let pindexes = out["plan"]["pindexes"].as_array().unwrap();
    assert_eq!(pindexes.len(), 4);
    for p in pindexes {
        let nodes: Vec<&str> = p["copies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["node"].as_str().unwrap())
            .collect();
        assert_eq!(nodes.len(), 2);
        assert!(nodes.iter().all(|n| *n == "n3" || *n == "n4"), "{nodes:?}");
    }
    let bad = tessera(&["plan", "what-if", "--remove-node", "nope"]);
    assert_eq!(bad.status.code(), Some(3));
}
