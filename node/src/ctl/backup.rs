//! `tessera ctl backup`: repositories and snapshots through a node's backup API.

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::http::Http;
use super::pretty;
use super::progress::Progress;
use crate::exit::{Exit, CORRUPT, NOT_FOUND};

#[derive(Subcommand)]
pub enum BackupCommand {
    /// Backup repositories.
    #[command(subcommand)]
    Repo(RepoCommand),
    /// Back up indexes (a job in the cluster; `--wait` follows it with a progress bar).
    Create(CreateArgs),
    /// The snapshots of a repository.
    List {
        #[arg(long)]
        repo: String,
    },
    /// A snapshot's manifest.
    Show {
        id: String,
        /// The repository (found by asking every repository when absent).
        #[arg(long)]
        repo: Option<String>,
    },
    /// Check a snapshot is whole (exit 0 only then): every blob there; `--deep` re-reads and
    /// re-hashes them.
    Verify {
        id: String,
        #[arg(long)]
        repo: Option<String>,
        #[arg(long)]
        deep: bool,
    },
    /// Delete a snapshot and the blobs no other snapshot uses.
    Delete {
        id: String,
        #[arg(long)]
        repo: Option<String>,
    },
    /// Remove blobs no snapshot and no unfinished job references.
    Gc {
        #[arg(long)]
        repo: String,
    },
}

#[derive(Subcommand)]
pub enum RepoCommand {
    /// Add (or replace) a repository.
    Add(RepoAddArgs),
    List,
    Remove {
        name: String,
    },
}

#[derive(Args)]
pub struct RepoAddArgs {
    pub name: String,
    /// `fs` or `s3`.
    #[arg(long = "type")]
    pub repo_type: String,
    /// `fs`: an absolute directory. `s3`: `BUCKET` or `BUCKET/PREFIX`.
    #[arg(long)]
    pub location: String,
    /// Only restore from it.
    #[arg(long)]
    pub readonly: bool,
    /// `s3`: the endpoint URL (for S3-compatible stores).
    #[arg(long)]
    pub endpoint: Option<String>,
    #[arg(long)]
    pub region: Option<String>,
    /// `s3`: allow `http://` endpoints.
    #[arg(long)]
    pub allow_http: bool,
    /// `s3`: a file on every node (under its `--secrets-dir`) with `access_key_id = ...` and
    /// `secret_access_key = ...`.
    #[arg(long, conflicts_with = "credentials")]
    pub credentials_file: Option<String>,
    /// `s3`, instead of a file: `ambient` (the nodes' environment and instance metadata, used
    /// only when asked for) or `anonymous` (unsigned requests).
    #[arg(long, value_parser = ["ambient", "anonymous"])]
    pub credentials: Option<String>,
    /// Encrypt at rest with a key from this passphrase file (on every node).
    #[arg(long)]
    pub passphrase_file: Option<String>,
    /// Encrypt at rest with this key file (64 hex digits; on every node).
    #[arg(long)]
    pub key_file: Option<String>,
}

#[derive(Args)]
pub struct CreateArgs {
    #[arg(long)]
    pub repo: String,
    /// Index names or globs (repeatable); all indexes when absent.
    #[arg(long = "index")]
    pub indexes: Vec<String>,
    /// Per node, MB/s.
    #[arg(long)]
    pub rate_limit: Option<f64>,
    /// Follow the job to its end.
    #[arg(long)]
    pub wait: bool,
}

pub async fn run(http: &Http, cmd: BackupCommand, raw: bool) -> Result<String, Exit> {
    match cmd {
        BackupCommand::Repo(cmd) => repo(http, cmd, raw).await,
        BackupCommand::Create(args) => create(http, args, raw).await,
        BackupCommand::List { repo } => {
            let answer = http
                .call("GET", &format!("/api/backup/repos/{repo}/snapshots"), "")
                .await?;
            if raw {
                return Ok(answer.to_string());
            }
            let mut lines = vec![format!(
                "{:<24} {:>8} {:>12}  INDEXES",
                "ID", "PINDEXES", "BYTES"
            )];
            for s in answer["snapshots"].as_array().into_iter().flatten() {
                lines.push(format!(
                    "{:<24} {:>8} {:>12}  {}",
                    s["id"].as_str().unwrap_or("?"),
                    s["pindexes"],
                    s["bytes"],
                    s["indexes"]
                ));
            }
            Ok(lines.join("\n"))
        }
        BackupCommand::Show { id, repo } => {
            let repo = find_repo(http, &id, repo).await?;
            let answer = http
                .call(
                    "GET",
                    &format!("/api/backup/repos/{repo}/snapshots/{id}"),
                    "",
                )
                .await?;
            Ok(pretty(&answer))
        }
        BackupCommand::Verify { id, repo, deep } => {
            let repo = find_repo(http, &id, repo).await?;
            let path = format!("/api/backup/repos/{repo}/snapshots/{id}/verify?deep={deep}");
            let answer = http.call("POST", &path, "").await?;
            let report = &answer["verify"];
            if report["ok"] != json!(true) {
                return Err(Exit::new(
                    CORRUPT,
                    format!("snapshot {id} is not whole:\n{}", pretty(report)),
                ));
            }
            Ok(if raw {
                answer.to_string()
            } else {
                pretty(report)
            })
        }
        BackupCommand::Delete { id, repo } => {
            let repo = find_repo(http, &id, repo).await?;
            let answer = http
                .call(
                    "DELETE",
                    &format!("/api/backup/repos/{repo}/snapshots/{id}"),
                    "",
                )
                .await?;
            Ok(pretty(&answer))
        }
        BackupCommand::Gc { repo } => Ok(pretty(
            &http
                .call("POST", &format!("/api/backup/repos/{repo}/gc"), "")
                .await?,
        )),
    }
}

async fn repo(http: &Http, cmd: RepoCommand, raw: bool) -> Result<String, Exit> {
    match cmd {
        RepoCommand::Add(a) => {
            let mut options = serde_json::Map::new();
            let mut set = |k: &str, v: Option<String>| {
                if let Some(v) = v {
                    options.insert(k.to_string(), Value::String(v));
                }
            };
            set("endpoint", a.endpoint);
            set("region", a.region);
            set("credentials_file", a.credentials_file);
            set("credentials", a.credentials);
            set("passphrase_file", a.passphrase_file);
            set("key_file", a.key_file);
            set("allow_http", a.allow_http.then(|| "true".to_string()));
            let body = json!({"type": a.repo_type, "location": a.location,
                "readonly": a.readonly, "options": options});
            let answer = http
                .call(
                    "PUT",
                    &format!("/api/backup/repos/{}", a.name),
                    body.to_string(),
                )
                .await?;
            Ok(if raw {
                answer.to_string()
            } else {
                format!("repository {} added", a.name)
            })
        }
        RepoCommand::List => {
            let answer = http.call("GET", "/api/backup/repos", "").await?;
            if raw {
                return Ok(answer.to_string());
            }
            let mut lines = vec![format!(
                "{:<16} {:<4} {:<9} LOCATION",
                "NAME", "TYPE", "MODE"
            )];
            for r in answer["repos"].as_array().into_iter().flatten() {
                lines.push(format!(
                    "{:<16} {:<4} {:<9} {}",
                    r["name"].as_str().unwrap_or("?"),
                    r["type"].as_str().unwrap_or("?"),
                    if r["readonly"] == json!(true) {
                        "readonly"
                    } else {
                        "readwrite"
                    },
                    r["location"].as_str().unwrap_or("?"),
                ));
            }
            Ok(lines.join("\n"))
        }
        RepoCommand::Remove { name } => {
            let answer = http
                .call("DELETE", &format!("/api/backup/repos/{name}"), "")
                .await?;
            Ok(if raw {
                answer.to_string()
            } else {
                format!("repository {name} removed")
            })
        }
    }
}

/// The repository holding snapshot `id`: the one given, or the first that lists it.
async fn find_repo(http: &Http, id: &str, given: Option<String>) -> Result<String, Exit> {
    if let Some(repo) = given {
        return Ok(repo);
    }
    let repos = http.call("GET", "/api/backup/repos", "").await?;
    for r in repos["repos"].as_array().into_iter().flatten() {
        let Some(name) = r["name"].as_str() else {
            continue;
        };
        let Ok(list) = http
            .call("GET", &format!("/api/backup/repos/{name}/snapshots"), "")
            .await
        else {
            continue;
        };
        let found = list["snapshots"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|s| s["id"].as_str() == Some(id));
        if found {
            return Ok(name.to_string());
        }
    }
    Err(Exit::new(
        NOT_FOUND,
        format!("no repository holds snapshot {id} (pass --repo)"),
    ))
}

async fn create(http: &Http, args: CreateArgs, raw: bool) -> Result<String, Exit> {
    let body = json!({"indexes": args.indexes, "rate_limit_mb": args.rate_limit.unwrap_or(0.0)});
    let answer = http
        .call(
            "POST",
            &format!("/api/backup/repos/{}/snapshots", args.repo),
            body.to_string(),
        )
        .await?;
    let id = answer["id"].as_str().unwrap_or_default().to_string();
    if !args.wait {
        return Ok(if raw { answer.to_string() } else { id });
    }
    let job = follow(http, &id).await?;
    Ok(if raw {
        job.to_string()
    } else {
        format!("{id}\n{}", summary(&job))
    })
}

fn summary(job: &Value) -> String {
    let p = &job["progress"];
    format!(
        "{} PIndexes, {} files, {} bytes ({} sent)",
        p["pindexes_done"], p["files_done"], p["bytes_done"], p["bytes_uploaded"]
    )
}

/// Polls job `id` until it ends, drawing its progress; an unsuccessful end is an error.
pub async fn follow(http: &Http, id: &str) -> Result<Value, Exit> {
    let mut bar: Option<Progress> = None;
    let mut shown = 0;
    loop {
        let answer = http
            .call("GET", &format!("/api/backup/jobs/{id}"), "")
            .await?;
        let job = answer["job"].clone();
        let p = &job["progress"];
        let (done, total) = (
            p["pindexes_done"].as_u64().unwrap_or(0),
            p["pindexes_total"].as_u64().unwrap_or(0),
        );
        if total > 0 {
            let bar = bar.get_or_insert_with(|| Progress::new("PIndexes", total));
            if done > shown {
                bar.detail(format!(
                    "· {} files · {:.1} MB ({:.1} MB sent)",
                    p["files_done"],
                    p["bytes_done"].as_u64().unwrap_or(0) as f64 / 1e6,
                    p["bytes_uploaded"].as_u64().unwrap_or(0) as f64 / 1e6,
                ));
                bar.advance(done - shown);
                shown = done;
            }
        }
        match job["status"].as_str() {
            Some("running") => {}
            Some("completed") => {
                if let Some(bar) = bar {
                    bar.finish();
                }
                return Ok(job);
            }
            other => {
                return Err(Exit::new(
                    1,
                    format!(
                        "job {id} {}: {}",
                        other.unwrap_or("?"),
                        job["error"].as_str().unwrap_or("no reason given")
                    ),
                ))
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

#[derive(Args)]
pub struct RestoreArgs {
    #[arg(long)]
    pub repo: String,
    #[arg(long)]
    pub snapshot: String,
    /// Index names or globs of the snapshot (repeatable); all when absent.
    #[arg(long = "index")]
    pub indexes: Vec<String>,
    /// `FROM=TO`: restore index FROM under the name TO (repeatable).
    #[arg(long)]
    pub rename: Vec<String>,
    /// Skip indexes that exist in this cluster.
    #[arg(long)]
    pub missing_only: bool,
    /// Delete indexes of the same name first.
    #[arg(long)]
    pub replace: bool,
    /// Say what would be downloaded and rebuilt, and how many bytes; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Read the restored indexes from this source (`http://host:port`).
    #[arg(long)]
    pub source_url: Option<String>,
    /// Import the saved logs of the sources the indexes read into `--source-url` (or the
    /// asked node's own source) first: the data of record back, then the indexes.
    #[arg(long)]
    pub restore_sources: bool,
    /// Restore into exactly N PIndexes per index: another partitioning, the saved data
    /// regrouped by source partition (not rebuilt).
    #[arg(long, value_name = "N")]
    pub index_partitions: Option<u32>,
    /// Restore into PIndexes of at most N source partitions: another partitioning, the saved
    /// data regrouped by source partition (not rebuilt).
    #[arg(long, value_name = "N")]
    pub max_partitions_per_pindex: Option<u32>,
    /// Restore with N replicas per PIndex instead of the saved count.
    #[arg(long, value_name = "N")]
    pub replicas: Option<u32>,
    /// Wait until every restored index answers with every document its source holds.
    #[arg(long)]
    pub wait: bool,
}

pub async fn restore(http: &Http, args: RestoreArgs, raw: bool) -> Result<String, Exit> {
    let mut rename = serde_json::Map::new();
    for pair in &args.rename {
        let Some((from, to)) = pair.split_once('=') else {
            return Err(Exit::new(
                crate::exit::INVALID,
                format!("--rename {pair}: expected FROM=TO"),
            ));
        };
        rename.insert(from.to_string(), Value::String(to.to_string()));
    }
    let body = json!({"repo": args.repo, "snapshot": args.snapshot, "indexes": args.indexes,
        "rename": rename, "missing_only": args.missing_only, "replace": args.replace,
        "dry_run": args.dry_run, "source_url": args.source_url,
        "restore_sources": args.restore_sources, "index_partitions": args.index_partitions,
        "max_partitions_per_pindex": args.max_partitions_per_pindex, "replicas": args.replicas});
    let answer = http
        .call("POST", "/api/backup/restore", body.to_string())
        .await?;
    if raw || args.dry_run {
        return Ok(if raw {
            answer.to_string()
        } else {
            pretty(&answer)
        });
    }
    let mut lines = Vec::new();
    for index in answer["indexes"].as_array().into_iter().flatten() {
        lines.push(format!(
            "{} -> {}: {} PIndexes to download, {} to regroup ({} bytes), {} to rebuild from the source",
            index["index"].as_str().unwrap_or("?"),
            index["restored_as"].as_str().unwrap_or("?"),
            index["pindexes_downloaded"],
            index["pindexes_regrouped"],
            index["download_bytes"],
            index["pindexes_rebuilt"]
        ));
    }
    if let (true, Some(id)) = (args.wait, answer["id"].as_str()) {
        follow(http, id).await?;
        lines.push(format!(
            "restore job {id}: sources imported, indexes defined"
        ));
    }
    if args.wait {
        for index in answer["indexes"].as_array().into_iter().flatten() {
            let name = index["restored_as"].as_str().unwrap_or_default();
            wait_restored(http, name).await?;
            lines.push(format!("{name}: restored and caught up"));
        }
    }
    Ok(lines.join("\n"))
}

/// Waits until `index` answers an `at_plus` count: every PIndex readable and caught up with
/// the source as of the question.
async fn wait_restored(http: &Http, index: &str) -> Result<(), Exit> {
    let body = r#"{"query": {"match_all": {}}, "size": 0, "consistency": {"level": "at_plus"}, "timeout_ms": 10000}"#;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3600);
    loop {
        let (status, answer) = http
            .send("POST", &format!("/api/index/{index}/query"), body)
            .await?;
        if status == 200 {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(Exit::new(
                1,
                format!("{index} not restored within an hour: {answer}"),
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}
