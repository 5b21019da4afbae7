//! Who may call what on this node's port, for REST and gRPC alike: [`guard`] is the one
//! middleware that finds what a call needs (`tessera_auth`'s permission table, by the matched
//! route or the gRPC method), who the caller is (an API key in `Authorization: Bearer`, or a
//! node certificate the TLS listener verified), answers 401/403 (`Unauthenticated` /
//! `PermissionDenied` for gRPC) when the identity falls short, and hands state-changing and
//! denied calls, and node identities' calls, to the audit log's writer ([`audited`]). The
//! rules live in `tessera-auth`; this module only applies them.
//!
//! The index a REST call names is its path's `{name}` segment percent-decoded (as the
//! handler's extractor decodes it), so globs see the name the handler acts on; a segment that
//! does not decode to UTF-8 or holds an encoded `/` is refused (400). Every key that proves
//! nothing (malformed, unknown, wrong secret) gets the same 401 message: no answer tells
//! which key ids exist.
//!
//! The gRPC API services carry their index inside the message, which a middleware does not
//! read: for those calls the guard checks that the identity holds the need on some index and
//! leaves a [`Caller`] in the request's extensions, which the service asks for the index it
//! reads ([`checked`]).

pub mod audited;
pub mod keyring;
pub mod keys_api;
pub mod tenancy;

use std::net::IpAddr;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tessera_auth::audit::writer::AuditSink;
use tessera_auth::{grpc_need, rest_need, Identity, Need};

pub use audited::IndexNamed;
pub use keyring::KeyRing;

use crate::problem::problem;
use crate::request_metrics::is_grpc;

/// Whether calls must prove who they are (`--auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    Required,
    Off,
}

/// The node's access rules; clones share the key mirror and the audit log's writer.
#[derive(Clone)]
pub struct Access {
    pub mode: AuthMode,
    /// Present when `mode` is `Required`.
    pub keys: Option<KeyRing>,
    pub audit: Option<AuditSink>,
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
    let name = index(request.get_ref());
    if let Some(named) = request.extensions().get::<IndexNamed>() {
        let _ = named.0.set(name.to_string());
    }
    require(access, request.extensions(), need, name)?;
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
        let target = match tessera_auth::permission::rest_target(&template, &path) {
            Ok(target) => target.map(std::borrow::Cow::into_owned),
            Err(e) => return denied(false, StatusCode::BAD_REQUEST, &e.to_string()),
        };
        (
            format!("{method} {template}"),
            rest_need(&method, &template),
            target,
        )
    };
    let peer_node = audited::cert_node_of(&request);
    let client = audited::client_of(&request);
    let token = bearer(&request).map(str::to_string);

    let outcome = decide(
        &access,
        need,
        target.as_deref(),
        grpc,
        token,
        peer_node,
        client,
    )
    .await;
    let index = IndexNamed::default();
    let (identity, response) = match outcome {
        Ok(identity) => {
            request.extensions_mut().insert(Caller {
                identity: identity.clone(),
                enforced: access.mode == AuthMode::Required,
            });
            request.extensions_mut().insert(index.clone());
            (identity, next.run(request).await)
        }
        Err((identity, status, message)) => (identity, denied(grpc, status, &message)),
    };
    let Some(sink) = &access.audit else {
        return response;
    };
    let kind = if grpc { path } else { template };
    let call = audited::Call {
        need,
        method,
        kind,
        route,
        target,
        identity,
        client,
        grpc,
        index,
    };
    audited::finish(sink, call, response)
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
    client: Option<IpAddr>,
) -> Result<Identity, Denial> {
    let keys = match (&access.mode, &access.keys) {
        (AuthMode::Required, Some(keys)) => keys,
        // Off: everyone is let through; the audit log names node certificates when present.
        _ => return Ok(peer_node.map_or(Identity::Anonymous, Identity::Node)),
    };
    let identity = match (token, peer_node) {
        (Some(token), _) => match keys.check(&token, tessera_cfg::unix_ms(), client).await {
            Ok(identity) => identity,
            Err(keyring::KeyCheckError::Cfg(e)) => {
                return Err((
                    Identity::Anonymous,
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("cannot check the API key now: {e}"),
                ))
            }
            Err(e) => {
                tracing::debug!(error = %e, "an API key refused");
                return Err((Identity::Anonymous, StatusCode::UNAUTHORIZED, refusal(&e)));
            }
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

/// What a caller is told of a key that proves nothing: one message for malformed, unknown and
/// wrong keys (no oracle for which ids exist); an expired or revoked key, whose secret was
/// right, is named as such.
fn refusal(e: &keyring::KeyCheckError) -> String {
    use tessera_auth::key::KeyError;
    match e {
        keyring::KeyCheckError::Key(e @ (KeyError::Expired(_) | KeyError::Revoked(_))) => {
            e.to_string()
        }
        _ => INVALID_KEY.into(),
    }
}

/// The one answer to a key that is not a key of this cluster.
pub const INVALID_KEY: &str = "invalid API key";

#[cfg(test)]
mod tests;
