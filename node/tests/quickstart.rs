//! The README's quickstart, pasted as one block into a shell against a fresh node: every
//! command answers, and the first query (`at_plus`, sent a moment after the index was created)
//! sees the documents just loaded.

mod common;

use common::{free_port, serve};

/// The first `sh` block under `## Quickstart` in README.md.
fn quickstart_block() -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let section = readme
        .split("\n## Quickstart")
        .nth(1)
        .expect("a Quickstart section in README.md");
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("an sh block in the Quickstart section");
    block.to_string()
}

#[test]
fn the_quickstart_works_when_pasted_as_one_block() {
    let dir = tempfile::tempdir().unwrap();
    let address = format!("127.0.0.1:{}", free_port());
    let _node = serve(
        dir.path(),
        &["node", "--bind", &address, "--lease-ttl-ms", "2000"],
        &address,
    );
    let block = quickstart_block();
    assert!(
        block.contains("localhost:9100"),
        "the quickstart talks to localhost:9100: {block}"
    );
    let script = block.replace("localhost:9100", &address);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = std::process::Command::new("bash")
        .args([
            "-euo",
            "pipefail",
            "-c",
            &format!("curl() {{ command curl -sS \"$@\"; echo; }}\n{script}"),
        ])
        .current_dir(root)
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the quickstart failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answers: Vec<serde_json::Value> = serde_json::Deserializer::from_str(&stdout)
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("answers are JSON ({e}): {stdout}"));
    assert_eq!(answers.len(), 4, "one answer per command: {stdout}");
    for answer in &answers {
        assert!(answer.get("error").is_none(), "a command failed: {answer}");
    }
    let first_query = &answers[2];
    let hits = first_query["hits"].as_array().expect("hits");
    assert!(
        !hits.is_empty() && first_query["total_hits"].as_u64() > Some(0),
        "the first query sees the documents just loaded: {first_query}"
    );
    assert_eq!(first_query["status"]["failed"], 0, "{first_query}");
    assert!(
        answers[3]["hits"].as_array().is_some_and(|h| !h.is_empty()),
        "the second query answers: {}",
        answers[3]
    );
}
