//! The port against real sockets: who a certificate names is decided at every request (node
//! CA, CRL, defined nodes), and connections over a limit or too slow are closed.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::routing::get;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::cert::{make_ca, make_client, make_crl, make_node, Pem};
use crate::{ClientCert, NodeDirectory, Port, PortLimits, ServerFiles, ServerTls};

fn app() -> axum::Router {
    axum::Router::new().route(
        "/who",
        get(|ConnectInfo(c): ConnectInfo<ClientCert>| async move {
            format!("node={:?} client={:?}", c.node, c.client)
        }),
    )
}

async fn start(port: Port) -> SocketAddr {
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = tcp.local_addr().unwrap();
    tokio::spawn(crate::port::serve(tcp, port, app(), std::future::pending()));
    address
}

/// A TCP connection to `to` from the loopback address `from`.
async fn connect_from(from: [u8; 4], to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(IpAddr::from(from), 0)).unwrap();
    socket.connect(to).await.unwrap()
}

/// One `GET /who` on an open connection (keep-alive); the body.
async fn ask(stream: &mut (impl AsyncRead + AsyncWrite + Unpin)) -> String {
    stream
        .write_all(b"GET /who HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let n = stream.read(&mut buf).await.expect("an answer");
        assert!(n > 0, "closed before an answer");
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .and_then(|v| v.trim().parse().ok())
                .expect("a content-length");
            if body.len() >= length {
                return body[..length].to_string();
            }
        }
    }
}

async fn tls_connect(
    to: SocketAddr,
    trust: &Pem,
    who: &Pem,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let config = crate::client::rustls_config(
        trust.cert.as_bytes(),
        Some(crate::client::Presented {
            cert: who.cert.as_bytes(),
            key: who.key.as_bytes(),
        }),
    )
    .unwrap();
    let tcp = connect_from([127, 0, 0, 1], to).await;
    let name = rustls::pki_types::ServerName::IpAddress(to.ip().into());
    let mut stream = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await?;
    // TLS 1.3 reports a refused client certificate only at the first read.
    stream.write_all(b"").await?;
    Ok(stream)
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn a_certificate_is_a_node_only_from_the_node_ca_unrevoked_and_while_defined() {
    let dir = tempfile::tempdir().unwrap();
    let (nodes_ca, clients_ca) = (make_ca("nodes", 1).unwrap(), make_ca("clients", 1).unwrap());
    let me = make_node(&nodes_ca, "me", &["127.0.0.1".into()], 1).unwrap();
    let n1 = make_node(&nodes_ca, "n1", &["127.0.0.1".into()], 1).unwrap();
    let n2 = make_node(&nodes_ca, "n2", &["127.0.0.1".into()], 1).unwrap();
    // OU=tessera-node, but of the client CA: a client CA must not mint nodes.
    let forged = make_node(&clients_ca, "n1", &["127.0.0.1".into()], 1).unwrap();
    let ops = make_client(&clients_ca, "ops", 1).unwrap();
    let crl = write(
        dir.path(),
        "crl.pem",
        &make_crl(&nodes_ca, &[], 1, 1).unwrap(),
    );
    let tls = ServerTls::load(ServerFiles {
        cert: write(dir.path(), "me.pem", &me.cert),
        key: write(dir.path(), "me.key", &me.key),
        client_ca: Some(write(dir.path(), "clients.pem", &clients_ca.cert)),
        node_ca: Some(write(dir.path(), "nodes.pem", &nodes_ca.cert)),
        crl: Some(crl.clone()),
        own_node: Some("me".into()),
        require_client_cert: true,
    })
    .unwrap();
    let directory = NodeDirectory::pinned([
        ("me".to_string(), Vec::new()),
        ("n1".to_string(), Vec::new()),
    ]);
    let address = start(Port {
        tls: Some(tls.clone()),
        directory: directory.clone(),
        limits: PortLimits::default(),
    })
    .await;

    let mut node = tls_connect(address, &nodes_ca, &n1).await.unwrap();
    assert_eq!(ask(&mut node).await, "node=Some(\"n1\") client=None");
    let mut forged = tls_connect(address, &nodes_ca, &forged).await.unwrap();
    assert_eq!(ask(&mut forged).await, "node=None client=None");
    let mut undefined = tls_connect(address, &nodes_ca, &n2).await.unwrap();
    assert_eq!(ask(&mut undefined).await, "node=None client=None");
    let mut client = tls_connect(address, &nodes_ca, &ops).await.unwrap();
    assert_eq!(ask(&mut client).await, "node=None client=Some(\"ops\")");

    // The node removed from the cluster: no longer a node on its open connection.
    directory.set([("me".to_string(), Vec::new())]);
    assert_eq!(ask(&mut node).await, "node=None client=None");
    directory.set([
        ("me".to_string(), Vec::new()),
        ("n1".to_string(), Vec::new()),
    ]);
    assert_eq!(ask(&mut node).await, "node=Some(\"n1\") client=None");

    // Revoked: nothing from the next request on, and no new connection.
    std::fs::write(&crl, make_crl(&nodes_ca, &[&n1.cert], 2, 1).unwrap()).unwrap();
    assert!(
        tls.reload_if_changed().unwrap(),
        "a new CRL rebuilds the configuration"
    );
    assert_eq!(ask(&mut node).await, "node=None client=None");
    let refused = match tls_connect(address, &nodes_ca, &n1).await {
        Ok(mut again) => {
            let mut buf = [0u8; 16];
            again
                .write_all(b"GET /who HTTP/1.1\r\nHost: t\r\n\r\n")
                .await
                .ok();
            !matches!(again.read(&mut buf).await, Ok(n) if n > 0)
        }
        Err(_) => true,
    };
    assert!(
        refused,
        "a revoked certificate must not get a new connection"
    );
    // Other certificates of the CA still do.
    let mut client = tls_connect(address, &nodes_ca, &ops).await.unwrap();
    assert_eq!(ask(&mut client).await, "node=None client=Some(\"ops\")");
}

/// Waits (bounded) until the server closes `stream`; panics naming `what` otherwise.
async fn closed_within(stream: &mut TcpStream, within: Duration, what: &str) {
    let mut buf = [0u8; 512];
    let read = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    };
    assert!(
        tokio::time::timeout(within, read).await.is_ok(),
        "{what}: still open after {within:?}"
    );
}

#[tokio::test]
async fn connections_over_a_limit_or_too_slow_are_closed_and_nodes_keep_their_share() {
    let directory = NodeDirectory::pinned([("n1".to_string(), vec!["127.0.0.1".parse().unwrap()])]);
    let limits = PortLimits {
        max_connections: 8,
        reserved_for_nodes: 2,
        max_per_client: 3,
        max_handshakes: 4,
        header_read_timeout: Duration::from_millis(400),
        idle_timeout: Duration::from_millis(600),
    };
    let address = start(Port {
        tls: None,
        directory,
        limits,
    })
    .await;
    // Clients: three each, six in all; the seventh client connection is closed at once.
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect_from([127, 0, 0, 2], address).await);
    }
    let mut over = connect_from([127, 0, 0, 2], address).await;
    closed_within(
        &mut over,
        Duration::from_secs(2),
        "a client's fourth connection",
    )
    .await;
    for _ in 0..3 {
        held.push(connect_from([127, 0, 0, 3], address).await);
    }
    let mut over = connect_from([127, 0, 0, 4], address).await;
    closed_within(
        &mut over,
        Duration::from_secs(2),
        "a client past the clients' share",
    )
    .await;
    // A node's address gets the reserved slots and is served.
    let mut node = connect_from([127, 0, 0, 1], address).await;
    assert_eq!(ask(&mut node).await, "node=None client=None");
    // Connections that send nothing are closed after the header-read time.
    for (i, stream) in held.iter_mut().enumerate() {
        closed_within(
            stream,
            Duration::from_secs(5),
            &format!("silent connection {i}"),
        )
        .await;
    }
    // A slow request head is closed after the header-read time, whatever it trickles.
    let mut slow = connect_from([127, 0, 0, 5], address).await;
    slow.write_all(b"GET /who HTTP/1.1\r\nHost: t\r\n")
        .await
        .unwrap();
    let mut cut = false;
    for _ in 0..100 {
        if slow.write_all(b"X-A: b\r\n").await.is_err() {
            cut = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        cut,
        "a head trickling for 10 s was not cut (header-read time 400 ms)"
    );
    // A client connection idle after a request is closed (HTTP/1 waits for its next head
    // under the header-read time).
    let mut idle = connect_from([127, 0, 0, 6], address).await;
    assert_eq!(ask(&mut idle).await, "node=None client=None");
    closed_within(
        &mut idle,
        Duration::from_secs(5),
        "an idle client connection",
    )
    .await;
}
