//! The guard's audit side: what a call's line says, and when it is known.
//!
//! - A REST call's outcome is its status. A gRPC call's is its `grpc-status`: in the
//!   response's headers for a call refused or failed before any message (trailers-only), in
//!   its trailers otherwise, so the response body is watched and the line is written when the
//!   trailers pass (or when the body is dropped unfinished: the client went away, `Cancelled`).
//! - A gRPC API call's index is the one its message names: the service reports it through
//!   [`IndexNamed`] when it checks the caller (`access::checked`).
//! - Calls of node identities to the nodes' services (`Need::Node`: shard searches, copies,
//!   source streams, saves) are counted per peer, method and outcome (event 20601): a stolen
//!   node key reading data leaves a trace.
//! - The client's address comes from the connection (`ConnectInfo<SocketAddr>`).
//!
//! Lines go to the [`AuditSink`], which never waits (see `tessera_auth::audit::writer`).

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};

use axum::extract::{ConnectInfo, Request};
use axum::response::Response;
use http_body_util::BodyExt;
use tessera_auth::audit::{self, writer::AuditSink, Record};
use tessera_auth::{Identity, Need, Role};

/// The client's address, when the listener gave one (the node's port gives every request
/// `ConnectInfo<SocketAddr>` and `ConnectInfo<ClientCert>`).
pub(super) fn client_of(request: &Request) -> Option<IpAddr> {
    let extensions = request.extensions();
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .or_else(|| {
            extensions
                .get::<ConnectInfo<tessera_tls::ClientCert>>()
                .and_then(|c| c.0.address)
                .map(|a| a.ip())
        })
}

/// The node a verified certificate names (pinned to the defined nodes by the port).
pub(super) fn cert_node_of(request: &Request) -> Option<String> {
    request
        .extensions()
        .get::<ConnectInfo<tessera_tls::ClientCert>>()
        .and_then(|c| c.0.node.clone())
}

/// Where a gRPC API service leaves the index its message names, for the audit line; in the
/// request's extensions.
#[derive(Debug, Clone, Default)]
pub struct IndexNamed(pub Arc<OnceLock<String>>);

/// What the guard knows of a call when it lets it on or refuses it.
pub(super) struct Call {
    pub need: Option<Need>,
    pub method: String,
    /// The route template, or the gRPC method's path.
    pub kind: String,
    /// `METHOD /template` or the gRPC path.
    pub route: String,
    pub target: Option<String>,
    pub identity: Identity,
    pub client: Option<IpAddr>,
    pub grpc: bool,
    pub index: IndexNamed,
}

/// Writes `call`'s line once its outcome is known: now for REST and trailers-only gRPC
/// answers, when the trailers pass otherwise.
pub(super) fn finish(sink: &AuditSink, call: Call, response: Response) -> Response {
    if !call.grpc {
        let status = response.status().as_u16();
        emit(sink, &call, status, None);
        return response;
    }
    if let Some(code) = grpc_status(response.headers()) {
        emit(sink, &call, audit::http_of_grpc(code), Some(code));
        return response;
    }
    let (parts, body) = response.into_parts();
    let mut pending = Pending {
        sink: sink.clone(),
        call: Some(call),
        code: None,
    };
    let body = body.map_frame(move |frame| {
        if let Some(code) = frame.trailers_ref().and_then(grpc_status) {
            pending.code = Some(code);
            pending.write();
        }
        frame
    });
    Response::from_parts(parts, axum::body::Body::new(body))
}

fn grpc_status(headers: &axum::http::HeaderMap) -> Option<i32> {
    headers
        .get("grpc-status")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// A gRPC call whose status is still to come; written when it comes or when dropped.
struct Pending {
    sink: AuditSink,
    call: Option<Call>,
    code: Option<i32>,
}

impl Pending {
    fn write(&mut self) {
        if let Some(call) = self.call.take() {
            // No status: the body was dropped before its trailers, the client went away.
            let code = self.code.unwrap_or(1);
            emit(&self.sink, &call, audit::http_of_grpc(code), Some(code));
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.write();
    }
}

/// Whether `identity` is a node (its certificate, or its own key of role `node`).
fn is_node(identity: &Identity) -> bool {
    match identity {
        Identity::Node(_) => true,
        Identity::Key { roles, .. } => roles.contains(&Role::Node),
        Identity::Anonymous => false,
    }
}

fn emit(sink: &AuditSink, call: &Call, status: u16, grpc_status: Option<i32>) {
    let need = call.need.unwrap_or(Need::Admin);
    let event = if need == Need::Node && is_node(&call.identity) && status != 401 && status != 403 {
        audit::NODE_CALLS
    } else {
        match audit::event_of(need, &call.method, &call.kind, status) {
            Some((event, _)) => event,
            None => return,
        }
    };
    let mut line = Record::new(
        event,
        tessera_cfg::unix_ms(),
        call.identity.describe(),
        call.route.clone(),
        status,
    );
    line.index = call.target.clone().or_else(|| call.index.0.get().cloned());
    line.grpc_status = grpc_status;
    line.client = call.client.map(|ip| ip.to_string());
    sink.record(line);
}
