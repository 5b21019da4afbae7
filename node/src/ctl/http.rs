//! A small HTTP/1.1 client for `tessera ctl`: one request, the status and the JSON answer.
//! Errors map to exit codes: unreachable node → 6, 4xx → 3/4/5 by status.

use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::exit::{Exit, CONFLICT, DENIED, INVALID, NOT_FOUND, UNAVAILABLE};

type Connector = hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>;

/// TLS to the node: the CA that verifies it, and a client certificate when it asks for one.
#[derive(Clone, Default, clap::Args)]
pub struct TlsArgs {
    /// Speak HTTPS, verifying the node's certificate against this CA (PEM).
    #[arg(long, env = "TESSERA_CA_CERT")]
    pub ca_cert: Option<std::path::PathBuf>,
    /// Present this client certificate (PEM) when the node asks for one.
    #[arg(
        long,
        env = "TESSERA_CLIENT_CERT",
        requires = "client_key",
        requires = "ca_cert"
    )]
    pub client_cert: Option<std::path::PathBuf>,
    /// The key of `--client-cert` (PEM).
    #[arg(long, env = "TESSERA_CLIENT_KEY", requires = "client_cert")]
    pub client_key: Option<std::path::PathBuf>,
}

impl TlsArgs {
    /// The client configuration these flags ask for; `None` for plain HTTP.
    fn config(&self) -> Result<Option<std::sync::Arc<tessera_tls::rustls::ClientConfig>>, Exit> {
        let Some(ca) = &self.ca_cert else {
            return Ok(None);
        };
        let read = |p: &std::path::Path| {
            std::fs::read(p).map_err(|e| Exit::new(INVALID, format!("{}: {e}", p.display())))
        };
        let ca = read(ca)?;
        let own = match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => Some((read(cert)?, read(key)?)),
            _ => None,
        };
        let presented = own
            .as_ref()
            .map(|(cert, key)| tessera_tls::client::Presented { cert, key });
        tessera_tls::client::rustls_config(&ca, presented)
            .map(Some)
            .map_err(|e| Exit::new(INVALID, e.to_string()))
    }
}

pub struct Http {
    base: String,
    /// `Authorization: Bearer <key>` on every request, when given.
    api_key: Option<String>,
    client: Client<Connector, Full<Bytes>>,
}

impl Http {
    /// A client for the node at `node` (`host:port`, `http://` or `https://`), over HTTPS
    /// when `tls` names a CA.
    pub fn with_tls(node: &str, tls: &TlsArgs) -> Result<Self, Exit> {
        Ok(Self::build(node, tls.config()?))
    }

    fn build(node: &str, tls: Option<std::sync::Arc<tessera_tls::rustls::ClientConfig>>) -> Self {
        let rest = node.trim_end_matches('/');
        let rest = rest
            .strip_prefix("http://")
            .or_else(|| rest.strip_prefix("https://"))
            .unwrap_or(rest);
        let scheme = if tls.is_some() { "https" } else { "http" };
        let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
        http.set_nodelay(true);
        http.enforce_http(false);
        // Without a CA nothing is trusted: an https:// node is refused, plain HTTP works.
        let config = tls.unwrap_or_else(tessera_tls::client::trusting_nothing);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*config).clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Self {
            base: format!("{scheme}://{rest}"),
            api_key: None,
            client: Client::builder(TokioExecutor::new()).build(connector),
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
