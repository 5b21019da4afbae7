//! TLS end to end: the drills on a cluster with mutual TLS, auth required and etcd over TLS
//! with auth (the harness' and `tessera drill`'s); certificates rotated under continuous queries; the nodes' own services refused
//! to anyone without a node certificate of the cluster's CA; a node certificate naming another
//! node refused at start.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::drill::{add_a_node_then_fail_one_over, assert_drain_report, Drill};
use common::*;

#[test]
fn drills_run_unchanged_with_mutual_tls_auth_and_a_secured_etcd() {
    let drill = Drill::secured(3, 0).with_jetstream(1).with_index();
    let (written, queries) = add_a_node_then_fail_one_over(drill);
    eprintln!("secured drills: add a node, hard failover; {written} documents, {queries} queries, 0 failed");
}

#[test]
fn tessera_drill_drains_a_secured_cluster_with_nothing_lost() {
    let drill = Drill::secured(3, 30_000);
    let secure = drill.secure.as_ref().expect("secured");
    let key = secure
        .client
        .lock()
        .unwrap()
        .key
        .clone()
        .expect("the admin key");
    // As in the plain drill: the scratch index reads the standalone source, which wants a
    // client certificate of the CA.
    let out = std::process::Command::new(BIN)
        .args(["drill", "drain", "--cluster", &drill.addresses[0]])
        .args(["--source", &drill.source])
        .args(["--timeout-s", "120", "--ca-cert"])
        .arg(secure.ca.join("ca.pem"))
        .arg("--client-cert")
        .arg(&secure.client_cert.0)
        .arg("--client-key")
        .arg(&secure.client_cert.1)
        .env("TESSERA_API_KEY", &key)
        .output()
        .expect("run tessera drill");
    assert_drain_report(&out);
    // Without the key, the drill is refused at its first call (exit 8).
    let out = std::process::Command::new(BIN)
        .args([
            "drill",
            "drain",
            "--cluster",
            &drill.addresses[0],
            "--ca-cert",
        ])
        .arg(secure.ca.join("ca.pem"))
        .env_remove("TESSERA_API_KEY")
        .output()
        .expect("run tessera drill");
    assert_eq!(
        out.status.code(),
        Some(8),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A node with mutual TLS and auth required on the embedded Cfg, its CA and admin key.
struct TlsNode {
    dir: tempfile::TempDir,
    node: Proc,
    address: String,
    ca_pem: Vec<u8>,
    admin: String,
}

impl TlsNode {
    fn start(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let certs = NodeCerts::make(dir.path());
        let mut args = vec!["node", "--bind", &certs.address, "--auth", "required"];
        args.extend(certs.flags.iter().map(String::as_str));
        args.extend_from_slice(extra);
        let node = serve(&certs.data, &args, &certs.address);
        let admin = key_file(&certs.data, "bootstrap-admin.key");
        certs.use_key(&admin);
        Self {
            dir,
            node,
            address: certs.address,
            ca_pem: certs.ca_pem,
            admin,
        }
    }

    fn ca_dir(&self) -> String {
        self.dir.path().join("ca").display().to_string()
    }

    fn data(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    /// A gRPC channel over TLS, presenting `presented` (cert, key) when given.
    async fn channel(&self, presented: Option<(Vec<u8>, Vec<u8>)>) -> tonic::transport::Channel {
        let presented_ref = presented
            .as_ref()
            .map(|(cert, key)| tessera_tls::client::Presented { cert, key });
        let config = tessera_tls::client::tonic_config(&self.ca_pem, presented_ref);
        tonic::transport::Endpoint::from_shared(format!("https://{}", self.address))
            .unwrap()
            .tls_config(config)
            .unwrap()
            .connect()
            .await
            .expect("a TLS channel")
    }

    /// The certificate the node serves now, as a new connection sees it.
    fn served_cert(&self) -> Vec<u8> {
        let config = tls_client(&self.ca_pem, None);
        let name = tessera_tls::rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let mut connection = tessera_tls::rustls::ClientConnection::new(config, name).unwrap();
        let mut tcp = std::net::TcpStream::connect(&self.address).unwrap();
        while connection.is_handshaking() {
            connection.complete_io(&mut tcp).expect("handshake");
        }
        connection.peer_certificates().unwrap()[0].as_ref().to_vec()
    }
}

fn pem_der(pem: &[u8]) -> Vec<u8> {
    use tessera_tls::rustls::pki_types::pem::PemObject;
    tessera_tls::rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .next()
        .unwrap()
        .unwrap()
        .as_ref()
        .to_vec()
}

fn bulk(node: &TlsNode, from: u64, count: u64) {
    let body: String = (from..from + count)
        .map(|i| format!("{{\"key\": \"d{i}\", \"doc\": {{\"title\": \"doc {i}\"}}}}\n"))
        .collect();
    let (status, answer) = http(&node.address, "POST", "/api/source/books/bulk", &body);
    assert_eq!(status, 200, "{answer}");
}

fn count_at_plus(node: &TlsNode) -> u64 {
    let q = r#"{"query": {"match_all": {}}, "size": 0, "consistency": {"level": "at_plus"}, "timeout_ms": 30000}"#;
    let (status, answer) = http(&node.address, "POST", "/api/index/books/query", q);
    assert_eq!(status, 200, "{answer}");
    answer["total_hits"].as_u64().unwrap()
}

#[test]
fn certificates_rotate_under_continuous_queries_without_a_failed_request() {
    let node = TlsNode::start(&[]);
    let index = r#"{"type": "fulltext", "source": {"type": "tessera", "name": "books"}, "plan": {"index_partitions": 4},
        "params": {"mapping": {"fields": {"title": {"type": "text"}}}}}"#;
    let (status, body) = http(&node.address, "PUT", "/api/index/books", index);
    assert_eq!(status, 200, "{body}");
    bulk(&node, 0, 200);
    assert_eq!(count_at_plus(&node), 200);

    // Queries on new connections (REST) and on one long-lived gRPC connection, all along.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let rest = {
        let (stop, done, failures) = (stop.clone(), done.clone(), failures.clone());
        let address = node.address.clone();
        std::thread::spawn(move || {
            let q = r#"{"query": {"match_all": {}}, "size": 1}"#;
            while !stop.load(Ordering::Relaxed) {
                match try_http(&address, "POST", "/api/index/books/query", q) {
                    Some((200, _)) => {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    other => failures.lock().unwrap().push(format!("REST: {other:?}")),
                }
            }
        })
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let channel = runtime.block_on(node.channel(None));
    let grpc = {
        let (stop, done, failures) = (stop.clone(), done.clone(), failures.clone());
        let admin = node.admin.clone();
        runtime.spawn(async move {
            let mut client = tessera_proto::v1::indexes_client::IndexesClient::new(channel);
            while !stop.load(Ordering::Relaxed) {
                let mut request = tonic::Request::new(tessera_proto::v1::IndexName {
                    name: "books".into(),
                });
                let value = format!("Bearer {admin}").parse().unwrap();
                request.metadata_mut().insert("authorization", value);
                match client.count_index(request).await {
                    Ok(_) => {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => failures.lock().unwrap().push(format!("gRPC: {e:?}")),
                }
            }
        })
    };
    wait_for(
        "queries before the rotation",
        Duration::from_secs(10),
        || (done.load(Ordering::Relaxed) > 50).then_some(()),
    );

    // A new certificate (same CA) written over the old files, as a renewal would.
    let before = node.served_cert();
    tessera_ok(
        &[
            "cert",
            "node",
            "--ca",
            &node.ca_dir(),
            "--host",
            "127.0.0.1",
        ],
        Some(&node.data()),
    );
    let renewed = pem_der(&std::fs::read(node.data().join("tls/node.pem")).unwrap());
    assert_ne!(before, renewed);
    wait_for(
        "new connections to get the renewed certificate",
        Duration::from_secs(15),
        || (node.served_cert() == renewed).then_some(()),
    );
    let at_rotation = done.load(Ordering::Relaxed);
    wait_for(
        "queries after the rotation",
        Duration::from_secs(10),
        || (done.load(Ordering::Relaxed) > at_rotation + 50).then_some(()),
    );
    stop.store(true, Ordering::Relaxed);
    rest.join().unwrap();
    runtime.block_on(grpc).unwrap();
    let failures = failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "failed requests: {:?}",
        &failures[..failures.len().min(5)]
    );

    // The node's own feeds dial it with the renewed certificate: new documents arrive.
    bulk(&node, 200, 100);
    assert_eq!(count_at_plus(&node), 300);
    drop(node.node);
}

#[test]
fn the_nodes_services_need_a_node_certificate_of_the_cluster() {
    let node = TlsNode::start(&[]);
    let ops = node.dir.path().join("clients");
    tessera_ok(
        &[
            "cert",
            "client",
            "--ca",
            &node.ca_dir(),
            "--name",
            "ops",
            "--out",
            ops.to_str().unwrap(),
        ],
        None,
    );
    let other_node = node.dir.path().join("other");
    tessera_ok(
        &[
            "cert",
            "node",
            "--ca",
            &node.ca_dir(),
            "--host",
            "127.0.0.1",
            "--uuid",
            "0123456789abcdef0123456789abcdef",
            "--out",
            other_node.to_str().unwrap(),
        ],
        None,
    );
    // The node's own uuid is a defined node's.
    let (_, nodes) = http(&node.address, "GET", "/api/nodes", "");
    let own_uuid = nodes["nodes"][0]["node"]["uuid"]
        .as_str()
        .expect("a node uuid")
        .to_string();
    let defined_node = node.dir.path().join("defined");
    tessera_ok(
        &[
            "cert",
            "node",
            "--ca",
            &node.ca_dir(),
            "--host",
            "127.0.0.1",
            "--uuid",
            &own_uuid,
            "--out",
            defined_node.to_str().unwrap(),
        ],
        None,
    );
    let foreign = node.dir.path().join("foreign");
    tessera_ok(&["cert", "ca", "--out", foreign.to_str().unwrap()], None);
    let foreign_node = node.dir.path().join("foreign-node");
    tessera_ok(
        &[
            "cert",
            "node",
            "--ca",
            foreign.to_str().unwrap(),
            "--host",
            "127.0.0.1",
            "--uuid",
            "0123456789abcdef0123456789abcdef",
            "--out",
            foreign_node.to_str().unwrap(),
        ],
        None,
    );
    let pair = |dir: &Path, stem: &str| {
        (
            std::fs::read(dir.join(format!("{stem}.pem"))).unwrap(),
            std::fs::read(dir.join(format!("{stem}.key"))).unwrap(),
        )
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let list = |channel: tonic::transport::Channel, key: Option<String>| async move {
            let mut client = tessera_proto::v1::source_client::SourceClient::new(channel);
            let mut request = tonic::Request::new(tessera_proto::v1::ListPartitionsRequest {
                source: "books".into(),
            });
            if let Some(key) = key {
                let value = format!("Bearer {key}").parse().unwrap();
                request.metadata_mut().insert("authorization", value);
            }
            client.list_partitions(request).await.map(drop)
        };
        use tonic::Code;
        // No client certificate, even with the admin key.
        let denied = list(node.channel(None).await, Some(node.admin.clone()))
            .await
            .unwrap_err();
        assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
        let denied = list(node.channel(None).await, None).await.unwrap_err();
        assert_eq!(denied.code(), Code::Unauthenticated, "{denied:?}");
        // A client certificate of the CA is not a node's.
        let client = node.channel(Some(pair(&ops, "ops"))).await;
        let denied = list(client, None).await.unwrap_err();
        assert_eq!(denied.code(), Code::Unauthenticated, "{denied:?}");
        // A node certificate of the cluster's CA naming a uuid the cluster does not define is
        // no node's (issue 31: any CA-signed `OU=tessera-node` was one).
        let undefined = node.channel(Some(pair(&other_node, "node"))).await;
        let denied = list(undefined, None).await.unwrap_err();
        assert_eq!(denied.code(), Code::Unauthenticated, "{denied:?}");
        // One naming a defined node is let through.
        let peer = node.channel(Some(pair(&defined_node, "node"))).await;
        if let Err(e) = list(peer, None).await {
            assert!(
                !matches!(e.code(), Code::PermissionDenied | Code::Unauthenticated),
                "a defined node's certificate refused: {e:?}"
            );
        }
        // A node certificate of another CA does not get through the handshake.
        let presented = pair(&foreign_node, "node");
        let config = tessera_tls::client::tonic_config(
            &node.ca_pem,
            Some(tessera_tls::client::Presented {
                cert: &presented.0,
                key: &presented.1,
            }),
        );
        let foreign = tonic::transport::Endpoint::from_shared(format!("https://{}", node.address))
            .unwrap()
            .tls_config(config)
            .unwrap()
            .connect()
            .await;
        if let Ok(channel) = foreign {
            let refused = list(channel, None).await.unwrap_err();
            assert!(
                !matches!(refused.code(), Code::Ok | Code::NotFound),
                "{refused:?}"
            );
        }
    });
    // Plain HTTP to the TLS port gets no HTTP answer.
    use std::io::{Read, Write};
    let mut tcp = std::net::TcpStream::connect(&node.address).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    tcp.write_all(b"GET /api/ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = tcp.read_to_end(&mut answer);
    assert!(
        !answer.starts_with(b"HTTP/1.1 200"),
        "plain HTTP answered on a TLS port"
    );
}

#[test]
fn a_node_certificate_naming_another_node_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    tessera_ok(&["cert", "ca", "--out", ca.to_str().unwrap()], None);
    let ca_dir = ca.to_str().unwrap();
    let other = dir.path().join("other");
    tessera_ok(
        &[
            "cert",
            "node",
            "--ca",
            ca_dir,
            "--host",
            "127.0.0.1",
            "--uuid",
            "feedfeedfeedfeedfeedfeedfeedfeed",
            "--out",
            other.to_str().unwrap(),
        ],
        None,
    );
    let address = format!("127.0.0.1:{}", free_port());
    let out = std::process::Command::new(BIN)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["node", "--bind", &address, "--tls-cert"])
        .arg(other.join("node.pem"))
        .arg("--tls-key")
        .arg(other.join("node.key"))
        .arg("--tls-client-ca")
        .arg(ca.join("ca.pem"))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("feedfeed") && stderr.contains("cert node"),
        "{stderr}"
    );
}

#[test]
fn a_node_certificate_a_revocation_list_names_is_refused_once_the_list_is_reloaded() {
    // An empty file holds no list: nothing is revoked yet.
    let lists = tempfile::tempdir().unwrap();
    let crl = lists.path().join("crl.pem");
    std::fs::write(&crl, "").unwrap();
    let node = TlsNode::start(&["--tls-crl", crl.to_str().unwrap()]);
    let (_, nodes) = http(&node.address, "GET", "/api/nodes", "");
    let own_uuid = nodes["nodes"][0]["node"]["uuid"]
        .as_str()
        .expect("a node uuid")
        .to_string();
    let peer = node.dir.path().join("peer");
    tessera_ok(
        &[
            "cert",
            "node",
            "--ca",
            &node.ca_dir(),
            "--host",
            "127.0.0.1",
            "--uuid",
            &own_uuid,
            "--out",
            peer.to_str().unwrap(),
        ],
        None,
    );
    let cert = std::fs::read(peer.join("node.pem")).unwrap();
    let key = std::fs::read(peer.join("node.key")).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // Whether a new connection with the certificate reaches a node-only method.
    let as_node = || {
        runtime.block_on(async {
            let config = tessera_tls::client::tonic_config(
                &node.ca_pem,
                Some(tessera_tls::client::Presented {
                    cert: &cert,
                    key: &key,
                }),
            );
            let endpoint =
                tonic::transport::Endpoint::from_shared(format!("https://{}", node.address))
                    .unwrap()
                    .tls_config(config)
                    .unwrap();
            let Ok(channel) = endpoint.connect().await else {
                return false;
            };
            let mut client = tessera_proto::v1::source_client::SourceClient::new(channel);
            let request = tessera_proto::v1::ListPartitionsRequest {
                source: "books".into(),
            };
            match client.list_partitions(request).await {
                Ok(_) => true,
                Err(e) => !matches!(
                    e.code(),
                    tonic::Code::PermissionDenied
                        | tonic::Code::Unauthenticated
                        | tonic::Code::Unavailable
                        | tonic::Code::Unknown
                ),
            }
        })
    };
    assert!(
        as_node(),
        "a defined node's certificate is a node before it is revoked"
    );
    let ca = tessera_tls::cert::Pem {
        cert: std::fs::read_to_string(node.dir.path().join("ca/ca.pem")).unwrap(),
        key: std::fs::read_to_string(node.dir.path().join("ca/ca.key")).unwrap(),
    };
    let cert_text = String::from_utf8(cert.clone()).unwrap();
    let list = tessera_tls::cert::make_crl(&ca, &[&cert_text], 1, 1).unwrap();
    std::fs::write(&crl, list).unwrap();
    // The node re-reads its TLS files every second.
    wait_for(
        "the revoked certificate refused",
        Duration::from_secs(15),
        || (!as_node()).then_some(()),
    );
}
