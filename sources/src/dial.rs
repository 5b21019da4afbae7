//! Which addresses a definition may make the nodes dial. An index definition names its source
//! by address (a standalone source's `url`, NATS `servers`), and every node hosting one of its
//! PIndexes connects there: without a rule, whoever may create an index may make every node
//! connect anywhere. With a restricted [`DialPolicy`] (the node runs with auth, or was given
//! `--dial-allow`), a source may be dialled only at a node of the cluster or at an address the
//! allowlist names; both the create call (400 naming the field) and the opening of a source
//! (for definitions made before) check it.

use std::collections::BTreeSet;

use tessera_cfg::schema::SourceDef;

/// One allowlist entry: `*`, a host (any port) or `host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Any,
    Host(String),
    HostPort(String, u16),
}

/// The rule; the default dials anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DialPolicy {
    restricted: bool,
    entries: Vec<Entry>,
}

impl DialPolicy {
    /// Only cluster nodes and the `allow` entries (`*`, `HOST` or `HOST:PORT`).
    pub fn restricted(allow: &[String]) -> Result<Self, String> {
        let entries = allow
            .iter()
            .map(|a| match a.as_str() {
                "*" => Ok(Entry::Any),
                text => match text.rsplit_once(':') {
                    Some((host, port)) if !host.is_empty() => port
                        .parse::<u16>()
                        .map(|p| Entry::HostPort(host.to_ascii_lowercase(), p))
                        .map_err(|_| format!("--dial-allow `{text}`: the port is not a number")),
                    Some(_) => Err(format!("--dial-allow `{text}`: no host")),
                    None if text.is_empty() => Err("--dial-allow: an empty entry".into()),
                    None => Ok(Entry::Host(text.to_ascii_lowercase())),
                },
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            restricted: true,
            entries,
        })
    }

    pub fn is_restricted(&self) -> bool {
        self.restricted
    }

    /// Whether `host_port` may be dialled, `cluster` being the nodes' `host:port`s.
    pub fn allows(&self, host_port: &str, cluster: &BTreeSet<String>) -> bool {
        if !self.restricted || cluster.contains(host_port) {
            return true;
        }
        let Some((host, port)) = split(host_port) else {
            return false;
        };
        self.entries.iter().any(|e| match e {
            Entry::Any => true,
            Entry::Host(h) => *h == host,
            Entry::HostPort(h, p) => *h == host && *p == port,
        })
    }
}

/// `host:port` (a bracketed IPv6 host keeps its brackets) as lowercase host and port.
fn split(host_port: &str) -> Option<(String, u16)> {
    let (host, port) = host_port.rsplit_once(':')?;
    Some((host.to_ascii_lowercase(), port.parse().ok()?))
}

/// Every address `def` makes nodes dial, with the field that names it: a reference source's
/// `url` (its embedded-source `node` is a cluster node by definition), JetStream `servers`.
pub fn dialled(def: &SourceDef) -> Vec<(String, String)> {
    let text = |v: &serde_json::Value| v.as_str().map(str::to_string);
    match def.source_type.as_str() {
        "jetstream" => def
            .params
            .get("servers")
            .and_then(|s| s.as_array())
            .into_iter()
            .flatten()
            .enumerate()
            .filter_map(|(i, s)| {
                let address = host_port(&text(s)?, 4222)?;
                Some((format!("source.params.servers[{i}]"), address))
            })
            .collect(),
        _ => def
            .params
            .get("url")
            .and_then(text)
            .and_then(|url| host_port(&url, 80))
            .map(|address| vec![("source.params.url".to_string(), address)])
            .unwrap_or_default(),
    }
}

/// The `host:port` of a URL or address (`scheme://host[:port][/path]` or `host[:port]`).
fn host_port(url: &str, default_port: u16) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    // Credentials in a NATS URL (`nats://user:pass@host`) are not part of the address.
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let authority = rest.split(['/', '?']).next()?;
    if authority.is_empty() {
        return None;
    }
    let has_port = authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && !authority.ends_with(']');
    Some(if has_port {
        authority.to_string()
    } else {
        format!("{authority}:{default_port}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(json: serde_json::Value) -> SourceDef {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn definitions_name_what_they_dial() {
        let reference = def(serde_json::json!({"type": "tessera", "name": "docs",
            "params": {"url": "http://src.example:9200/x"}}));
        assert_eq!(
            dialled(&reference),
            vec![("source.params.url".into(), "src.example:9200".into())]
        );
        let embedded = def(serde_json::json!({"type": "tessera", "name": "docs",
            "params": {"node": "abc"}}));
        assert!(dialled(&embedded).is_empty());
        let nats = def(serde_json::json!({"type": "jetstream", "name": "docs",
            "params": {"servers": ["nats://u:p@n1:4333", "n2"], "stream": "D", "subject_prefix": "d"}}));
        assert_eq!(
            dialled(&nats),
            vec![
                ("source.params.servers[0]".into(), "n1:4333".into()),
                ("source.params.servers[1]".into(), "n2:4222".into())
            ]
        );
    }

    #[test]
    fn a_restricted_policy_allows_cluster_nodes_and_its_entries_only() {
        let cluster: BTreeSet<String> = ["10.0.0.1:9100".to_string()].into();
        assert!(DialPolicy::default().allows("evil:1", &cluster));
        let policy = DialPolicy::restricted(&["nats.internal".into(), "src:9200".into()]).unwrap();
        assert!(policy.allows("10.0.0.1:9100", &cluster));
        assert!(policy.allows("NATS.internal:4222", &cluster));
        assert!(policy.allows("src:9200", &cluster));
        assert!(!policy.allows("src:9201", &cluster));
        assert!(!policy.allows("169.254.169.254:80", &cluster));
        assert!(DialPolicy::restricted(&["*".into()])
            .unwrap()
            .allows("x:1", &cluster));
        assert!(DialPolicy::restricted(&["h:port".into()]).is_err());
        assert!(DialPolicy::restricted(&[":1".into()]).is_err());
    }
}
