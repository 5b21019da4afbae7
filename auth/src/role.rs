//! Roles and what each allows. A scoped role names indexes (or sources) by a glob: `*` is any
//! run of characters, `?` one character; `books-*` matches `books-2024`.

use std::fmt;
use std::str::FromStr;

use crate::Need;

/// A glob over index or source names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob(String);

impl Glob {
    pub fn new(pattern: &str) -> Result<Self, RoleError> {
        if pattern.is_empty() {
            return Err(RoleError::EmptyGlob);
        }
        Ok(Self(pattern.to_string()))
    }

    pub fn matches(&self, name: &str) -> bool {
        matches(self.0.as_bytes(), name.as_bytes())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Iterative glob match with backtracking to the last `*` (linear for one `*`, no recursion).
fn matches(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == b'?' || c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|c| *c == b'*')
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoleError {
    #[error("unknown role `{0}` (known: admin, index_admin:GLOB, searcher:GLOB, ingest:GLOB, monitor, operator)")]
    Unknown(String),
    #[error("role `{0}` needs a glob of index or source names (`{0}:*` for all)")]
    MissingGlob(String),
    #[error("role `{0}` takes no glob")]
    UnexpectedGlob(String),
    #[error("a glob must not be empty")]
    EmptyGlob,
}

/// What a key may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Everything but the nodes' own services.
    Admin,
    /// Create, update, delete and control matching indexes; query and read them.
    IndexAdmin(Glob),
    /// Query, count and read the status of matching indexes.
    Searcher(Glob),
    /// Write documents to matching sources.
    Ingest(Glob),
    /// Read cluster state (health, topology, tasks, status, metrics); change nothing.
    Monitor,
    /// What a monitor may, plus topology changes, freeze, failover acknowledgement, backups,
    /// restores and recoveries.
    Operator,
    /// A node of the cluster: the nodes' own services and nothing else. Only nodes make keys
    /// with it (for themselves); the keys API refuses it.
    Node,
}

impl Role {
    /// Whether the role allows `need` on `target`.
    pub fn allows(&self, need: Need, target: Option<&str>) -> bool {
        self.grants(need, |glob| target.is_some_and(|t| glob.matches(t)))
    }

    /// Whether the role allows `need` on some index or source (a gRPC call's guard, before
    /// the service reads which one the message names).
    pub fn may(&self, need: Need) -> bool {
        self.grants(need, |_| true)
    }

    fn grants(&self, need: Need, scoped: impl Fn(&Glob) -> bool) -> bool {
        match (self, need) {
            (_, Need::Open) => true,
            (Role::Node, need) => need == Need::Node,
            (_, Need::Node) => false,
            (Role::Admin, _) => true,
            (Role::Monitor | Role::Operator, Need::Monitor | Need::IndexRead) => true,
            (Role::Operator, Need::Operator) => true,
            (Role::IndexAdmin(g), Need::IndexAdmin | Need::Query | Need::IndexRead) => scoped(g),
            (Role::Searcher(g), Need::Query | Need::IndexRead) => scoped(g),
            (Role::Ingest(g), Need::Ingest) => scoped(g),
            _ => false,
        }
    }
}

impl FromStr for Role {
    type Err = RoleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, glob) = match s.split_once(':') {
            Some((name, glob)) => (name, Some(Glob::new(glob)?)),
            None => (s, None),
        };
        let scoped = |make: fn(Glob) -> Role| {
            glob.clone()
                .map(make)
                .ok_or_else(|| RoleError::MissingGlob(name.to_string()))
        };
        let plain = |role: Role| match &glob {
            Some(_) => Err(RoleError::UnexpectedGlob(name.to_string())),
            None => Ok(role),
        };
        match name {
            "admin" => plain(Role::Admin),
            "monitor" => plain(Role::Monitor),
            "operator" => plain(Role::Operator),
            "node" => plain(Role::Node),
            "index_admin" => scoped(Role::IndexAdmin),
            "searcher" => scoped(Role::Searcher),
            "ingest" => scoped(Role::Ingest),
            _ => Err(RoleError::Unknown(s.to_string())),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Role::Admin => write!(f, "admin"),
            Role::Monitor => write!(f, "monitor"),
            Role::Operator => write!(f, "operator"),
            Role::Node => write!(f, "node"),
            Role::IndexAdmin(g) => write!(f, "index_admin:{}", g.as_str()),
            Role::Searcher(g) => write!(f, "searcher:{}", g.as_str()),
            Role::Ingest(g) => write!(f, "ingest:{}", g.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_as_shells_do() {
        let g = |p: &str| Glob::new(p).unwrap();
        assert!(g("*").matches("anything"));
        assert!(g("books-*").matches("books-2024"));
        assert!(!g("books-*").matches("book"));
        assert!(g("b?oks").matches("books"));
        assert!(g("*-logs-*").matches("app-logs-7"));
        assert!(!g("*-logs-*").matches("app-logs"));
        assert!(g("exact").matches("exact") && !g("exact").matches("exactly"));
        assert!(
            !g("a*a*a*a*b").matches(&"a".repeat(64)),
            "no blow-up on many stars"
        );
    }

    #[test]
    fn roles_read_and_write_back() {
        for text in [
            "admin",
            "monitor",
            "operator",
            "index_admin:books*",
            "searcher:*",
            "ingest:docs",
        ] {
            assert_eq!(text.parse::<Role>().unwrap().to_string(), text);
        }
        assert_eq!(
            "searcher".parse::<Role>(),
            Err(RoleError::MissingGlob("searcher".into()))
        );
        assert_eq!(
            "admin:x".parse::<Role>(),
            Err(RoleError::UnexpectedGlob("admin".into()))
        );
        assert_eq!("searcher:".parse::<Role>(), Err(RoleError::EmptyGlob));
        assert!(matches!("root".parse::<Role>(), Err(RoleError::Unknown(_))));
    }

    #[test]
    fn each_role_allows_what_it_says_and_nothing_more() {
        let r = |t: &str| t.parse::<Role>().unwrap();
        let books = Some("books");
        assert!(r("searcher:b*").allows(Need::Query, books));
        assert!(!r("searcher:b*").allows(Need::Query, Some("news")));
        assert!(!r("searcher:*").allows(Need::IndexAdmin, books));
        assert!(r("index_admin:books").allows(Need::IndexAdmin, books));
        assert!(!r("index_admin:books").allows(Need::Operator, None));
        assert!(r("ingest:docs").allows(Need::Ingest, Some("docs")));
        assert!(!r("ingest:docs").allows(Need::Query, Some("docs")));
        assert!(
            r("monitor").allows(Need::Monitor, None) && r("monitor").allows(Need::IndexRead, books)
        );
        assert!(
            !r("monitor").allows(Need::Query, books) && !r("monitor").allows(Need::Operator, None)
        );
        assert!(
            r("operator").allows(Need::Operator, None) && !r("operator").allows(Need::Admin, None)
        );
        assert!(r("admin").allows(Need::Admin, None) && r("admin").allows(Need::Ingest, Some("x")));
        for role in [
            "admin",
            "monitor",
            "operator",
            "searcher:*",
            "index_admin:*",
            "ingest:*",
        ] {
            assert!(
                !r(role).allows(Need::Node, None),
                "{role} calls node services"
            );
        }
        assert!(
            !r("searcher:*").allows(Need::Query, None),
            "a scoped need without a target"
        );
        assert!(r("node").allows(Need::Node, None) && !r("node").allows(Need::Monitor, None));
        assert!(r("searcher:b*").may(Need::Query) && !r("searcher:b*").may(Need::IndexAdmin));
        assert!(!r("monitor").may(Need::Query) && r("ingest:x").may(Need::Ingest));
    }
}
