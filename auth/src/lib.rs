//! Who may call what on a node. Pure rules, no I/O but the audit log's file:
//!
//! - [`role`]: the roles a key carries (`admin`, `index_admin:<glob>`, `searcher:<glob>`,
//!   `ingest:<glob>`, `monitor`, `operator`) and what each allows.
//! - [`permission`]: the permission table — every REST route and gRPC method mapped to what it
//!   needs; anything not in it is denied.
//! - [`key`]: API keys (`tsk_<id>_<secret>`): made, stored as a keyed hash, checked in
//!   microseconds.
//! - [`egress`]: the one dial policy and path policy for every address and file a request,
//!   a definition or a snapshot names.
//! - [`audit`]: the audit log's events (documented ids) and its size-rotated JSON-lines file.
//!
//! The node applies these rules in `tessera-api`'s `access` module.

pub mod audit;
pub mod egress;
pub mod key;
pub mod permission;
pub mod role;

pub use permission::{grpc_need, rest_need, Need};
pub use role::{Glob, Role};

/// Who a request comes from, once its credentials are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// No credentials.
    Anonymous,
    /// An API key: its id, name and roles.
    Key {
        id: String,
        name: String,
        roles: Vec<Role>,
    },
    /// A node of the cluster (by the uuid its certificate names).
    Node(String),
}

impl Identity {
    /// Whether this identity may do what `need` asks of `target` (the index or source the
    /// call names, if any).
    pub fn allows(&self, need: Need, target: Option<&str>) -> bool {
        self.granted(need, |role| role.allows(need, target))
    }

    /// Whether this identity may do `need` on some index or source (see [`Role::may`]).
    pub fn may(&self, need: Need) -> bool {
        self.granted(need, |role| role.may(need))
    }

    /// Open calls for anyone, node calls for nodes, the rest as a key's roles say.
    fn granted(&self, need: Need, by_role: impl Fn(&Role) -> bool) -> bool {
        match (self, need) {
            (_, Need::Open) => true,
            (Identity::Node(_), Need::Node) => true,
            (Identity::Key { roles, .. }, _) => roles.iter().any(by_role),
            _ => false,
        }
    }

    /// Names the identity in the audit log.
    pub fn describe(&self) -> String {
        match self {
            Identity::Anonymous => "anonymous".into(),
            Identity::Key { id, name, .. } => format!("key:{id}:{name}"),
            Identity::Node(uuid) => format!("node:{uuid}"),
        }
    }
}
