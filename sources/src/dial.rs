//! What a source definition may make the nodes dial and read. An index definition names its
//! source by address (a standalone source's `url`, NATS `servers`) and by files (NATS
//! credentials and TLS files), and every node hosting one of its PIndexes connects there and
//! reads those: without a rule, whoever may create an index may make every node connect
//! anywhere and read any file. The rules are `tessera_auth::egress`'s (one URL parser, one
//! dial policy, one path policy); this module says which parameters of which source type
//! they apply to. Both the create call (400 naming the field) and the opening of a source on
//! every node (for definitions made before) check them.

use std::collections::BTreeSet;

use tessera_cfg::schema::SourceDef;

pub use tessera_auth::egress::{Address, DialPolicy, EgressError, PathPolicy};

/// NATS's port when a server names none.
const NATS_PORT: u16 = 4222;

/// Every address `def` makes nodes dial, with the field that names it and the port a bare
/// host gets: a reference source's `url` (its embedded-source `node` is a cluster node by
/// definition), JetStream `servers`.
pub fn dialled(def: &SourceDef) -> Vec<(String, String, u16)> {
    let text = |v: &serde_json::Value| v.as_str().map(str::to_string);
    match def.source_type.as_str() {
        "jetstream" => def
            .params
            .get("servers")
            .and_then(|s| s.as_array())
            .into_iter()
            .flatten()
            .enumerate()
            .filter_map(|(i, s)| Some((format!("source.params.servers[{i}]"), text(s)?, NATS_PORT)))
            .collect(),
        _ => def
            .params
            .get("url")
            .and_then(text)
            // No default port: the URL must say the port it is dialled at.
            .map(|url| vec![("source.params.url".to_string(), url, 0)])
            .unwrap_or_default(),
    }
}

/// Every file `def` makes nodes read, with the field that names it.
pub fn files_read(def: &SourceDef) -> Vec<(String, String)> {
    const FILES: [&str; 4] = [
        "credentials_file",
        "tls_ca_file",
        "tls_cert_file",
        "tls_key_file",
    ];
    if def.source_type != "jetstream" {
        return Vec::new();
    }
    FILES
        .iter()
        .filter_map(|name| {
            let path = def.params.get(*name)?.as_str()?;
            Some((format!("source.params.{name}"), path.to_string()))
        })
        .collect()
}

/// Whether `def` may be dialled and read under `dial` and `paths`, `cluster` being the
/// nodes' `host:port`s: the first address or file refused, naming its field.
pub fn check(
    def: &SourceDef,
    dial: &DialPolicy,
    paths: &PathPolicy,
    cluster: &BTreeSet<String>,
) -> Result<(), EgressError> {
    for (field, url, port) in dialled(def) {
        dial.check_url(&field, &url, port, cluster)?;
    }
    for (field, path) in files_read(def) {
        paths.check(&field, &path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(json: serde_json::Value) -> SourceDef {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn definitions_name_what_they_dial_and_read() {
        let reference = def(serde_json::json!({"type": "tessera", "name": "docs",
            "params": {"url": "http://src.example:9200/x"}}));
        assert_eq!(
            dialled(&reference),
            vec![(
                "source.params.url".into(),
                "http://src.example:9200/x".into(),
                0
            )]
        );
        let embedded = def(serde_json::json!({"type": "tessera", "name": "docs",
            "params": {"node": "abc"}}));
        assert!(dialled(&embedded).is_empty());
        let nats = def(serde_json::json!({"type": "jetstream", "name": "docs",
            "params": {"servers": ["nats://n1:4333", "n2"], "stream": "D", "subject_prefix": "d",
            "tls_ca_file": "/etc/ca.pem"}}));
        assert_eq!(
            dialled(&nats),
            vec![
                (
                    "source.params.servers[0]".into(),
                    "nats://n1:4333".into(),
                    4222
                ),
                ("source.params.servers[1]".into(), "n2".into(), 4222)
            ]
        );
        assert_eq!(
            files_read(&nats),
            vec![("source.params.tls_ca_file".into(), "/etc/ca.pem".into())]
        );
    }

    #[test]
    fn the_checked_host_is_the_dialled_host() {
        // Issue 31's reproduction: `@` in the path once hid the dialled host behind a node's.
        let cluster: BTreeSet<String> = ["127.0.0.1:9100".to_string()].into();
        let policy = DialPolicy::restricted(&[]).unwrap();
        let paths = PathPolicy::open();
        let sneaky = def(serde_json::json!({"type": "tessera", "name": "docs",
            "params": {"url": "http://127.0.0.2:9/@127.0.0.1:9100"}}));
        let refused = check(&sneaky, &policy, &paths, &cluster).unwrap_err();
        assert_eq!(refused.field(), "source.params.url");
        assert!(refused.to_string().contains("127.0.0.2:9"), "{refused}");
        let node = def(serde_json::json!({"type": "tessera", "name": "docs",
            "params": {"url": "http://127.0.0.1:9100/"}}));
        assert!(check(&node, &policy, &paths, &cluster).is_ok());
    }

    #[test]
    fn credentials_in_urls_and_files_outside_the_secrets_dir_are_refused() {
        let cluster = BTreeSet::new();
        let open = DialPolicy::default();
        let nats = def(serde_json::json!({"type": "jetstream", "name": "docs",
            "params": {"servers": ["nats://u:p@n1:4333"], "stream": "D", "subject_prefix": "d"}}));
        let refused = check(&nats, &open, &PathPolicy::open(), &cluster).unwrap_err();
        assert!(matches!(refused, EgressError::Userinfo { .. }));
        assert_eq!(refused.field(), "source.params.servers[0]");
        let key = def(serde_json::json!({"type": "jetstream", "name": "docs",
            "params": {"servers": ["n1"], "stream": "D", "subject_prefix": "d",
            "tls_key_file": "/var/lib/tessera/tls/node.key"}}));
        let refused = check(&key, &open, &PathPolicy::refuse_all(), &cluster).unwrap_err();
        assert_eq!(refused.field(), "source.params.tls_key_file");
    }
}
