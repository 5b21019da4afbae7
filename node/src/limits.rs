//! Process limits a node outgrows before anything else: open files. Every partition stream
//! connection, peer channel, client connection and index file handle is a descriptor, and
//! the usual soft limit (1024) is far below what a node hosting many PIndexes over many source
//! partitions holds; the hard limit is what the operator allows, so the node asks for it.

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Raises the soft limit of open files to the hard limit. Returns (before, after); `None` for
/// unlimited.
pub fn raise_open_files() -> Result<(Option<u64>, Option<u64>), String> {
    let limit = getrlimit(Resource::Nofile);
    let before = limit.current;
    if limit.current == limit.maximum {
        return Ok((before, before));
    }
    let raised = Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    setrlimit(Resource::Nofile, raised)
        .map_err(|e| format!("raising the open-files limit failed: {e}"))?;
    Ok((before, getrlimit(Resource::Nofile).current))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_soft_open_files_limit_is_raised_to_the_hard_one() {
        let (_, after) = super::raise_open_files().expect("raised");
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        assert_eq!(after, limit.maximum);
        assert_eq!(limit.current, limit.maximum);
    }
}
