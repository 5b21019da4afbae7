use std::collections::BTreeMap;

use super::*;

fn def(repo_type: &str, location: &str, options: &[(&str, &str)]) -> RepoDef {
    RepoDef {
        format_version: 1,
        name: "r".into(),
        repo_type: repo_type.into(),
        location: location.into(),
        readonly: false,
        options: options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    }
}

fn field(e: BackupError) -> String {
    match e {
        BackupError::Config { field, .. } => field,
        e => panic!("expected a refusal naming a field, got {e}"),
    }
}

#[test]
fn endpoints_go_through_the_dial_policy() {
    let open = RepoPolicy::default();
    let s3 = |endpoint: &str| {
        def(
            "s3",
            "bucket",
            &[
                ("endpoint", endpoint),
                ("allow_http", "true"),
                ("credentials", "anonymous"),
            ],
        )
    };
    // Metadata and link-local addresses are refused even by the open policy.
    for metadata in [
        "http://169.254.169.254",
        "http://169.254.169.254:80/latest/meta-data/",
        "http://[fd00:ec2::254]",
        "http://metadata.google.internal",
        "http://100.100.100.200",
    ] {
        let refused = open.check(&s3(metadata)).unwrap_err();
        assert!(refused.to_string().contains("metadata"), "{refused}");
        assert_eq!(field(refused), "options.endpoint", "{metadata}");
    }
    // Userinfo would make the checked host differ from the dialled one.
    let refused = open
        .check(&s3("http://127.0.0.1:9000@169.254.169.254/"))
        .unwrap_err();
    assert_eq!(field(refused), "options.endpoint");
    assert!(open.check(&s3("http://127.0.0.1:9000")).is_ok());
    assert_eq!(
        field(open.check(&s3("ftp://127.0.0.1")).unwrap_err()),
        "options.endpoint"
    );
    let mut no_http = s3("http://127.0.0.1:9000");
    no_http.options.remove("allow_http");
    assert_eq!(field(open.check(&no_http).unwrap_err()), "options.endpoint");

    // Restricted (auth required or --dial-allow): only what the allowlist names.
    let restricted = RepoPolicy {
        dial: DialPolicy::restricted(&["127.0.0.1:9000".into()]).unwrap(),
        ..RepoPolicy::default()
    };
    assert!(restricted.check(&s3("http://127.0.0.1:9000")).is_ok());
    let refused = restricted.check(&s3("http://10.1.2.3:9000")).unwrap_err();
    assert_eq!(field(refused), "options.endpoint");
    // No endpoint: AWS's for the region, which must then be allowed too.
    let aws = def("s3", "bucket", &[("credentials", "anonymous")]);
    assert!(open.check(&aws).is_ok());
    assert_eq!(
        field(restricted.check(&aws).unwrap_err()),
        "options.endpoint"
    );
    let allowed = RepoPolicy {
        dial: DialPolicy::restricted(&["s3.us-east-1.amazonaws.com".into()]).unwrap(),
        ..RepoPolicy::default()
    };
    assert!(allowed.check(&aws).is_ok());
    // A region is a name, never a piece of a host.
    let sneaky = def(
        "s3",
        "bucket",
        &[("credentials", "anonymous"), ("region", "x.evil.example/#")],
    );
    assert_eq!(field(open.check(&sneaky).unwrap_err()), "options.region");
}

#[test]
fn ambient_credentials_only_when_asked_for() {
    let open = RepoPolicy::default();
    let endpoint = ("endpoint", "https://s3.example.com");
    let none = def("s3", "bucket", &[endpoint]);
    let refused = open.check(&none).unwrap_err();
    assert!(refused.to_string().contains("ambient"), "{refused}");
    assert_eq!(field(refused), "options.credentials_file");
    let ambient = def("s3", "bucket", &[endpoint, ("credentials", "ambient")]);
    // The machine's credentials go to a definition's endpoint only where the node names it.
    assert_eq!(field(open.check(&ambient).unwrap_err()), "options.endpoint");
    let named = RepoPolicy {
        dial: DialPolicy::restricted(&["s3.example.com".into()]).unwrap(),
        ..RepoPolicy::default()
    };
    assert_eq!(
        named.check(&ambient).unwrap().credentials,
        Some(Credentials::Ambient)
    );
    let aws = def("s3", "bucket", &[("credentials", "ambient")]);
    assert_eq!(
        open.check(&aws).unwrap().credentials,
        Some(Credentials::Ambient),
        "AWS's own endpoint for the region"
    );
    let odd = def("s3", "bucket", &[endpoint, ("credentials", "env")]);
    assert_eq!(field(open.check(&odd).unwrap_err()), "options.credentials");
    let both = def(
        "s3",
        "bucket",
        &[
            endpoint,
            ("credentials", "ambient"),
            ("credentials_file", "/etc/c"),
        ],
    );
    assert_eq!(field(open.check(&both).unwrap_err()), "options.credentials");
}

#[test]
fn files_go_through_the_path_policy() {
    let secrets = tempfile::tempdir().unwrap();
    let inside = secrets.path().join("s3");
    std::fs::write(&inside, "access_key_id = a\nsecret_access_key = b\n").unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let outside = elsewhere.path().join("node.key");
    std::fs::write(&outside, "secret").unwrap();
    let confined = RepoPolicy {
        paths: PathPolicy::confined(secrets.path().to_path_buf()).deny(&outside),
        ..RepoPolicy::default()
    };
    let s3 = |name: &str, path: &std::path::Path| {
        def(
            "s3",
            "bucket",
            &[
                ("endpoint", "https://s3.example.com"),
                (name, path.to_str().unwrap()),
            ],
        )
    };
    let ok = confined.check(&s3("credentials_file", &inside)).unwrap();
    assert!(matches!(ok.credentials, Some(Credentials::File(_))));
    for name in ["credentials_file", "passphrase_file", "key_file"] {
        let mut d = s3(name, &outside);
        if name != "credentials_file" {
            d.options.insert("credentials".into(), "anonymous".into());
        }
        let refused = confined.check(&d).unwrap_err();
        assert_eq!(field(refused), format!("options.{name}"));
    }
    // The same for an fs repository's key files; and none at all when paths are refused.
    let repo_dir = tempfile::tempdir().unwrap();
    let fs = |name: &str, path: &std::path::Path| {
        def(
            "fs",
            repo_dir.path().to_str().unwrap(),
            &[(name, path.to_str().unwrap())],
        )
    };
    let confined = RepoPolicy {
        fs_roots: vec![repo_dir.path().to_path_buf()],
        ..confined
    };
    assert!(confined.check(&fs("passphrase_file", &inside)).is_ok());
    let refused = confined.check(&fs("key_file", &outside)).unwrap_err();
    assert_eq!(field(refused), "options.key_file");
    let none = RepoPolicy {
        paths: PathPolicy::refuse_all(),
        ..confined
    };
    let refused = none.check(&fs("passphrase_file", &inside)).unwrap_err();
    assert!(refused.to_string().contains("--secrets-dir"), "{refused}");
}

#[test]
fn fs_locations_are_under_a_backup_path() {
    let root = tempfile::tempdir().unwrap();
    let inside = root.path().join("nightly");
    std::fs::create_dir(&inside).unwrap();
    let other = tempfile::tempdir().unwrap();
    let policy = RepoPolicy::under(root.path().to_path_buf());
    assert!(policy
        .check(&def("fs", inside.to_str().unwrap(), &[]))
        .is_ok());
    for location in [
        other.path().to_str().unwrap().to_string(),
        format!(
            "{}/../../{}",
            inside.display(),
            other.path().file_name().unwrap().to_str().unwrap()
        ),
        root.path().join("missing").display().to_string(),
    ] {
        let refused = policy.check(&def("fs", &location, &[])).unwrap_err();
        assert_eq!(field(refused), "location", "{location}");
    }
    // A link inside a root pointing out of it is followed, and refused.
    let link = root.path().join("link");
    std::os::unix::fs::symlink(other.path(), &link).unwrap();
    let refused = policy
        .check(&def("fs", link.to_str().unwrap(), &[]))
        .unwrap_err();
    assert_eq!(field(refused), "location");
    // No root: no fs repository.
    let refused = RepoPolicy::default()
        .check(&def("fs", inside.to_str().unwrap(), &[]))
        .unwrap_err();
    assert_eq!(field(refused), "location");
}
