//! TLS on the node's one port. [`ServerTls`] builds the rustls configuration from the
//! certificate, key, client CA, node CA and revocation list files and builds it again when
//! their contents change, so a rotated certificate or a new CRL serves new connections without
//! a restart while connections already open finish on the old one. A reloaded certificate that
//! names another node than the one serving is refused (the last good one stays): a node must
//! never present a peer's identity. [`TlsListener`] hands axum connections whose handshake is
//! done (each handshake runs in its own task, bounded in time, so a slow client holds up no
//! one); the node's own port uses [`crate::port`] instead, which also bounds connections.
//! [`ClientCert`] is what a connection's verified client certificate names.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;

use crate::identity::{leaf_name, name_of, CertName};
use crate::TlsError;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The files the server's TLS comes from.
#[derive(Debug, Clone, Default)]
pub struct ServerFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Client certificates signed by this CA are verified (mutual TLS).
    pub client_ca: Option<PathBuf>,
    /// When given, only certificates of this CA can be node identities (those of
    /// `client_ca` are clients only); both are trusted in the handshake.
    pub node_ca: Option<PathBuf>,
    /// PEM certificate revocation lists: a client certificate they revoke is refused.
    pub crl: Option<PathBuf>,
    /// The node uuid `cert` must name; a reloaded certificate naming another is refused.
    pub own_node: Option<String>,
    /// Refuse connections without a client certificate (else they may prove who they are by
    /// API key).
    pub require_client_cert: bool,
}

/// One configuration built from the files, with what verifies client certificates.
pub(crate) struct Built {
    /// Counts the configurations built; a connection's verdict holds for one generation.
    pub(crate) generation: u64,
    pub(crate) config: Arc<ServerConfig>,
    /// The handshake's verifier (every trusted CA, the CRLs); `None` without client auth.
    pub(crate) clients: Option<Arc<dyn ClientCertVerifier>>,
    /// The node CA's verifier, when node and client CAs differ.
    pub(crate) nodes: Option<Arc<dyn ClientCertVerifier>>,
}

/// The server configuration, current with its files; clones share it.
#[derive(Clone)]
pub struct ServerTls {
    files: Arc<ServerFiles>,
    current: Arc<RwLock<Arc<Built>>>,
    generations: Arc<AtomicU64>,
    /// The files' contents the current configuration was built from.
    built_from: Arc<Mutex<Contents>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Contents {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
    node_ca: Option<Vec<u8>>,
    crl: Option<Vec<u8>>,
}

impl ServerTls {
    /// Reads the files; an error names the file at fault.
    pub fn load(files: ServerFiles) -> Result<Self, TlsError> {
        let contents = read_all(&files)?;
        let built = build(&files, &contents, 0)?;
        Ok(Self {
            files: Arc::new(files),
            current: Arc::new(RwLock::new(Arc::new(built))),
            generations: Arc::new(AtomicU64::new(0)),
            built_from: Arc::new(Mutex::new(contents)),
        })
    }

    /// The configuration new connections get.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.built().config.clone()
    }

    pub(crate) fn built(&self) -> Arc<Built> {
        match self.current.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Builds the configuration again when the files' contents changed: `Ok(true)` when it
    /// did. Files that do not make a configuration (one written, the other not yet; a
    /// certificate naming another node) keep the current one and are tried again on the next
    /// call.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let contents = read_all(&self.files)?;
        let mut built_from = self.built_from.lock().map_err(|_| TlsError::Poisoned)?;
        if *built_from == contents {
            return Ok(false);
        }
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        let built = build(&self.files, &contents, generation)?;
        if let Ok(mut current) = self.current.write() {
            *current = Arc::new(built);
        }
        *built_from = contents;
        Ok(true)
    }

    /// Checks the files every `every`, and calls `changed` after each reload (the node
    /// re-dials its peers with its new certificate).
    pub fn watch(
        &self,
        every: Duration,
        changed: impl Fn() + Send + Sync + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let tls = self.clone();
        tokio::spawn(async move {
            let mut failing: Option<String> = None;
            loop {
                tokio::time::sleep(every).await;
                match tls.reload_if_changed() {
                    Ok(true) => {
                        failing = None;
                        tracing::info!(cert = %tls.files.cert.display(), "TLS certificate reloaded");
                        changed();
                    }
                    Ok(false) => failing = None,
                    Err(e) if failing.as_deref() != Some(&e.to_string()) => {
                        tracing::warn!(error = %e, "TLS files changed but do not load; serving the previous certificate");
                        failing = Some(e.to_string());
                    }
                    Err(_) => {}
                }
            }
        })
    }
}

fn read_all(files: &ServerFiles) -> Result<Contents, TlsError> {
    let read = |path: &PathBuf| {
        std::fs::read(path).map_err(|e| TlsError::File(path.display().to_string(), e.to_string()))
    };
    let optional = |path: &Option<PathBuf>| path.as_ref().map(read).transpose();
    Ok(Contents {
        cert: read(&files.cert)?,
        key: read(&files.key)?,
        client_ca: optional(&files.client_ca)?,
        node_ca: optional(&files.node_ca)?,
        crl: optional(&files.crl)?,
    })
}

fn bad(path: &Option<PathBuf>, e: &dyn std::fmt::Display) -> TlsError {
    let name = path
        .as_ref()
        .map_or_else(String::new, |p| p.display().to_string());
    TlsError::File(name, e.to_string())
}

fn build(files: &ServerFiles, contents: &Contents, generation: u64) -> Result<Built, TlsError> {
    let cert_path = Some(files.cert.clone());
    let certs = crate::certs_of(&contents.cert).map_err(|e| bad(&cert_path, &e))?;
    if let Some(uuid) = &files.own_node {
        let named = leaf_name(&contents.cert);
        if named != Some(CertName::Node(uuid.clone())) {
            return Err(bad(
                &cert_path,
                &format!("names {named:?}, not this node ({uuid}); refused"),
            ));
        }
    }
    let key = PrivateKeyDer::from_pem_slice(&contents.key)
        .map_err(|e| bad(&Some(files.key.clone()), &e))?;
    let provider = crate::provider();
    let crls = match &contents.crl {
        Some(pem) => CertificateRevocationListDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(&files.crl, &e))?,
        None => Vec::new(),
    };
    let verifier = |pem: &[u8], path: &Option<PathBuf>, anonymous: bool| {
        let roots = crate::roots_of(pem).map_err(|e| bad(path, &e))?;
        verifier_of(roots, &crls, anonymous, &provider).map_err(|e| bad(path, &e))
    };
    // The handshake trusts both CAs; which one signed a certificate decides below whether it
    // can be a node.
    let handshake_roots = match (&contents.client_ca, &contents.node_ca) {
        (None, None) => None,
        (one, other) => {
            let mut pem = one.clone().unwrap_or_default();
            pem.push(b'\n');
            pem.extend_from_slice(other.as_deref().unwrap_or_default());
            Some(pem)
        }
    };
    let ca_path = files.client_ca.clone().or(files.node_ca.clone());
    let clients = handshake_roots
        .map(|pem| verifier(&pem, &ca_path, !files.require_client_cert))
        .transpose()?;
    let nodes = contents
        .node_ca
        .as_ref()
        .map(|pem| verifier(pem, &files.node_ca, false))
        .transpose()?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match &clients {
        Some(verifier) => builder.with_client_cert_verifier(verifier.clone()),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| bad(&cert_path, &e))?;
    // gRPC clients insist on h2; browsers and curl may speak either.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Built {
        generation,
        config: Arc::new(config),
        clients,
        nodes,
    })
}

/// A verifier of certificates chaining to `roots`, refusing what `crls` revoke. A list covers
/// the certificates of the CA that issued it: a certificate of a CA no list covers is not
/// refused for it (`allow_unknown_revocation_status`), so one file may hold the lists of some
/// CAs only.
fn verifier_of(
    roots: rustls::RootCertStore,
    crls: &[CertificateRevocationListDer<'static>],
    anonymous: bool,
    provider: &Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, rustls::server::VerifierBuilderError> {
    let mut builder =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
    if !crls.is_empty() {
        builder = builder
            .with_crls(crls.iter().cloned())
            .only_check_end_entity_revocation()
            .allow_unknown_revocation_status();
    }
    if anonymous {
        builder = builder.allow_unauthenticated();
    }
    builder.build()
}

/// Connections with their handshake done, for `axum::serve` (the standalone source).
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    accepting: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    pub fn new(tcp: TcpListener, tls: ServerTls) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let (send, ready) = mpsc::channel(256);
        let accepting = tokio::spawn(accept_loop(tcp, tls, send));
        Ok(Self {
            ready,
            local,
            accepting,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

async fn accept_loop(
    tcp: TcpListener,
    tls: ServerTls,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    loop {
        let (stream, peer) = match tcp.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, say: wait rather than spin.
                tracing::debug!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.config());
        let ready = ready.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => {
                    let _ = ready.send((stream, peer)).await;
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accepting task only ends when this listener drops.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// What a connection's client certificate (verified against the client CA) names, and where
/// the connection comes from; the request's `ConnectInfo`.
#[derive(Debug, Clone, Default)]
pub struct ClientCert {
    /// The node uuid of a node certificate: of the node CA (when it differs from the client
    /// CA), not revoked, naming a node the cluster defines now.
    pub node: Option<String>,
    /// The name of a client certificate.
    pub client: Option<String>,
    /// The peer's address.
    pub address: Option<SocketAddr>,
}

impl ClientCert {
    pub(crate) fn of_name(name: Option<CertName>, address: Option<SocketAddr>) -> Self {
        match name {
            Some(CertName::Node(uuid)) => Self {
                node: Some(uuid),
                client: None,
                address,
            },
            Some(CertName::Client(name)) => Self {
                node: None,
                client: Some(name),
                address,
            },
            _ => Self {
                address,
                ..Self::default()
            },
        }
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for ClientCert {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        let (_, session) = stream.io().get_ref();
        let leaf = session
            .peer_certificates()
            .and_then(|certs| certs.first())
            .map(|der| name_of(der.as_ref()));
        Self::of_name(leaf, Some(*stream.remote_addr()))
    }
}
