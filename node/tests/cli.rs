//! The `tessera` binary end to end: `cfg` commands against embedded and etcd, and a node's
//! identity checks (cloned data dir, foreign cluster) and clean shutdown.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use tessera_tests::etcd::EtcdCluster;

const BIN: &str = env!("CARGO_BIN_EXE_tessera");

fn tessera(cfg: &str, data_dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(["--cfg", cfg, "--data-dir"])
        .arg(data_dir)
        .args(args)
        .env("TESSERA_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("run tessera")
}

fn stdout_json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

fn expect_exit(out: &Output, code: i32, stderr_has: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {stderr}");
    assert!(
        stderr.contains(stderr_has),
        "stderr should mention `{stderr_has}`: {stderr}"
    );
}

const BOOKS: &str = r#"{"name":"books","uuid":"u1","type":"fulltext",
    "source":{"type":"tessera","name":"docs"},"plan":{"max_partitions_per_pindex":64,"replicas":1}}"#;

fn exercise_cfg_commands(cfg: &str, data_dir: &Path) {
    let put = stdout_json(&tessera(
        cfg,
        data_dir,
        &["cfg", "put", "indexes/books", "--value", BOOKS],
    ));
    let rev = put["mod_revision"].as_i64().expect("revision");

    let bad = BOOKS.replace("\"replicas\":1", "\"replicas\":9");
    expect_exit(
        &tessera(
            cfg,
            data_dir,
            &["cfg", "put", "indexes/books", "--value", &bad],
        ),
        3,
        "plan.replicas",
    );
    expect_exit(
        &tessera(
            cfg,
            data_dir,
            &["cfg", "put", "indexes/books", "--value", "{oops"],
        ),
        3,
        "not JSON",
    );
    expect_exit(
        &tessera(
            cfg,
            data_dir,
            &["cfg", "put", "typo/books", "--value", "{}"],
        ),
        3,
        "--raw",
    );

    let got = stdout_json(&tessera(cfg, data_dir, &["cfg", "get", "indexes/books"]));
    assert_eq!(got["mod_revision"].as_i64(), Some(rev));
    assert_eq!(
        got["value"]["plan"]["replicas"], 1,
        "a rejected put changed the value"
    );
    assert_eq!(got["value"]["format_version"], 1);

    let stale = (rev + 1000).to_string();
    expect_exit(
        &tessera(
            cfg,
            data_dir,
            &[
                "cfg",
                "put",
                "indexes/books",
                "--cas",
                &stale,
                "--value",
                BOOKS,
            ],
        ),
        5,
        "revision mismatch",
    );
    expect_exit(
        &tessera(
            cfg,
            data_dir,
            &["cfg", "del", "indexes/books", "--cas", &stale],
        ),
        5,
        "revision mismatch",
    );

    let dump = stdout_json(&tessera(cfg, data_dir, &["cfg", "dump"]));
    let key = dump["keys"]
        .as_object()
        .and_then(|keys| keys.iter().find(|(k, _)| k.ends_with("/indexes/books")))
        .map(|(_, v)| v.clone())
        .expect("dump lists the index");
    assert_eq!(key["mod_revision"].as_i64(), Some(rev));
    assert!(dump["revision"].as_i64().unwrap() >= rev);

    stdout_json(&tessera(
        cfg,
        data_dir,
        &["cfg", "del", "indexes/books", "--cas", &rev.to_string()],
    ));
    expect_exit(
        &tessera(cfg, data_dir, &["cfg", "get", "indexes/books"]),
        4,
        "not found",
    );
}

#[test]
fn cfg_commands_on_embedded() {
    let dir = tempfile::tempdir().unwrap();
    exercise_cfg_commands("embedded", dir.path());
    assert!(
        dir.path().join("cfg.redb").is_file(),
        "embedded Cfg lives in the data dir"
    );
}

#[test]
fn cfg_commands_on_etcd() {
    let etcd = EtcdCluster::single();
    let dir = tempfile::tempdir().unwrap();
    exercise_cfg_commands(&etcd.cfg_spec("clitest"), dir.path());
}

#[test]
fn bad_cfg_spec_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = tessera("zookeeper://x", dir.path(), &["cfg", "dump"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad cfg spec"));
}

/// A node process, killed on drop.
struct NodeProcess(Child);

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_node(cfg: &str, data_dir: &Path) -> NodeProcess {
    let child = Command::new(BIN)
        .args(["--cfg", cfg, "--data-dir"])
        .arg(data_dir)
        .args(["node", "--bind", "127.0.0.1:0", "--lease-ttl-ms", "2000"])
        .env("TESSERA_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start node");
    NodeProcess(child)
}

fn node_uuid(data_dir: &Path) -> String {
    let bytes = std::fs::read(data_dir.join("node.json")).expect("node.json");
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    v["node_uuid"].as_str().unwrap().to_string()
}

fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn wait_exit(node: &mut NodeProcess, within: Duration) -> (i32, String) {
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(status) = node.0.try_wait().unwrap() {
            let mut stderr = String::new();
            if let Some(mut pipe) = node.0.stderr.take() {
                use std::io::Read;
                let _ = pipe.read_to_string(&mut stderr);
            }
            return (status.code().unwrap_or(-1), stderr);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "node did not exit within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn node_refuses_a_cloned_data_dir_and_a_foreign_cluster_and_leaves_cleanly() {
    let etcd = EtcdCluster::single();
    let cfg = etcd.cfg_spec("nodes");
    let scratch = tempfile::tempdir().unwrap();
    let original = scratch.path().join("a");
    let mut first = start_node(&cfg, &original);
    wait_until("the node's liveness key", || {
        original.join("node.json").is_file()
            && tessera(
                &cfg,
                scratch.path(),
                &["cfg", "get", &format!("live/{}", node_uuid(&original))],
            )
            .status
            .success()
    });

    // REST and gRPC answer on the one advertised port.
    let uuid = node_uuid(&original);
    let live = stdout_json(&tessera(
        &cfg,
        scratch.path(),
        &["cfg", "get", &format!("live/{uuid}")],
    ));
    let address = live["value"]["host_port"]
        .as_str()
        .expect("host_port")
        .to_string();
    check_one_port_serves_rest_and_grpc(&address, &uuid);

    // A copy of a live node's data dir must not start a second node with the same uuid.
    let clone = scratch.path().join("b");
    std::fs::create_dir_all(&clone).unwrap();
    std::fs::copy(original.join("node.json"), clone.join("node.json")).unwrap();
    let mut twin = start_node(&cfg, &clone);
    let (code, stderr) = wait_exit(&mut twin, Duration::from_secs(15));
    assert_eq!(code, 5, "{stderr}");
    assert!(stderr.contains("already live"), "{stderr}");

    // The same data dir against another cluster is refused.
    let mut foreign = start_node(&etcd.cfg_spec("othercluster"), &original);
    let (code, stderr) = wait_exit(&mut foreign, Duration::from_secs(15));
    assert_eq!(code, 5, "{stderr}");
    assert!(stderr.contains("belongs to cluster"), "{stderr}");

    // SIGTERM: clean exit and the liveness key gone at once (revoked, not left to expire).
    let pid = first.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let (code, stderr) = wait_exit(&mut first, Duration::from_secs(10));
    assert_eq!(code, 0, "{stderr}");
    let out = tessera(
        &cfg,
        scratch.path(),
        &["cfg", "get", &format!("live/{uuid}")],
    );
    assert_eq!(
        out.status.code(),
        Some(4),
        "liveness key still there after shutdown"
    );
    let def = stdout_json(&tessera(
        &cfg,
        scratch.path(),
        &["cfg", "get", &format!("nodes/{uuid}")],
    ));
    assert_eq!(
        def["value"]["uuid"],
        uuid.as_str(),
        "the node definition stays"
    );
}

fn http_get(address: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).expect("connect REST");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

fn check_one_port_serves_rest_and_grpc(address: &str, uuid: &str) {
    let ping = http_get(address, "/api/ping");
    assert!(ping.starts_with("HTTP/1.1 200"), "{ping}");
    assert!(ping.contains(uuid), "{ping}");
    let missing = http_get(address, "/api/no-such-thing");
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
    assert!(
        missing.contains("\"error\":\"not_found\""),
        "unknown REST paths answer JSON 404: {missing}"
    );

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let answer = runtime.block_on(async {
        let mut client =
            tessera_proto::v1::node_client::NodeClient::connect(format!("http://{address}"))
                .await
                .expect("gRPC connect");
        client
            .ping(tessera_proto::v1::PingRequest {})
            .await
            .expect("gRPC ping")
            .into_inner()
    });
    assert_eq!(answer.node_uuid, uuid);
    assert_eq!(answer.cluster_name, "nodes");
    assert!(!answer.incarnation.is_empty() && !answer.cluster_uuid.is_empty());
}
