//! The Cfg on a secured etcd: TLS with client certificates required (`--client-cert-auth`)
//! and auth enabled, each user's role covering one cluster's key prefix. The cluster's own
//! user reads, writes, watches and holds leases; a user of another prefix, a wrong password
//! and a client without a certificate are refused with an error that says so.

use std::time::Duration;

use tessera_cfg::{CfgSpec, EtcdAccess, WatchEvent};
use tessera_tests::etcd::EtcdCluster;
use tessera_tests::etcd_secure::{enable_auth, EtcdTls, PrefixUser};

struct Secured {
    etcd: EtcdCluster,
    tls: EtcdTls,
    _dir: tempfile::TempDir,
}

async fn secured() -> Secured {
    let dir = tempfile::tempdir().unwrap();
    let tls = EtcdTls::make(&dir.path().join("tls"));
    let etcd = EtcdCluster::single_with_tls(tls.clone());
    let users = [
        PrefixUser {
            name: "tessera",
            password: "s3cret",
            prefix: "/tessera/sec/",
        },
        PrefixUser {
            name: "other",
            password: "0ther",
            prefix: "/tessera/elsewhere/",
        },
    ];
    enable_auth(&etcd.endpoint(0), &tls, &users).await;
    Secured {
        etcd,
        tls,
        _dir: dir,
    }
}

impl Secured {
    fn spec(&self, user: Option<(&str, &str)>, cert_of: Option<&str>) -> CfgSpec {
        let (cert, key) = cert_of.map(|u| self.tls.client(u)).unzip();
        let access = EtcdAccess {
            ca: Some(self.tls.ca.clone()),
            cert,
            key,
            user: user.map(|u| u.0.to_string()),
            password: user.map(|u| u.1.to_string()),
        };
        self.etcd
            .cfg_spec("sec")
            .parse::<CfgSpec>()
            .unwrap()
            .with_access(access)
            .unwrap()
    }
}

async fn open(spec: &CfgSpec) -> Result<tessera_cfg::Cfg, tessera_cfg::CfgError> {
    let dir = tempfile::tempdir().unwrap();
    spec.open(dir.path()).await
}

#[tokio::test]
async fn the_clusters_user_works_within_its_prefix_and_others_are_refused() {
    let s = secured().await;

    // The cluster's user, with a client certificate: everything the node does.
    let cfg = open(&s.spec(Some(("tessera", "s3cret")), Some("tessera")))
        .await
        .expect("open");
    let meta = cfg.ensure_cluster_meta().await.expect("cluster meta");
    assert_eq!(meta.name, "sec");
    let listed = cfg.index_defs().await.expect("list");
    let mut watch = cfg
        .store()
        .watch(cfg.keys().root(), listed.revision + 1)
        .await
        .expect("watch");
    let lease = tessera_cfg::LeaseKeeper::grant(cfg.store().clone(), Duration::from_secs(5))
        .await
        .expect("a lease");
    let key = cfg.keys().control();
    cfg.store()
        .put(&key, b"{}".to_vec(), 0, Some(lease.id()))
        .await
        .expect("a put under the lease");
    let event = tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .expect("the watch delivers within 10 s");
    assert!(
        matches!(&event, Some(WatchEvent::Put(kv)) if kv.key == key),
        "{event:?}"
    );
    assert!(cfg.store().revision().await.expect("revision") > 0);
    lease.revoke().await.expect("revoke");

    // The certificate alone: etcd takes its common name as the user.
    let by_cert = open(&s.spec(None, Some("tessera"))).await.expect("open");
    assert_eq!(
        by_cert
            .ensure_cluster_meta()
            .await
            .expect("meta")
            .cluster_uuid,
        meta.cluster_uuid
    );

    // A user whose role covers another prefix.
    let other = open(&s.spec(Some(("other", "0ther")), Some("tessera")))
        .await
        .expect("open");
    let refused = other.ensure_cluster_meta().await.unwrap_err().to_string();
    assert!(refused.contains("permission denied"), "{refused}");

    // A wrong password: refused when the client authenticates.
    let wrong = open(&s.spec(Some(("tessera", "guess")), Some("tessera"))).await;
    let wrong = match wrong {
        Ok(cfg) => cfg.ensure_cluster_meta().await.unwrap_err().to_string(),
        Err(e) => e.to_string(),
    };
    assert!(wrong.contains("authentication failed"), "{wrong}");
}

#[tokio::test]
async fn a_client_without_a_certificate_does_not_get_in() {
    let s = secured().await;
    let spec = s.spec(Some(("tessera", "s3cret")), None);
    let refused = match open(&spec).await {
        Ok(cfg) => cfg.ensure_cluster_meta().await.unwrap_err(),
        Err(e) => e,
    };
    assert!(
        matches!(refused, tessera_cfg::CfgError::Unavailable { .. }),
        "{refused:?}"
    );
}
