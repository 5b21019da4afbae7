//! Real NATS servers with JetStream for tests: `NatsCluster::single()` or
//! `NatsCluster::start(3)` (a JetStream cluster that keeps R3 streams).
//!
//! The binary is `$NATS_SERVER_BIN`, `nats-server` on `PATH`, or Debian's
//! `/usr/sbin/nats-server`. Each server gets free loopback ports (client, cluster, monitor)
//! and its own store dir under a temp dir; start waits until every server's `/healthz` says
//! JetStream is ready, and everything is killed on drop. Servers can be killed with SIGKILL and
//! restarted on the same ports and store, for fault tests.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::ports::free_port;

/// How long a server may take to be ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The nats-server binary to run, or a panic saying how to get one.
pub fn nats_server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("NATS_SERVER_BIN") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "NATS_SERVER_BIN={} is not a file",
            path.display()
        );
        return path;
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("nats-server"))
            .find(|candidate| candidate.is_file())
    });
    let debian = PathBuf::from("/usr/sbin/nats-server");
    on_path
        .or_else(|| debian.is_file().then_some(debian))
        .unwrap_or_else(|| {
            panic!(
                "nats-server not found: JetStream tests need a real NATS server (>= 2.9). Install it \
                 (`apt-get install -y nats-server` on Debian, or run `scripts/deps.sh test`) or set \
                 NATS_SERVER_BIN. Tests never skip without it."
            )
        })
}

struct Server {
    name: String,
    client_port: u16,
    cluster_port: u16,
    monitor_port: u16,
    child: Option<Child>,
}

/// Running NATS servers with JetStream, clustered when more than one.
pub struct NatsCluster {
    dir: TempDir,
    servers: Vec<Server>,
    /// In operator mode (clients need a credentials file), the server config's lines that
    /// trust the operator and preload the account.
    trust: Option<String>,
    /// TLS with client certificates required: the server config's `tls` block.
    tls: Option<String>,
}

impl NatsCluster {
    pub fn single() -> Self {
        Self::start(1)
    }

    /// One server that admits only clients with a user's credentials (operator mode: an
    /// operator, one account with JetStream, one user); `credentials_file()` names its file.
    pub fn single_with_credentials() -> Self {
        Self::start_with(1, true, false)
    }

    /// `size` servers; returns once each says JetStream is ready.
    pub fn start(size: usize) -> Self {
        Self::start_with(size, false, false)
    }

    /// One server speaking only TLS to clients that present a certificate of its CA;
    /// `tls_files()` names the CA and a client certificate, `url` is `tls://`.
    pub fn single_with_tls() -> Self {
        Self::start_with(1, false, true)
    }

    /// The CA, a client certificate and its key, for a server from `single_with_tls`.
    pub fn tls_files(&self) -> (String, String, String) {
        let file = |name: &str| self.dir.path().join(name).display().to_string();
        (file("ca.pem"), file("client.pem"), file("client.key"))
    }

    fn start_with(size: usize, credentials: bool, tls: bool) -> Self {
        assert!(size >= 1, "a NATS cluster needs at least one server");
        let dir = tempfile::Builder::new()
            .prefix("tessera-nats-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temp dir for NATS: {e}"));
        let servers = (0..size)
            .map(|i| Server {
                name: format!("n{i}"),
                client_port: free_port(),
                cluster_port: free_port(),
                monitor_port: free_port(),
                child: None,
            })
            .collect();
        let trust = credentials.then(|| operator_mode(dir.path()));
        let tls = tls.then(|| tls_files(dir.path()));
        let mut cluster = Self {
            dir,
            servers,
            trust,
            tls,
        };
        for i in 0..size {
            cluster.write_config(i);
            cluster.spawn(i);
        }
        for i in 0..size {
            cluster.wait_ready(i);
        }
        cluster
    }

    fn write_config(&self, i: usize) {
        let s = &self.servers[i];
        let store = self.dir.path().join(&s.name);
        let mut config = format!(
            "server_name: {}\nlisten: 127.0.0.1:{}\nhttp: 127.0.0.1:{}\njetstream {{\n  store_dir: \"{}\"\n}}\n",
            s.name,
            s.client_port,
            s.monitor_port,
            store.display()
        );
        if let Some(trust) = &self.trust {
            config.push_str(trust);
        }
        if let Some(tls) = &self.tls {
            config.push_str(tls);
        }
        if self.servers.len() > 1 {
            let routes: Vec<String> = self
                .servers
                .iter()
                .filter(|o| o.name != s.name)
                .map(|o| format!("nats-route://127.0.0.1:{}", o.cluster_port))
                .collect();
            config.push_str(&format!(
                "cluster {{\n  name: tessera\n  listen: 127.0.0.1:{}\n  routes: [{}]\n}}\n",
                s.cluster_port,
                routes.join(", ")
            ));
        }
        let path = self.dir.path().join(format!("{}.conf", s.name));
        std::fs::write(&path, config)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }

    fn spawn(&mut self, i: usize) {
        let binary = nats_server_binary();
        let name = self.servers[i].name.clone();
        let (log, log2) = crate::child::log_files(&self.dir.path().join(format!("{name}.log")));
        let child = Command::new(&binary)
            .arg("-c")
            .arg(self.dir.path().join(format!("{name}.conf")))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        self.servers[i].child = Some(child);
    }

    /// Polls the server's `/healthz` until JetStream is ready — in a cluster, until it also
    /// knows the JetStream meta leader (before that, creating a stream times out) — or panics
    /// with its log tail.
    fn wait_ready(&mut self, i: usize) {
        let deadline = Instant::now() + READY_TIMEOUT;
        let clustered = self.servers.len() > 1;
        loop {
            let port = self.servers[i].monitor_port;
            if healthz_ok(port) && (!clustered || knows_meta_leader(port)) {
                return;
            }
            if let Some(child) = self.servers[i].child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "nats-server {} exited ({status}) before it was ready; log:\n{}",
                        self.servers[i].name,
                        self.log_tail(i)
                    );
                }
            }
            assert!(
                Instant::now() < deadline,
                "nats-server {} not ready after {READY_TIMEOUT:?}; log:\n{}",
                self.servers[i].name,
                self.log_tail(i)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The last lines of server `i`'s log.
    pub fn log_tail(&self, i: usize) -> String {
        let path = self
            .dir
            .path()
            .join(format!("{}.log", self.servers[i].name));
        crate::child::tail(&path, 30)
    }

    /// The user's credentials file, for a server from `single_with_credentials`.
    pub fn credentials_file(&self) -> PathBuf {
        self.dir.path().join("user.creds")
    }

    /// `nats://127.0.0.1:PORT` of every server.
    pub fn urls(&self) -> Vec<String> {
        (0..self.servers.len()).map(|i| self.url(i)).collect()
    }

    pub fn url(&self, i: usize) -> String {
        let scheme = if self.tls.is_some() { "tls" } else { "nats" };
        format!("{scheme}://127.0.0.1:{}", self.servers[i].client_port)
    }

    /// Kills server `i` with SIGKILL (no clean shutdown) and waits for it to exit.
    pub fn kill(&mut self, i: usize) {
        crate::child::kill(&mut self.servers[i].child);
    }

    /// Starts server `i` again on its ports and store, and waits until it is ready.
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        self.spawn(i);
        self.wait_ready(i);
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for i in 0..self.servers.len() {
            self.kill(i);
        }
    }
}

/// Whether the server's `/jsz` names a JetStream meta leader.
fn knows_meta_leader(port: u16) -> bool {
    let Some(answer) = crate::child::http("127.0.0.1", port, "/jsz", None) else {
        return false;
    };
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|jsz| {
            jsz["meta_cluster"]["leader"]
                .as_str()
                .map(|l| !l.is_empty())
        })
        .unwrap_or(false)
}

/// One blocking `GET /healthz`; true when the server says it (and JetStream) is ok.
fn healthz_ok(port: u16) -> bool {
    crate::child::http("127.0.0.1", port, "/healthz", None)
        .is_some_and(|a| a.starts_with("HTTP/1.1 200") && a.contains("\"ok\""))
}

/// Makes an operator, an account with JetStream and a user; writes the user's credentials to
/// `dir/user.creds`; returns the server config lines trusting the operator.
fn operator_mode(dir: &std::path::Path) -> String {
    use nkeys::KeyPair;
    let operator = KeyPair::new_operator();
    let account = KeyPair::new_account();
    // JetStream in operator mode needs a system account.
    let system = KeyPair::new_account();
    let user = KeyPair::new_user();
    let operator_jwt = jwt(
        &operator,
        &operator.public_key(),
        serde_json::json!({"type": "operator", "version": 2}),
    );
    let unlimited = serde_json::json!({"subs": -1, "data": -1, "payload": -1, "imports": -1,
        "exports": -1, "wildcards": true, "conn": -1, "leaf": -1,
        "mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1});
    let account_jwt = jwt(
        &operator,
        &account.public_key(),
        serde_json::json!({"type": "account", "version": 2, "limits": unlimited,
            "default_permissions": {"pub": {}, "sub": {}}}),
    );
    let system_jwt = jwt(
        &operator,
        &system.public_key(),
        serde_json::json!({"type": "account", "version": 2,
            "default_permissions": {"pub": {}, "sub": {}}}),
    );
    let user_jwt = jwt(
        &account,
        &user.public_key(),
        serde_json::json!({"type": "user", "version": 2, "pub": {}, "sub": {},
            "subs": -1, "data": -1, "payload": -1}),
    );
    let seed = user.seed().unwrap_or_else(|e| panic!("a user seed: {e}"));
    let creds = format!(
        "-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n\
         -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"
    );
    let path = dir.join("user.creds");
    std::fs::write(&path, creds).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    format!(
        "operator: \"{operator_jwt}\"\nsystem_account: {sys}\nresolver: MEMORY\nresolver_preload: {{\n  {}: \"{account_jwt}\"\n  {sys}: \"{system_jwt}\"\n}}\n",
        account.public_key(),
        sys = system.public_key()
    )
}

/// A NATS JWT (`ed25519-nkey`) for `subject`, signed by `issuer`, with these `nats` claims.
fn jwt(issuer: &nkeys::KeyPair, subject: &str, nats: serde_json::Value) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = serde_json::json!({"typ": "JWT", "alg": "ed25519-nkey"});
    let iat = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let claims = serde_json::json!({"jti": format!("{subject}-{iat}"),
        "iat": iat, "iss": issuer.public_key(), "name": subject, "sub": subject, "nats": nats});
    let signed = format!(
        "{}.{}",
        b64.encode(header.to_string()),
        b64.encode(claims.to_string())
    );
    let signature = issuer
        .sign(signed.as_bytes())
        .unwrap_or_else(|e| panic!("signing a JWT: {e}"));
    format!("{signed}.{}", b64.encode(signature))
}

/// The stream JetStream tests and benches read: `DOCS`, subjects `docs.<partition>`.
pub const STREAM: &str = "DOCS";
pub const SUBJECT_PREFIX: &str = "docs";

/// Makes [`STREAM`] with `partitions`, one replica, over `client`.
pub async fn create_docs_stream(client: &async_nats::Client, partitions: u32) {
    let spec = tessera_sources::jetstream::producer::StreamSpec {
        name: STREAM.into(),
        subject_prefix: SUBJECT_PREFIX.into(),
        partitions,
        replicas: 1,
    };
    tessera_sources::jetstream::producer::create_stream(client, &spec)
        .await
        .unwrap_or_else(|e| panic!("creating the stream {STREAM}: {e}"));
}

/// A CA, the server's certificate and a client's in `dir`; the server config's `tls` block
/// (client certificates required).
fn tls_files(dir: &Path) -> String {
    let ca = tessera_tls::cert::make_ca("nats-test", 30).expect("a CA");
    let server = tessera_tls::cert::make_node(&ca, "nats", &["127.0.0.1".into()], 30)
        .expect("the server's certificate");
    let client = tessera_tls::cert::make_client(&ca, "tessera", 30).expect("a client's");
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        path.display().to_string()
    };
    let ca_file = write("ca.pem", &ca.cert);
    let cert = write("server.pem", &server.cert);
    let key = write("server.key", &server.key);
    write("client.pem", &client.cert);
    write("client.key", &client.key);
    format!(
        "tls {{\n  cert_file: \"{cert}\"\n  key_file: \"{key}\"\n  ca_file: \"{ca_file}\"\n  verify: true\n  timeout: 2\n}}\n"
    )
}

/// The parameters of a definition reading [`STREAM`] on `servers`.
pub fn docs_params(
    servers: Vec<String>,
    partitions: u32,
    credentials_file: Option<String>,
) -> tessera_sources::jetstream::JetStreamParams {
    tessera_sources::jetstream::JetStreamParams {
        servers,
        stream: STREAM.into(),
        subject_prefix: SUBJECT_PREFIX.into(),
        partitions: Some(partitions),
        credentials_file,
        tls_ca_file: None,
        tls_cert_file: None,
        tls_key_file: None,
    }
}
