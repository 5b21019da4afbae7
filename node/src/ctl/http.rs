//! A small HTTP/1.1 client for `tessera ctl`: one request, the status and the JSON answer.
//! Errors map to exit codes: unreachable node → 6, 4xx → 3/4/5 by status.

use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::exit::{Exit, CONFLICT, DENIED, INVALID, NOT_FOUND, UNAVAILABLE};

pub struct Http {
    base: String,
    /// `Authorization: Bearer <key>` on every request, when given.
    api_key: Option<String>,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

impl Http {
    /// A client for the node at `node` (`host:port` or `http://host:port`).
    pub fn new(node: &str) -> Self {
        let base = if node.starts_with("http://") {
            node.trim_end_matches('/').to_string()
        } else {
            format!("http://{}", node.trim_end_matches('/'))
        };
        Self {
            base,
            api_key: None,
            client: {
                let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
                connector.set_nodelay(true);
                Client::builder(TokioExecutor::new()).build(connector)
            },
        }
    }

    /// This client with every request carrying the API key `key`.
    pub fn with_api_key(mut self, key: Option<String>) -> Self {
        self.api_key = key;
        self
    }

    /// Sends one request; a non-2xx answer becomes an [`Exit`] with the node's message.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: impl Into<Bytes>,
    ) -> Result<serde_json::Value, Exit> {
        let (status, json) = self.send(method, path, body).await?;
        if (200..300).contains(&status) {
            return Ok(json);
        }
        let message = json["error"]
            .as_str()
            .map_or_else(|| json.to_string(), str::to_string);
        let code = match status {
            400 | 413 | 422 => INVALID,
            401 | 403 => DENIED,
            404 => NOT_FOUND,
            409 => CONFLICT,
            429 | 503 | 504 => UNAVAILABLE,
            _ => 1,
        };
        Err(Exit::new(
            code,
            format!("{method} {path}: {status}: {message}"),
        ))
    }

    /// Sends one request and returns the status and JSON answer, whatever the status.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: impl Into<Bytes>,
    ) -> Result<(u16, serde_json::Value), Exit> {
        let url = format!("{}{path}", self.base);
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(&url)
            .header("content-type", "application/json");
        if let Some(key) = &self.api_key {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        let request = request
            .body(Full::new(body.into()))
            .map_err(|e| Exit::new(INVALID, format!("{url}: {e}")))?;
        let unreachable = |e: String| Exit::new(UNAVAILABLE, format!("{url}: {e}"));
        let response = tokio::time::timeout(Duration::from_secs(300), self.client.request(request))
            .await
            .map_err(|_| unreachable("no answer within 300 s".into()))?
            .map_err(|e| unreachable(format!("cannot reach the node: {e}")))?;
        let status = response.status().as_u16();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| unreachable(format!("reading the answer: {e}")))?
            .to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned())
        });
        Ok((status, json))
    }
}
