//! Ambient cloud credentials (the environment, instance metadata) are used only by a
//! repository that asks for them, against a real S3-compatible server. A process of its own:
//! the test sets the AWS variables a node might happen to have.

use std::collections::BTreeMap;

use tessera_backup::{BackupError, RepoPolicy, Repository};
use tessera_cfg::schema::RepoDef;
use tessera_tests::s3::{S3Server, ACCESS_KEY, SECRET_KEY};

fn def(server: &S3Server, name: &str, extra: &[(&str, &str)]) -> RepoDef {
    let mut options = BTreeMap::new();
    options.insert("endpoint".to_string(), server.endpoint());
    options.insert("allow_http".to_string(), "true".to_string());
    for (k, v) in extra {
        options.insert(k.to_string(), v.to_string());
    }
    RepoDef {
        format_version: 1,
        name: name.into(),
        repo_type: "s3".into(),
        location: "backups/ambient".into(),
        readonly: false,
        options,
    }
}

#[tokio::test]
async fn ambient_credentials_are_opt_in() {
    let server = S3Server::start("backups");
    // The node's environment holds credentials (as an instance's role would provide).
    std::env::set_var("AWS_ACCESS_KEY_ID", ACCESS_KEY);
    std::env::set_var("AWS_SECRET_ACCESS_KEY", SECRET_KEY);
    let policy = RepoPolicy::default();

    // Without asking, they are not used: the repository must say where its credentials
    // come from (before, it silently signed with the environment's).
    let refused = Repository::open(&def(&server, "quiet", &[]), &policy).unwrap_err();
    match &refused {
        BackupError::Config { field, reason } => {
            assert_eq!(field, "options.credentials_file");
            assert!(reason.contains("ambient"), "{reason}");
        }
        e => panic!("expected a refusal naming the field, got {e}"),
    }

    // Asked for, they are sent only to an endpoint the node's operator named.
    let ambient = def(&server, "ambient", &[("credentials", "ambient")]);
    let refused = Repository::open(&ambient, &policy).unwrap_err();
    assert!(
        matches!(&refused, BackupError::Config { field, .. } if field == "options.endpoint"),
        "{refused}"
    );
    let host_port = server
        .endpoint()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let policy = RepoPolicy {
        dial: tessera_auth::egress::DialPolicy::restricted(&[host_port]).unwrap(),
        ..RepoPolicy::default()
    };
    let repo = Repository::open(&ambient, &policy).unwrap();
    let blob = repo.put_blob(b"segment".repeat(10)).await.unwrap();
    assert_eq!(
        repo.get_blob(&blob.hash, blob.size).await.unwrap(),
        b"segment".repeat(10)
    );

    // An endpoint at a metadata address is refused however the credentials are given.
    let mut metadata = ambient.clone();
    metadata
        .options
        .insert("endpoint".into(), "http://169.254.169.254".into());
    let refused = Repository::open(&metadata, &policy).unwrap_err();
    assert!(
        matches!(&refused, BackupError::Config { field, .. } if field == "options.endpoint"),
        "{refused}"
    );
}
