//! A node with `--auth required` and the calls the tenancy tests read it with: REST and gRPC,
//! query, count and define, as any key.

use super::*;

/// A node with auth required and its bootstrap admin key.
pub struct Node {
    pub dir: tempfile::TempDir,
    _proc: Proc,
    pub address: String,
    pub admin: String,
}

impl Node {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let address = format!("127.0.0.1:{}", free_port());
        let backups = dir.path().join("backups");
        std::fs::create_dir_all(&backups).unwrap();
        let backup_path = backups.to_str().unwrap().to_string();
        let proc = serve(
            dir.path(),
            &[
                "node",
                "--bind",
                &address,
                "--auth",
                "required",
                "--backup-path",
                &backup_path,
            ],
            &address,
        );
        let admin = key_file(dir.path(), "bootstrap-admin.key");
        Self {
            dir,
            _proc: proc,
            address,
            admin,
        }
    }

    pub fn key(&self, roles: &[String]) -> String {
        let body = serde_json::json!({"name": "t", "roles": roles}).to_string();
        let (status, answer) = http_as(&self.address, &self.admin, "POST", "/api/keys", &body);
        assert_eq!(status, 201, "{answer}");
        answer["key"].as_str().unwrap().to_string()
    }

    /// Calls `method path` with `body` as `key` and checks it is refused with `status`, naming
    /// `field`; the answer's body.
    pub fn refused(
        &self,
        key: &str,
        method: &str,
        path: &str,
        body: &str,
        status: u16,
        field: &str,
    ) -> serde_json::Value {
        let (got, answer) = self.call(key, method, path, body);
        assert_eq!(
            (got, answer["field"].as_str()),
            (status, Some(field)),
            "{method} {path}: {answer}"
        );
        answer
    }

    pub fn call(
        &self,
        key: &str,
        method: &str,
        path: &str,
        body: &str,
    ) -> (u16, serde_json::Value) {
        http_as(&self.address, key, method, path, body)
    }

    /// Writes `n` documents keyed `<source>:<i>` to the node's source `source`.
    pub fn fill(&self, source: &str, n: usize) {
        let body: String = (0..n)
            .map(|i| {
                serde_json::json!({"key": format!("{source}:{i}"), "doc": {"title": format!("doc {i} of {source}")}})
                    .to_string()
                    + "\n"
            })
            .collect();
        let path = format!("/api/source/{source}/bulk");
        let (status, answer) = self.call(&self.admin, "POST", &path, &body);
        assert_eq!(status, 200, "{answer}");
    }
}

pub fn index_body(source: &str) -> String {
    serde_json::json!({"type": "fulltext", "source": {"type": "tessera", "name": source},
        "plan": {"index_partitions": 2, "replicas": 0}})
    .to_string()
}

pub const QUERY: &str = r#"{"query": {"match_all": {}}, "size": 100, "consistency": {"level": "at_plus"}, "timeout_ms": 30000}"#;

/// The gRPC channel to the node.
pub async fn channel(address: &str) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .expect("connect")
}

pub fn with_key<T>(message: T, key: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    request
}

/// What a read of `index` by `key` returned: the documents' ids (or the count), or the status.
#[derive(Debug)]
pub enum Read {
    Docs(Vec<String>),
    Count(u64),
    Refused(String),
}

pub async fn grpc_query(address: &str, key: &str, index: &str) -> Read {
    use tessera_proto::v1::search_client::SearchClient;
    let mut client = SearchClient::new(channel(address).await);
    let message = tessera_proto::v1::QueryRequest {
        index: index.to_string(),
        body_json: QUERY.to_string(),
    };
    match client.query(with_key(message, key)).await {
        Ok(reply) => {
            let body: serde_json::Value =
                serde_json::from_str(&reply.into_inner().json).expect("JSON reply");
            Read::Docs(ids_of(&body))
        }
        Err(status) => Read::Refused(format!("{:?}: {}", status.code(), status.message())),
    }
}

pub async fn grpc_count(address: &str, key: &str, index: &str) -> Read {
    use tessera_proto::v1::indexes_client::IndexesClient;
    let mut client = IndexesClient::new(channel(address).await);
    let message = tessera_proto::v1::IndexName {
        name: index.to_string(),
    };
    match client.count_index(with_key(message, key)).await {
        Ok(reply) => {
            let body: serde_json::Value =
                serde_json::from_str(&reply.into_inner().json).expect("JSON reply");
            Read::Count(body["count"].as_u64().expect("a count"))
        }
        Err(status) => Read::Refused(format!("{:?}: {}", status.code(), status.message())),
    }
}

pub async fn grpc_put(address: &str, key: &str, index: &str, body: &str) -> Result<(), String> {
    use tessera_proto::v1::indexes_client::IndexesClient;
    let mut client = IndexesClient::new(channel(address).await);
    let message = tessera_proto::v1::PutIndexRequest {
        name: index.to_string(),
        definition_json: body.to_string(),
    };
    client
        .put_index(with_key(message, key))
        .await
        .map(|_| ())
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
}

pub fn ids_of(body: &serde_json::Value) -> Vec<String> {
    let mut ids: Vec<String> = body["hits"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| h["id"].as_str().map(str::to_string))
        .collect();
    ids.sort();
    ids
}

pub fn rest_query(node: &Node, key: &str, index: &str) -> Read {
    let (status, body) = node.call(key, "POST", &format!("/api/index/{index}/query"), QUERY);
    match status {
        200 => Read::Docs(ids_of(&body)),
        _ => Read::Refused(format!("{status} {body}")),
    }
}

pub fn rest_count(node: &Node, key: &str, index: &str) -> Read {
    let (status, body) = node.call(key, "GET", &format!("/api/index/{index}/count"), "");
    match status {
        200 => Read::Count(body["count"].as_u64().expect("a count")),
        _ => Read::Refused(format!("{status} {body}")),
    }
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}
