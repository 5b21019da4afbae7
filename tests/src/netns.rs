//! Hosts in network namespaces, for tests of network partitions. Each host is a namespace
//! with one link (a veth pair) to a bridge in the test's own namespace, on a /24 of its own
//! (`10.211.N.0/24`, the bridge `.1`, hosts `.2` up): processes started in a host bind its
//! address, and the test process reaches every host through the bridge, as a client would.
//!
//! Faults: [`Net::cut`] separates two hosts (a blackhole route on each side, so neither can
//! send to the other; everyone else still reaches both), [`Net::isolate`] takes a host's link
//! down (no one reaches it, it reaches no one), and [`Net::heal`] / [`Net::rejoin`] undo them.
//! Needs root (`ip netns`, iproute2): it fails loudly without, it never skips. Everything is
//! removed on drop; subnets are claimed across test processes like ports.

use std::path::PathBuf;
use std::process::Command;

/// Hosts on one bridge; see the module docs.
pub struct Net {
    n: u8,
    bridge: String,
    hosts: usize,
    claim: PathBuf,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap_or_else(|e| {
        panic!("cannot run `ip` (iproute2 is needed for partition tests): {e}")
    });
    assert!(
        out.status.success(),
        "`ip {}` failed (partition tests need root and iproute2): {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// Claims a subnet number no other test process holds (a file per number, create-new).
fn claim_subnet() -> (u8, PathBuf) {
    let dir = std::env::temp_dir().join("tessera-test-nets");
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    for n in 1..=250u8 {
        let claim = dir.join(n.to_string());
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&claim)
        {
            use std::io::Write;
            let _ = write!(file, "{}", std::process::id());
            return (n, claim);
        }
        // A claim whose process is gone is taken over.
        let pid = std::fs::read_to_string(&claim).unwrap_or_default();
        let pid = pid.trim();
        if !pid.is_empty() && !std::path::Path::new("/proc").join(pid).exists() {
            let _ = std::fs::write(&claim, std::process::id().to_string());
            return (n, claim);
        }
    }
    panic!("no free test subnet under {}", dir.display());
}

impl Net {
    /// `hosts` hosts, each reachable from the test at [`Net::ip`].
    pub fn new(hosts: usize) -> Net {
        let (n, claim) = claim_subnet();
        let net = Net {
            n,
            bridge: format!("tsb{n}"),
            hosts,
            claim,
        };
        // Left over by a test process that was killed: start clean.
        net.remove();
        ip(&["link", "add", &net.bridge, "type", "bridge"]);
        ip(&[
            "addr",
            "add",
            &format!("10.211.{n}.1/24"),
            "dev",
            &net.bridge,
        ]);
        ip(&["link", "set", &net.bridge, "up"]);
        for i in 0..hosts {
            let ns = net.ns(i);
            let (outside, inside) = (net.link(i), format!("tsp{n}x{i}"));
            ip(&["netns", "add", &ns]);
            ip(&[
                "link", "add", &outside, "type", "veth", "peer", "name", &inside,
            ]);
            ip(&["link", "set", &inside, "netns", &ns]);
            ip(&["link", "set", &outside, "master", &net.bridge]);
            ip(&["link", "set", &outside, "up"]);
            let addr = format!("{}/24", net.ip(i));
            ip(&["-n", &ns, "addr", "add", &addr, "dev", &inside]);
            ip(&["-n", &ns, "link", "set", &inside, "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
        }
        net
    }

    /// The namespace of host `i`.
    pub fn ns(&self, i: usize) -> String {
        format!("tsn{}x{i}", self.n)
    }

    /// The address of host `i`.
    pub fn ip(&self, i: usize) -> String {
        format!("10.211.{}.{}", self.n, i + 2)
    }

    /// The bridge side of host `i`'s link.
    fn link(&self, i: usize) -> String {
        format!("tsv{}x{i}", self.n)
    }

    /// `program` to run in host `i` (`ip netns exec`, which becomes the program: killing the
    /// child kills it).
    pub fn command(&self, i: usize, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.ns(i)]).arg(program);
        command
    }

    /// Hosts `a` and `b` can no longer reach each other; both still reach everyone else.
    pub fn cut(&self, a: usize, b: usize) {
        ip(&[
            "-n",
            &self.ns(a),
            "route",
            "add",
            "blackhole",
            &format!("{}/32", self.ip(b)),
        ]);
        ip(&[
            "-n",
            &self.ns(b),
            "route",
            "add",
            "blackhole",
            &format!("{}/32", self.ip(a)),
        ]);
    }

    /// Undoes [`Net::cut`].
    pub fn heal(&self, a: usize, b: usize) {
        ip(&[
            "-n",
            &self.ns(a),
            "route",
            "del",
            "blackhole",
            &format!("{}/32", self.ip(b)),
        ]);
        ip(&[
            "-n",
            &self.ns(b),
            "route",
            "del",
            "blackhole",
            &format!("{}/32", self.ip(a)),
        ]);
    }

    /// Host `i`'s link goes down: no one reaches it, it reaches no one.
    pub fn isolate(&self, i: usize) {
        ip(&["link", "set", &self.link(i), "down"]);
    }

    /// Undoes [`Net::isolate`].
    pub fn rejoin(&self, i: usize) {
        ip(&["link", "set", &self.link(i), "up"]);
    }

    fn remove(&self) {
        for i in 0..self.hosts {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(i)])
                .output();
            let _ = Command::new("ip")
                .args(["link", "del", &self.link(i)])
                .output();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .output();
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.remove();
        let _ = std::fs::remove_file(&self.claim);
    }
}
