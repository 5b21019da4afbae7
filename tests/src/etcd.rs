//! Real etcd processes for tests: `EtcdCluster::single()` or `EtcdCluster::start(3)`.
//!
//! The binary is `$ETCD_BIN` or `etcd` on `PATH`. Each member gets free loopback ports and its
//! own data dir under a temp dir; the cluster waits until every member reports healthy, and is
//! killed on drop. Members can be killed and restarted (same ports, same data) for fault tests.
//! Short heartbeat and election timeouts keep failover and lease expiry fast.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long a member may take to become healthy.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(30);

/// The etcd binary to run, or a panic saying how to get one.
pub fn etcd_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("ETCD_BIN") {
        let path = PathBuf::from(path);
        assert!(path.is_file(), "ETCD_BIN={} is not a file", path.display());
        return path;
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("etcd"))
            .find(|candidate| candidate.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "etcd not found: tests need a real etcd (>= 3.4). Install it (`apt-get install -y etcd-server` \
             on Debian) or set ETCD_BIN to the etcd binary. Tests never skip without it."
        )
    })
}

struct Member {
    name: String,
    /// The address it listens on (`127.0.0.1`, or its host's in a network namespace).
    host: String,
    /// The network namespace it runs in, if any.
    netns: Option<String>,
    client_port: u16,
    peer_port: u16,
    /// Plain-HTTP `/health` (and metrics), so a member serving TLS can be health-checked.
    metrics_port: u16,
    data_dir: PathBuf,
    child: Option<Child>,
}

/// A running etcd cluster of one or more members.
pub struct EtcdCluster {
    dir: TempDir,
    members: Vec<Member>,
    initial_cluster: String,
    /// TLS on the client port (with client certificates required), when secured.
    tls: Option<crate::etcd_secure::EtcdTls>,
}

use crate::ports::free_port;

impl EtcdCluster {
    /// One member.
    pub fn single() -> Self {
        Self::start(1)
    }

    /// `size` members forming one cluster; returns once all are healthy.
    pub fn start(size: usize) -> Self {
        let places = vec![("127.0.0.1".to_string(), None); size];
        Self::start_at(&places, None)
    }

    /// One member serving TLS to clients that present a certificate of `tls`'s CA
    /// (`--client-cert-auth`); see [`crate::etcd_secure`] for enabling auth.
    pub fn single_with_tls(tls: crate::etcd_secure::EtcdTls) -> Self {
        Self::start_at(&[("127.0.0.1".to_string(), None)], Some(tls))
    }

    /// The TLS files, when secured.
    pub fn tls(&self) -> Option<&crate::etcd_secure::EtcdTls> {
        self.tls.as_ref()
    }

    /// One member in each of `hosts` of `net` (partition tests).
    pub fn start_in(net: &crate::netns::Net, hosts: &[usize]) -> Self {
        let places: Vec<(String, Option<String>)> = hosts
            .iter()
            .map(|&i| (net.ip(i), Some(net.ns(i))))
            .collect();
        Self::start_at(&places, None)
    }

    /// A member at each (address, network namespace).
    fn start_at(
        places: &[(String, Option<String>)],
        tls: Option<crate::etcd_secure::EtcdTls>,
    ) -> Self {
        let size = places.len();
        assert!(size >= 1, "an etcd cluster needs at least one member");
        let dir = tempfile::Builder::new()
            .prefix("tessera-etcd-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temp dir for etcd: {e}"));
        let members: Vec<Member> = (0..size)
            .map(|i| Member {
                name: format!("m{i}"),
                host: places[i].0.clone(),
                netns: places[i].1.clone(),
                client_port: free_port(),
                peer_port: free_port(),
                metrics_port: free_port(),
                data_dir: dir.path().join(format!("m{i}")),
                child: None,
            })
            .collect();
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}=http://{}:{}", m.name, m.host, m.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = Self {
            dir,
            members,
            initial_cluster,
            tls,
        };
        for i in 0..size {
            cluster.spawn(i);
        }
        for i in 0..size {
            cluster.wait_healthy(i);
        }
        cluster
    }

    fn spawn(&mut self, i: usize) {
        let binary = etcd_binary();
        let initial_cluster = self.initial_cluster.clone();
        let m = &mut self.members[i];
        let (log, log2) = crate::child::log_files(&self.dir.path().join(format!("{}.log", m.name)));
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let client = format!("{scheme}://{}:{}", m.host, m.client_port);
        let metrics = format!("http://{}:{}", m.host, m.metrics_port);
        let peer = format!("http://{}:{}", m.host, m.peer_port);
        let mut command = match &m.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&binary);
                c
            }
            None => Command::new(&binary),
        };
        if let Some(tls) = &self.tls {
            command
                .arg("--cert-file")
                .arg(&tls.server_cert)
                .arg("--key-file")
                .arg(&tls.server_key)
                .arg("--trusted-ca-file")
                .arg(&tls.ca)
                .arg("--client-cert-auth");
        }
        let child = command
            .args(["--listen-metrics-urls", &metrics])
            .arg("--name")
            .arg(&m.name)
            .arg("--data-dir")
            .arg(&m.data_dir)
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &initial_cluster])
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", "tessera-test"])
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            // As etcd 3.5 does by default: a member cut off and back does not call an election
            // that stalls the cluster it rejoins (deploy/README.md asks the same of production).
            .arg("--pre-vote")
            .args(["--logger", "zap", "--log-level", "warn"])
            .env("ETCD_UNSUPPORTED_ARCH", std::env::consts::ARCH)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        m.child = Some(child);
    }

    /// Polls the member's `/health` until it answers healthy, or panics with its log tail.
    fn wait_healthy(&mut self, i: usize) {
        let deadline = Instant::now() + HEALTH_TIMEOUT;
        loop {
            if health_ok(&self.members[i].host, self.members[i].metrics_port) {
                return;
            }
            if let Some(child) = self.members[i].child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "etcd member {} exited ({status}) before becoming healthy; log:\n{}",
                        self.members[i].name,
                        self.log_tail(i)
                    );
                }
            }
            if Instant::now() >= deadline {
                panic!(
                    "etcd member {} not healthy after {HEALTH_TIMEOUT:?}; log:\n{}",
                    self.members[i].name,
                    self.log_tail(i)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_tail(&self, i: usize) -> String {
        let path = self
            .dir
            .path()
            .join(format!("{}.log", self.members[i].name));
        crate::child::tail(&path, 30)
    }

    /// `HOST:PORT` of every member.
    pub fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| format!("{}:{}", m.host, m.client_port))
            .collect()
    }

    /// The endpoint of member `i`.
    pub fn endpoint(&self, i: usize) -> String {
        format!("{}:{}", self.members[i].host, self.members[i].client_port)
    }

    /// A `--cfg` spec for this cluster: `etcd://h:p,h:p/CLUSTER` (`etcds://` when secured).
    pub fn cfg_spec(&self, cluster: &str) -> String {
        let scheme = if self.tls.is_some() { "etcds" } else { "etcd" };
        format!("{scheme}://{}/{cluster}", self.endpoints().join(","))
    }

    /// Kills member `i` with SIGKILL (no clean shutdown) and waits for it to exit.
    pub fn kill(&mut self, i: usize) {
        crate::child::kill(&mut self.members[i].child);
    }

    /// Starts member `i` again on its ports and data, and waits until it is healthy.
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        self.spawn(i);
        self.wait_healthy(i);
    }

    /// The member that is the raft leader now, as the running members say (etcd's
    /// `/v3/maintenance/status`: a member's id and the leader's id); `None` while they do not
    /// agree on one.
    pub fn leader(&mut self) -> Option<usize> {
        let mut leader_id = None;
        let mut ids = Vec::new();
        for i in 0..self.members.len() {
            if !self.is_running(i) {
                continue;
            }
            let status = maintenance_status(&self.members[i].host, self.members[i].client_port)?;
            let id = status["header"]["member_id"].as_str()?.to_string();
            let leader = status["leader"].as_str()?.to_string();
            if leader_id.get_or_insert_with(|| leader.clone()) != &leader {
                return None;
            }
            ids.push((i, id));
        }
        let leader_id = leader_id?;
        ids.into_iter()
            .find(|(_, id)| *id == leader_id)
            .map(|(i, _)| i)
    }

    /// Whether member `i` is running.
    pub fn is_running(&mut self, i: usize) -> bool {
        self.members[i]
            .child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The temp dir holding data dirs and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

/// One blocking `GET /health`; true when etcd answers `"health":"true"`.
fn health_ok(host: &str, port: u16) -> bool {
    crate::child::http(host, port, "/health", None)
        .is_some_and(|a| a.contains("\"health\":\"true\""))
}

/// One blocking `POST /v3/maintenance/status` (etcd's JSON gateway).
fn maintenance_status(host: &str, port: u16) -> Option<serde_json::Value> {
    let answer = crate::child::http(host, port, "/v3/maintenance/status", Some("{}"))?;
    let body = answer.split("\r\n\r\n").nth(1)?;
    serde_json::from_str(body).ok()
}
