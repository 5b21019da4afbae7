//! TLS on the node's one port. [`ServerTls`] builds the rustls configuration from the
//! certificate, key and client CA files and builds it again when their contents change, so a
//! rotated certificate serves new connections without a restart while connections already
//! open finish on the old one. [`TlsListener`] hands axum connections whose handshake is done
//! (each handshake runs in its own task, bounded in time, so a slow client holds up no one),
//! and [`ClientCert`] is what a connection's verified client certificate names.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::PrivateKeyDer;
use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;

use crate::identity::{name_of, CertName};
use crate::TlsError;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The files the server's TLS comes from.
#[derive(Debug, Clone)]
pub struct ServerFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Client certificates signed by this CA are verified (mutual TLS).
    pub client_ca: Option<PathBuf>,
    /// Refuse connections without a client certificate (else they may prove who they are by
    /// API key).
    pub require_client_cert: bool,
}

/// The server configuration, current with its files; clones share it.
#[derive(Clone)]
pub struct ServerTls {
    files: Arc<ServerFiles>,
    current: Arc<RwLock<Arc<ServerConfig>>>,
    /// The files' contents the current configuration was built from.
    built_from: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl ServerTls {
    /// Reads the files; an error names the file at fault.
    pub fn load(files: ServerFiles) -> Result<Self, TlsError> {
        let contents = read_all(&files)?;
        let config = build(&files, &contents)?;
        Ok(Self {
            files: Arc::new(files),
            current: Arc::new(RwLock::new(Arc::new(config))),
            built_from: Arc::new(Mutex::new(contents)),
        })
    }

    /// The configuration new connections get.
    pub fn config(&self) -> Arc<ServerConfig> {
        match self.current.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Builds the configuration again when the files' contents changed: `Ok(true)` when it
    /// did. Files that do not make a configuration (one written, the other not yet) keep the
    /// current one and are tried again on the next call.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let contents = read_all(&self.files)?;
        let mut built_from = self.built_from.lock().map_err(|_| TlsError::Poisoned)?;
        if *built_from == contents {
            return Ok(false);
        }
        let config = build(&self.files, &contents)?;
        if let Ok(mut current) = self.current.write() {
            *current = Arc::new(config);
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
            let mut failing = false;
            loop {
                tokio::time::sleep(every).await;
                match tls.reload_if_changed() {
                    Ok(true) => {
                        failing = false;
                        tracing::info!(cert = %tls.files.cert.display(), "TLS certificate reloaded");
                        changed();
                    }
                    Ok(false) => failing = false,
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!(error = %e, "TLS files changed but do not load; serving the previous certificate");
                    }
                    Err(_) => {}
                }
            }
        })
    }
}

fn read_all(files: &ServerFiles) -> Result<Vec<Vec<u8>>, TlsError> {
    let read = |path: &PathBuf| {
        std::fs::read(path).map_err(|e| TlsError::File(path.display().to_string(), e.to_string()))
    };
    let mut contents = vec![read(&files.cert)?, read(&files.key)?];
    if let Some(ca) = &files.client_ca {
        contents.push(read(ca)?);
    }
    Ok(contents)
}

fn build(files: &ServerFiles, contents: &[Vec<u8>]) -> Result<ServerConfig, TlsError> {
    let bad = |path: &PathBuf, e: &dyn std::fmt::Display| {
        TlsError::File(path.display().to_string(), e.to_string())
    };
    let certs = crate::certs_of(&contents[0]).map_err(|e| bad(&files.cert, &e))?;
    let key = PrivateKeyDer::from_pem_slice(&contents[1]).map_err(|e| bad(&files.key, &e))?;
    let provider = crate::provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match (&files.client_ca, contents.get(2)) {
        (Some(path), Some(pem)) => {
            let roots = crate::roots_of(pem).map_err(|e| bad(path, &e))?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if files.require_client_cert {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            let verifier = verifier.build().map_err(|e| bad(path, &e))?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| bad(&files.cert, &e))?;
    // gRPC clients insist on h2; browsers and curl may speak either.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Connections with their handshake done, for `axum::serve`.
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

/// What a connection's client certificate (verified against the client CA) names; the
/// request's `ConnectInfo`.
#[derive(Debug, Clone, Default)]
pub struct ClientCert {
    /// The node uuid of a node certificate.
    pub node: Option<String>,
    /// The name of a client certificate.
    pub client: Option<String>,
}

impl Connected<IncomingStream<'_, TlsListener>> for ClientCert {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        let (_, session) = stream.io().get_ref();
        let leaf = session
            .peer_certificates()
            .and_then(|certs| certs.first())
            .map(|der| name_of(der.as_ref()));
        match leaf {
            Some(CertName::Node(uuid)) => Self {
                node: Some(uuid),
                client: None,
            },
            Some(CertName::Client(name)) => Self {
                node: None,
                client: Some(name),
            },
            _ => Self::default(),
        }
    }
}
