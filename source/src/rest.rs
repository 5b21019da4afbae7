//! REST ingest and inspection of the reference source:
//! `PUT|DELETE /api/source/{name}/doc/{key}`, `POST /api/source/{name}/bulk` (NDJSON),
//! `GET /api/source`, `GET /api/source/{name}`. Errors are JSON with an `error` message.
//!
//! Writes are bounded so that a burst of large bulks cannot starve the rest of the process
//! (the node's lease renewal runs on the same runtime): bulk bodies are parsed on the blocking
//! pool, not the async workers, and writes in flight have a cap past which they answer 429
//! with `Retry-After`. The routers come in three groups (reads, documents, bulk) so that the
//! process serving them can put each under its own body and time limits.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::log::{Append, LogError, SourceLog};

/// Largest bulk request accepted.
pub const MAX_BULK_BYTES: usize = 256 << 20;
/// Largest single document accepted.
pub const MAX_DOC_BYTES: usize = 16 << 20;
/// Write requests (documents and bulks) in flight at once, by default.
pub const DEFAULT_MAX_CONCURRENT_WRITES: u32 = 16;

/// What the routes share: the log and the cap on writes in flight.
#[derive(Clone)]
pub struct Ingest {
    log: SourceLog,
    writes: Arc<tokio::sync::Semaphore>,
    max_writes: usize,
}

impl Ingest {
    pub fn new(log: SourceLog, max_concurrent_writes: usize) -> Self {
        Self {
            log,
            writes: Arc::new(tokio::sync::Semaphore::new(max_concurrent_writes)),
            max_writes: max_concurrent_writes,
        }
    }

    /// A write slot, or the 429 that says to come back.
    #[allow(clippy::result_large_err)]
    fn write_slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit, Response> {
        self.writes.clone().try_acquire_owned().map_err(|_| {
            let body = json!({"error": format!(
                "this node is running its limit of {} concurrent writes; retry shortly",
                self.max_writes
            )});
            (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, "1")],
                Json(body),
            )
                .into_response()
        })
    }
}

/// Every route with its own body limits, for callers that do not bound routes themselves.
pub fn router(log: SourceLog) -> Router {
    let ingest = Ingest::new(log, DEFAULT_MAX_CONCURRENT_WRITES as usize);
    read_routes(ingest.clone())
        .merge(document_routes(ingest.clone()).layer(DefaultBodyLimit::max(MAX_DOC_BYTES)))
        .merge(bulk_routes(ingest).layer(DefaultBodyLimit::max(MAX_BULK_BYTES)))
}

/// `GET /api/source`, `GET /api/source/{name}`.
pub fn read_routes(ingest: Ingest) -> Router {
    Router::new()
        .route("/api/source", get(list))
        .route("/api/source/{name}", get(summary))
        .with_state(ingest)
}

/// `PUT|DELETE /api/source/{name}/doc/{key}`.
pub fn document_routes(ingest: Ingest) -> Router {
    Router::new()
        .route(
            "/api/source/{name}/doc/{key}",
            put(put_doc).delete(delete_doc),
        )
        .with_state(ingest)
}

/// `POST /api/source/{name}/bulk`.
pub fn bulk_routes(ingest: Ingest) -> Router {
    Router::new()
        .route("/api/source/{name}/bulk", post(bulk))
        .with_state(ingest)
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
        LogError::Refused(_) => StatusCode::CONFLICT,
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

async fn list(State(ingest): State<Ingest>) -> Response {
    let log = ingest.log;
    match blocking(move || log.summaries()).await {
        Ok(sources) => Json(json!({"sources": sources})).into_response(),
        Err(response) => response,
    }
}

async fn summary(State(ingest): State<Ingest>, Path(name): Path<String>) -> Response {
    let log = ingest.log;
    let lookup = name.clone();
    match blocking(move || log.summary(&lookup)).await {
        Ok(Some(summary)) => Json(summary).into_response(),
        Ok(None) => log_error(LogError::NoSuchSource(name)),
        Err(response) => response,
    }
}

async fn append_one(ingest: Ingest, name: String, item: Append) -> Response {
    let _slot = match ingest.write_slot() {
        Ok(slot) => slot,
        Err(response) => return response,
    };
    let log = ingest.log;
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
    State(ingest): State<Ingest>,
    Path((name, key)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(_)) => {
            append_one(
                ingest,
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
    State(ingest): State<Ingest>,
    Path((name, key)): Path<(String, String)>,
) -> Response {
    append_one(ingest, name, Append::Delete { key }).await
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

/// The good lines of a bulk body, up to the first bad one: (line number, why).
pub fn parse_bulk(body: &[u8]) -> (Vec<Append>, Option<(usize, String)>) {
    let mut items = Vec::new();
    for (i, line) in body.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match parse_line(line) {
            Ok(item) => items.push(item),
            Err(reason) => return (items, Some((i + 1, reason))),
        }
    }
    (items, None)
}

/// Appends the good lines in one transaction. The first bad line stops the request: the lines
/// before it are kept and counted, and the answer names the bad line.
async fn bulk(State(ingest): State<Ingest>, Path(name): Path<String>, body: Bytes) -> Response {
    let _slot = match ingest.write_slot() {
        Ok(slot) => slot,
        Err(response) => return response,
    };
    let log = ingest.log;
    let source = name.clone();
    // Parsing a large body takes long enough to stall an async worker; both it and the
    // append run on the blocking pool.
    let done = blocking(move || {
        let (items, bad) = parse_bulk(&body);
        if !items.is_empty() {
            log.append(&source, &items)?;
        }
        Ok((items.len(), bad))
    })
    .await;
    let (accepted, bad) = match done {
        Ok(done) => done,
        Err(response) => return response,
    };
    match bad {
        None => Json(json!({"source": name, "accepted": accepted})).into_response(),
        Some((line, reason)) => error(
            StatusCode::BAD_REQUEST,
            format!("line {line}: {reason}"),
            json!({"line": line, "accepted": accepted}),
        ),
    }
}
