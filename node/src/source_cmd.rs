//! `tessera source`: the reference source alone, serving REST ingest and the gRPC source
//! protocol on one port (plus `GET /api/ping`), over TLS with client certificates required
//! when given `--tls-client-ca` (it keeps no API keys).

use anyhow::Context;
use axum::routing::get;
use axum::Json;
use tessera_api::guard::{bounded, RouteLimits};
use tessera_source::grpc::SourceService;
use tessera_source::{rest, SourceLog};

use crate::cli::{Global, SourceArgs};
use crate::exit::{Exit, INVALID};

/// The source's routes (REST + gRPC), for a node or the standalone source, each group under
/// its body and time limits.
pub fn routes(log: SourceLog, max_concurrent_writes: usize) -> axum::Router {
    let ingest = rest::Ingest::new(log.clone(), max_concurrent_writes);
    bounded(rest::read_routes(ingest.clone()), RouteLimits::ADMIN)
        .merge(bounded(
            rest::document_routes(ingest.clone()),
            RouteLimits::DOCUMENT,
        ))
        .merge(bounded(rest::bulk_routes(ingest), RouteLimits::BULK))
        .merge(SourceService::new(log).router())
}

/// Opens the source log kept in a data dir.
pub fn open_log(data_dir: &std::path::Path, partitions: u32) -> anyhow::Result<SourceLog> {
    let path = data_dir.join("source.redb");
    SourceLog::open(&path, partitions)
        .with_context(|| format!("opening the source log {}", path.display()))
}

pub async fn run(global: &Global, args: SourceArgs) -> anyhow::Result<()> {
    let log = open_log(&global.data_dir, args.partitions)?;
    let listener = tokio::net::TcpListener::bind(&args.bind)
        .await
        .map_err(|e| Exit::new(INVALID, format!("cannot listen on {}: {e}", args.bind)))?;
    let address = listener.local_addr().context("reading the bound address")?;
    let app = routes(log, args.max_concurrent_writes as usize)
        .route(
            "/api/ping",
            get(|| async { Json(serde_json::json!({"ok": true, "role": "source"})) }),
        )
        .fallback(tessera_api::not_found)
        .layer(axum::middleware::from_fn(tessera_api::guard::json_errors));
    tracing::info!(%address, data_dir = %global.data_dir.display(), "source up");
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        let tls = tessera_tls::ServerTls::load(tessera_tls::ServerFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: args.tls_client_ca.clone(),
            require_client_cert: args.tls_client_ca.is_some(),
            ..tessera_tls::ServerFiles::default()
        })
        .map_err(|e| Exit::new(INVALID, format!("TLS: {e}")))?;
        let reloading = tls.watch(std::time::Duration::from_secs(1), || {});
        let listener =
            tessera_tls::TlsListener::new(listener, tls).context("starting the TLS listener")?;
        axum::serve(listener, app)
            .with_graceful_shutdown(crate::signals::shutdown_signal())
            .await
            .context("serving the source")?;
        reloading.abort();
    } else {
        if !address.ip().is_loopback() {
            tracing::warn!(%address, "the source serves plain HTTP to other hosts: anyone reaching it may read and write every document (see --tls-client-ca)");
        }
        // Small answers go out at once (no Nagle delay waiting for the peer's ACK).
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, app)
            .with_graceful_shutdown(crate::signals::shutdown_signal())
            .await
            .context("serving the source")?;
    }
    tracing::info!("source stopped");
    Ok(())
}
