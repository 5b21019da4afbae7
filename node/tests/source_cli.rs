//! `tessera source` (standalone) end to end: REST ingest, durability across a restart, and the
//! gRPC source protocol on the same port.

mod common;

use common::{free_port, http, serve, Proc};

fn start(dir: &std::path::Path, address: &str) -> Proc {
    serve(
        dir,
        &["source", "--bind", address, "--partitions", "16"],
        address,
    )
}

#[test]
fn standalone_source_ingests_keeps_and_streams() {
    let dir = tempfile::tempdir().unwrap();
    let address = format!("127.0.0.1:{}", free_port());
    let source = start(dir.path(), &address);
    assert_eq!(http(&address, "GET", "/api/ping", "").0, 200);
    assert_eq!(http(&address, "GET", "/api/nowhere", "").0, 404);
    let (status, body) = http(
        &address,
        "PUT",
        "/api/source/docs/doc/k1",
        r#"{"title":"one"}"#,
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = http(
        &address,
        "POST",
        "/api/source/docs/bulk",
        "{\"key\":\"k2\",\"doc\":{}}\n{\"key\":\"k3\",\"doc\":5}\n",
    );
    assert_eq!(
        (status, body["line"].as_u64(), body["accepted"].as_u64()),
        (400, Some(2), Some(1))
    );
    assert_eq!(
        http(&address, "DELETE", "/api/source/docs/doc/k1", "").0,
        200
    );
    drop(source);

    let _source = start(dir.path(), &address);
    let (status, body) = http(&address, "GET", "/api/source/docs", "");
    assert_eq!(status, 200);
    assert_eq!(
        (
            body["docs"].as_u64(),
            body["changes"].as_u64(),
            body["partitions"].as_u64()
        ),
        (Some(1), Some(3), Some(16)),
        "{body}"
    );

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let partitions = runtime.block_on(async {
        let mut client =
            tessera_proto::v1::source_client::SourceClient::connect(format!("http://{address}"))
                .await
                .unwrap();
        client
            .list_partitions(tessera_proto::v1::ListPartitionsRequest {
                source: "docs".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .partitions
    });
    assert_eq!(partitions.len(), 16);
    assert_eq!(partitions.iter().map(|p| p.high_seq).sum::<u64>(), 3);
}
