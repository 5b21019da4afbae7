//! `tessera ctl`: the index, load, query and status operations of the REST API from the
//! command line, against any node (`--node`, default `127.0.0.1:9100`). Output is for people
//! (`--json` prints the node's answers as they are); failures exit with the codes of
//! [`crate::exit`] and the node's message.

mod backup;
pub mod http;
mod jetstream;
mod keys;
mod progress;
mod recovery;
mod topology;

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::exit::{Exit, INVALID};
use http::Http;

#[derive(Args)]
pub struct CtlArgs {
    /// The node to ask (`host:port`).
    #[arg(long, env = "TESSERA_NODE", default_value = "127.0.0.1:9100")]
    pub node: String,
    /// Print the node's JSON answers as they are.
    #[arg(long)]
    pub json: bool,
    /// The API key to call with (`Authorization: Bearer`), when the node runs with auth.
    #[arg(long, env = "TESSERA_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// A file holding the API key (the bootstrap key file, say); `--api-key` wins.
    #[arg(long, env = "TESSERA_API_KEY_FILE")]
    pub api_key_file: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub tls: http::TlsArgs,
    #[command(subcommand)]
    pub command: CtlCommand,
}

#[derive(Subcommand)]
pub enum CtlCommand {
    /// Index definitions.
    #[command(subcommand)]
    Index(IndexCommand),
    /// Load an NDJSON file into a source (or a JetStream stream), with a progress bar.
    Load(LoadArgs),
    /// Sources of record outside Tessera: create a JetStream stream for an index to read.
    #[command(subcommand)]
    Source(jetstream::SourceCommand),
    /// Query an index.
    Query(QueryArgs),
    /// Every copy of every PIndex of an index: node, role, state, docs, seqs vs the source.
    Status { index: String },
    /// Nodes: state (known, wanted, failed), liveness, copies, primaries.
    Topology,
    /// Change the topology (a task): rebalance, drain, swap, failover-hard, failover-graceful.
    Rebalance(topology::ChangeArgs),
    /// Topology tasks, newest first.
    Tasks,
    /// Cancel a running task (node definitions restored; moves under way roll back).
    Cancel { task: String },
    /// Cluster health: green, yellow or red, with reasons.
    Health,
    /// Maintenance: freeze planning and moves (moves under way finish).
    Freeze {
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// End the freeze.
    Unfreeze,
    /// Acknowledge the automatic failovers so far (the cap counts again from zero).
    AckFailovers,
    /// Why a PIndex's copies are where they are.
    Explain { pindex: String },
    /// Backup: repositories and snapshots.
    #[command(subcommand)]
    Backup(backup::BackupCommand),
    /// Restore indexes from a snapshot (onto any cluster; `--dry-run` says what would happen).
    Restore(backup::RestoreArgs),
    /// Recover missing PIndexes (no copy left can serve them) from a snapshot or the source;
    /// `--dry-run` says what is missing and where its data would come from.
    Recover(recovery::RecoverArgs),
    /// Recoveries: list, show, commit, end, abort.
    #[command(subcommand)]
    Recovery(recovery::RecoveryCommand),
    /// API keys: create (the secret is shown once), list, revoke.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
}

#[derive(Subcommand)]
pub enum IndexCommand {
    /// Create or update an index from a definition file (`-` for stdin).
    Create {
        name: String,
        #[arg(long)]
        file: PathBuf,
    },
    List,
    Get {
        name: String,
    },
    Delete {
        name: String,
    },
}

#[derive(Args)]
pub struct LoadArgs {
    /// The reference source to write to (through `--node`).
    #[arg(long, required_unless_present = "servers", conflicts_with = "servers")]
    pub source: Option<String>,
    /// Where to publish instead: a JetStream stream (see `ctl source create-stream`).
    #[command(flatten)]
    pub jetstream: jetstream::JetStreamTarget,
    /// The stream's partition count, when its description does not say it.
    #[arg(long, requires = "servers")]
    pub partitions: Option<u32>,
    /// NDJSON: `{"key": .., "doc": {..}}` per line, or plain documents with `--key-field`.
    pub file: PathBuf,
    /// Take each line's key from this field of a plain document.
    #[arg(long)]
    pub key_field: Option<String>,
    /// Lines per request.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub batch: u64,
}

#[derive(Args)]
pub struct QueryArgs {
    pub index: String,
    /// A query string (`title:rust +year:>2020`); or give the whole request with `--body`.
    #[arg(required_unless_present = "body")]
    pub query: Option<String>,
    /// The whole request body as JSON (see `POST /api/index/{name}/query`).
    #[arg(long, conflicts_with = "query")]
    pub body: Option<String>,
    #[arg(long, default_value_t = 10)]
    pub size: usize,
    #[arg(long, default_value_t = 0)]
    pub from: usize,
    /// Wait until the answer includes everything the source had when asked.
    #[arg(long)]
    pub at_plus: bool,
}

pub async fn run(args: CtlArgs) -> anyhow::Result<()> {
    let api_key = match (&args.api_key, &args.api_key_file) {
        (Some(key), _) => Some(key.trim().to_string()),
        (None, Some(file)) => Some(
            std::fs::read_to_string(file)
                .map_err(|e| Exit::new(INVALID, format!("--api-key-file {}: {e}", file.display())))?
                .trim()
                .to_string(),
        ),
        (None, None) => None,
    };
    let http = Http::with_tls(&args.node, &args.tls)?.with_api_key(api_key);
    let output = match args.command {
        CtlCommand::Keys(cmd) => keys::run(&http, cmd, args.json).await?,
        CtlCommand::Index(cmd) => index(&http, cmd, args.json).await?,
        CtlCommand::Load(load_args) if !load_args.jetstream.servers.is_empty() => {
            jetstream::load(load_args).await?
        }
        CtlCommand::Load(load_args) => load(&http, load_args).await?,
        CtlCommand::Source(cmd) => jetstream::run(cmd).await?,
        CtlCommand::Query(query_args) => query(&http, query_args, args.json).await?,
        CtlCommand::Status { index } => status(&http, &index, args.json).await?,
        CtlCommand::Topology => topology::topology(&http, args.json).await?,
        CtlCommand::Rebalance(change) => topology::change(&http, change, args.json).await?,
        CtlCommand::Tasks => topology::tasks(&http, args.json).await?,
        CtlCommand::Cancel { task } => topology::cancel(&http, &task, args.json).await?,
        CtlCommand::Health => topology::health(&http, args.json).await?,
        CtlCommand::Freeze { reason } => {
            let body = json!({"reason": reason}).to_string();
            pretty(&http.call("POST", "/api/ctl/freeze", body).await?)
        }
        CtlCommand::Unfreeze => pretty(&http.call("POST", "/api/ctl/unfreeze", "").await?),
        CtlCommand::AckFailovers => pretty(&http.call("POST", "/api/ctl/failover/ack", "").await?),
        CtlCommand::Backup(cmd) => backup::run(&http, cmd, args.json).await?,
        CtlCommand::Restore(restore) => backup::restore(&http, restore, args.json).await?,
        CtlCommand::Recover(recover) => recovery::recover(&http, recover, args.json).await?,
        CtlCommand::Recovery(cmd) => recovery::run(&http, cmd, args.json).await?,
        CtlCommand::Explain { pindex } => pretty(
            &http
                .call("GET", &format!("/api/plan/explain?pindex={pindex}"), "")
                .await?,
        ),
    };
    if !output.is_empty() {
        println!("{output}");
    }
    Ok(())
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

async fn index(http: &Http, cmd: IndexCommand, raw: bool) -> Result<String, Exit> {
    match cmd {
        IndexCommand::Create { name, file } => {
            let definition = read_input(&file)?;
            let answer = http
                .call("PUT", &format!("/api/index/{name}"), definition)
                .await?;
            Ok(if raw {
                pretty(&answer)
            } else {
                format!(
                    "index `{name}` saved (uuid {})",
                    answer["index"]["uuid"].as_str().unwrap_or("?")
                )
            })
        }
        IndexCommand::List => {
            let answer = http.call("GET", "/api/index", "").await?;
            if raw {
                return Ok(pretty(&answer));
            }
            let mut lines = vec![format!(
                "{:<24} {:<10} {:<16} UUID",
                "NAME", "TYPE", "SOURCE"
            )];
            for def in answer["indexes"].as_array().into_iter().flatten() {
                lines.push(format!(
                    "{:<24} {:<10} {:<16} {}",
                    def["name"].as_str().unwrap_or("?"),
                    def["type"].as_str().unwrap_or("?"),
                    def["source"]["name"].as_str().unwrap_or("?"),
                    def["uuid"].as_str().unwrap_or("?"),
                ));
            }
            Ok(lines.join("\n"))
        }
        IndexCommand::Get { name } => Ok(pretty(
            &http.call("GET", &format!("/api/index/{name}"), "").await?,
        )),
        IndexCommand::Delete { name } => {
            let answer = http
                .call("DELETE", &format!("/api/index/{name}"), "")
                .await?;
            Ok(if raw {
                pretty(&answer)
            } else {
                format!("index `{name}` deleted")
            })
        }
    }
}

fn read_input(file: &PathBuf) -> Result<String, Exit> {
    let read = if file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(file)
    };
    read.map_err(|e| Exit::new(INVALID, format!("{}: {e}", file.display())))
}

/// The lines of an NDJSON file that hold something, with their index (0-based).
fn numbered_lines(text: &str) -> Vec<(usize, &str)> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .collect()
}

/// One line as a bulk line (`{"key", "doc"}`), or why not.
fn bulk_line(line: &str, key_field: Option<&str>) -> Result<String, String> {
    let Some(field) = key_field else {
        return Ok(line.to_string());
    };
    let doc: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let key = match &doc[field] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return Err(format!("no string or number field `{field}` for the key")),
    };
    Ok(json!({"key": key, "doc": doc}).to_string())
}

async fn load(http: &Http, args: LoadArgs) -> Result<String, Exit> {
    let source = args.source.clone().unwrap_or_default();
    let text = read_input(&args.file)?;
    let lines = numbered_lines(&text);
    let mut bar = progress::Progress::new(&format!("loading {}", source), lines.len() as u64);
    let path = format!("/api/source/{}/bulk", source);
    let mut loaded = 0u64;
    for batch in lines.chunks(args.batch as usize) {
        let mut body = String::new();
        for (number, line) in batch {
            let line = bulk_line(line, args.key_field.as_deref()).map_err(|e| {
                Exit::new(
                    INVALID,
                    format!(
                        "{} line {}: {e} ({loaded} lines loaded before it)",
                        args.file.display(),
                        number + 1
                    ),
                )
            })?;
            body.push_str(&line);
            body.push('\n');
        }
        let (status, answer) = http.send("POST", &path, body).await?;
        let accepted = answer["accepted"].as_u64().unwrap_or(0);
        loaded += accepted;
        bar.advance(accepted);
        if status != 200 {
            let first = batch.first().map_or(0, |(n, _)| *n);
            // The node numbers lines within the batch; say where that is in the file.
            let line = answer["line"].as_u64().map(|l| first as u64 + l);
            let message = answer["error"].as_str().unwrap_or("rejected");
            let code = if status == 400 {
                INVALID
            } else {
                crate::exit::UNAVAILABLE
            };
            return Err(Exit::new(
                code,
                format!(
                    "{}: {status}: {message}{}; {loaded} lines loaded before it",
                    args.file.display(),
                    line.map(|l| format!(" (file line {l})"))
                        .unwrap_or_default()
                ),
            ));
        }
    }
    let seconds = bar.finish();
    Ok(format!(
        "loaded {loaded} documents into `{}` in {seconds:.1} s ({:.0}/s)",
        source,
        loaded as f64 / seconds.max(1e-3)
    ))
}

async fn query(http: &Http, args: QueryArgs, raw: bool) -> Result<String, Exit> {
    let body = match (&args.body, &args.query) {
        (Some(body), _) => body.clone(),
        (None, query) => {
            let mut body = json!({"query": {"query_string": query.clone().unwrap_or_default()},
                                  "size": args.size, "from": args.from});
            if args.at_plus {
                body["consistency"] = json!({"level": "at_plus"});
            }
            body.to_string()
        }
    };
    let answer = http
        .call("POST", &format!("/api/index/{}/query", args.index), body)
        .await?;
    if raw {
        return Ok(pretty(&answer));
    }
    let mut lines = vec![format!(
        "{} hits in {:.1} ms ({} of {} PIndexes answered)",
        answer["total_hits"],
        answer["took_ms"].as_f64().unwrap_or(0.0),
        answer["status"]["successful"],
        answer["status"]["total"],
    )];
    for warning in answer["warnings"].as_array().into_iter().flatten() {
        lines.push(format!("warning: {}", warning.as_str().unwrap_or_default()));
    }
    for hit in answer["hits"].as_array().into_iter().flatten() {
        lines.push(format!(
            "{:>8.4}  {}  {}",
            hit["score"].as_f64().unwrap_or(0.0),
            hit["id"].as_str().unwrap_or("?"),
            hit["fields"]
        ));
    }
    Ok(lines.join("\n"))
}

async fn status(http: &Http, index: &str, raw: bool) -> Result<String, Exit> {
    let answer = http
        .call("GET", &format!("/api/index/{index}/status"), "")
        .await?;
    if raw {
        return Ok(pretty(&answer));
    }
    let mut lines = vec![format!(
        "{:<28} {:<34} {:<8} {:<9} {:>9} {:>10}  ERROR",
        "PINDEX", "NODE", "ROLE", "STATE", "DOCS", "BEHIND"
    )];
    for pindex in answer["pindexes"].as_array().into_iter().flatten() {
        for copy in pindex["copies"].as_array().into_iter().flatten() {
            let behind: u64 = copy["partitions"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(_, p)| {
                    let high = p["high_seq"].as_u64().unwrap_or(0);
                    high.saturating_sub(p["seq"].as_u64().unwrap_or(0))
                })
                .sum();
            lines.push(format!(
                "{:<28} {:<34} {:<8} {:<9} {:>9} {:>10}  {}",
                pindex["name"].as_str().unwrap_or("?"),
                copy["node"].as_str().unwrap_or("?"),
                copy["role"].as_str().unwrap_or("?"),
                copy["state"].as_str().unwrap_or("?"),
                copy["docs"],
                behind,
                copy["last_error"].as_str().unwrap_or(""),
            ));
        }
    }
    Ok(lines.join("\n"))
}
