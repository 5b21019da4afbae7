//! The table is complete and exact: every documented REST operation and every gRPC method of
//! the `.proto` files has one entry, and no entry names something that does not exist.

use std::collections::BTreeSet;
use std::path::Path;

use super::*;

fn root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn every_documented_rest_operation_has_exactly_one_entry() {
    let text = std::fs::read_to_string(root().join("docs/openapi.json")).expect("openapi");
    let doc: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let mut documented = BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().expect("paths") {
        for method in ops.as_object().expect("operations").keys() {
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    let table: BTreeSet<(String, String)> = REST
        .iter()
        .map(|(m, t, _)| (m.to_string(), t.to_string()))
        .collect();
    assert_eq!(table.len(), REST.len(), "an operation listed twice");
    let missing: Vec<_> = documented.difference(&table).collect();
    let unknown: Vec<_> = table.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "routes without a permission entry: {missing:?}"
    );
    assert!(
        unknown.is_empty(),
        "entries for routes that do not exist: {unknown:?}"
    );
}

#[test]
fn every_grpc_method_has_exactly_one_entry() {
    let mut declared = BTreeSet::new();
    let dir = root().join("proto/tessera/v1");
    for file in std::fs::read_dir(&dir).expect("proto dir").flatten() {
        let text = std::fs::read_to_string(file.path()).expect("proto");
        let mut service = None;
        for line in text.lines().map(str::trim) {
            if let Some(rest) = line.strip_prefix("service ") {
                service = rest.split_whitespace().next().map(str::to_string);
            } else if let (Some(rest), Some(s)) = (line.strip_prefix("rpc "), &service) {
                let method = rest.split('(').next().unwrap_or_default().trim();
                declared.insert(format!("/tessera.v1.{s}/{method}"));
            }
        }
    }
    assert!(declared.len() >= 30, "{declared:?}");
    let table: BTreeSet<String> = GRPC.iter().map(|(p, _)| p.to_string()).collect();
    assert_eq!(table.len(), GRPC.len(), "a method listed twice");
    assert_eq!(
        table, declared,
        "the gRPC permission table and the .proto files differ"
    );
}

#[test]
fn deny_by_default_and_targets_come_from_the_path() {
    assert_eq!(rest_need("GET", "/api/secret"), None);
    assert_eq!(grpc_need("/tessera.v1.Nope/Call"), None);
    assert_eq!(rest_need("get", "/api/ping"), Some(Open));
    assert_eq!(
        rest_need("HEAD", "/api/nodes"),
        Some(Monitor),
        "a HEAD is its GET"
    );
    assert_eq!(rest_need("GET", "/api/cfg"), Some(Admin));
    let target = |t: &str, p: &str| rest_target(t, p).map(|t| t.map(|t| t.into_owned()));
    assert_eq!(
        target("/api/index/{name}/query", "/api/index/books/query"),
        Ok(Some("books".into()))
    );
    assert_eq!(
        target("/api/source/{name}/doc/{key}", "/api/source/docs/doc/k1"),
        Ok(Some("docs".into()))
    );
    assert_eq!(
        target("/api/cluster/health", "/api/cluster/health"),
        Ok(None)
    );
    // Only `/api/ping`, the console's files (no data) and `Node/Ping` are open; only internal
    // services need a node.
    let open: Vec<_> = REST
        .iter()
        .filter(|(_, _, n)| *n == Open)
        .map(|(_, t, _)| *t)
        .collect();
    assert_eq!(
        open,
        ["/api/ping", "/ui", "/ui/console.js", "/ui/console.css"],
        "{open:?}"
    );
    let service = |p: &str| p.split('/').nth(1).unwrap_or_default().to_string();
    let api = ["tessera.v1.Indexes", "tessera.v1.Supervisor"];
    assert!(
        GRPC.iter()
            .filter(|(_, n)| *n == Node)
            .all(|(p, _)| !api.contains(&service(p).as_str())),
        "an API service needs a node identity"
    );
}

#[test]
fn targets_are_decoded_before_globs_see_them() {
    let target = |p: &str| rest_target("/api/index/{name}", p).map(|t| t.map(|t| t.into_owned()));
    // The handler's extractor decodes `%41` to `A`: the glob must see the same name.
    assert_eq!(target("/api/index/payroll%41"), Ok(Some("payrollA".into())));
    let searcher: crate::Role = "searcher:*41".parse().expect("role");
    let decoded = target("/api/index/payroll%41").ok().flatten();
    assert!(
        !searcher.allows(Need::IndexRead, decoded.as_deref()),
        "`searcher:*41` must not read `payrollA`"
    );
    assert_eq!(target("/api/index/b%C3%BCcher"), Ok(Some("bücher".into())));
    assert_eq!(
        target("/api/index/100%"),
        Ok(Some("100%".into())),
        "a lone %"
    );
    assert_eq!(target("/api/index/%FF%FE"), Err(TargetError::NotUtf8));
    assert_eq!(target("/api/index/a%2Fb"), Err(TargetError::Slash));
    assert_eq!(target("/api/index/a%2fb"), Err(TargetError::Slash));
}
