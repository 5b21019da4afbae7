//! The node's one port, REST and gRPC, plain or TLS, with what keeps connections from
//! exhausting it: `axum::serve` accepts without bound and serves hyper without a timer (so no
//! request head has a deadline), and TLS handshakes queue without bound, so idle or slow
//! connections could use up a node's file descriptors and lock its peers out. Here:
//!
//! - **Slots** ([`slots`]): a total, a share reserved for the addresses of the cluster's nodes
//!   (so clients cannot starve peer calls), and a cap per client address. Counted at accept,
//!   before a byte is read; a connection over a limit is closed at once.
//! - **Handshakes**: at most `max_handshakes` TLS handshakes of clients at once (past it a new
//!   connection is closed), each within the header-read time.
//! - **Time** ([`conn`]): an HTTP/1 request head within `header_read_timeout` (hyper's timer),
//!   the first request of any connection within it too, and a client connection without a
//!   request in flight closed after `idle_timeout`.
//!
//! Every request carries `ConnectInfo<ClientCert>` (who its certificate names now, pinned to
//! the defined nodes by [`NodeDirectory`]) and `ConnectInfo<SocketAddr>`.

mod conn;
pub mod slots;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use crate::directory::{canonical, NodeDirectory};
use crate::presented::Presented;
use crate::server::ServerTls;
use conn::{Timeouts, Who};
use slots::{Refused, SlotLimits, Slots};

/// The port's bounds (the node's `--max-connections` and friends).
#[derive(Debug, Clone, Copy)]
pub struct PortLimits {
    pub max_connections: usize,
    /// Of `max_connections`, kept for connections from the cluster's nodes' addresses.
    pub reserved_for_nodes: usize,
    pub max_per_client: usize,
    /// TLS handshakes of clients in progress at once.
    pub max_handshakes: usize,
    /// A TLS handshake, an HTTP/1 request head, and any connection's first request.
    pub header_read_timeout: Duration,
    /// A client connection without a request in flight.
    pub idle_timeout: Duration,
}

impl Default for PortLimits {
    fn default() -> Self {
        Self {
            max_connections: 16384,
            reserved_for_nodes: 8192,
            max_per_client: 256,
            max_handshakes: 128,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// How the port serves: TLS or not, the nodes it knows, its bounds.
#[derive(Clone)]
pub struct Port {
    pub tls: Option<ServerTls>,
    pub directory: NodeDirectory,
    pub limits: PortLimits,
}

/// Serves `app` on `tcp` until `shutdown` completes, then stops accepting and waits for the
/// connections to finish their requests.
pub async fn serve(
    tcp: TcpListener,
    port: Port,
    app: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let limits = port.limits;
    let slots = Slots::new(SlotLimits {
        total: limits.max_connections,
        reserved_for_nodes: limits.reserved_for_nodes.min(limits.max_connections),
        per_client: limits.max_per_client,
    });
    let handshakes = Arc::new(Semaphore::new(limits.max_handshakes.max(1)));
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    // No HTTP/2 pings from the server: a peer starved of CPU for a while must not lose its
    // streams for a late answer; idle client connections are closed by the watchdog instead.
    builder
        .http2()
        .timer(TokioTimer::new())
        .enable_connect_protocol();
    let builder = Arc::new(builder);
    let timeouts = Timeouts {
        first_request: limits.header_read_timeout,
        idle: limits.idle_timeout,
    };
    let (closing_tx, closing) = watch::channel(false);
    let mut stop = std::pin::pin!(shutdown);
    let warned = Warned::default();
    loop {
        let accepted = tokio::select! {
            accepted = tcp.accept() => accepted,
            () = &mut stop => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, say: wait rather than spin.
                warned.once(
                    "accept",
                    || tracing::warn!(error = %e, "accepting a connection failed"),
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let ip = canonical(peer.ip());
        let node = port.directory.is_node_address(ip);
        let slot = match slots.admit(ip, node) {
            Ok(slot) => slot,
            Err(why) => {
                refused(&warned, why, peer);
                drop(stream);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (app, builder, closing) = (app.clone(), builder.clone(), closing.clone());
        match &port.tls {
            None => {
                tokio::spawn(async move {
                    conn::serve(
                        stream,
                        peer,
                        node,
                        Who::Plain,
                        app,
                        builder,
                        timeouts,
                        closing,
                    )
                    .await;
                    drop(slot);
                });
            }
            Some(tls) => {
                // Nodes' addresses do not wait behind clients' handshakes.
                let permit = if node {
                    None
                } else {
                    match handshakes.clone().try_acquire_owned() {
                        Ok(permit) => Some(permit),
                        Err(_) => {
                            refused_handshake(&warned, peer);
                            drop(stream);
                            continue;
                        }
                    }
                };
                let (tls, directory) = (tls.clone(), port.directory.clone());
                tokio::spawn(async move {
                    let built = tls.built();
                    let acceptor = tokio_rustls::TlsAcceptor::from(built.config.clone());
                    let handshake = acceptor.accept(stream);
                    let stream =
                        match tokio::time::timeout(limits.header_read_timeout, handshake).await {
                            Ok(Ok(stream)) => stream,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake timed out");
                                return;
                            }
                        };
                    drop(permit);
                    let presented = Presented::after_handshake(stream.get_ref().1, &built);
                    let who = Who::Tls {
                        tls,
                        presented,
                        directory,
                    };
                    conn::serve(stream, peer, node, who, app, builder, timeouts, closing).await;
                    drop(slot);
                });
            }
        }
    }
    drop(tcp);
    let _ = closing_tx.send(true);
    // Every connection task holds a receiver; all gone means all finished.
    drop(closing);
    closing_tx.closed().await;
}

fn refused(warned: &Warned, why: Refused, peer: SocketAddr) {
    tracing::debug!(%peer, limit = why.as_str(), "connection refused");
    warned.once(why.as_str(), || {
        tracing::warn!(%peer, limit = why.as_str(), "connections refused: a limit is reached (logged once a minute)")
    });
}

fn refused_handshake(warned: &Warned, peer: SocketAddr) {
    tracing::debug!(%peer, "connection refused: too many TLS handshakes in progress");
    warned.once("handshakes", || {
        tracing::warn!(%peer, limit = "max-tls-handshakes", "connections refused: a limit is reached (logged once a minute)")
    });
}

/// Warnings at most once a minute per kind, so a flood does not flood the log.
#[derive(Default)]
struct Warned {
    last: std::sync::Mutex<std::collections::HashMap<&'static str, std::time::Instant>>,
}

impl Warned {
    fn once(&self, kind: &'static str, warn: impl FnOnce()) {
        let now = std::time::Instant::now();
        let due = match self.last.lock() {
            Ok(mut last) => match last.get(kind) {
                Some(at) if now.duration_since(*at) < Duration::from_secs(60) => false,
                _ => {
                    last.insert(kind, now);
                    true
                }
            },
            Err(_) => false,
        };
        if due {
            warn();
        }
    }
}

#[cfg(test)]
mod tests;
