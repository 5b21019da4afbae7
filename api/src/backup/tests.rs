//! Repositories and restores under the node's egress rules: what `PUT` refuses (400 naming
//! the field), what every later open refuses (a definition written straight into the Cfg),
//! and restored definitions checked as new ones (422 naming the field, nothing written).

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use tessera_backup::manifest::MANIFEST_FORMAT;
use tessera_backup::Manifest;
use tessera_cfg::local::LocalStore;
use tessera_cfg::schema::RepoDef;
use tessera_cfg::{Cfg, KeySpace};
use tessera_sources::{DialPolicy, PathPolicy, Sources};

use crate::AppState;

/// A node of cluster `t` with `--backup-path root` and the given rules.
fn state(root: &std::path::Path, dial: DialPolicy, paths: PathPolicy) -> AppState {
    let store = LocalStore::open_memory().expect("store");
    let cfg = Cfg::new(
        std::sync::Arc::new(store),
        KeySpace::new("t").expect("keys"),
    );
    let mut state = crate::state::tests::state(cfg, "n", Default::default());
    state.backup_paths = vec![root.to_path_buf()];
    state.sources = Sources::with_policy(Default::default(), dial, paths);
    state
}

async fn body(answer: Response) -> serde_json::Value {
    let bytes = axum::body::to_bytes(answer.into_body(), 1 << 20)
        .await
        .expect("a body");
    serde_json::from_slice(&bytes).expect("JSON")
}

/// The status and the field a refusal names.
async fn refusal(answer: Response) -> (u16, String, String) {
    let status = answer.status().as_u16();
    let json = body(answer).await;
    let field = json["field"].as_str().unwrap_or_default().to_string();
    (status, field, json.to_string())
}

async fn put(state: &AppState, name: &str, def: serde_json::Value) -> Response {
    super::put_repo(
        State(state.clone()),
        Path(name.into()),
        Bytes::from(def.to_string()),
    )
    .await
}

#[tokio::test]
async fn put_refuses_endpoints_files_and_locations_naming_the_field() {
    let root = tempfile::tempdir().unwrap();
    let secrets = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let creds = elsewhere.path().join("creds");
    std::fs::write(&creds, "access_key_id = a\nsecret_access_key = b\n").unwrap();
    let state = state(
        root.path(),
        DialPolicy::default(),
        PathPolicy::confined(secrets.path().to_path_buf()),
    );
    let s3 = |options: serde_json::Value| serde_json::json!({"type": "s3", "location": "bucket/prefix", "options": options});
    let cases = [
        (
            s3(
                serde_json::json!({"endpoint": "http://169.254.169.254", "allow_http": "true",
                "credentials": "anonymous"}),
            ),
            "options.endpoint",
        ),
        (
            s3(
                serde_json::json!({"endpoint": "http://[fe80::1]:80", "allow_http": "true",
                "credentials": "anonymous"}),
            ),
            "options.endpoint",
        ),
        (
            s3(serde_json::json!({"endpoint": "https://s3.example.com",
                "credentials_file": creds.display().to_string()})),
            "options.credentials_file",
        ),
        (
            s3(serde_json::json!({"endpoint": "https://s3.example.com"})),
            "options.credentials_file",
        ),
        (
            serde_json::json!({"type": "fs", "location": elsewhere.path().display().to_string()}),
            "location",
        ),
        (
            serde_json::json!({"type": "fs", "location": root.path().display().to_string(),
                "options": {"passphrase_file": creds.display().to_string()}}),
            "options.passphrase_file",
        ),
    ];
    for (def, field) in cases {
        let (status, named, said) = refusal(put(&state, "r", def.clone()).await).await;
        assert_eq!((status, named.as_str()), (400, field), "{def}: {said}");
    }
    let defined = state.cfg.repo_defs().await.unwrap();
    assert!(defined.items.is_empty(), "nothing written");
    // Within the rules: accepted.
    let ok = serde_json::json!({"type": "fs", "location": root.path().display().to_string()});
    assert_eq!(put(&state, "local", ok).await.status(), 200);
}

#[tokio::test]
async fn every_open_checks_the_definition_not_only_put() {
    // A definition this node never accepted (another node's --backup-path, an older version,
    // a write straight into the Cfg) is refused when this node opens it.
    let root = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let state = state(root.path(), DialPolicy::default(), PathPolicy::open());
    let def = RepoDef {
        format_version: 1,
        name: "other".into(),
        repo_type: "fs".into(),
        location: elsewhere.path().display().to_string(),
        readonly: false,
        options: BTreeMap::new(),
    };
    state.cfg.put_repo_def(&def, 0).await.unwrap();
    let answer = super::list_snapshots(State(state.clone()), Path("other".into())).await;
    let (status, field, said) = refusal(answer).await;
    assert_eq!((status, field.as_str()), (400, "location"), "{said}");
}

/// Writes snapshot `id` holding index `books` with `def`'s source, recovery and params into
/// the fs repository at `dir`.
fn hostile_snapshot(dir: &std::path::Path, id: &str, def: serde_json::Value) {
    let mut index = serde_json::json!({"format_version": 1, "name": "books", "uuid": "u1",
        "type": "blackhole", "plan": {"index_partitions": 1, "replicas": 0}});
    for (k, v) in def.as_object().unwrap() {
        index[k] = v.clone();
    }
    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        id: id.into(),
        cluster: "elsewhere/1".into(),
        created_ms: 1,
        indexes: BTreeMap::from([("books".to_string(), index)]),
        pindexes: vec![],
        sources: vec![],
        encoding: vec!["zstd".into()],
    };
    std::fs::create_dir_all(dir.join("snapshots")).unwrap();
    std::fs::write(
        dir.join(format!("snapshots/{id}.json")),
        manifest.seal().unwrap(),
    )
    .unwrap();
}

#[tokio::test]
async fn restored_definitions_are_checked_as_new_ones() {
    let root = tempfile::tempdir().unwrap();
    let state = state(root.path(), DialPolicy::default(), PathPolicy::refuse_all());
    let ok = serde_json::json!({"type": "fs", "location": root.path().display().to_string()});
    assert_eq!(put(&state, "local", ok).await.status(), 200);
    let tessera =
        |url: &str| serde_json::json!({"type": "tessera", "name": "docs", "params": {"url": url}});
    let cases = [
        (
            serde_json::json!({"source": tessera("http://169.254.169.254/latest/")}),
            "source.params.url",
        ),
        (
            serde_json::json!({"source": {"type": "jetstream", "name": "docs", "params": {
                "servers": ["nats://127.0.0.1:4222"], "stream": "D", "subject_prefix": "d", "partitions": 4,
                "credentials_file": "/var/lib/tessera/tls/node.key"}}}),
            "source.params.credentials_file",
        ),
        (
            serde_json::json!({"source": tessera("http://127.0.0.1:1"),
                "recovery": {"auto_from": {"cluster": "http://169.254.169.254"}}}),
            "recovery.auto_from.cluster",
        ),
        (
            serde_json::json!({"source": tessera("http://127.0.0.1:1"),
                "recovery": {"auto_from": {"snapshot": {"repo": "gone", "id": "latest"}}}}),
            "recovery.auto_from.snapshot.repo",
        ),
        (
            serde_json::json!({"source": tessera("http://127.0.0.1:1"), "type": "fulltext",
                "params": {"mapping": {"fields": {}}}}),
            "params.mapping.fields",
        ),
    ];
    for (i, (def, field)) in cases.into_iter().enumerate() {
        let id = format!("s{i}");
        hostile_snapshot(root.path(), &id, def.clone());
        let request = serde_json::json!({"repo": "local", "snapshot": id});
        let answer =
            super::restore::restore(State(state.clone()), Bytes::from(request.to_string())).await;
        let (status, named, said) = refusal(answer).await;
        assert_eq!((status, named.as_str()), (422, field), "{def}: {said}");
        let defined = state.cfg.index_defs().await.unwrap();
        assert!(defined.items.is_empty(), "nothing written: {def}");
    }
}
