//! Helpers shared by the binary's end-to-end tests: a free port, a tiny HTTP client, and a
//! child process killed on drop.
#![allow(dead_code)]

pub mod backup;
pub mod drill;
pub mod drill_secure;
pub mod load;
pub mod missing;
pub mod tenant;
pub mod webdriver;

use std::io::{Read, Write};
use std::process::Child;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_tessera");

/// A loopback port for a process the test starts (claimed across test processes).
pub fn free_port() -> u16 {
    tessera_tests::ports::free_port()
}

/// One HTTP/1.1 request; returns the status and the JSON body (null if not JSON).
pub fn http(address: &str, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    try_http(address, method, path, body).expect("connect")
}

/// One HTTP/1.1 request that reports a refused connection as `None` and a connection cut off
/// before an answer as status 0, instead of panicking (for peers that are being killed).
pub fn try_http(
    address: &str,
    method: &str,
    path: &str,
    body: &str,
) -> Option<(u16, serde_json::Value)> {
    try_http_with(address, &[], method, path, body)
}

/// One HTTP/1.1 request with the API key `key` (`Authorization: Bearer`).
pub fn http_as(
    address: &str,
    key: &str,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, serde_json::Value) {
    let auth = format!("Bearer {key}");
    try_http_with(address, &[("Authorization", &auth)], method, path, body).expect("connect")
}

/// [`try_http`] with extra headers.
pub fn try_http_with(
    address: &str,
    headers: &[(&str, &str)],
    method: &str,
    path: &str,
    body: &str,
) -> Option<(u16, serde_json::Value)> {
    let secured = secured(address);
    let mut extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    if let Some(key) = secured.as_ref().and_then(|s| s.key.as_deref()) {
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        {
            extra.push_str(&format!("Authorization: Bearer {key}\r\n"));
        }
    }
    let tcp = std::net::TcpStream::connect(address).ok()?;
    tcp.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let mut stream: Box<dyn ReadWrite> = match secured.as_ref().and_then(|s| s.tls.clone()) {
        Some(config) => {
            let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
            let name =
                tessera_tls::rustls::pki_types::ServerName::try_from(host.to_string()).ok()?;
            let connection = tessera_tls::rustls::ClientConnection::new(config, name).ok()?;
            Box::new(tessera_tls::rustls::StreamOwned::new(connection, tcp))
        }
        None => Box::new(tcp),
    };
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    if stream.write_all(request.as_bytes()).is_err() {
        return Some((0, serde_json::Value::Null));
    }
    let mut bytes = Vec::new();
    // A TLS peer may close without a close_notify after a complete answer.
    if stream.read_to_end(&mut bytes).is_err() && bytes.is_empty() {
        return Some((0, serde_json::Value::Null));
    }
    let answer = String::from_utf8_lossy(&bytes).into_owned();
    let status = answer.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let json = answer
        .split("\r\n\r\n")
        .nth(1)
        .and_then(|b| serde_json::from_str(b).ok())
        .unwrap_or_default();
    Some((status, json))
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// How the helpers reach a node that runs with TLS or auth: its CA and an API key.
#[derive(Clone, Default)]
pub struct Secured {
    pub tls: Option<std::sync::Arc<tessera_tls::rustls::ClientConfig>>,
    pub key: Option<String>,
}

type SecuredMap = std::sync::Mutex<std::collections::HashMap<String, Secured>>;

fn secured_addresses() -> &'static SecuredMap {
    static ADDRESSES: std::sync::OnceLock<SecuredMap> = std::sync::OnceLock::new();
    ADDRESSES.get_or_init(Default::default)
}

/// From now on, [`http`] and friends reach `address` as `how` says (per address, so tests
/// running in one process do not see each other's).
pub fn secure(address: &str, how: Secured) {
    secured_addresses()
        .lock()
        .unwrap()
        .insert(address.to_string(), how);
}

fn secured(address: &str) -> Option<Secured> {
    secured_addresses().lock().ok()?.get(address).cloned()
}

/// A client configuration trusting the CA in `ca_pem`, presenting `presented` (cert, key).
pub fn tls_client(
    ca_pem: &[u8],
    presented: Option<(&[u8], &[u8])>,
) -> std::sync::Arc<tessera_tls::rustls::ClientConfig> {
    let presented = presented.map(|(cert, key)| tessera_tls::client::Presented { cert, key });
    tessera_tls::client::rustls_config(ca_pem, presented).expect("a TLS client configuration")
}

/// Waits until the process at `address` answers HTTP. A node binds its port before it registers
/// in the Cfg and serves only after, so a bare TCP connect can succeed while the cluster does
/// not yet know the node (an index created then saw one node of three).
pub fn wait_serving(address: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some((status, _)) = try_http(address, "GET", "/api/ping", "") {
            if status != 0 {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "nothing answers HTTP on {address} after 20 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Polls `check` until it returns `Some`, or panics naming `what`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A child process, killed on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    /// Sends SIGTERM and waits for the exit code.
    pub fn terminate(&mut self, within: Duration) -> i32 {
        let pid = self.0.id().to_string();
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status();
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "process did not exit within {within:?} of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Runs `tessera ARGS` (after `--data-dir DIR` when given) to the end; panics with its stderr
/// unless it succeeded.
pub fn tessera_ok(args: &[&str], data_dir: Option<&std::path::Path>) {
    let mut command = std::process::Command::new(BIN);
    if let Some(dir) = data_dir {
        command.arg("--data-dir").arg(dir);
    }
    let out = command.args(args).output().expect("run tessera");
    assert!(
        out.status.success(),
        "tessera {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A development CA (`<dir>/ca`) and a node certificate for 127.0.0.1 in the data dir
/// `<dir>/data` (`tessera cert`), and a free address the helpers reach over TLS with that CA.
pub struct NodeCerts {
    pub ca_dir: std::path::PathBuf,
    pub data: std::path::PathBuf,
    pub ca_pem: Vec<u8>,
    pub address: String,
    /// `--tls-cert`, `--tls-key` and `--tls-client-ca` for the node.
    pub flags: Vec<String>,
}

impl NodeCerts {
    pub fn make(dir: &std::path::Path) -> Self {
        let (ca_dir, data) = (dir.join("ca"), dir.join("data"));
        let ca = ca_dir.to_str().unwrap_or_default().to_string();
        tessera_ok(&["cert", "ca", "--out", &ca], None);
        tessera_ok(
            &["cert", "node", "--ca", &ca, "--host", "127.0.0.1"],
            Some(&data),
        );
        let ca_pem = std::fs::read(ca_dir.join("ca.pem")).expect("the CA's certificate");
        let address = format!("127.0.0.1:{}", free_port());
        secure(
            &address,
            Secured {
                tls: Some(tls_client(&ca_pem, None)),
                key: None,
            },
        );
        let file = |p: std::path::PathBuf| p.display().to_string();
        let flags = vec![
            "--tls-cert".to_string(),
            file(data.join("tls/node.pem")),
            "--tls-key".to_string(),
            file(data.join("tls/node.key")),
            "--tls-client-ca".to_string(),
            file(ca_dir.join("ca.pem")),
        ];
        Self {
            ca_dir,
            data,
            ca_pem,
            address,
            flags,
        }
    }

    /// From now on the helpers reach the node with `key` too.
    pub fn use_key(&self, key: &str) {
        secure(
            &self.address,
            Secured {
                tls: Some(tls_client(&self.ca_pem, None)),
                key: Some(key.to_string()),
            },
        );
    }
}

/// A key a node wrote to its data dir (`bootstrap-admin.key`, `node-api-key`), trimmed.
pub fn key_file(data_dir: &std::path::Path, name: &str) -> String {
    std::fs::read_to_string(data_dir.join(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .trim()
        .to_string()
}

/// Runs `tessera --data-dir DIR ARGS...` quietly and waits until it listens on `address`.
pub fn serve(dir: &std::path::Path, args: &[&str], address: &str) -> Proc {
    let child = std::process::Command::new(BIN)
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env("TESSERA_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start tessera");
    wait_serving(address);
    Proc(child)
}

/// A node of a test cluster on the Cfg `cfg`, in server group `zone`, with short liveness and
/// planner leases (2 s) so that failures show quickly.
pub fn cluster_node(cfg: &str, dir: &std::path::Path, address: &str, zone: &str) -> Proc {
    let args = [
        "--cfg",
        cfg,
        "node",
        "--bind",
        address,
        "--group",
        zone,
        "--lease-ttl-ms",
        "2000",
        "--planner-lease-ttl-ms",
        "2000",
    ];
    serve(dir, &args, address)
}
