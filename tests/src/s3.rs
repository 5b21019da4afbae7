//! The S3 rig: a real S3-compatible server process (moto's server mode, installed by
//! `scripts/deps.sh test`) on a free loopback port, with a bucket made for the test, killed on
//! drop. Fails loudly when the server cannot be started.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::ports::free_port;

/// The credentials the rig's server accepts (moto accepts any; these are what tests pass).
pub const ACCESS_KEY: &str = "tessera-test";
pub const SECRET_KEY: &str = "tessera-test-secret";

pub struct S3Server {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

/// The moto server command: `MOTO_SERVER` if set, else `moto_server` on the PATH.
fn moto_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("MOTO_SERVER") {
        return PathBuf::from(path);
    }
    PathBuf::from("moto_server")
}

impl S3Server {
    /// Starts the server and makes `bucket`; returns once the bucket answers.
    pub fn start(bucket: &str) -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir for the S3 server: {e}"));
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("moto.log"))
            .unwrap_or_else(|e| panic!("S3 server log: {e}"));
        let child = Command::new(moto_binary())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap_or_else(|e| panic!("S3 server log: {e}")))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start the S3 server `{}` ({e}): run `scripts/deps.sh test` (moto[server] from PyPI) or set MOTO_SERVER",
                    moto_binary().display()
                )
            });
        let mut server = Self {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = server.http("PUT", &format!("/{bucket}")) {
                assert!(
                    status == 200,
                    "the S3 server answered {status} to creating bucket {bucket}"
                );
                break;
            }
            if let Ok(Some(exit)) = server.child.try_wait() {
                panic!(
                    "the S3 server exited at start ({exit}); see its log in the test's temp dir"
                );
            }
            assert!(
                Instant::now() < deadline,
                "the S3 server did not answer on 127.0.0.1:{port} within 60 s"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        server
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// One blocking request with no body; the status code, or `None` when nothing answers.
    fn http(&self, method: &str, path: &str) -> Option<u16> {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        );
        stream.write_all(request.as_bytes()).ok()?;
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer.split_whitespace().nth(1)?.parse().ok()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
