//! Which nodes the cluster defines now, as the port needs to know them: a certificate naming a
//! node uuid is a node identity only while that uuid is defined (a node removed from the
//! cluster stops being one at its next request, not when its certificate expires), and
//! connections from the nodes' addresses may use the connection slots reserved for peers, so
//! clients cannot starve the cluster's own calls. The node's wiring keeps it current from a
//! watch of the node definitions; this crate only reads it.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

/// The defined nodes; clones share them. A directory never set (a standalone source, tests)
/// pins nothing: every node certificate of the node CA counts, and no address is a peer's.
#[derive(Clone, Default)]
pub struct NodeDirectory {
    inner: Arc<RwLock<Option<Defined>>>,
}

#[derive(Default)]
struct Defined {
    /// Node uuid → the addresses its definition resolves to.
    nodes: HashMap<String, Vec<IpAddr>>,
    addresses: HashSet<IpAddr>,
}

impl NodeDirectory {
    /// A directory that pins node identities to `nodes` (uuid, addresses) from the start.
    pub fn pinned(nodes: impl IntoIterator<Item = (String, Vec<IpAddr>)>) -> Self {
        let directory = Self::default();
        directory.set(nodes);
        directory
    }

    /// Replaces the defined nodes with `nodes` (uuid, the addresses its definition names).
    pub fn set(&self, nodes: impl IntoIterator<Item = (String, Vec<IpAddr>)>) {
        let nodes: HashMap<String, Vec<IpAddr>> = nodes.into_iter().collect();
        let addresses = nodes.values().flatten().copied().collect();
        let defined = Defined { nodes, addresses };
        match self.inner.write() {
            Ok(mut guard) => *guard = Some(defined),
            Err(poisoned) => *poisoned.into_inner() = Some(defined),
        }
    }

    /// Whether `uuid` is a node of the cluster now (always, for a directory never set).
    pub fn is_node(&self, uuid: &str) -> bool {
        self.read(|d| d.is_none_or(|d| d.nodes.contains_key(uuid)))
    }

    /// Whether `ip` is an address of a defined node (never, for a directory never set).
    pub fn is_node_address(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.read(|d| d.is_some_and(|d| d.addresses.contains(&ip)))
    }

    fn read<T>(&self, f: impl FnOnce(Option<&Defined>) -> T) -> T {
        match self.inner.read() {
            Ok(guard) => f(guard.as_ref()),
            Err(poisoned) => f(poisoned.into_inner().as_ref()),
        }
    }
}

/// An IPv4 address mapped into IPv6 (a dual-stack listener's view) as the IPv4 address.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_pins_nodes_and_their_addresses_once_set() {
        let directory = NodeDirectory::default();
        assert!(directory.is_node("anyone"), "never set: nothing pinned");
        assert!(!directory.is_node_address("127.0.0.1".parse().unwrap()));
        directory.set([("n1".to_string(), vec!["10.0.0.1".parse().unwrap()])]);
        assert!(directory.is_node("n1"));
        assert!(!directory.is_node("n2"), "not defined");
        assert!(directory.is_node_address("10.0.0.1".parse().unwrap()));
        assert!(directory.is_node_address("::ffff:10.0.0.1".parse().unwrap()));
        assert!(!directory.is_node_address("10.0.0.2".parse().unwrap()));
        directory.set(Vec::new());
        assert!(!directory.is_node("n1"), "removed: no longer a node");
    }
}
