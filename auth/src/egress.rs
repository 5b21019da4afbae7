//! What may leave a node: the one dial policy and the one path policy (DESIGN decision 19).
//!
//! Index definitions, backup repositories, recovery requests, restores and snapshots name
//! addresses the nodes then dial, and files the nodes then read. Whoever may write one of
//! those must not thereby make a node connect anywhere (a metadata service, an internal
//! host, an attacker's listener that collects the node's credentials) or read any file (the
//! node's own TLS key). Every such address is parsed by [`Address::parse`] — one parser, so
//! the address checked is the address dialled — and checked by a [`DialPolicy`]; every such
//! file by a [`PathPolicy`].
//!
//! Pure rules, no I/O but the canonicalisation of a path that exists.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Component, Path, PathBuf};

/// Why an address or path is refused; `field` names where it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressError {
    #[error("`{field}`: `{text}` is not an address ({why})")]
    Unparsable {
        field: String,
        text: String,
        why: &'static str,
    },
    #[error("`{field}`: credentials in a URL are refused (they would be shown to whoever may read the definition); give them in a file")]
    Userinfo { field: String },
    #[error("`{field}`: {address} is neither a node of this cluster nor allowed by --dial-allow")]
    NotAllowed { field: String, address: String },
    #[error("`{field}`: {address} is a link-local or cloud metadata address; allow it by name with --dial-allow to dial it")]
    Metadata { field: String, address: String },
    #[error("`{field}`: {path} is outside {root}, the directory files may be named from")]
    PathOutside {
        field: String,
        path: String,
        root: String,
    },
    #[error("`{field}`: file parameters are refused on this node (start it with --secrets-dir DIR to name files under DIR)")]
    PathsRefused { field: String },
    #[error("`{field}`: {path} may not be named (it is one of the node's own secrets)")]
    PathDenied { field: String, path: String },
    #[error("`{field}`: `{path}` is not a usable path ({why})")]
    BadPath {
        field: String,
        path: String,
        why: &'static str,
    },
}

impl EgressError {
    /// The field of the request or definition at fault.
    pub fn field(&self) -> &str {
        match self {
            EgressError::Unparsable { field, .. }
            | EgressError::Userinfo { field }
            | EgressError::NotAllowed { field, .. }
            | EgressError::Metadata { field, .. }
            | EgressError::PathOutside { field, .. }
            | EgressError::PathsRefused { field }
            | EgressError::PathDenied { field, .. }
            | EgressError::BadPath { field, .. } => field,
        }
    }
}

/// A host and port to dial, as one parser read it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Address {
    /// The scheme, lowercase, when the text had one (`http`, `nats`, `tls`...).
    pub scheme: Option<String>,
    /// Lowercase; an IPv6 host keeps its brackets.
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

impl Address {
    /// Reads `scheme://host[:port][/path][?query][#fragment]` or `host[:port]`; a missing port
    /// is `default_port`, or refused when that is 0. The authority
    /// ends at the first `/`, `?`, `#` or `\` (as HTTP clients read it); userinfo (`user@`)
    /// is refused outright, so no `@` can make the checked host differ from the dialled one.
    /// Hosts are DNS names or IP literals in their canonical form: numeric hosts that some
    /// resolvers read as IPv4 (`2852039166`, `0xa9fea9fe`, `169.254.0x1`) are refused.
    pub fn parse(field: &str, text: &str, default_port: u16) -> Result<Self, EgressError> {
        let (scheme, host, port) = Self::parts(field, text)?;
        let port = match port {
            Some(port) => port,
            // No default: the caller's clients disagree on it (an `https://` peer address is
            // dialled as plain HTTP when the node has no TLS).
            None if default_port == 0 => {
                return Err(EgressError::Unparsable {
                    field: field.to_string(),
                    text: text.to_string(),
                    why: "no port",
                })
            }
            None => default_port,
        };
        Ok(Self { scheme, host, port })
    }

    /// The scheme, host and port `text` names (see [`Self::parse`]).
    fn parts(
        field: &str,
        text: &str,
    ) -> Result<(Option<String>, String, Option<u16>), EgressError> {
        let bad = |why| EgressError::Unparsable {
            field: field.to_string(),
            text: text.to_string(),
            why,
        };
        if text.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(bad("it holds spaces or control characters"));
        }
        // Clients disagree on `\` (a path separator for HTTP URLs, userinfo for NATS URLs),
        // so the host one reads past it is not the host another dials.
        if text.contains('\\') {
            return Err(bad("a `\\`"));
        }
        let (scheme, rest) = match text.split_once("://") {
            Some((scheme, rest)) => {
                // Lowercase only: clients that match `http://` literally would read `HTTP://h`
                // as a host named `HTTP`.
                let ok = !scheme.is_empty()
                    && scheme.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b)
                    });
                if !ok {
                    return Err(bad("its scheme is not a scheme"));
                }
                (Some(scheme.to_string()), rest)
            }
            None => (None, text),
        };
        let end = rest.find(['/', '?', '#', '\\']).unwrap_or(rest.len());
        let authority = &rest[..end];
        if authority.contains('@') {
            return Err(EgressError::Userinfo {
                field: field.to_string(),
            });
        }
        let (host, port) = if let Some(inner) = authority.strip_prefix('[') {
            let (v6, after) = inner
                .split_once(']')
                .ok_or_else(|| bad("an unclosed `[`"))?;
            v6.parse::<Ipv6Addr>()
                .map_err(|_| bad("the bracketed host is not an IPv6 address"))?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(|| bad("junk after `]`"))?),
            };
            (format!("[{}]", v6.to_ascii_lowercase()), port)
        } else {
            match authority.split_once(':') {
                Some((host, port)) => (host.to_ascii_lowercase(), Some(port)),
                None => (authority.to_ascii_lowercase(), None),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        if !host.starts_with('[') {
            let name_chars = host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
            if !name_chars {
                return Err(bad("the host has characters no host name has"));
            }
            if looks_numeric(&host) && host.parse::<Ipv4Addr>().is_err() {
                return Err(bad("a numeric host that is not a dotted IPv4 address"));
            }
        }
        let port = match port {
            None => None,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                Some(p.parse().map_err(|_| bad("the port is above 65535"))?)
            }
            Some(_) => return Err(bad("the port is not a number")),
        };
        Ok((scheme, host, port))
    }

    /// `host:port`, as node definitions name their address.
    pub fn host_port(&self) -> String {
        self.to_string()
    }

    /// The host as an IP address, when it is one.
    pub fn ip(&self) -> Option<IpAddr> {
        let bare = self.host.trim_start_matches('[').trim_end_matches(']');
        bare.parse().ok()
    }

    /// Whether this is a link-local address or a cloud provider's metadata service, which
    /// hand out the machine's credentials to whoever asks from it.
    pub fn is_metadata(&self) -> bool {
        const NAMES: &[&str] = &[
            "metadata",
            "metadata.google.internal",
            "metadata.goog",
            "instance-data",
            "instance-data.ec2.internal",
            "metadata.azure.internal",
        ];
        if NAMES.contains(&self.host.trim_end_matches('.')) {
            return true;
        }
        match self.ip() {
            Some(IpAddr::V4(v4)) => metadata_v4(v4),
            Some(IpAddr::V6(v6)) => {
                v6.to_ipv4_mapped().is_some_and(metadata_v4)
                    || (v6.segments()[0] & 0xffc0) == 0xfe80
                    || v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)
            }
            None => false,
        }
    }
}

fn metadata_v4(v4: Ipv4Addr) -> bool {
    v4.is_link_local() || v4 == Ipv4Addr::new(100, 100, 100, 200)
}

/// Hosts made of digits, dots and hex markers, which `inet_aton` reads as IPv4 in forms
/// other than the dotted quad.
fn looks_numeric(host: &str) -> bool {
    let last = host.trim_end_matches('.').rsplit('.').next().unwrap_or("");
    let hexish = |s: &str| {
        s.strip_prefix("0x")
            .is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    last.bytes().all(|b| b.is_ascii_digit()) || hexish(last)
}

/// One allowlist entry: `*`, a host (any port) or `host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Any,
    Host(String),
    HostPort(String, u16),
}

/// Where a node may connect at the word of a request, a definition or a snapshot. The
/// default (auth off, no `--dial-allow`) dials anything but link-local and metadata
/// addresses; a restricted policy only nodes of the cluster and its entries. Link-local and
/// metadata addresses are dialled only when an entry names them (not by `*`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DialPolicy {
    restricted: bool,
    entries: Vec<Entry>,
}

impl DialPolicy {
    /// Only cluster nodes and the `allow` entries (`*`, `HOST` or `HOST:PORT`).
    pub fn restricted(allow: &[String]) -> Result<Self, EgressError> {
        let entries = allow
            .iter()
            .map(|a| match a.as_str() {
                "*" => Ok(Entry::Any),
                "" => Err(EgressError::Unparsable {
                    field: "--dial-allow".into(),
                    text: String::new(),
                    why: "an empty entry",
                }),
                text => {
                    let (_, host, port) = Address::parts("--dial-allow", text)?;
                    Ok(match port {
                        None => Entry::Host(host),
                        Some(port) => Entry::HostPort(host, port),
                    })
                }
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

    /// Whether `address` may be dialled, `cluster` being the nodes' `host:port`s.
    pub fn check(
        &self,
        field: &str,
        address: &Address,
        cluster: &BTreeSet<String>,
    ) -> Result<(), EgressError> {
        if cluster.contains(&address.host_port()) {
            return Ok(());
        }
        let named = self.names(address);
        if address.is_metadata() && !named {
            return Err(EgressError::Metadata {
                field: field.to_string(),
                address: address.host_port(),
            });
        }
        let any = self.entries.contains(&Entry::Any);
        if !self.restricted || any || named {
            return Ok(());
        }
        Err(EgressError::NotAllowed {
            field: field.to_string(),
            address: address.host_port(),
        })
    }

    /// Whether an entry names `address` itself (`*` does not): where the node's own cloud
    /// credentials may be sent.
    pub fn names(&self, address: &Address) -> bool {
        self.entries.iter().any(|e| match e {
            Entry::Any => false,
            Entry::Host(h) => *h == address.host,
            Entry::HostPort(h, p) => *h == address.host && *p == address.port,
        })
    }

    /// [`Address::parse`] then [`Self::check`].
    pub fn check_url(
        &self,
        field: &str,
        url: &str,
        default_port: u16,
        cluster: &BTreeSet<String>,
    ) -> Result<Address, EgressError> {
        let address = Address::parse(field, url, default_port)?;
        self.check(field, &address, cluster)?;
        Ok(address)
    }
}

/// Where a [`PathPolicy`] lets files be read from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Root {
    /// Anywhere (a node without auth and without `--secrets-dir`).
    Any,
    /// Nowhere (auth required, no `--secrets-dir`).
    Nothing,
    /// Under this directory (`--secrets-dir`).
    Under(PathBuf),
}

/// Which files a request or definition may make a node read (a CA, a credentials file, a
/// passphrase): those under one directory (`--secrets-dir`), never the node's own secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPolicy {
    root: Root,
    denied: Vec<PathBuf>,
}

impl Default for PathPolicy {
    fn default() -> Self {
        Self::open()
    }
}

impl PathPolicy {
    /// Any path but the denied ones.
    pub fn open() -> Self {
        Self {
            root: Root::Any,
            denied: Vec::new(),
        }
    }

    /// Paths under `root` only.
    pub fn confined(root: PathBuf) -> Self {
        Self {
            root: Root::Under(root),
            denied: Vec::new(),
        }
    }

    /// No path at all (auth required, no `--secrets-dir`).
    pub fn refuse_all() -> Self {
        Self {
            root: Root::Nothing,
            denied: Vec::new(),
        }
    }

    /// Never `path` (the node's own TLS key...) nor, when it is a directory, anything under it
    /// (the node's data dir), whatever the root.
    pub fn deny(mut self, path: &Path) -> Self {
        self.denied
            .push(std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()));
        self
    }

    /// The path a node may read for `text`, or why not. Only absolute paths (a relative one
    /// would be checked under the root but opened under the process's working directory);
    /// `..` is refused; a path that exists is checked again after following its links.
    pub fn check(&self, field: &str, text: &str) -> Result<PathBuf, EgressError> {
        let bad = |why| EgressError::BadPath {
            field: field.to_string(),
            path: text.to_string(),
            why,
        };
        if text.is_empty() || text.contains('\0') {
            return Err(bad("empty, or a NUL byte"));
        }
        let given = Path::new(text);
        if given.is_relative() {
            return Err(bad("not an absolute path"));
        }
        if given
            .components()
            .any(|c| matches!(c, Component::ParentDir))
        {
            return Err(bad("`..` is not allowed"));
        }
        if self.root == Root::Nothing {
            return Err(EgressError::PathsRefused {
                field: field.to_string(),
            });
        }
        let path = given.to_path_buf();
        let real = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
        if let Root::Under(root) = &self.root {
            let root_real = std::fs::canonicalize(root).unwrap_or_else(|_| root.clone());
            if !path.starts_with(root) || !real.starts_with(&root_real) {
                return Err(EgressError::PathOutside {
                    field: field.to_string(),
                    path: text.to_string(),
                    root: root.display().to_string(),
                });
            }
        }
        if self
            .denied
            .iter()
            .any(|d| real.starts_with(d) || path.starts_with(d))
        {
            return Err(EgressError::PathDenied {
                field: field.to_string(),
                path: text.to_string(),
            });
        }
        Ok(real)
    }
}

#[cfg(test)]
mod tests;
