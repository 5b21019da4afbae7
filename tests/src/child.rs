//! What every server a test starts as a child process (etcd, nats-server) needs: a log file
//! for its output, the log's tail for a failure message, SIGKILL and reaping, and one blocking
//! HTTP GET for its health endpoint.

use std::fs::File;
use std::path::Path;
use std::process::Child;
use std::time::Duration;

/// The log at `path` (appended across restarts), as stdout and stderr handles.
pub fn log_files(path: &Path) -> (File, File) {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
    let log2 = log
        .try_clone()
        .unwrap_or_else(|e| panic!("cannot clone log handle: {e}"));
    (log, log2)
}

/// The last `lines` lines of the log at `path`.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Kills `child` with SIGKILL (no clean shutdown), if any, and waits for it to exit.
pub fn kill(child: &mut Option<Child>) {
    if let Some(mut child) = child.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// One blocking request (`GET path`, or `POST path` with a JSON `body`) to `host:port`; the
/// whole answer, headers and body, or `None` when nothing answers.
pub fn http(host: &str, port: u16, path: &str, body: Option<&str>) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect((host, port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let request = match body {
        None => format!("GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n"),
        Some(body) => format!(
            "POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    };
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    Some(answer)
}
