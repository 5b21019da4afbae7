//! Who may call what on this node's port, for REST and gRPC alike: [`guard`] is the one
//! middleware that finds what a call needs (`tessera_auth`'s permission table, by the matched
//! route or the gRPC method), who the caller is (an API key in `Authorization: Bearer`, or a
//! node certificate the TLS listener verified), answers 401/403 (`Unauthenticated` /
//! `PermissionDenied` for gRPC) when the identity falls short, and appends state-changing and
//! denied calls to the audit log. The rules live in `tessera-auth`; this module only applies
//! them.
//!
//! The gRPC API services carry their index inside the message, which a middleware does not
//! read: for those calls the guard checks that the identity holds the need on some index and
//! leaves a [`Caller`] in the request's extensions, which the service asks for the index it
//! reads ([`checked`]).

pub mod keyring;
pub mod keys_api;

use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tessera_auth::audit::{self, AuditLog};
use tessera_auth::{grpc_need, rest_need, Identity, Need};

pub use keyring::KeyRing;

use crate::problem::problem;
use crate::request_metrics::is_grpc;

/// Whether calls must prove who they are (`--auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    Required,
    Off,
}

/// The node's access rules; clones share the key mirror and the audit log.
#[derive(Clone)]
pub struct Access {
    pub mode: AuthMode,
    /// Present when `mode` is `Required`.
    pub keys: Option<KeyRing>,
    pub audit: Option<Arc<Mutex<AuditLog>>>,
}

impl Access {
    /// No checks, no audit (handler tests, embedded uses).
    pub fn off() -> Self {
        Self {
            mode: AuthMode::Off,
            keys: None,
            audit: None,
        }
    }
}

/// Who called, as the guard found out; in the extensions of every request it let through.
#[derive(Debug, Clone)]
pub struct Caller {
    pub identity: Identity,
    pub enforced: bool,
}

/// For a gRPC API service: the message of `request` once its caller may do `need` on the
/// index the message names.
#[allow(clippy::result_large_err)]
pub fn checked<T>(
    access: &Access,
    request: tonic::Request<T>,
    need: Need,
    index: impl Fn(&T) -> &str,
) -> Result<T, tonic::Status> {
    require(access, request.extensions(), need, index(request.get_ref()))?;
    Ok(request.into_inner())
}

/// For a gRPC API service: whether the caller (see [`Caller`]) may do `need` on `index`.
#[allow(clippy::result_large_err)]
fn require(
    access: &Access,
    extensions: &tonic::Extensions,
    need: Need,
    index: &str,
) -> Result<(), tonic::Status> {
    match extensions.get::<Caller>() {
        Some(c) if !c.enforced || c.identity.allows(need, Some(index)) => Ok(()),
        Some(c) => Err(tonic::Status::permission_denied(format!(
            "{} may not do this on index `{index}`",
            c.identity.describe()
        ))),
        // Called without the guard (in-process, a test): fine when nothing is enforced;
        // with auth required the guard must have run, so refuse.
        None if access.mode == AuthMode::Off => Ok(()),
        None => Err(tonic::Status::permission_denied("no caller identity")),
    }
}

/// The middleware; layer it on the node's whole router (inside the routing, so the matched
/// route is known).
pub async fn guard(State(access): State<Access>, mut request: Request, next: Next) -> Response {
    let grpc = is_grpc(&request);
    let Some(template) = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
    else {
        return next.run(request).await; // no route: the JSON 404
    };
    let method = request.method().as_str().to_string();
    let path = request.uri().path().to_string();
    let (route, need, target) = if grpc {
        (path.clone(), grpc_need(&path), None)
    } else {
        let target = tessera_auth::permission::rest_target(&template, &path).map(str::to_string);
        (
            format!("{method} {template}"),
            rest_need(&method, &template),
            target,
        )
    };
    let peer_node = request
        .extensions()
        .get::<ConnectInfo<tessera_tls::ClientCert>>()
        .and_then(|c| c.0.node.clone());
    let token = bearer(&request).map(str::to_string);

    let outcome = decide(&access, need, target.as_deref(), grpc, token, peer_node).await;
    let (identity, response) = match outcome {
        Ok(identity) => {
            request.extensions_mut().insert(Caller {
                identity: identity.clone(),
                enforced: access.mode == AuthMode::Required,
            });
            (identity, next.run(request).await)
        }
        Err((identity, status, message)) => (identity, denied(grpc, status, &message)),
    };
    if let Some(log) = &access.audit {
        let status = grpc_outcome(grpc, &response);
        let need = need.unwrap_or(Need::Admin);
        let kind = if grpc { &path } else { &template };
        if let Some((event, name)) = audit::event_of(need, &method, kind, status) {
            let who = identity.describe();
            let record = audit::Record {
                time_ms: tessera_cfg::unix_ms(),
                event,
                name,
                identity: &who,
                route: &route,
                index: target.as_deref(),
                outcome: status,
            };
            let written = log.lock().map(|mut l| l.append(&record));
            if let Ok(Err(e)) = written {
                tracing::error!(error = %e, "cannot append to the audit log");
            }
        }
    }
    response
}

type Denial = (Identity, StatusCode, String);

/// The identity a call proves, or why it may not go on.
async fn decide(
    access: &Access,
    need: Option<Need>,
    target: Option<&str>,
    grpc: bool,
    token: Option<String>,
    peer_node: Option<String>,
) -> Result<Identity, Denial> {
    let keys = match (&access.mode, &access.keys) {
        (AuthMode::Required, Some(keys)) => keys,
        // Off: everyone is let through; the audit log names node certificates when present.
        _ => return Ok(peer_node.map_or(Identity::Anonymous, Identity::Node)),
    };
    let identity = match (token, peer_node) {
        (Some(token), _) => match keys.check(&token, tessera_cfg::unix_ms()).await {
            Ok(identity) => identity,
            Err(keyring::KeyCheckError::Cfg(e)) => {
                return Err((
                    Identity::Anonymous,
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("cannot check the API key now: {e}"),
                ))
            }
            Err(e) => return Err((Identity::Anonymous, StatusCode::UNAUTHORIZED, e.to_string())),
        },
        (None, Some(node)) => Identity::Node(node),
        (None, None) => Identity::Anonymous,
    };
    let Some(need) = need else {
        return Err((
            identity,
            StatusCode::FORBIDDEN,
            "this call is not in the permission table".into(),
        ));
    };
    if need == Need::Open {
        return Ok(identity);
    }
    if identity == Identity::Anonymous {
        return Err((
            identity,
            StatusCode::UNAUTHORIZED,
            "this call needs credentials: an API key as `Authorization: Bearer tsk_...`".into(),
        ));
    }
    // A gRPC API call names its index in the message: the service checks it (see `require`).
    let scoped = matches!(
        need,
        Need::IndexRead | Need::Query | Need::IndexAdmin | Need::Ingest
    );
    let allowed = if grpc && scoped {
        identity.may(need)
    } else {
        identity.allows(need, target)
    };
    if allowed {
        return Ok(identity);
    }
    let on = target.map_or_else(String::new, |t| format!(" on `{t}`"));
    let message = format!(
        "{} may not do this{on} ({need:?} needed)",
        identity.describe()
    );
    Err((identity, StatusCode::FORBIDDEN, message))
}

fn bearer(request: &Request) -> Option<&str> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn denied(grpc: bool, status: StatusCode, message: &str) -> Response {
    if grpc {
        let status = match status {
            StatusCode::UNAUTHORIZED => tonic::Status::unauthenticated(message),
            StatusCode::SERVICE_UNAVAILABLE => tonic::Status::unavailable(message),
            _ => tonic::Status::permission_denied(message),
        };
        return status.into_http::<axum::body::Body>().into_response();
    }
    let mut response = problem(status, message, None);
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
    }
    response
}

/// A response's outcome as an HTTP status: a gRPC call refused in its headers counts as its
/// HTTP equivalent (401, 403), one that went on as 200 (its status comes in the trailers).
fn grpc_outcome(grpc: bool, response: &Response) -> u16 {
    if !grpc {
        return response.status().as_u16();
    }
    match response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
    {
        Some("16") => 401,
        Some("7") => 403,
        Some("14") => 503,
        _ => 200,
    }
}
