//! One connection of the port, served by hyper (HTTP/1.1 or HTTP/2, detected) with a timer,
//! so HTTP/1 request heads have a deadline (`header_read_timeout`). Beyond what hyper bounds, a
//! watchdog closes a connection whose first request has not arrived within the header-read
//! time (an HTTP/2 preface that never comes, a TLS client that says nothing after its
//! handshake) and a client connection idle (no request in flight) for the idle time. Every
//! request carries `ConnectInfo<ClientCert>` (asked again at each request, see
//! [`crate::presented`]) and `ConnectInfo<SocketAddr>`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::time::Instant;
use tower::Service;

use crate::directory::NodeDirectory;
use crate::presented::Presented;
use crate::server::{ClientCert, ServerTls};

/// Once told to close for idleness, how long a connection may take to finish on its own.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Who a connection is, per request.
pub(crate) enum Who {
    Plain,
    Tls {
        tls: ServerTls,
        presented: Option<Presented>,
        directory: NodeDirectory,
    },
}

impl Who {
    fn client_cert(&self, address: SocketAddr) -> ClientCert {
        match self {
            Self::Tls {
                tls,
                presented: Some(presented),
                directory,
            } => presented.client_cert(tls, directory, address),
            _ => ClientCert {
                address: Some(address),
                ..ClientCert::default()
            },
        }
    }
}

/// Requests in flight and when the last one ended, read by the watchdog.
struct Activity {
    opened: Instant,
    in_flight: AtomicUsize,
    any: AtomicBool,
    /// Milliseconds after `opened` the last request ended.
    last_end_ms: AtomicU64,
}

/// A request in flight; ends when its response body has been sent (or dropped).
struct InFlight(Arc<Activity>);

impl Activity {
    fn begin(self: &Arc<Self>) -> InFlight {
        self.any.store(true, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    /// When the connection is to be closed if nothing happens before; `None` while a request
    /// is in flight (or, for a node's address, once it has made one: peers keep idle channels).
    fn deadline(&self, timeouts: &Timeouts, node: bool) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        if !self.any.load(Ordering::Relaxed) {
            return (!node).then(|| self.opened + timeouts.first_request);
        }
        if node {
            return None;
        }
        let last = Duration::from_millis(self.last_end_ms.load(Ordering::Relaxed));
        Some(self.opened + last + timeouts.idle)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let ms = u64::try_from(self.0.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.0.last_end_ms.store(ms, Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The time bounds of a connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    pub first_request: Duration,
    pub idle: Duration,
}

/// Serves `io` from `peer` with `app` until it closes, idles out, or `closing` says the server
/// stops (then gracefully: requests in flight finish).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn serve<I>(
    io: I,
    peer: SocketAddr,
    node: bool,
    who: Who,
    app: axum::Router,
    builder: Arc<Builder<TokioExecutor>>,
    timeouts: Timeouts,
    mut closing: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity {
        opened: Instant::now(),
        in_flight: AtomicUsize::new(0),
        any: AtomicBool::new(false),
        last_end_ms: AtomicU64::new(0),
    });
    let who = Arc::new(who);
    let requests = activity.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        let in_flight = requests.begin();
        let extensions = request.extensions_mut();
        extensions.insert(ConnectInfo(who.client_cert(peer)));
        extensions.insert(ConnectInfo(peer));
        let answer = app.clone().call(request);
        async move {
            let response = match answer.await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            // The request is in flight until its body is sent: a stream's response lives long.
            let response = response.map(|body| {
                Body::new(body.map_frame(move |frame| {
                    let _ = &in_flight;
                    frame
                }))
            });
            Ok::<_, Infallible>(response)
        }
    });
    let mut connection = pin!(builder.serve_connection_with_upgrades(TokioIo::new(io), service));
    let mut stopping = false;
    let mut give_up: Option<Instant> = None;
    loop {
        let check = activity
            .deadline(&timeouts, node)
            .unwrap_or_else(|| Instant::now() + timeouts.idle);
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::trace!(%peer, error = %e, "connection ended");
                }
                return;
            }
            changed = closing.changed(), if !stopping => {
                if changed.is_err() || *closing.borrow() {
                    stopping = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
            () = tokio::time::sleep_until(check), if give_up.is_none() && !stopping => {
                let past = activity
                    .deadline(&timeouts, node)
                    .is_some_and(|at| at <= Instant::now());
                if past {
                    tracing::debug!(%peer, "closing an idle connection");
                    connection.as_mut().graceful_shutdown();
                    give_up = Some(Instant::now() + CLOSE_GRACE);
                }
            }
            () = tokio::time::sleep_until(give_up.unwrap_or_else(Instant::now)), if give_up.is_some() => {
                return;
            }
        }
    }
}
