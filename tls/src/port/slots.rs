//! Connection slots of the port: a total, a share of it reserved for the cluster's nodes, and
//! a cap per client address. Counted when a connection is accepted, before anything is read
//! from it, so a connection over a limit is closed at once and never queues behind the others;
//! a [`Slot`] gives its place back when the connection ends.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Every slot is taken.
    Total,
    /// Every slot clients may take is taken (the rest are the nodes').
    Clients,
    /// This client address holds its share.
    PerClient,
}

impl Refused {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Total => "max-connections",
            Self::Clients => "max-connections (the rest reserved for nodes)",
            Self::PerClient => "max-connections-per-client",
        }
    }
}

/// The slots' bounds.
#[derive(Debug, Clone, Copy)]
pub struct SlotLimits {
    pub total: usize,
    /// Of `total`, kept for connections from the nodes' addresses.
    pub reserved_for_nodes: usize,
    /// Connections one client address may hold (nodes' addresses are not capped by it).
    pub per_client: usize,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    clients: usize,
    per_client: HashMap<IpAddr, usize>,
}

/// The port's slots; shared by the accept loop and the connections' [`Slot`]s.
#[derive(Debug)]
pub struct Slots {
    limits: SlotLimits,
    counts: Mutex<Counts>,
}

/// A taken slot, given back on drop.
#[derive(Debug)]
pub struct Slot {
    slots: Arc<Slots>,
    client: Option<IpAddr>,
}

impl Slots {
    pub fn new(limits: SlotLimits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            counts: Mutex::new(Counts::default()),
        })
    }

    /// A slot for a connection from `ip`, a node's address when `node`.
    pub fn admit(self: &Arc<Self>, ip: IpAddr, node: bool) -> Result<Slot, Refused> {
        let mut counts = match self.counts.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        if counts.total >= self.limits.total {
            return Err(Refused::Total);
        }
        if node {
            counts.total += 1;
            return Ok(Slot {
                slots: self.clone(),
                client: None,
            });
        }
        let for_clients = self
            .limits
            .total
            .saturating_sub(self.limits.reserved_for_nodes);
        if counts.clients >= for_clients {
            return Err(Refused::Clients);
        }
        let held = counts.per_client.get(&ip).copied().unwrap_or(0);
        if held >= self.limits.per_client {
            return Err(Refused::PerClient);
        }
        counts.total += 1;
        counts.clients += 1;
        counts.per_client.insert(ip, held + 1);
        Ok(Slot {
            slots: self.clone(),
            client: Some(ip),
        })
    }

    /// Connections held now (all, clients').
    pub fn held(&self) -> (usize, usize) {
        match self.counts.lock() {
            Ok(c) => (c.total, c.clients),
            Err(poisoned) => {
                let c = poisoned.into_inner();
                (c.total, c.clients)
            }
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = match self.slots.counts.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        counts.total = counts.total.saturating_sub(1);
        if let Some(ip) = self.client {
            counts.clients = counts.clients.saturating_sub(1);
            if let Some(held) = counts.per_client.get_mut(&ip) {
                *held = held.saturating_sub(1);
                if *held == 0 {
                    counts.per_client.remove(&ip);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn clients_leave_the_nodes_share_and_each_holds_at_most_its_own() {
        let slots = Slots::new(SlotLimits {
            total: 10,
            reserved_for_nodes: 4,
            per_client: 3,
        });
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(slots.admit(ip(1), false).unwrap());
        }
        assert_eq!(slots.admit(ip(1), false).unwrap_err(), Refused::PerClient);
        for _ in 0..3 {
            held.push(slots.admit(ip(2), false).unwrap());
        }
        assert_eq!(slots.admit(ip(3), false).unwrap_err(), Refused::Clients);
        // The nodes' share is theirs, and nodes are not capped per address.
        for _ in 0..4 {
            held.push(slots.admit(ip(9), true).unwrap());
        }
        assert_eq!(slots.admit(ip(9), true).unwrap_err(), Refused::Total);
        assert_eq!(slots.held(), (10, 6));
        // A connection that ends gives its slot back, to its own address too.
        held.remove(0);
        assert_eq!(slots.held(), (9, 5));
        let again = slots.admit(ip(1), false).unwrap();
        drop(held);
        drop(again);
        assert_eq!(slots.held(), (0, 0));
    }
}
