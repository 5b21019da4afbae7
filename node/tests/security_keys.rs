//! Keys and the audit log on a real node with `--auth required` (issue 31, second pass): the
//! bootstrap admin key is made for a new cluster only (or when asked) and expires; names are
//! decoded before globs see them; unknown and wrong keys get one answer; a flood of denials
//! is a few lines and a count; a failed gRPC call is audited with its real status and index;
//! a node identity's calls are counted.

mod common;

use std::time::Duration;

use common::*;

struct Node {
    dir: tempfile::TempDir,
    address: String,
    proc: Option<Proc>,
}

impl Node {
    fn start(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let address = format!("127.0.0.1:{}", free_port());
        let mut node = Self {
            dir,
            address,
            proc: None,
        };
        node.restart(extra);
        node
    }

    fn restart(&mut self, extra: &[&str]) {
        if let Some(mut proc) = self.proc.take() {
            proc.terminate(Duration::from_secs(30));
        }
        let mut args = vec!["node", "--bind", &self.address, "--auth", "required"];
        args.extend_from_slice(extra);
        self.proc = Some(serve(self.dir.path(), &args, &self.address));
    }

    fn file(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    fn bootstrap_key(&self) -> Option<String> {
        std::fs::read_to_string(self.file("bootstrap-admin.key"))
            .ok()
            .map(|k| k.trim().to_string())
    }

    fn make_key(&self, admin: &str, role: &str) -> String {
        let body = serde_json::json!({"name": "t", "roles": [role]}).to_string();
        let (status, answer) = http_as(&self.address, admin, "POST", "/api/keys", &body);
        assert_eq!(status, 201, "{answer}");
        answer["key"].as_str().unwrap().to_string()
    }

    fn audit(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.file("audit/audit.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

#[test]
fn the_bootstrap_key_is_for_a_new_cluster_or_when_asked_and_it_expires() {
    let mut node = Node::start(&[]);
    let admin = node
        .bootstrap_key()
        .expect("a new cluster has a bootstrap key");
    let (status, keys) = http_as(&node.address, &admin, "GET", "/api/keys", "");
    assert_eq!(status, 200, "{keys}");
    let listed = keys["keys"].as_array().unwrap();
    let bootstrap = listed
        .iter()
        .find(|k| k["name"] == "bootstrap-admin")
        .expect("listed");
    let created = bootstrap["created_ms"].as_u64().unwrap();
    assert_eq!(
        bootstrap["expires_ms"].as_u64(),
        Some(created + 24 * 3_600_000),
        "24 h by default: {bootstrap}"
    );

    // The operator revokes every admin key on purpose: a restart makes no new one.
    let id = bootstrap["id"].as_str().unwrap();
    let (status, body) = http_as(
        &node.address,
        &admin,
        "DELETE",
        &format!("/api/keys/{id}"),
        "",
    );
    assert_eq!(status, 200, "{body}");
    std::fs::remove_file(node.file("bootstrap-admin.key")).unwrap();
    node.restart(&[]);
    assert_eq!(node.bootstrap_key(), None, "a restart minted an admin key");

    // Asked for: one is made, and it expires as said.
    node.restart(&["--bootstrap-admin", "--bootstrap-admin-expires", "2h"]);
    let again = node.bootstrap_key().expect("asked for");
    let (status, keys) = http_as(&node.address, &again, "GET", "/api/keys", "");
    assert_eq!(status, 200, "the new key works: {keys}");
    let bootstrap = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "bootstrap-admin" && k["state"] == "active")
        .cloned()
        .expect("listed");
    let created = bootstrap["created_ms"].as_u64().unwrap();
    assert_eq!(
        bootstrap["expires_ms"].as_u64(),
        Some(created + 2 * 3_600_000)
    );
    assert_eq!(
        http_as(&node.address, &admin, "GET", "/api/keys", "").0,
        401,
        "the revoked one stays revoked"
    );
    // Asked again while an admin key works: nothing new.
    std::fs::remove_file(node.file("bootstrap-admin.key")).unwrap();
    node.restart(&["--bootstrap-admin"]);
    assert_eq!(node.bootstrap_key(), None);
}

#[test]
fn names_are_decoded_and_keys_that_prove_nothing_get_one_answer() {
    let node = Node::start(&[]);
    let admin = node.bootstrap_key().unwrap();
    let searcher = node.make_key(&admin, "searcher:*41");
    // `payroll%41` is `payrollA` to the handler: `*41` does not cover it.
    let (status, body) = http_as(&node.address, &searcher, "GET", "/api/index/payroll%41", "");
    assert_eq!(status, 403, "{body}");
    let (status, body) = http_as(&node.address, &searcher, "GET", "/api/index/payroll41", "");
    assert_eq!(status, 404, "allowed, and absent: {body}");
    let (status, body) = http_as(&node.address, &admin, "GET", "/api/index/a%2Fb", "");
    assert_eq!(status, 400, "{body}");

    let unknown = format!("tsk_{}_{}", "0".repeat(16), "0".repeat(64));
    let wrong = format!("tsk_{}_{}", &admin[4..20], "0".repeat(64));
    let (s1, b1) = http_as(&node.address, &unknown, "GET", "/api/cluster/health", "");
    let (s2, b2) = http_as(&node.address, &wrong, "GET", "/api/cluster/health", "");
    assert_eq!((s1, s2), (401, 401));
    assert_eq!(b1["error"], b2["error"], "{b1} / {b2}");
    assert!(!b2.to_string().contains(&admin[4..20]), "{b2}");
}

#[test]
fn the_audit_log_summarises_floods_and_records_real_outcomes() {
    let node = Node::start(&["--audit-window", "2s"]);
    let admin = node.bootstrap_key().unwrap();
    let node_key = std::fs::read_to_string(node.file("node-api-key"))
        .unwrap()
        .trim()
        .to_string();
    for _ in 0..300 {
        let (status, _) = try_http(&node.address, "GET", "/api/cluster/health", "").unwrap();
        assert_eq!(status, 401);
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let put = runtime.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", node.address))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let bearer = |key: &str| -> tonic::metadata::MetadataValue<_> {
            format!("Bearer {key}").parse().unwrap()
        };
        // A node identity reading: counted.
        let mut nodes = tessera_proto::v1::node_client::NodeClient::new(channel.clone());
        let mut request = tonic::Request::new(tessera_proto::v1::LocalPIndexesRequest::default());
        request
            .metadata_mut()
            .insert("authorization", bearer(&node_key));
        let _ = nodes.local_p_indexes(request).await;
        // A definition refused: InvalidArgument, not 200.
        let mut indexes = tessera_proto::v1::indexes_client::IndexesClient::new(channel);
        let mut request = tonic::Request::new(tessera_proto::v1::PutIndexRequest {
            name: "books-bad".into(),
            definition_json: "{not json".into(),
        });
        request
            .metadata_mut()
            .insert("authorization", bearer(&admin));
        indexes.put_index(request).await
    });
    let code = put.as_ref().err().map(|e| e.code());
    assert_eq!(code, Some(tonic::Code::InvalidArgument), "{put:?}");

    let lines = wait_for(
        "the summaries (2 s windows)",
        Duration::from_secs(20),
        || {
            let lines = node.audit();
            let summarised = lines.iter().any(|l| l["event"] == 20003);
            let counted = lines.iter().any(|l| l["event"] == 20601);
            (summarised && counted).then_some(lines)
        },
    );
    let denied: Vec<_> = lines
        .iter()
        .filter(|l| l["event"] == 20001 && l["route"] == "GET /api/cluster/health")
        .collect();
    let summary = lines.iter().find(|l| l["event"] == 20003).unwrap();
    assert!(denied.len() <= 10, "{} lines for one client", denied.len());
    assert_eq!(
        summary["count"].as_u64().unwrap() + denied.len() as u64,
        300,
        "{summary}"
    );
    assert_eq!(summary["client"], "127.0.0.1", "{summary}");
    let refused = lines
        .iter()
        .find(|l| l["event"] == 20101 && l["route"] == "/tessera.v1.Indexes/PutIndex")
        .expect("the PutIndex audited");
    assert_eq!(refused["outcome"], 400, "{refused}");
    assert_eq!(refused["grpc_status"], 3, "{refused}");
    assert_eq!(refused["index"], "books-bad", "{refused}");
    let reads = lines
        .iter()
        .find(|l| l["event"] == 20601 && l["route"] == "/tessera.v1.Node/LocalPIndexes")
        .expect("the node key's call counted");
    assert!(reads["count"].as_u64().unwrap() >= 1, "{reads}");
}
