//! Secrets do not cross the network in clear unless the operator says so (issue 31): a node
//! with `--auth required` on a non-loopback address without TLS, or with an etcd user over
//! `etcd://` to another host, refuses to start (exit 3, naming `--insecure-transport`), and
//! starts when given it.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, wait_serving, Proc, BIN};

/// Runs `tessera --data-dir DIR ARGS`, expecting it to exit within 30 s; (code, stderr).
fn refused(args: &[&str]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir.path())
        .args(args)
        // An etcd user needs a password to get past the flags.
        .env("TESSERA_ETCD_PASSWORD", "secret")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("tessera {args:?} did not refuse to start within 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        use std::io::Read;
        let _ = pipe.read_to_string(&mut stderr);
    }
    (status.code(), stderr)
}

#[test]
fn auth_required_without_tls_on_a_reachable_address_needs_insecure_transport_said() {
    let port = free_port();
    let bind = format!("0.0.0.0:{port}");
    let (code, stderr) = refused(&["node", "--bind", &bind, "--auth", "required"]);
    assert_eq!(code, Some(3), "{stderr}");
    assert!(
        stderr.contains("in clear") && stderr.contains("--insecure-transport"),
        "{stderr}"
    );
    // Said: it starts.
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir.path())
        .args([
            "node",
            "--bind",
            &bind,
            "--auth",
            "required",
            "--insecure-transport",
        ])
        .env("TESSERA_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _node = Proc(child);
    wait_serving(&format!("127.0.0.1:{port}"));
}

#[test]
fn an_etcd_user_over_plain_etcd_to_another_host_needs_insecure_transport_said() {
    let bind = format!("127.0.0.1:{}", free_port());
    // 192.0.2.1 (TEST-NET-1): nothing answers; the node must refuse before dialling it.
    let (code, stderr) = refused(&[
        "--cfg",
        "etcd://192.0.2.1:2379/t",
        "--etcd-user",
        "tessera",
        "node",
        "--bind",
        &bind,
    ]);
    assert_eq!(code, Some(3), "{stderr}");
    assert!(
        stderr.contains("etcd password in clear") && stderr.contains("--insecure-transport"),
        "{stderr}"
    );
}
