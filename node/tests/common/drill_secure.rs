//! The drill harness with security on: nodes with mutual TLS (a node certificate each, from a
//! development CA made with `tessera cert`) and `--auth required`, on an etcd serving TLS with
//! client certificates required and auth enabled (the cluster's user limited to its prefix).
//! The standalone source serves mutual TLS too (it keeps no keys: only the CA's certificates
//! get in). The harness's HTTP helpers reach the nodes over TLS with the bootstrap admin key,
//! and the source with a client certificate.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::drill::Drill;
use super::{secure, tessera_ok, tls_client, Secured};
use tessera_tests::etcd::EtcdCluster;
use tessera_tests::etcd_secure::{enable_auth, EtcdTls, PrefixUser};

pub struct DrillSecurity {
    pub dir: tempfile::TempDir,
    /// The cluster CA's dir (`ca.pem`, `ca.key`).
    pub ca: PathBuf,
    pub etcd_tls: EtcdTls,
    /// The etcd client certificate of user `tessera`.
    pub etcd_client: (PathBuf, PathBuf),
    pub etcd_password: PathBuf,
    /// How the helpers reach the nodes (the key is known once the first node made it).
    pub client: Mutex<Secured>,
    /// A client certificate (`drill`) of the CA: the standalone source, serving mutual TLS,
    /// lets in only holders of the CA's certificates.
    pub client_cert: (PathBuf, PathBuf),
}

const ETCD_PASSWORD: &str = "drill-password";

fn path(p: &Path) -> String {
    p.display().to_string()
}

impl Drill {
    /// `nodes` nodes with mutual TLS and auth required, on a secured etcd.
    pub fn secured(nodes: usize, failover_delay_ms: u64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let etcd_tls = EtcdTls::make(&dir.path().join("etcd-tls"));
        let etcd = EtcdCluster::single_with_tls(etcd_tls.clone());
        let user = PrefixUser {
            name: "tessera",
            password: ETCD_PASSWORD,
            prefix: "/tessera/drill/",
        };
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(enable_auth(&etcd.endpoint(0), &etcd_tls, &[user]));
        let ca = dir.path().join("ca");
        tessera_ok(&["cert", "ca", "--out", &path(&ca)], None);
        let etcd_password = dir.path().join("etcd-password");
        std::fs::write(&etcd_password, ETCD_PASSWORD).unwrap();
        let ca_pem = std::fs::read(ca.join("ca.pem")).unwrap();
        let clients = dir.path().join("clients");
        let (ca_dir, out) = (path(&ca), path(&clients));
        tessera_ok(
            &[
                "cert", "client", "--name", "drill", "--ca", &ca_dir, "--out", &out,
            ],
            None,
        );
        let security = DrillSecurity {
            etcd_client: etcd_tls.client("tessera"),
            etcd_tls,
            etcd_password,
            client: Mutex::new(Secured {
                tls: Some(tls_client(&ca_pem, None)),
                key: None,
            }),
            client_cert: (clients.join("drill.pem"), clients.join("drill.key")),
            ca,
            dir,
        };
        let mut drill = Drill::start_secured(None, etcd, 0, failover_delay_ms, 0, Some(security));
        for _ in 0..nodes {
            drill.add_node();
        }
        drill
    }
}

impl DrillSecurity {
    /// The flags of the standalone source at `address` (TLS, the CA's client certificates
    /// required); makes its certificate, and tells the helpers to present `drill`'s.
    pub fn source_flags(&self, address: &str) -> Vec<String> {
        let tls = self.dir.path().join("source-tls");
        let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
        let (ca, out) = (path(&self.ca), path(&tls));
        let args = [
            "cert", "node", "--uuid", "source", "--host", host, "--ca", &ca, "--out", &out,
        ];
        tessera_ok(&args, None);
        let read = |p: &Path| std::fs::read(p).unwrap();
        let (cert, key) = (read(&self.client_cert.0), read(&self.client_cert.1));
        let ca_pem = read(&self.ca.join("ca.pem"));
        secure(
            address,
            Secured {
                tls: Some(tls_client(&ca_pem, Some((&cert, &key)))),
                key: None,
            },
        );
        vec![
            "--tls-cert".into(),
            path(&tls.join("node.pem")),
            "--tls-key".into(),
            path(&tls.join("node.key")),
            "--tls-client-ca".into(),
            path(&self.ca.join("ca.pem")),
        ]
    }

    /// The flags of a node with data dir `dir` at `address`; makes its certificate first, and
    /// tells the helpers how to reach it.
    pub fn node_flags(&self, dir: &Path, address: &str) -> Vec<String> {
        let tls = dir.join("tls");
        if !tls.join("node.pem").exists() {
            let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
            tessera_ok(
                &["cert", "node", "--host", host, "--ca", &path(&self.ca)],
                Some(dir),
            );
        }
        secure(address, self.client.lock().unwrap().clone());
        vec![
            "--auth".into(),
            "required".into(),
            "--tls-cert".into(),
            path(&tls.join("node.pem")),
            "--tls-key".into(),
            path(&tls.join("node.key")),
            "--tls-client-ca".into(),
            path(&self.ca.join("ca.pem")),
            "--etcd-ca".into(),
            path(&self.etcd_tls.ca),
            "--etcd-cert".into(),
            path(&self.etcd_client.0),
            "--etcd-key".into(),
            path(&self.etcd_client.1),
            "--etcd-user".into(),
            "tessera".into(),
            "--etcd-password-file".into(),
            path(&self.etcd_password),
            // The drill's NATS servers listen on loopback.
            "--dial-allow".into(),
            "127.0.0.1".into(),
        ]
    }

    /// Once a node runs: the first one made the bootstrap admin key, which the helpers use.
    pub fn after_start(&self, dir: &Path, addresses: &[String]) {
        let mut client = self.client.lock().unwrap();
        if client.key.is_none() {
            if let Ok(key) = std::fs::read_to_string(dir.join("bootstrap-admin.key")) {
                client.key = Some(key.trim().to_string());
            }
        }
        for address in addresses {
            secure(address, client.clone());
        }
    }
}
