//! `tessera ctl` against a running node: create an index, load the sample data set with a
//! progress bar, list, query, status, delete; failures exit with the documented codes.

mod common;

use std::process::Output;
use std::time::Duration;

use common::{free_port, serve, wait_for, BIN};

fn ctl(node: &str, args: &[&str]) -> Output {
    std::process::Command::new(BIN)
        .args(["ctl", "--node", node])
        .args(args)
        .output()
        .expect("run tessera ctl")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn ctl_covers_the_quickstart() {
    let dir = tempfile::tempdir().unwrap();
    let address = format!("127.0.0.1:{}", free_port());
    let _node = serve(dir.path(), &["node", "--bind", &address], &address);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let definition = root.join("examples/data/books-index.json");
    let data = root.join("examples/data/books.ndjson");

    let out = ctl(
        &address,
        &[
            "index",
            "create",
            "books",
            "--file",
            definition.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = ctl(
        &address,
        &[
            "load",
            "--source",
            "books",
            data.to_str().unwrap(),
            "--batch",
            "1000",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("loaded 5000 documents"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stderr).contains("5000/5000 (100%)"),
        "no progress: {}",
        text(&out.stderr)
    );

    let out = ctl(&address, &["index", "list"]);
    assert!(text(&out.stdout).contains("books"), "{}", text(&out.stdout));

    let hits = wait_for(
        "the query answers from every PIndex",
        Duration::from_secs(60),
        || {
            let out = ctl(
                &address,
                &[
                    "--json",
                    "query",
                    "books",
                    "title:rust",
                    "--at-plus",
                    "--size",
                    "3",
                ],
            );
            let answer: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
            (out.status.success() && answer["total_hits"].as_u64() > Some(0)).then_some(answer)
        },
    );
    assert_eq!(hits["hits"].as_array().map(Vec::len), Some(3), "{hits}");
    let out = ctl(&address, &["query", "books", "title:rust", "--size", "2"]);
    assert!(
        text(&out.stdout).contains("PIndexes answered"),
        "{}",
        text(&out.stdout)
    );

    let out = ctl(&address, &["status", "books"]);
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("books_"))
            .count(),
        8
    );

    // Failures: bad query 3, unknown index 4, a bad line 3 naming the file line.
    let out = ctl(&address, &["query", "books", "title:(rust"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("position 11"),
        "{}",
        text(&out.stderr)
    );
    let out = ctl(&address, &["index", "delete", "nope"]);
    assert_eq!(out.status.code(), Some(4));
    let bad = dir.path().join("bad.ndjson");
    std::fs::write(&bad, "{\"key\": \"a\", \"doc\": {}}\n{\"oops\": 1}\n").unwrap();
    let out = ctl(
        &address,
        &["load", "--source", "books", bad.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("file line 2"),
        "{}",
        text(&out.stderr)
    );
    // An unreachable node: 6.
    let out = ctl(&format!("127.0.0.1:{}", free_port()), &["index", "list"]);
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));

    let out = ctl(&address, &["index", "delete", "books"]);
    assert!(out.status.success());
}
