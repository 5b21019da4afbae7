//! A node certificate is a node identity only while the cluster defines its node (issue 31):
//! on a node with mutual TLS and auth over a real etcd, a certificate of the cluster's CA
//! naming a node the cluster does not define is refused by the nodes' own services; once the
//! definition is written, the same open connection is let in; once it is deleted, refused
//! again at its next call, long before the certificate expires.

mod common;

use std::time::Duration;

use common::*;
use tessera_tests::etcd::EtcdCluster;

#[test]
fn a_node_removed_from_the_cluster_is_no_node_from_its_next_call_on() {
    let etcd = EtcdCluster::single();
    let cfg = etcd.cfg_spec("identity");
    let dir = tempfile::tempdir().unwrap();
    let node_certs = NodeCerts::make(dir.path());
    let (address, ca_pem) = (node_certs.address.clone(), node_certs.ca_pem.clone());
    let ca_dir = node_certs.ca_dir.to_str().unwrap();
    let mut args = vec![
        "--cfg", &cfg, "node", "--bind", &address, "--auth", "required",
    ];
    args.extend(node_certs.flags.iter().map(String::as_str));
    let _node = serve(&node_certs.data, &args, &address);
    node_certs.use_key(&key_file(&node_certs.data, "bootstrap-admin.key"));
    // A second node's definition, as the running node's own with another uuid and address.
    let (status, nodes) = http(&address, "GET", "/api/nodes", "");
    assert_eq!(status, 200, "{nodes}");
    let peer = "feedfacefeedfacefeedfacefeedface";
    let mut def = nodes["nodes"][0]["node"].clone();
    def["uuid"] = peer.into();
    def["host_port"] = "127.0.0.9:1".into();
    def["wanted"] = false.into();
    let certs = dir.path().join("peer");
    tessera_ok(
        &[
            "cert",
            "node",
            "--ca",
            ca_dir,
            "--host",
            "127.0.0.1",
            "--uuid",
            peer,
            "--out",
            certs.to_str().unwrap(),
        ],
        None,
    );
    let cert = std::fs::read(certs.join("node.pem")).unwrap();
    let key_pem = std::fs::read(certs.join("node.key")).unwrap();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let channel = runtime.block_on(async {
        let config = tessera_tls::client::tonic_config(
            &ca_pem,
            Some(tessera_tls::client::Presented {
                cert: &cert,
                key: &key_pem,
            }),
        );
        tonic::transport::Endpoint::from_shared(format!("https://{address}"))
            .unwrap()
            .tls_config(config)
            .unwrap()
            .connect()
            .await
            .expect("a TLS channel")
    });
    // A node-only method on the one open channel: the code it answers.
    let call = || {
        runtime.block_on(async {
            let mut client = tessera_proto::v1::source_client::SourceClient::new(channel.clone());
            let request = tessera_proto::v1::ListPartitionsRequest {
                source: "books".into(),
            };
            match client.list_partitions(request).await {
                Ok(_) => tonic::Code::Ok,
                Err(e) => e.code(),
            }
        })
    };
    // Not defined yet: no node.
    assert_eq!(call(), tonic::Code::Unauthenticated);
    let key = format!("nodes/{peer}");
    tessera_ok(
        &[
            "--cfg",
            &cfg,
            "cfg",
            "put",
            &key,
            "--value",
            &def.to_string(),
        ],
        None,
    );
    // The definition reaches the node's watch within moments.
    wait_for("the defined peer let in", Duration::from_secs(10), || {
        let code = call();
        (!matches!(
            code,
            tonic::Code::Unauthenticated | tonic::Code::PermissionDenied
        ))
        .then_some(())
    });
    tessera_ok(&["--cfg", &cfg, "cfg", "del", &key], None);
    wait_for(
        "the removed peer refused on its open connection",
        Duration::from_secs(10),
        || (call() == tonic::Code::Unauthenticated).then_some(()),
    );
}
