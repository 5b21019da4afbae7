//! A secured etcd for tests: TLS on the client port with client certificates required
//! (`--client-cert-auth`), certificates from a development CA made with `tessera-tls`, and
//! etcd's auth enabled with users whose roles cover one key prefix each, as `deploy/README.md`
//! tells operators to set up.

use std::path::{Path, PathBuf};

use tessera_tls::cert;

/// The TLS files of a secured etcd and of its clients. Client certificates name etcd users
/// (etcd takes the common name as the user when a call carries no password token).
#[derive(Debug, Clone)]
pub struct EtcdTls {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// `CN=root`: sets auth up.
    pub root_cert: PathBuf,
    pub root_key: PathBuf,
}

impl EtcdTls {
    /// Makes a CA and the server's and root's certificates under `dir`.
    pub fn make(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let ca = cert::make_ca("etcd-test", 30).expect("a CA");
        let server = cert::make_node(&ca, "etcd", &["127.0.0.1".to_string()], 30).expect("server");
        let root = cert::make_client(&ca, "root", 30).expect("root's certificate");
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            path
        };
        write("ca.key", &ca.key);
        Self {
            ca: write("ca.pem", &ca.cert),
            server_cert: write("server.pem", &server.cert),
            server_key: write("server.key", &server.key),
            root_cert: write("root.pem", &root.cert),
            root_key: write("root.key", &root.key),
        }
    }

    /// A client certificate naming the etcd user `user`, written beside the others.
    pub fn client(&self, user: &str) -> (PathBuf, PathBuf) {
        let dir = self.ca.parent().expect("the CA's dir");
        let ca = cert::Pem {
            cert: std::fs::read_to_string(&self.ca).expect("CA"),
            key: std::fs::read_to_string(dir.join("ca.key")).expect("CA key"),
        };
        let pem = cert::make_client(&ca, user, 30).expect("a client certificate");
        let (c, k) = (
            dir.join(format!("{user}.pem")),
            dir.join(format!("{user}.key")),
        );
        std::fs::write(&c, pem.cert).expect("write");
        std::fs::write(&k, pem.key).expect("write");
        (c, k)
    }
}

/// A user with a password and a role of its own, allowed to read and write `prefix`.
pub struct PrefixUser<'a> {
    pub name: &'a str,
    pub password: &'a str,
    pub prefix: &'a str,
}

/// Creates `root` and `users`, then enables etcd's auth.
pub async fn enable_auth(endpoint: &str, tls: &EtcdTls, users: &[PrefixUser<'_>]) {
    let read = |p: &PathBuf| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let options = etcd_client::TlsOptions::new()
        .ca_certificate(etcd_client::Certificate::from_pem(read(&tls.ca)))
        .identity(etcd_client::Identity::from_pem(
            read(&tls.root_cert),
            read(&tls.root_key),
        ));
    let connect = etcd_client::ConnectOptions::new().with_tls(options);
    let mut client = etcd_client::Client::connect([format!("https://{endpoint}")], Some(connect))
        .await
        .expect("connect to etcd as root");
    client
        .user_add("root", "root-password", None)
        .await
        .expect("add root");
    client
        .user_grant_role("root", "root")
        .await
        .expect("root's role");
    for user in users {
        client.role_add(user.name).await.expect("add a role");
        let permission = etcd_client::Permission::read_write(user.prefix).with_prefix();
        client
            .role_grant_permission(user.name, permission)
            .await
            .expect("grant the prefix");
        client
            .user_add(user.name, user.password, None)
            .await
            .expect("add a user");
        client
            .user_grant_role(user.name, user.name)
            .await
            .expect("grant the role");
    }
    client.auth_enable().await.expect("enable auth");
}
