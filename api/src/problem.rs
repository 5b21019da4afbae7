//! The one error mapping of the API: every error type a handler meets becomes one HTTP status
//! with a JSON body (`error`, and `field` when one is at fault), and every HTTP status one gRPC
//! code, so REST and gRPC answer the same failure the same way on every route.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use tessera_backup::BackupError;
use tessera_cfg::CfgError;
use tessera_coord::ViewError;
use tessera_proto::v1::JsonReply;
use tessera_search::SearchError;
use tonic::{Code, Status};

/// A JSON error answer.
pub fn problem(status: StatusCode, message: impl Into<String>, field: Option<&str>) -> Response {
    let mut body = json!({"error": message.into()});
    if let Some(field) = field {
        body["field"] = json!(field);
    }
    (status, Json(body)).into_response()
}

/// A JSON request body, or a 400 naming the field at fault. (The error is the handler's own
/// answer, returned as is, so its size does not matter.)
#[allow(clippy::result_large_err)]
pub fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Response> {
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let field = e.path().to_string();
        problem(
            StatusCode::BAD_REQUEST,
            format!("`{field}`: {}", e.inner()),
            Some(&field),
        )
    })
}

/// The status a Cfg error answers with: bad input 400, a document past the store's limit 413,
/// missing 404, a lost compare-and-set
/// 409 (re-read and try again), the store unreachable 503, anything else 500.
pub fn cfg_status(e: &CfgError) -> StatusCode {
    match e {
        CfgError::Invalid { .. } => StatusCode::BAD_REQUEST,
        CfgError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        CfgError::NotFound { .. } => StatusCode::NOT_FOUND,
        CfgError::CasMismatch { .. } | CfgError::AlreadyExists { .. } => StatusCode::CONFLICT,
        CfgError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

pub fn cfg_problem(e: CfgError) -> Response {
    let field = match &e {
        CfgError::Invalid { field, .. } => Some(field.clone()),
        _ => None,
    };
    problem(cfg_status(&e), e.to_string(), field.as_deref())
}

/// A backup or repository failure: bad configuration or a wrong key 400 naming the field, a missing snapshot
/// or blob 404, a repository another writer holds 409, a damaged snapshot 422 naming what is
/// damaged, the repository unreachable 503.
pub fn backup_problem(e: BackupError) -> Response {
    let (status, field) = match &e {
        BackupError::Config { field, .. } => (StatusCode::BAD_REQUEST, Some(field.as_str())),
        BackupError::ReadOnly => (StatusCode::BAD_REQUEST, Some("repo")),
        BackupError::WrongKey => (StatusCode::BAD_REQUEST, Some("options")),
        BackupError::NotFound(_) => (StatusCode::NOT_FOUND, None),
        BackupError::Locked { .. } => (StatusCode::CONFLICT, None),
        // An object past what a node reads is the repository's fault, as a damaged one.
        BackupError::Damaged { .. } | BackupError::TooLarge { .. } => {
            (StatusCode::UNPROCESSABLE_ENTITY, None)
        }
        BackupError::Storage(_) | BackupError::Behind { .. } => {
            (StatusCode::SERVICE_UNAVAILABLE, None)
        }
        BackupError::Encode(_) => (StatusCode::INTERNAL_SERVER_ERROR, None),
    };
    problem(status, e.to_string(), field)
}

pub fn unknown_index(name: &str) -> Response {
    problem(StatusCode::NOT_FOUND, format!("no index `{name}`"), None)
}

pub fn view_problem(e: ViewError) -> Response {
    match e {
        ViewError::UnknownIndex(name) => unknown_index(&name),
        ViewError::Cfg(e) => cfg_problem(e),
    }
}

/// A query that cannot be run: 400 naming the field (and the position in a query string), or
/// 500 when the engine failed.
pub fn search_problem(e: SearchError) -> Response {
    match e {
        SearchError::BadQuery {
            field,
            message,
            position,
        } => {
            let mut body = json!({"error": format!("`{field}`: {message}"), "field": field});
            if let Some(position) = position {
                body["position"] = json!(position);
            }
            (StatusCode::BAD_REQUEST, Json(body)).into_response()
        }
        SearchError::Engine(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, e, None),
    }
}

/// A refused request (a topology change that cannot be met): 400 naming the field.
pub fn refused(field: &str, message: &str) -> Response {
    problem(
        StatusCode::BAD_REQUEST,
        format!("`{field}`: {message}"),
        Some(field),
    )
}

/// The gRPC code of an HTTP status.
pub fn grpc_code(status: StatusCode) -> Code {
    match status {
        StatusCode::BAD_REQUEST => Code::InvalidArgument,
        StatusCode::NOT_FOUND => Code::NotFound,
        StatusCode::CONFLICT => Code::FailedPrecondition,
        StatusCode::FORBIDDEN => Code::PermissionDenied,
        StatusCode::SERVICE_UNAVAILABLE => Code::Unavailable,
        StatusCode::TOO_MANY_REQUESTS | StatusCode::PAYLOAD_TOO_LARGE => Code::ResourceExhausted,
        StatusCode::GATEWAY_TIMEOUT => Code::DeadlineExceeded,
        _ => Code::Internal,
    }
}

/// A REST answer as a gRPC reply (its JSON) or status (the same message, the matching code).
pub async fn reply(response: Response) -> Result<tonic::Response<JsonReply>, Status> {
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 64 << 20)
        .await
        .map_err(|e| Status::internal(format!("reading the answer: {e}")))?;
    let json = String::from_utf8_lossy(&body).into_owned();
    if status.is_success() {
        return Ok(tonic::Response::new(JsonReply { json }));
    }
    let message = serde_json::from_str::<serde_json::Value>(&json)
        .ok()
        .and_then(|v| {
            let error = v["error"].as_str()?.to_string();
            Some(match v["field"].as_str() {
                Some(field) => format!("{error} (field `{field}`)"),
                None => error,
            })
        })
        .unwrap_or(json);
    Err(Status::new(grpc_code(status), message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_compare_and_set_is_a_conflict_in_rest_and_grpc() {
        let e = CfgError::CasMismatch {
            key: "k".into(),
            expected: 1,
            current: 2,
        };
        assert_eq!(cfg_status(&e), StatusCode::CONFLICT);
        assert_eq!(grpc_code(cfg_status(&e)), Code::FailedPrecondition);
    }
}
