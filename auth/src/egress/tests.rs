use super::*;

fn parse(text: &str) -> Result<Address, EgressError> {
    Address::parse("f", text, 80)
}

#[test]
fn the_authority_ends_where_http_clients_end_it() {
    let a = parse("http://src.example:9200/x?y#z").unwrap();
    assert_eq!(a.host_port(), "src.example:9200");
    assert_eq!(a.scheme.as_deref(), Some("http"));
    assert_eq!(parse("SRC.example").unwrap().host_port(), "src.example:80");
    assert_eq!(parse("[::1]:7").unwrap().host_port(), "[::1]:7");
    assert_eq!(parse("http://[::1]/").unwrap().host_port(), "[::1]:80");
    // The reproduction of issue 31: an `@` in the path named a cluster node while the
    // client dialled the host before it.
    let a = parse("http://127.0.0.2:9/@127.0.0.1:9100").unwrap();
    assert_eq!(a.host_port(), "127.0.0.2:9");
    assert_eq!(
        Address::parse("f", "http://h/", 0).unwrap_err().field(),
        "f",
        "no port"
    );
}

#[test]
fn userinfo_and_odd_hosts_are_refused() {
    assert!(matches!(
        parse("nats://user:pass@n1:4222"),
        Err(EgressError::Userinfo { .. })
    ));
    assert!(matches!(
        parse("http://127.0.0.1:9@127.0.0.2:9/"),
        Err(EgressError::Userinfo { .. })
    ));
    for bad in [
        "http://2852039166/",
        "http://0xa9fea9fe/",
        "http://169.254.0x1.1/",
        "http://0251.0376.0251.0376/",
        "http:// host/",
        "http://ho%73t/",
        "http://host:port/",
        "http://host:70000/",
        "http://:80/",
        "http://[::1/",
        "http://[zz]/",
        "ht tp://h/",
        "nats://allowed:4222\\@evil.example:4222",
        "HTTP://h:80/",
    ] {
        assert!(
            matches!(parse(bad), Err(EgressError::Unparsable { .. })),
            "{bad} parsed as {:?}",
            parse(bad)
        );
    }
}

#[test]
fn metadata_addresses_need_an_entry_naming_them() {
    let cluster = BTreeSet::new();
    let open = DialPolicy::default();
    for meta in [
        "http://169.254.169.254/latest",
        "http://[fe80::1]:80/",
        "http://[::ffff:169.254.169.254]/",
        "http://metadata.google.internal/",
        "http://100.100.100.200/",
        "http://[fd00:ec2::254]/",
    ] {
        assert!(
            matches!(
                open.check_url("f", meta, 80, &cluster),
                Err(EgressError::Metadata { .. })
            ),
            "{meta}"
        );
    }
    let star = DialPolicy::restricted(&["*".into()]).unwrap();
    assert!(star
        .check_url("f", "http://169.254.169.254/", 80, &cluster)
        .is_err());
    let named = DialPolicy::restricted(&["169.254.169.254".into()]).unwrap();
    assert!(named
        .check_url("f", "http://169.254.169.254/", 80, &cluster)
        .is_ok());
    assert!(open
        .check_url("f", "http://10.1.2.3:9/", 80, &cluster)
        .is_ok());
}

#[test]
fn a_restricted_policy_allows_cluster_nodes_and_its_entries_only() {
    let cluster: BTreeSet<String> = ["10.0.0.1:9100".to_string()].into();
    let policy = DialPolicy::restricted(&["nats.internal".into(), "src:9200".into()]).unwrap();
    let ok = |u: &str| policy.check_url("f", u, 4222, &cluster).is_ok();
    assert!(ok("http://10.0.0.1:9100/x"));
    assert!(ok("nats://NATS.internal"));
    assert!(ok("http://src:9200"));
    assert!(!ok("http://src:9201"));
    assert!(!ok("http://10.0.0.1:9101"));
    assert!(DialPolicy::restricted(&["h:port".into()]).is_err());
    assert!(DialPolicy::restricted(&[":1".into()]).is_err());
    assert!(DialPolicy::restricted(&["".into()]).is_err());
}

#[test]
fn paths_stay_under_the_root_and_away_from_the_nodes_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("secrets");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("ca.pem"), "x").unwrap();
    let own_key = dir.path().join("node.key");
    std::fs::write(&own_key, "k").unwrap();
    let policy = PathPolicy::confined(root.clone()).deny(&own_key);
    assert!(matches!(
        policy.check("f", "ca.pem"),
        Err(EgressError::BadPath { .. })
    ));
    assert!(policy
        .check("f", root.join("ca.pem").to_str().unwrap())
        .is_ok());
    assert!(matches!(
        policy.check("f", "../node.key"),
        Err(EgressError::BadPath { .. })
    ));
    assert!(matches!(
        policy.check("f", own_key.to_str().unwrap()),
        Err(EgressError::PathOutside { .. })
    ));
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(&own_key, root.join("link")).unwrap();
        assert!(matches!(
            policy.check("f", root.join("link").to_str().unwrap()),
            Err(EgressError::PathOutside { .. })
        ));
    }
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(data_dir.join("tls")).unwrap();
    std::fs::write(data_dir.join("tls/node.key"), "k").unwrap();
    assert!(
        matches!(
            PathPolicy::open()
                .deny(&data_dir)
                .check("f", data_dir.join("tls/node.key").to_str().unwrap()),
            Err(EgressError::PathDenied { .. })
        ),
        "nothing under a denied directory"
    );
    let open = PathPolicy::open().deny(&own_key);
    assert!(matches!(
        open.check("f", own_key.to_str().unwrap()),
        Err(EgressError::PathDenied { .. })
    ));
    assert!(matches!(
        PathPolicy::refuse_all().check("f", "/etc/ca.pem"),
        Err(EgressError::PathsRefused { .. })
    ));
}
