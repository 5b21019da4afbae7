//! How a node guards its port (`--auth`, the audit log) and proves itself to its peers: the
//! rules are `tessera-auth`'s and the guard `tessera-api`'s; this module makes the keys a
//! node needs at start and writes the secrets it must hand over to files only its user reads.
//!
//! - The mode: `--auth required|off`; without the flag a loopback bind runs off (the README's
//!   one-command start) and any other bind refuses to start.
//! - The node's own key (role `node`), kept in `<data-dir>/node-api-key`: its peers' guards
//!   let it call the nodes' services. Made again when its record is gone or revoked.
//! - The bootstrap admin key (`bootstrap.rs`): made by the node that creates the cluster, or
//!   asked for with `--bootstrap-admin`; it expires.
//! - The audit log's writer (`tessera_auth::audit::writer`): one thread, a bounded queue.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Args;
use tessera_api::access::{Access, AuthMode, KeyRing};
use tessera_auth::audit::{writer, AuditLog};
use tessera_auth::key::{self, KeyRecord};
use tessera_auth::Role;
use tessera_cfg::Cfg;

use crate::exit::{Exit, INVALID};

const NODE_KEY_FILE: &str = "node-api-key";
pub(crate) const BOOTSTRAP_FILE: &str = "bootstrap-admin.key";

/// The node's security flags.
#[derive(Args, Clone, Debug)]
pub struct SecurityArgs {
    /// `required`: every call but `/api/ping` proves who makes it (an API key, or a node's own
    /// key or certificate). `off`: whoever reaches the port may do anything; the default on a
    /// loopback bind, and refused elsewhere unless given explicitly.
    #[arg(long, env = "TESSERA_AUTH", value_enum)]
    pub auth: Option<AuthFlag>,
    /// Bytes the audit log (`<data-dir>/audit/audit.log`) grows to before it is rotated
    /// (five old files are kept).
    #[arg(long, default_value_t = 64 << 20)]
    pub audit_max_bytes: u64,
    /// The audit log's summary window (`60s`, `5m`): past 10 denials of one client address in
    /// a window the rest are counted into one line (event 20003), and node identities' calls
    /// are written as one count per peer and method (event 20601).
    #[arg(long, default_value = "60s", value_parser = duration_ms)]
    pub audit_window: u64,
    /// Make a bootstrap admin key (`<data-dir>/bootstrap-admin.key`) at start when the cluster
    /// has no usable admin key. Without it, only the node that creates the cluster makes one.
    #[arg(long)]
    pub bootstrap_admin: bool,
    /// How long a bootstrap admin key works (`24h`, `30m`, `7d`).
    #[arg(long, default_value = "24h", value_parser = duration_ms)]
    pub bootstrap_admin_expires: u64,
    /// Serve TLS with this certificate (PEM, chain first to last); re-read when it changes.
    #[arg(long, env = "TESSERA_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of `--tls-cert` (PEM); re-read when it changes.
    #[arg(long, env = "TESSERA_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Mutual TLS: verify client certificates signed by this CA (PEM). A node certificate of
    /// it (`OU=tessera-node`, `CN=<uuid>`) is how nodes prove themselves to each other; this
    /// node presents its own `--tls-cert` when it calls its peers.
    #[arg(long, env = "TESSERA_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// Refuse connections without a client certificate (without it, clients may come with an
    /// API key instead).
    #[arg(long, requires = "tls_client_ca")]
    pub tls_require_client_cert: bool,
    /// What index definitions may make this node dial besides the cluster's nodes: `HOST`,
    /// `HOST:PORT` or `*` (repeatable or comma-separated). Given, or with `--auth required`,
    /// a source at any other address is refused; otherwise nothing is restricted.
    #[arg(long = "dial-allow", env = "TESSERA_DIAL_ALLOW", value_delimiter = ',')]
    pub dial_allow: Vec<String>,
    /// The directory files named by definitions and repositories (NATS credentials and TLS
    /// files, backup credentials and passphrases) must be under. Without it, such files are
    /// refused when auth is required and allowed anywhere when it is off; the node's own TLS
    /// and key files are refused always.
    #[arg(long, env = "TESSERA_SECRETS_DIR")]
    pub secrets_dir: Option<PathBuf>,
    /// The CA this node verifies its peers' certificates with (default: `--tls-node-ca`, else
    /// `--tls-client-ca`).
    #[arg(long, env = "TESSERA_TLS_PEER_CA", requires = "tls_cert")]
    pub tls_peer_ca: Option<PathBuf>,
    /// The CA of node certificates (PEM), when it is not the client CA: only its certificates
    /// can be node identities, and those of `--tls-client-ca` are clients only. Re-read when it
    /// changes.
    #[arg(long, env = "TESSERA_TLS_NODE_CA", requires = "tls_cert")]
    pub tls_node_ca: Option<PathBuf>,
    /// Certificate revocation lists (PEM, one or more): client and node certificates they
    /// revoke are refused. Re-read when the file changes, like the certificates.
    #[arg(long, env = "TESSERA_TLS_CRL", requires = "tls_cert")]
    pub tls_crl: Option<PathBuf>,
    /// Start even though secrets would cross the network in clear: `--auth required` on a
    /// non-loopback address without TLS (API keys), `--etcd-user` over `etcd://` (the password).
    #[arg(long, env = "TESSERA_INSECURE_TRANSPORT")]
    pub insecure_transport: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthFlag {
    Required,
    Off,
}

/// The node's TLS, when `--tls-cert` is given: the server side (reloaded from its files), and
/// whether peers know this node by its certificate.
pub struct NodeTls {
    pub server: tessera_tls::ServerTls,
    pub peer_ca: PathBuf,
    /// Mutual TLS: this node presents its certificate to its peers.
    pub mutual: bool,
}

impl NodeTls {
    /// Reads the TLS files; with mutual TLS the node's certificate must name `node_uuid`.
    pub fn load(args: &SecurityArgs, node_uuid: &str) -> Result<Option<Self>, Exit> {
        let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) else {
            return Ok(None);
        };
        let invalid = |e: &dyn std::fmt::Display| Exit::new(INVALID, format!("TLS: {e}"));
        let mutual = args.tls_client_ca.is_some() || args.tls_node_ca.is_some();
        if mutual {
            let pem = std::fs::read(cert).map_err(|e| invalid(&e))?;
            let named = tessera_tls::identity::leaf_name(&pem);
            if named != Some(tessera_tls::identity::CertName::Node(node_uuid.to_string())) {
                return Err(invalid(&format!(
                    "{} names {named:?}, not this node ({node_uuid}); make its certificate with `tessera --data-dir DIR cert node`",
                    cert.display()
                )));
            }
        }
        let server = tessera_tls::ServerTls::load(tessera_tls::ServerFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: args.tls_client_ca.clone(),
            node_ca: args.tls_node_ca.clone(),
            crl: args.tls_crl.clone(),
            // A reloaded certificate naming another node is refused (the last good one stays).
            own_node: mutual.then(|| node_uuid.to_string()),
            require_client_cert: args.tls_require_client_cert,
        })
        .map_err(|e| invalid(&e))?;
        let peer_ca = args.tls_peer_ca.clone().or(args.tls_node_ca.clone());
        let Some(peer_ca) = peer_ca.or(args.tls_client_ca.clone()) else {
            return Err(invalid(
                &"nodes verify each other's certificates: give --tls-client-ca (mutual TLS) or --tls-peer-ca",
            ));
        };
        Ok(Some(Self {
            server,
            peer_ca,
            mutual,
        }))
    }

    /// The TLS this node dials its peers with (its certificate as read now).
    pub fn peer_config(
        &self,
        args: &SecurityArgs,
    ) -> anyhow::Result<tessera_tls::client::ClientTlsConfig> {
        Self::peer_config_of(args, &self.peer_ca, self.mutual)
    }

    /// [`Self::peer_config`] from the flags alone (for the reload callback).
    pub fn peer_config_of(
        args: &SecurityArgs,
        peer_ca: &Path,
        mutual: bool,
    ) -> anyhow::Result<tessera_tls::client::ClientTlsConfig> {
        let read = |p: &Path| std::fs::read(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()));
        let ca = read(peer_ca)?;
        let own = match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) if mutual => Some((read(cert)?, read(key)?)),
            _ => None,
        };
        let presented = own
            .as_ref()
            .map(|(cert, key)| tessera_tls::client::Presented { cert, key });
        Ok(tessera_tls::client::tonic_config(&ca, presented))
    }
}

/// The mode for a node bound at `bound`, or why it must not start.
pub fn mode(args: &SecurityArgs, bound: SocketAddr) -> Result<AuthMode, Exit> {
    match args.auth {
        Some(AuthFlag::Required) => Ok(AuthMode::Required),
        Some(AuthFlag::Off) => {
            if !bound.ip().is_loopback() {
                tracing::warn!(
                    address = %bound,
                    "auth is off on a port others can reach: anyone who reaches it may read, change or delete everything"
                );
            }
            Ok(AuthMode::Off)
        }
        None if bound.ip().is_loopback() => Ok(AuthMode::Off),
        None => Err(Exit::new(
            INVALID,
            format!(
                "{bound} is reachable from other hosts: start with --auth required (see README \"Security\"), or with --auth off to accept that anyone reaching it may do anything"
            ),
        )),
    }
}

/// Refuses to start where secrets would cross the network in clear, unless
/// `--insecure-transport` accepts it: API keys to a non-loopback port without TLS under
/// `--auth required`, an etcd user's password over `etcd://` to a non-loopback member.
pub fn transport(
    args: &SecurityArgs,
    mode: AuthMode,
    bound: SocketAddr,
    cfg: &tessera_cfg::CfgSpec,
) -> Result<(), Exit> {
    if args.insecure_transport {
        return Ok(());
    }
    if mode == AuthMode::Required && args.tls_cert.is_none() && !bound.ip().is_loopback() {
        return Err(Exit::new(
            INVALID,
            format!(
                "--auth required on {bound} without TLS sends API keys in clear: give --tls-cert and --tls-key (see README \"TLS\"), or --insecure-transport to accept it"
            ),
        ));
    }
    if let tessera_cfg::CfgSpec::Etcd {
        endpoints,
        tls: false,
        access,
        ..
    } = cfg
    {
        let remote = endpoints.iter().any(|e| !is_loopback_host(e));
        if access.user.is_some() && remote {
            return Err(Exit::new(
                INVALID,
                "--etcd-user over etcd:// sends the etcd password in clear: use etcds:// with --etcd-ca, or --insecure-transport to accept it".to_string(),
            ));
        }
    }
    Ok(())
}

/// Whether `host:port` (or a bare host) names this machine only.
fn is_loopback_host(endpoint: &str) -> bool {
    let host = endpoint
        .rsplit_once(':')
        .map_or(endpoint, |(host, _)| host)
        .trim_start_matches('[')
        .trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// What requests, definitions and snapshots may make this node dial (see
/// `tessera_auth::egress`).
pub fn dial_policy(
    args: &SecurityArgs,
    mode: AuthMode,
) -> Result<tessera_sources::DialPolicy, Exit> {
    if mode == AuthMode::Off && args.dial_allow.is_empty() {
        return Ok(tessera_sources::DialPolicy::default());
    }
    tessera_sources::DialPolicy::restricted(&args.dial_allow)
        .map_err(|e| Exit::new(INVALID, e.to_string()))
}

/// Which files requests and definitions may make this node read (see
/// `tessera_auth::egress`): under `--secrets-dir`; none with auth required and no such
/// directory; any otherwise. Never the node's own secrets.
pub fn path_policy(
    args: &SecurityArgs,
    mode: AuthMode,
    data_dir: &Path,
    etcd: &crate::cli::EtcdArgs,
) -> tessera_sources::PathPolicy {
    use tessera_sources::PathPolicy;
    let policy = match (&args.secrets_dir, mode) {
        (Some(dir), _) => PathPolicy::confined(dir.clone()),
        (None, AuthMode::Required) => PathPolicy::refuse_all(),
        (None, AuthMode::Off) => PathPolicy::open(),
    };
    // The data dir holds the node's keys, its Cfg and its data; the etcd files its access.
    let own = [
        args.tls_key.clone(),
        args.tls_cert.clone(),
        Some(data_dir.to_path_buf()),
        etcd.etcd_key.clone(),
        etcd.etcd_cert.clone(),
        etcd.etcd_password_file.clone(),
    ];
    own.into_iter()
        .flatten()
        .fold(policy, |policy, path| policy.deny(&path))
}

/// The guard's state for `mode`: the key mirror when auth is required, and the audit log
/// (always: state changes are audited with auth off too, as anonymous).
pub fn access(
    cfg: &Cfg,
    data_dir: &Path,
    mode: AuthMode,
    args: &SecurityArgs,
) -> anyhow::Result<Access> {
    let dir = data_dir.join("audit");
    let log = AuditLog::open(&dir, args.audit_max_bytes, 5)
        .map_err(|e| anyhow::anyhow!("cannot open the audit log in {}: {e}", dir.display()))?;
    // The writer thread ends with the process (its last window's summaries with it).
    let (sink, _writer) = writer::AuditSink::start(log, writer::QUEUE, args.audit_window)
        .map_err(|e| anyhow::anyhow!("cannot start the audit log's writer: {e}"))?;
    Ok(Access {
        mode,
        keys: (mode == AuthMode::Required).then(|| KeyRing::start(cfg.clone())),
        audit: Some(sink),
    })
}

/// The node's own API key (role `node`), reused across restarts while its record stands.
pub async fn node_key(cfg: &Cfg, data_dir: &Path, node_uuid: &str) -> anyhow::Result<String> {
    let file = data_dir.join(NODE_KEY_FILE);
    if let Ok(text) = std::fs::read_to_string(&file) {
        let token = text.trim().to_string();
        if let Ok(id) = key::id_of(&token) {
            if let Some(record) = cfg.api_key(id).await? {
                if key::check(&record.value, &token, tessera_cfg::unix_ms()).is_ok() {
                    return Ok(token);
                }
            }
        }
        tracing::info!(file = %file.display(), "the node's API key is gone or revoked; making another");
    }
    let name = format!("node-{node_uuid}");
    let (token, record) = made(&name, &[Role::Node])?;
    cfg.put_api_key(&record, 0).await?;
    crate::files::replace(&file, &format!("{token}\n"), 0o600)?;
    Ok(token)
}

/// `30s`, `24h`, `7d` as milliseconds (a flag's value).
fn duration_ms(text: &str) -> Result<u64, String> {
    key::parse_duration_ms(text)
        .ok_or_else(|| format!("`{text}`: a duration such as 60s, 30m, 24h, 7d"))
}

fn made(name: &str, roles: &[Role]) -> anyhow::Result<(String, KeyRecord)> {
    Ok(key::make(name, roles, tessera_cfg::unix_ms(), None)?)
}
