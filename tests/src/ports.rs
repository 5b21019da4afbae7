//! Loopback ports for processes a test starts (etcd members, `tessera` nodes and sources),
//! which bind them only later. Picking with `bind(127.0.0.1:0)` and letting go races: the
//! kernel hands the same ephemeral port to the next caller (two members of one cluster got one
//! peer port), to another test process, or to an outgoing connection's local end before the
//! child binds it (`address already in use`). So ports come from below Linux's ephemeral range
//! (32768–60999), which the kernel never hands out by itself, and each is claimed across
//! processes by creating a file named after it (create-new, with the claiming pid); a claim
//! whose process is gone is taken over.

use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::path::PathBuf;

/// The range ports are picked from.
const FIRST: u16 = 20_000;
const LAST: u16 = 32_000;

fn claims_dir() -> PathBuf {
    std::env::temp_dir().join("tessera-test-ports")
}

fn random_port() -> u16 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    FIRST + (hasher.finish() % u64::from(LAST - FIRST)) as u16
}

/// Whether the process that claimed a port still runs.
fn claimant_alive(claim: &std::path::Path) -> bool {
    let Ok(pid) = std::fs::read_to_string(claim) else {
        // Being written right now: its claimant runs.
        return true;
    };
    let pid = pid.trim();
    pid.is_empty() || std::path::Path::new("/proc").join(pid).exists()
}

/// A loopback port no other test process has claimed, free now, outside the ephemeral range.
/// Panics (naming why) when none is found after many tries.
pub fn free_port() -> u16 {
    let dir = claims_dir();
    if let Err(e) = std::fs::create_dir_all(&dir) {
        panic!("cannot create {}: {e}", dir.display());
    }
    for _ in 0..10_000 {
        let port = random_port();
        let claim = dir.join(port.to_string());
        let file = match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&claim)
        {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                if !claimant_alive(&claim) {
                    // Left by a test process that is gone: free it for a later pick.
                    let _ = std::fs::remove_file(&claim);
                }
                continue;
            }
            Err(e) => panic!("cannot claim a port in {}: {e}", dir.display()),
        };
        let mut file = file;
        if file
            .write_all(std::process::id().to_string().as_bytes())
            .is_err()
        {
            let _ = std::fs::remove_file(&claim);
            continue;
        }
        // Claimed; is it free on this machine too (something outside the tests may hold it)?
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {FIRST}..{LAST} after 10 000 tries");
}

#[cfg(test)]
mod tests {
    #[test]
    fn ports_are_distinct_and_bindable() {
        let ports: Vec<u16> = (0..50).map(|_| super::free_port()).collect();
        let distinct: std::collections::BTreeSet<_> = ports.iter().collect();
        assert_eq!(distinct.len(), ports.len(), "a port was handed out twice");
        for p in ports {
            assert!((super::FIRST..super::LAST).contains(&p));
            std::net::TcpListener::bind(("127.0.0.1", p)).expect("bindable");
        }
    }
}
