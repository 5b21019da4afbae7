//! The one writer of the audit log: a thread of its own (`tessera-audit`) takes events from
//! a bounded queue, passes them through the [`Summariser`] and appends what it keeps to the
//! [`AuditLog`]. Request handlers only enqueue ([`AuditSink::record`] never waits: no lock
//! held across file I/O inside an async task). When the queue is full the event is dropped
//! and counted; the writer writes the count as event 20902 once a tick, so a gap is on the
//! record. The thread ends once every sink is dropped, writing the open windows' summaries
//! first.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::summary::Summariser;
use super::{AuditLog, Record, DROPPED};

/// Events queued for the writer, at most; past it they are dropped and counted.
pub const QUEUE: usize = 4096;
/// How often the writer ends windows and reports drops.
const TICK: Duration = Duration::from_secs(1);

/// The sending side; clones share the queue and the drop count.
#[derive(Clone)]
pub struct AuditSink {
    tx: SyncSender<Record>,
    dropped: Arc<Drops>,
}

#[derive(Default)]
struct Drops {
    /// Dropped since the writer last reported.
    pending: AtomicU64,
    /// Dropped since start.
    total: AtomicU64,
}

/// The writer thread; [`Writer::join`] waits for it to end (after every sink dropped).
pub struct Writer {
    thread: std::thread::JoinHandle<()>,
}

impl Writer {
    /// Waits for the writer to have written everything queued and the open windows'
    /// summaries; `false` when the thread panicked.
    pub fn join(self) -> bool {
        self.thread.join().is_ok()
    }
}

impl AuditSink {
    /// Starts the writer over `log` with a queue of `capacity` and summary windows of
    /// `window_ms`.
    pub fn start(
        log: AuditLog,
        capacity: usize,
        window_ms: u64,
    ) -> std::io::Result<(Self, Writer)> {
        let (sink, rx) = Self::queue(capacity);
        let dropped = sink.dropped.clone();
        let thread = std::thread::Builder::new()
            .name("tessera-audit".into())
            .spawn(move || write_all(log, rx, dropped, Summariser::new(window_ms)))?;
        Ok((sink, Writer { thread }))
    }

    fn queue(capacity: usize) -> (Self, Receiver<Record>) {
        let (tx, rx) = sync_channel(capacity.max(1));
        let sink = Self {
            tx,
            dropped: Arc::default(),
        };
        (sink, rx)
    }

    /// Queues `record` for the writer; never waits. A full queue (or a writer gone) drops it
    /// and counts it.
    pub fn record(&self, record: Record) {
        match self.tx.try_send(record) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.pending.fetch_add(1, Ordering::Relaxed);
                self.dropped.total.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Events dropped since start.
    pub fn dropped(&self) -> u64 {
        self.dropped.total.load(Ordering::Relaxed)
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn write_all(mut log: AuditLog, rx: Receiver<Record>, dropped: Arc<Drops>, mut s: Summariser) {
    let mut append = |lines: Vec<Record>| {
        for line in lines {
            if let Err(e) = log.append(&line) {
                tracing::error!(error = %e, event = line.event, "cannot append to the audit log");
            }
        }
    };
    let mut last_tick = Instant::now();
    loop {
        let open = match rx.recv_timeout(TICK) {
            Ok(record) => {
                append(s.admit(record, now_ms()));
                true
            }
            Err(RecvTimeoutError::Timeout) => true,
            Err(RecvTimeoutError::Disconnected) => false,
        };
        if !open || last_tick.elapsed() >= TICK {
            last_tick = Instant::now();
            let now = now_ms();
            let mut lines = if open { s.flush(now) } else { s.drain(now) };
            let lost = dropped.pending.swap(0, Ordering::Relaxed);
            if lost > 0 {
                let mut line = Record::new(DROPPED, now, "-".into(), "-".into(), 0);
                line.count = Some(lost);
                lines.push(line);
            }
            append(lines);
        }
        if !open {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(dir: &std::path::Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(dir.join("audit.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    #[test]
    fn a_full_queue_drops_counts_and_reports() {
        let dir = tempfile::tempdir().expect("dir");
        let log = AuditLog::open(dir.path(), 1 << 20, 2).expect("log");
        // The writer not yet running: the queue fills and the rest is dropped, without
        // waiting.
        let (sink, rx) = AuditSink::queue(4);
        let event = |i: u64| Record::new(20101, i, "anonymous".into(), "PUT /x".into(), 200);
        let started = Instant::now();
        for i in 0..10 {
            sink.record(event(i));
        }
        assert!(started.elapsed() < Duration::from_secs(1), "record waited");
        assert_eq!(sink.dropped(), 6);
        let dropped = sink.dropped.clone();
        drop(sink);
        write_all(log, rx, dropped, Summariser::new(60_000));
        let written = lines(dir.path());
        assert_eq!(
            written.iter().filter(|l| l["event"] == 20101).count(),
            4,
            "{written:?}"
        );
        let report = written
            .iter()
            .find(|l| l["event"] == DROPPED)
            .expect("the drops reported");
        assert_eq!(report["count"], 6);
        assert_eq!(report["name"], "audit_events_dropped");
    }

    #[test]
    fn the_writer_summarises_and_ends_when_the_sinks_are_gone() {
        let dir = tempfile::tempdir().expect("dir");
        let log = AuditLog::open(dir.path(), 1 << 20, 2).expect("log");
        let (sink, writer) = AuditSink::start(log, QUEUE, 60_000).expect("writer");
        for i in 0..500 {
            let mut denial = Record::new(20001, i, "anonymous".into(), "GET /api/cfg".into(), 401);
            denial.client = Some("192.0.2.1".into());
            sink.record(denial);
        }
        let dropped = sink.dropped();
        drop(sink);
        assert!(writer.join(), "the writer ended cleanly");
        let written = lines(dir.path());
        let full = written.iter().filter(|l| l["event"] == 20001).count();
        assert_eq!(full, super::super::summary::WRITTEN_PER_WINDOW as usize);
        let summary = written
            .iter()
            .find(|l| l["event"] == 20003)
            .expect("a summary");
        assert_eq!(
            summary["count"].as_u64().unwrap_or(0) + full as u64 + dropped,
            500
        );
        assert_eq!(summary["client"], "192.0.2.1");
    }
}
