//! The audit log: one JSON line per state-changing call and per denied call, in
//! `<data-dir>/audit/audit.log`, rotated by size (`audit.log.1` is the newest old file).
//! Calls between nodes are audited as counts: one line per peer, method and outcome per
//! window ([`summary`]). Repeated denials from one client address are written in full up to
//! [`summary::WRITTEN_PER_WINDOW`] a window, then counted into one summary line, so a flood
//! of bad requests cannot rotate the history away. Lines are written by one thread
//! ([`writer`]) fed through a bounded queue; a full queue drops events, counts them and
//! reports the count as an event of its own.
//!
//! Event ids (stable; documented in the README):
//!
//! | id | event |
//! |----|-------|
//! | 20001 | request denied: no or bad credentials (401) |
//! | 20002 | request denied: the identity lacks the permission (403) |
//! | 20003 | repeated denials from one client address in one window, summarised: `count` more 401s (or 403s) past the ones written in full |
//! | 20101 | index created, updated, deleted or controlled |
//! | 20102 | documents written to a source |
//! | 20201 | topology change asked or cancelled |
//! | 20202 | cluster control: freeze, unfreeze, failovers acknowledged |
//! | 20301 | backup repository, snapshot or restore operation |
//! | 20401 | recovery begun, committed, ended, aborted, or its automatic setting changed |
//! | 20501 | API key created or revoked |
//! | 20601 | calls of a node identity to the nodes' own services (shard search, copies, source streams, saves) in one window: `count` per peer, method and outcome |
//! | 20901 | any other state-changing call |
//! | 20902 | audit events dropped (the writer's queue was full): their `count` |

pub mod summary;
pub mod writer;

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::Need;

/// Every event: id, name.
pub const EVENTS: &[(u32, &str)] = &[
    (20001, "denied_unauthenticated"),
    (20002, "denied_forbidden"),
    (DENIALS_SUMMARISED, "denials_summarised"),
    (20101, "index_changed"),
    (20102, "documents_written"),
    (20201, "topology_changed"),
    (20202, "cluster_control"),
    (20301, "backup_operation"),
    (20401, "recovery_operation"),
    (20501, "api_key_changed"),
    (NODE_CALLS, "node_calls"),
    (20901, "state_changed"),
    (DROPPED, "audit_events_dropped"),
];

/// Denied without credentials (401).
pub const DENIED_UNAUTHENTICATED: u32 = 20001;
/// Denied for lack of a permission (403).
pub const DENIED_FORBIDDEN: u32 = 20002;
/// Repeated denials of one client address in one window.
pub const DENIALS_SUMMARISED: u32 = 20003;
/// Calls of node identities to the nodes' services, counted per window.
pub const NODE_CALLS: u32 = 20601;
/// Events the writer's full queue dropped.
pub const DROPPED: u32 = 20902;

/// The name of event `id` (`""` for an id not in [`EVENTS`]).
pub fn name_of(id: u32) -> &'static str {
    EVENTS
        .iter()
        .find(|(e, _)| *e == id)
        .map_or("", |(_, name)| name)
}

/// The event a call is, by what it needed, its method, its route template (or gRPC method) and
/// its HTTP status; `None`
/// for a read that was not denied (reads are not audited).
pub fn event_of(need: Need, method: &str, route: &str, status: u16) -> Option<(u32, &'static str)> {
    let id = match status {
        401 => DENIED_UNAUTHENTICATED,
        403 => DENIED_FORBIDDEN,
        _ if method.eq_ignore_ascii_case("GET") || method.eq_ignore_ascii_case("HEAD") => {
            return None
        }
        // Reads, whatever their method (a query is a POST), and the nodes' own calls to each
        // other (streams, shard calls, copies: the cluster's traffic, not anyone's action).
        _ if matches!(
            need,
            Need::Open | Need::Monitor | Need::IndexRead | Need::Query | Need::Node
        ) =>
        {
            return None
        }
        // REST templates and gRPC paths alike (`/tessera.v1.Supervisor/TopologyChange`).
        _ => match (need, route.to_ascii_lowercase()) {
            (Need::IndexAdmin, _) => 20101,
            (Need::Ingest, _) => 20102,
            (Need::Admin, r) if r.contains("/keys") => 20501,
            (Need::Operator, r) if r.contains("backup") => 20301,
            (Need::Operator, r) if r.contains("recovery") => 20401,
            (Need::Operator, r) if r.contains("topology") || r.contains("task") => 20201,
            (Need::Operator, _) => 20202,
            _ => 20901,
        },
    };
    EVENTS.iter().find(|(e, _)| *e == id).copied()
}

/// One audit line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Record {
    pub time_ms: u64,
    pub event: u32,
    pub name: &'static str,
    /// `anonymous`, `key:<id>:<name>` or `node:<uuid>`.
    pub identity: String,
    /// `METHOD /route/template` or the gRPC method's path.
    pub route: String,
    /// The index or source the call named (a gRPC call's: the one its message names).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
    /// The HTTP status (or the gRPC status's HTTP equivalent, see [`http_of_grpc`]).
    pub outcome: u16,
    /// A gRPC call's status code, as it ended (in the response's headers or its trailers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc_status: Option<i32>,
    /// The client's address (IP, without the port), when the listener knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// A summary line: how many calls it stands for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// A summary line: when its window began (`time_ms` is when it was written).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_start_ms: Option<u64>,
}

impl Record {
    /// A line of event `event` at `time_ms`, the optional fields empty.
    pub fn new(event: u32, time_ms: u64, identity: String, route: String, outcome: u16) -> Self {
        Self {
            time_ms,
            event,
            name: name_of(event),
            identity,
            route,
            index: None,
            outcome,
            grpc_status: None,
            client: None,
            count: None,
            window_start_ms: None,
        }
    }
}

/// A gRPC status code as the HTTP status the REST routes answer for it (the inverse of the
/// API's error mapping; codes without one count as 500).
pub fn http_of_grpc(code: i32) -> u16 {
    match code {
        0 => 200,
        1 => 499,
        3 | 11 => 400,
        4 => 504,
        5 => 404,
        6 | 9 | 10 => 409,
        7 => 403,
        8 => 429,
        12 => 501,
        14 => 503,
        16 => 401,
        _ => 500,
    }
}

/// The log file, rotated past `max_bytes`, keeping `keep` old files.
pub struct AuditLog {
    path: PathBuf,
    max_bytes: u64,
    keep: usize,
    file: std::fs::File,
    size: u64,
}

impl AuditLog {
    pub fn open(dir: &Path, max_bytes: u64, keep: usize) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("audit.log");
        let file = open_append(&path)?;
        let size = file.metadata()?.len();
        Ok(Self {
            path,
            max_bytes: max_bytes.max(1),
            keep: keep.max(1),
            file,
            size,
        })
    }

    /// Appends `record` as one line (written through, no buffering), rotating first when the
    /// file has reached its size.
    pub fn append(&mut self, record: &Record) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(record).map_err(std::io::Error::other)?;
        line.push(b'\n');
        if self.size > 0 && self.size + line.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        self.file.write_all(&line)?;
        self.size += line.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        let old = |n: usize| self.path.with_extension(format!("log.{n}"));
        let _ = std::fs::remove_file(old(self.keep));
        for n in (1..self.keep).rev() {
            if old(n).exists() {
                std::fs::rename(old(n), old(n + 1))?;
            }
        }
        std::fs::rename(&self.path, old(1))?;
        self.file = open_append(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

fn open_append(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_map_to_documented_events() {
        assert_eq!(
            event_of(Need::Query, "POST", "/api/index/{name}/query", 200),
            None,
            "a query changes nothing"
        );
        assert_eq!(
            event_of(Need::Monitor, "GET", "/api/cfg", 401).map(|e| e.0),
            Some(20001)
        );
        assert_eq!(
            event_of(Need::Monitor, "GET", "/api/cfg", 403).map(|e| e.0),
            Some(20002)
        );
        assert_eq!(
            event_of(Need::IndexAdmin, "PUT", "/api/index/{name}", 200).map(|e| e.0),
            Some(20101)
        );
        assert_eq!(
            event_of(Need::Ingest, "POST", "/api/source/{name}/bulk", 200).map(|e| e.0),
            Some(20102)
        );
        assert_eq!(
            event_of(Need::Operator, "POST", "/api/ctl/topology-change", 200).map(|e| e.0),
            Some(20201)
        );
        assert_eq!(
            event_of(Need::Operator, "POST", "/api/ctl/freeze", 200).map(|e| e.0),
            Some(20202)
        );
        assert_eq!(
            event_of(Need::Operator, "POST", "/api/backup/restore", 200).map(|e| e.0),
            Some(20301)
        );
        assert_eq!(
            event_of(Need::Operator, "POST", "/api/ctl/recovery/{id}/commit", 200).map(|e| e.0),
            Some(20401)
        );
        assert_eq!(
            event_of(Need::Admin, "POST", "/api/keys", 201).map(|e| e.0),
            Some(20501)
        );
        assert_eq!(
            event_of(
                Need::Operator,
                "POST",
                "/tessera.v1.Supervisor/TopologyChange",
                200
            )
            .map(|e| e.0),
            Some(20201)
        );
        assert_eq!(
            event_of(Need::Node, "POST", "/tessera.v1.Source/Stream", 200),
            None,
            "the nodes' own traffic is not audited"
        );
        assert_eq!(
            event_of(Need::Node, "POST", "/tessera.v1.Source/Stream", 403).map(|e| e.0),
            Some(20002)
        );
        assert_eq!(http_of_grpc(3), 400, "InvalidArgument");
        assert_eq!(http_of_grpc(13), 500, "Internal");
        assert_eq!(name_of(DROPPED), "audit_events_dropped");
        // The module doc's table lists every event.
        let doc = include_str!("audit.rs");
        for (id, _) in EVENTS {
            assert!(
                doc.contains(&format!("//! | {id} |")),
                "event {id} undocumented"
            );
        }
    }

    #[test]
    fn the_log_rotates_by_size_and_keeps_what_it_should() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = AuditLog::open(dir.path(), 300, 2).unwrap();
        let record = |i: u64| Record {
            index: Some("books".into()),
            ..Record::new(
                20101,
                i,
                "key:0011223344556677:ci".into(),
                "PUT /api/index/{name}".into(),
                200,
            )
        };
        for i in 0..20 {
            log.append(&record(i)).unwrap();
        }
        let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap_or_default();
        let newest = read("audit.log");
        assert!(newest.len() <= 300, "{}", newest.len());
        let last: serde_json::Value = serde_json::from_str(newest.lines().last().unwrap()).unwrap();
        assert_eq!(last["time_ms"], 19);
        assert_eq!(last["index"], "books");
        assert!(!read("audit.log.1").is_empty() && !read("audit.log.2").is_empty());
        assert!(
            !dir.path().join("audit.log.3").exists(),
            "only 2 old files kept"
        );
        let mode = std::fs::metadata(dir.path().join("audit.log"))
            .unwrap()
            .permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
    }
}
