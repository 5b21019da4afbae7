//! `docs/openapi.json` describes the REST API exactly: every route the code declares is
//! documented and every documented operation is declared (read from the router sources), and a
//! running node serves every documented operation (no fallback 404, no 405).

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::{free_port, http, serve};

fn root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn documented() -> BTreeSet<(String, String)> {
    let text =
        std::fs::read_to_string(root().join("docs/openapi.json")).expect("docs/openapi.json");
    let doc: serde_json::Value = serde_json::from_str(&text).expect("OpenAPI document is JSON");
    let mut out = BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().expect("paths") {
        for method in ops.as_object().expect("operations").keys() {
            out.insert((method.to_uppercase(), path.clone()));
        }
    }
    out
}

/// The `(METHOD, path)` pairs of every `.route("path", get(..).put(..))` in `file`.
fn declared_in(file: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(file).expect("router source");
    // Routers built by unit tests are not the API's.
    // An inline test module routes made-up paths; `#[cfg(test)] mod tests;` (a file of its
    // own, skipped by `is_test_module`) may stand anywhere, so only an inline one ends the scan.
    let text = text
        .split("#[cfg(test)]\nmod tests {")
        .next()
        .unwrap_or_default();
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(".route(") {
        rest = &rest[at + ".route(".len()..];
        // The arguments, up to the matching parenthesis.
        let mut depth = 1;
        let end = rest
            .char_indices()
            .find(|(_, c)| {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                depth == 0
            })
            .map_or(rest.len(), |(i, _)| i);
        let args = &rest[..end];
        let Some(path) = args.split('"').nth(1) else {
            continue;
        };
        for method in ["get", "put", "post", "delete", "patch"] {
            let call = format!("{method}(");
            let found = args.match_indices(&call).any(|(i, _)| {
                i == 0 || !args[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_')
            });
            if found {
                out.push((method.to_uppercase(), path.to_string()));
            }
        }
    }
    out
}

/// Unit-test modules in files of their own (`tests.rs`, `*_tests.rs`) route made-up paths.
fn is_test_module(path: &Path) -> bool {
    path.file_stem()
        .and_then(|s| s.to_str())
        .is_some_and(|s| s == "tests" || s.ends_with("_tests"))
}

fn declared() -> BTreeSet<(String, String)> {
    // Every router of the API crate, and the source's ingest routes a node embeds.
    let mut files = vec![root().join("source/src/rest.rs")];
    let mut dirs = vec![root().join("api/src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("api sources") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") && !is_test_module(&path) {
                files.push(path);
            }
        }
    }
    files.iter().flat_map(|f| declared_in(f)).collect()
}

#[test]
fn the_document_and_the_router_agree() {
    let (documented, declared) = (documented(), declared());
    assert!(
        declared.len() >= 17,
        "the route scan found too little: {declared:?}"
    );
    let undocumented: Vec<_> = declared.difference(&documented).collect();
    let missing: Vec<_> = documented.difference(&declared).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from docs/openapi.json: {undocumented:?}"
    );
    assert!(missing.is_empty(), "documented but not routed: {missing:?}");
}

#[test]
fn a_node_serves_every_documented_operation() {
    let dir = tempfile::tempdir().unwrap();
    let address = format!("127.0.0.1:{}", free_port());
    let _node = serve(dir.path(), &["node", "--bind", &address], &address);
    for (method, path) in documented() {
        let concrete = path
            .replace("{name}", "probe")
            .replace("{key}", "k1")
            .replace("{control}", "queryControl")
            .replace("{action}", "allow")
            .replace("{id}", "t-probe");
        let concrete = if path == "/api/plan/explain" {
            format!("{concrete}?pindex=probe")
        } else {
            concrete
        };
        let (status, body) = http(&address, &method, &concrete, "{}");
        assert_ne!(status, 405, "{method} {path}: method not allowed");
        assert!(
            !(status == 404 && body["error"] == "not_found"),
            "{method} {path}: the router does not know it ({body})"
        );
    }
}
