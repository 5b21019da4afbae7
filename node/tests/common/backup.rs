//! Helpers of the backup and restore tests: a command that must succeed, documents ingested,
//! an `fs` repository added, a backup run to its end, a job followed, a snapshot's documents.

use std::time::Duration;

use super::drill::ctl;
use super::{http, wait_for};

/// The command's stdout; fails the test (with its output) unless it exited 0.
pub fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// `count` documents `d0`.. with `title(i)` as title, through the source's bulk route.
pub fn ingest(source: &str, count: usize, title: impl Fn(usize) -> String) {
    let body: String = (0..count)
        .map(|i| {
            format!(
                "{{\"key\":\"d{i}\",\"doc\":{{\"title\":\"{}\",\"n\":{i}}}}}\n",
                title(i)
            )
        })
        .collect();
    let (status, answer) = http(source, "POST", "/api/source/docs/bulk", &body);
    assert_eq!(status, 200, "{answer}");
}

/// `tessera ctl backup repo add NAME --type fs --location LOCATION EXTRA...`, unchecked.
pub fn add_fs_repo(node: &str, name: &str, location: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "backup",
        "repo",
        "add",
        name,
        "--type",
        "fs",
        "--location",
        location,
    ];
    args.extend_from_slice(extra);
    ctl(node, &args)
}

/// `tessera ctl backup create --repo REPO --wait`; returns the snapshot id.
pub fn backup_now(node: &str, repo: &str) -> String {
    let out = ok(&ctl(node, &["backup", "create", "--repo", repo, "--wait"]));
    out.lines().next().unwrap_or_default().trim().to_string()
}

pub fn job(node: &str, id: &str) -> serde_json::Value {
    http(node, "GET", &format!("/api/backup/jobs/{id}"), "").1["job"].clone()
}

pub fn wait_job(node: &str, id: &str, timeout: Duration) -> serde_json::Value {
    wait_for(&format!("backup job {id} to end"), timeout, || {
        let job = job(node, id);
        (job["status"].is_string() && job["status"] != "running").then_some(job)
    })
}

/// The documents snapshot `id` of `repo` holds, summed over its PIndexes.
pub fn snapshot_docs(node: &str, repo: &str, id: &str) -> u64 {
    let (_, shown) = http(
        node,
        "GET",
        &format!("/api/backup/repos/{repo}/snapshots/{id}"),
        "",
    );
    shown["snapshot"]["pindexes"]
        .as_array()
        .map(|p| p.iter().filter_map(|p| p["docs"].as_u64()).sum())
        .unwrap_or(0)
}

/// Every file below `dir`.
pub fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}
