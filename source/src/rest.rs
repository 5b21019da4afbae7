//! REST ingest and inspection of the reference source:
//! `PUT|DELETE /api/source/{name}/doc/{key}`, `POST /api/source/{name}/bulk` (NDJSON),
//! `GET /api/source`, `GET /api/source/{name}`. Errors are JSON with an `error` message.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::log::{Append, LogError, SourceLog};

/// Largest bulk request accepted.
pub const MAX_BULK_BYTES: usize = 256 << 20;

pub fn router(log: SourceLog) -> Router {
    Router::new()
        .route("/api/source", get(list))
        .route("/api/source/{name}", get(summary))
        .route(
            "/api/source/{name}/doc/{key}",
            put(put_doc).delete(delete_doc),
        )
        .route(
            "/api/source/{name}/bulk",
            post(bulk).layer(DefaultBodyLimit::max(MAX_BULK_BYTES)),
        )
        .with_state(log)
}

fn error(status: StatusCode, message: impl Into<String>, extra: Value) -> Response {
    let mut body = json!({"error": message.into()});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    (status, Json(body)).into_response()
}

fn log_error(e: LogError) -> Response {
    let status = match e {
        LogError::InvalidName(_) | LogError::InvalidKey(_) => StatusCode::BAD_REQUEST,
        LogError::NoSuchSource(_) | LogError::NoSuchPartition { .. } => StatusCode::NOT_FOUND,
        LogError::DiskFull(_) => StatusCode::INSUFFICIENT_STORAGE,
        LogError::Storage(_) | LogError::NeedsReopen => StatusCode::SERVICE_UNAVAILABLE,
    };
    error(status, e.to_string(), Value::Null)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, LogError> + Send + 'static,
) -> Result<T, Response> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(log_error),
        Err(e) => Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("source worker failed: {e}"),
            Value::Null,
        )),
    }
}

async fn list(State(log): State<SourceLog>) -> Response {
    match blocking(move || log.summaries()).await {
        Ok(sources) => Json(json!({"sources": sources})).into_response(),
        Err(response) => response,
    }
}

async fn summary(State(log): State<SourceLog>, Path(name): Path<String>) -> Response {
    let lookup = name.clone();
    match blocking(move || log.summary(&lookup)).await {
        Ok(Some(summary)) => Json(summary).into_response(),
        Ok(None) => log_error(LogError::NoSuchSource(name)),
        Err(response) => response,
    }
}

async fn append_one(log: SourceLog, name: String, item: Append) -> Response {
    let key = item.key().to_string();
    let source = name.clone();
    match blocking(move || log.append(&source, &[item])).await {
        Ok(positions) => {
            let (partition, seq) = positions.first().copied().unwrap_or_default();
            Json(json!({"source": name, "key": key, "partition": partition, "seq": seq}))
                .into_response()
        }
        Err(response) => response,
    }
}

/// The body is the document itself: a JSON object.
async fn put_doc(
    State(log): State<SourceLog>,
    Path((name, key)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(_)) => {
            append_one(
                log,
                name,
                Append::Put {
                    key,
                    doc: body.to_vec(),
                },
            )
            .await
        }
        Ok(_) => error(
            StatusCode::BAD_REQUEST,
            "body: the document must be a JSON object",
            json!({"field": "body"}),
        ),
        Err(e) => error(
            StatusCode::BAD_REQUEST,
            format!("body: not JSON: {e}"),
            json!({"field": "body"}),
        ),
    }
}

async fn delete_doc(
    State(log): State<SourceLog>,
    Path((name, key)): Path<(String, String)>,
) -> Response {
    append_one(log, name, Append::Delete { key }).await
}

/// One NDJSON line: `{"key": .., "doc": {..}}` or `{"key": .., "delete": true}`.
fn parse_line(line: &[u8]) -> Result<Append, String> {
    let value: Value = serde_json::from_slice(line).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(mut object) = value else {
        return Err("must be a JSON object".into());
    };
    let key = match object.remove("key") {
        Some(Value::String(key)) => key,
        Some(_) => return Err("`key` must be a string".into()),
        None => return Err("`key` is missing".into()),
    };
    let delete = match object.remove("delete") {
        None | Some(Value::Bool(false)) => false,
        Some(Value::Bool(true)) => true,
        Some(_) => return Err("`delete` must be true or false".into()),
    };
    let doc = object.remove("doc");
    if let Some(field) = object.keys().next() {
        return Err(format!("unknown field `{field}`"));
    }
    match (delete, doc) {
        (true, None) => Ok(Append::Delete { key }),
        (true, Some(_)) => Err("a line has either `doc` or `\"delete\": true`, not both".into()),
        (false, Some(doc @ Value::Object(_))) => Ok(Append::Put {
            key,
            doc: doc.to_string().into_bytes(),
        }),
        (false, Some(_)) => Err("`doc` must be a JSON object".into()),
        (false, None) => Err("`doc` is missing (or say `\"delete\": true`)".into()),
    }
}

/// Appends the good lines in one transaction. The first bad line stops the request: the lines
/// before it are kept and counted, and the answer names the bad line.
async fn bulk(State(log): State<SourceLog>, Path(name): Path<String>, body: Bytes) -> Response {
    let mut items = Vec::new();
    let mut bad = None;
    for (i, line) in body.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match parse_line(line) {
            Ok(item) => items.push(item),
            Err(reason) => {
                bad = Some((i + 1, reason));
                break;
            }
        }
    }
    let accepted = items.len();
    if accepted > 0 {
        let source = name.clone();
        if let Err(response) = blocking(move || log.append(&source, &items)).await {
            return response;
        }
    }
    match bad {
        None => Json(json!({"source": name, "accepted": accepted})).into_response(),
        Some((line, reason)) => error(
            StatusCode::BAD_REQUEST,
            format!("line {line}: {reason}"),
            json!({"line": line, "accepted": accepted}),
        ),
    }
}
