//! A full disk: ingest fails with a clear `DiskFull` error, nothing committed before is lost,
//! and ingest resumes by itself once space returns. Runs on a small tmpfs mounted for the test
//! (needs root, as CI and the development machines have; it fails, never skips, without).

use std::path::{Path, PathBuf};
use std::process::Command;

use tessera_source::{Append, LogError, SourceLog};

struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(size: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("tessera-full-")
            .tempdir()
            .unwrap()
            .keep();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mounting a {size} tmpfs at {} failed: this test needs root",
            dir.display()
        );
        Tmpfs(dir)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

fn docs(from: usize, n: usize) -> Vec<Append> {
    (from..from + n)
        .map(|i| Append::Put {
            key: format!("k{i}"),
            doc: format!("{{\"t\": \"{}\"}}", "x".repeat(200)).into_bytes(),
        })
        .collect()
}

#[test]
fn ingest_stops_cleanly_on_a_full_disk_and_resumes_when_space_returns() {
    let disk = Tmpfs::mount("3m");
    let filler = disk.path().join("filler");
    std::fs::write(&filler, vec![0u8; 1 << 20]).unwrap();
    let log = SourceLog::open(&disk.path().join("source.redb"), 4).unwrap();
    let mut accepted = 0;
    let error = loop {
        match log.append("docs", &docs(accepted, 1000)) {
            Ok(_) => accepted += 1000,
            Err(e) => break e,
        }
        assert!(accepted < 1_000_000, "the disk never filled");
    };
    assert!(
        matches!(error, LogError::DiskFull(_)),
        "expected DiskFull, got {error}"
    );
    assert!(accepted > 0);
    // Nothing committed is lost; the failed batch left nothing behind.
    assert_eq!(
        log.summary("docs").unwrap().map(|s| s.docs),
        Some(accepted as u64)
    );

    std::fs::remove_file(&filler).unwrap();
    log.append("docs", &docs(accepted, 10))
        .expect("ingest resumes once space returns");
    assert_eq!(
        log.summary("docs").unwrap().map(|s| s.docs),
        Some(accepted as u64 + 10)
    );
}
