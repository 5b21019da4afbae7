//! What of the stream of audit events reaches the file, pure (the time is given): denials
//! (events 20001, 20002) are written in full up to [`WRITTEN_PER_WINDOW`] per client address
//! and event in a window, then counted, and the count written as one event 20003 when the
//! window ends; calls of node identities (event 20601) are only counted, per peer, method and
//! outcome, and written as one line per window. Every other event is written at once.
//!
//! The windows tracked are bounded ([`MAX_TRACKED`]): past it, a new client address or peer
//! is counted under `*`, so made-up addresses cannot grow the table.

use std::collections::HashMap;

use super::{Record, DENIALS_SUMMARISED, DENIED_FORBIDDEN, DENIED_UNAUTHENTICATED, NODE_CALLS};

/// Denials of one client address (and event) written in full per window.
pub const WRITTEN_PER_WINDOW: u32 = 10;
/// Windows tracked at once; past it new clients share the `*` window.
pub const MAX_TRACKED: usize = 4096;

/// Who the window is for: (event, client address or peer, route, outcome).
type Key = (u32, String, String, u16);

#[derive(Debug)]
struct Window {
    start_ms: u64,
    written: u32,
    counted: u64,
    /// The last call counted: what the summary line names.
    last: Option<Record>,
}

/// See the module docs.
#[derive(Debug)]
pub struct Summariser {
    window_ms: u64,
    windows: HashMap<Key, Window>,
}

impl Summariser {
    pub fn new(window_ms: u64) -> Self {
        Self {
            window_ms: window_ms.max(1),
            windows: HashMap::new(),
        }
    }

    /// The lines to write now for `record`, seen at `now_ms` (none while it is counted; the
    /// summary of its key's previous window when that ended).
    pub fn admit(&mut self, record: Record, now_ms: u64) -> Vec<Record> {
        let mut out = Vec::new();
        let key: Key = match record.event {
            DENIED_UNAUTHENTICATED | DENIED_FORBIDDEN => (
                record.event,
                record.client.clone().unwrap_or_else(|| "-".into()),
                String::new(),
                0,
            ),
            NODE_CALLS => (
                record.event,
                record.identity.clone(),
                record.route.clone(),
                record.outcome,
            ),
            _ => {
                out.push(record);
                return out;
            }
        };
        let key = self.tracked(key);
        let ended = self
            .windows
            .get(&key)
            .is_some_and(|w| now_ms >= w.start_ms.saturating_add(self.window_ms));
        if ended {
            if let Some(window) = self.windows.remove(&key) {
                out.extend(summary(&key, window, now_ms));
            }
        }
        let window = self.windows.entry(key).or_insert(Window {
            start_ms: now_ms,
            written: 0,
            counted: 0,
            last: None,
        });
        let counted_only = record.event == NODE_CALLS;
        if !counted_only && window.written < WRITTEN_PER_WINDOW {
            window.written += 1;
            out.push(record);
        } else {
            window.counted += 1;
            window.last = Some(record);
        }
        out
    }

    /// The summaries of the windows ended by `now_ms` (their keys forgotten).
    pub fn flush(&mut self, now_ms: u64) -> Vec<Record> {
        let window_ms = self.window_ms;
        let ended: Vec<Key> = self
            .windows
            .iter()
            .filter(|(_, w)| now_ms >= w.start_ms.saturating_add(window_ms))
            .map(|(k, _)| k.clone())
            .collect();
        self.take(ended, now_ms)
    }

    /// The summaries of every window, ended or not (on the way out).
    pub fn drain(&mut self, now_ms: u64) -> Vec<Record> {
        let all: Vec<Key> = self.windows.keys().cloned().collect();
        self.take(all, now_ms)
    }

    fn take(&mut self, keys: Vec<Key>, now_ms: u64) -> Vec<Record> {
        let mut out: Vec<Record> = keys
            .into_iter()
            .filter_map(|k| self.windows.remove(&k).and_then(|w| summary(&k, w, now_ms)))
            .collect();
        out.sort_by_key(|r| r.window_start_ms);
        out
    }

    /// `key`, or its `*` form when the table is full and `key` is new.
    fn tracked(&self, key: Key) -> Key {
        if self.windows.len() < MAX_TRACKED || self.windows.contains_key(&key) {
            return key;
        }
        (key.0, "*".into(), key.2, key.3)
    }
}

/// The line a window ends with: `None` when nothing was counted in it.
fn summary(key: &Key, window: Window, now_ms: u64) -> Option<Record> {
    let last = window.last.filter(|_| window.counted > 0)?;
    let event = if key.0 == NODE_CALLS {
        NODE_CALLS
    } else {
        DENIALS_SUMMARISED
    };
    let mut line = Record::new(event, now_ms, last.identity, last.route, last.outcome);
    line.index = last.index;
    line.grpc_status = last.grpc_status;
    line.client = if key.1 == "*" && key.0 != NODE_CALLS {
        Some("*".into())
    } else {
        last.client
    };
    if key.0 == NODE_CALLS && key.1 == "*" {
        line.identity = "*".into();
    }
    line.count = Some(window.counted);
    line.window_start_ms = Some(window.start_ms);
    Some(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn denial(client: &str, at: u64) -> Record {
        Record {
            client: Some(client.into()),
            ..Record::new(
                DENIED_UNAUTHENTICATED,
                at,
                "anonymous".into(),
                "GET /api/cfg".into(),
                401,
            )
        }
    }

    #[test]
    fn a_flood_of_denials_is_a_few_lines_and_one_count() {
        let mut s = Summariser::new(60_000);
        let mut written = Vec::new();
        for i in 0..100_000u64 {
            written.extend(s.admit(denial("10.0.0.9", i / 10), i / 10));
        }
        // Another client in the same window still has its lines written.
        written.extend(s.admit(denial("10.0.0.7", 5), 5));
        assert_eq!(written.len(), WRITTEN_PER_WINDOW as usize + 1);
        assert!(written.iter().all(|r| r.event == DENIED_UNAUTHENTICATED));
        assert!(s.flush(59_999).is_empty(), "the window is still open");
        let summaries = s.flush(60_000);
        assert_eq!(summaries.len(), 1, "{summaries:?}");
        let line = &summaries[0];
        assert_eq!(line.event, DENIALS_SUMMARISED);
        assert_eq!(line.name, "denials_summarised");
        assert_eq!(line.client.as_deref(), Some("10.0.0.9"));
        assert_eq!(line.count, Some(100_000 - u64::from(WRITTEN_PER_WINDOW)));
        assert_eq!(line.window_start_ms, Some(0));
        assert_eq!(line.outcome, 401);
        // A new window writes again.
        assert_eq!(s.admit(denial("10.0.0.9", 70_000), 70_000).len(), 1);
    }

    #[test]
    fn made_up_addresses_cannot_grow_the_table() {
        let mut s = Summariser::new(60_000);
        let mut written = 0;
        for i in 0..(MAX_TRACKED as u64 + 5_000) {
            written += s.admit(denial(&format!("fd00::{i:x}"), 1), 1).len();
        }
        assert!(s.windows.len() <= MAX_TRACKED + 1, "{}", s.windows.len());
        let overflow = s.flush(60_001);
        let star = overflow
            .iter()
            .find(|r| r.client.as_deref() == Some("*"))
            .expect("a summary for the other clients");
        assert_eq!(
            star.count.unwrap_or(0) + written as u64,
            MAX_TRACKED as u64 + 5_000,
            "every denial written or counted"
        );
    }

    #[test]
    fn node_calls_are_counted_per_peer_method_and_outcome() {
        let mut s = Summariser::new(1_000);
        let call = |peer: &str, route: &str, outcome: u16| {
            Record::new(NODE_CALLS, 0, format!("node:{peer}"), route.into(), outcome)
        };
        for _ in 0..7 {
            assert!(s
                .admit(call("a", "/tessera.v1.Search/ShardSearch", 200), 10)
                .is_empty());
        }
        s.admit(call("a", "/tessera.v1.Copy/ReadFile", 200), 20);
        s.admit(call("b", "/tessera.v1.Search/ShardSearch", 200), 30);
        s.admit(call("a", "/tessera.v1.Search/ShardSearch", 500), 40);
        let lines = s.flush(2_000);
        let count = |peer: &str, route: &str, outcome: u16| {
            lines
                .iter()
                .find(|l| {
                    l.identity == format!("node:{peer}") && l.route == route && l.outcome == outcome
                })
                .and_then(|l| l.count)
        };
        assert_eq!(lines.len(), 4, "{lines:?}");
        assert_eq!(count("a", "/tessera.v1.Search/ShardSearch", 200), Some(7));
        assert_eq!(count("a", "/tessera.v1.Search/ShardSearch", 500), Some(1));
        assert_eq!(count("a", "/tessera.v1.Copy/ReadFile", 200), Some(1));
        assert_eq!(count("b", "/tessera.v1.Search/ShardSearch", 200), Some(1));
        assert!(lines.iter().all(|l| l.event == NODE_CALLS));
    }

    #[test]
    fn other_events_pass_at_once_and_drain_ends_open_windows() {
        let mut s = Summariser::new(60_000);
        let changed = Record::new(
            20101,
            1,
            "key:k:n".into(),
            "PUT /api/index/{name}".into(),
            200,
        );
        assert_eq!(s.admit(changed.clone(), 1), vec![changed]);
        for i in 0..(WRITTEN_PER_WINDOW + 3) {
            s.admit(denial("10.0.0.1", u64::from(i)), u64::from(i));
        }
        let drained = s.drain(100);
        assert_eq!(drained.len(), 1);
        assert_eq!(drained[0].count, Some(3));
        assert!(s.drain(200).is_empty());
    }
}
