//! Certificates name who they are for; a server configuration follows its files, keeping the
//! last good one while a pair is half written.

use crate::cert::{make_ca, make_client, make_node};
use crate::identity::{leaf_name, CertName};
use crate::{ServerFiles, ServerTls};

#[test]
fn certificates_name_a_node_or_a_client() {
    let ca = make_ca("t", 1).unwrap();
    let node = make_node(&ca, "abc123", &["127.0.0.1".into(), "node-a".into()], 1).unwrap();
    let client = make_client(&ca, "ops", 1).unwrap();
    assert_eq!(
        leaf_name(node.cert.as_bytes()),
        Some(CertName::Node("abc123".into()))
    );
    assert_eq!(
        leaf_name(client.cert.as_bytes()),
        Some(CertName::Client("ops".into()))
    );
    assert_eq!(leaf_name(ca.cert.as_bytes()), Some(CertName::Other));
    assert_eq!(leaf_name(b"not a certificate"), None);
    assert!(
        make_node(&ca, "abc", &[], 1).is_err(),
        "a node names a host"
    );
    assert!(
        make_node(&ca, "a b", &["h".into()], 1).is_err(),
        "not a uuid"
    );
}

#[test]
fn the_server_configuration_follows_its_files_and_keeps_the_last_good_one() {
    let dir = tempfile::tempdir().unwrap();
    let ca = make_ca("t", 1).unwrap();
    let first = make_node(&ca, "n1", &["127.0.0.1".into()], 1).unwrap();
    let (cert, key, ca_file) = (
        dir.path().join("node.pem"),
        dir.path().join("node.key"),
        dir.path().join("ca.pem"),
    );
    std::fs::write(&cert, &first.cert).unwrap();
    std::fs::write(&key, &first.key).unwrap();
    std::fs::write(&ca_file, &ca.cert).unwrap();
    let files = ServerFiles {
        cert: cert.clone(),
        key: key.clone(),
        client_ca: Some(ca_file),
        require_client_cert: false,
        ..ServerFiles::default()
    };
    let tls = ServerTls::load(files.clone()).unwrap();
    let before = tls.config();
    assert!(!tls.reload_if_changed().unwrap(), "nothing changed");
    assert!(std::sync::Arc::ptr_eq(&before, &tls.config()));

    // Half written: the new key, the old certificate. The old configuration stays.
    let second = make_node(&ca, "n1", &["127.0.0.1".into()], 1).unwrap();
    std::fs::write(&key, &second.key).unwrap();
    assert!(tls.reload_if_changed().is_err());
    assert!(std::sync::Arc::ptr_eq(&before, &tls.config()));
    // Whole: a new configuration.
    std::fs::write(&cert, &second.cert).unwrap();
    assert!(tls.reload_if_changed().unwrap());
    assert!(!std::sync::Arc::ptr_eq(&before, &tls.config()));
    assert_eq!(
        tls.config().alpn_protocols,
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    );

    // Files that never made a configuration are refused at start, naming the file.
    std::fs::write(&cert, "garbage").unwrap();
    let refused = ServerTls::load(files).err().expect("refused").to_string();
    assert!(refused.contains("node.pem"), "{refused}");
}

#[test]
fn a_reloaded_certificate_naming_another_node_is_refused_and_the_last_good_one_stays() {
    let dir = tempfile::tempdir().unwrap();
    let ca = make_ca("t", 1).unwrap();
    let mine = make_node(&ca, "n1", &["127.0.0.1".into()], 1).unwrap();
    let (cert, key) = (dir.path().join("node.pem"), dir.path().join("node.key"));
    std::fs::write(&cert, &mine.cert).unwrap();
    std::fs::write(&key, &mine.key).unwrap();
    let files = ServerFiles {
        cert: cert.clone(),
        key: key.clone(),
        own_node: Some("n1".into()),
        ..ServerFiles::default()
    };
    let tls = ServerTls::load(files.clone()).unwrap();
    let before = tls.config();
    // A whole, valid pair, but of another node: refused, naming why.
    let other = make_node(&ca, "n2", &["127.0.0.1".into()], 1).unwrap();
    std::fs::write(&key, &other.key).unwrap();
    std::fs::write(&cert, &other.cert).unwrap();
    let refused = tls.reload_if_changed().expect_err("refused").to_string();
    assert!(refused.contains("not this node (n1)"), "{refused}");
    assert!(std::sync::Arc::ptr_eq(&before, &tls.config()));
    // Its own renewed certificate is taken.
    let renewed = make_node(&ca, "n1", &["127.0.0.1".into()], 1).unwrap();
    std::fs::write(&key, &renewed.key).unwrap();
    std::fs::write(&cert, &renewed.cert).unwrap();
    assert!(tls.reload_if_changed().unwrap());
    assert!(!std::sync::Arc::ptr_eq(&before, &tls.config()));
    // And at start, too.
    std::fs::write(&key, &other.key).unwrap();
    std::fs::write(&cert, &other.cert).unwrap();
    assert!(ServerTls::load(files).is_err());
}
