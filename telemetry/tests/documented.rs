//! The metrics are documented where operators read them: README's table names every family a
//! node exports and nothing else, and the alert rules and the dashboard in `deploy/` use only
//! those names.

use std::collections::BTreeSet;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Metric-like names (`tessera_*`, `process_*`) in `text`.
fn names_in(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for prefix in ["tessera_", "process_"] {
        for (at, _) in text.match_indices(prefix) {
            let before = text[..at].chars().last();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let name: String = text[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            out.insert(name);
        }
    }
    out
}

/// A histogram's series names its family with a suffix.
fn family_of(name: &str) -> &str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(family) = name.strip_suffix(suffix) {
            if family.ends_with("_seconds") {
                return family;
            }
        }
    }
    name
}

#[test]
fn the_readme_table_names_every_family_and_only_those() {
    let readme = read("README.md");
    let section = readme
        .split("\n## Metrics and traces")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("a `Metrics and traces` section in README.md");
    let table: String = section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| l.split(" | ").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    let documented = names_in(&table);
    let exported: BTreeSet<String> = tessera_telemetry::family_names().into_iter().collect();
    assert_eq!(
        documented, exported,
        "README's table (left) and the families nodes export (right) differ"
    );
}

#[test]
fn deploy_uses_only_exported_names() {
    let exported: BTreeSet<String> = tessera_telemetry::family_names().into_iter().collect();
    for path in [
        "deploy/prometheus/tessera-alerts.yml",
        "deploy/prometheus/tessera-dashboard.json",
    ] {
        let used = names_in(&read(path));
        assert!(!used.is_empty(), "{path} uses no metric");
        let unknown: Vec<&String> = used
            .iter()
            .filter(|n| !exported.contains(family_of(n)))
            .collect();
        assert!(
            unknown.is_empty(),
            "{path} uses unknown metrics: {unknown:?}"
        );
    }
    let dashboard: serde_json::Value =
        serde_json::from_str(&read("deploy/prometheus/tessera-dashboard.json"))
            .expect("the dashboard is JSON");
    assert!(dashboard["panels"]
        .as_array()
        .is_some_and(|p| p.len() >= 10));
}
