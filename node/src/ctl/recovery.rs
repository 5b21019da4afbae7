//! `tessera ctl recover` (begin a recovery of missing PIndexes, or say what one would do) and
//! `tessera ctl recovery list|show|commit|end|abort`, through `/api/ctl/recovery`.

use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::http::Http;
use super::{pretty, progress};
use crate::exit::{Exit, INVALID};

#[derive(Args)]
pub struct RecoverArgs {
    /// Where the missing PIndexes' data comes from: `snapshot:REPO/ID` (ID may be `latest`),
    /// `cluster:URL` or `source`.
    #[arg(long, default_value = "source")]
    pub from: String,
    /// Only these indexes (all with missing PIndexes when absent).
    #[arg(long = "index")]
    pub indexes: Vec<String>,
    /// Say what is missing and where its data would come from; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Follow the recovery with a progress bar until every PIndex is recovered or failed.
    #[arg(long)]
    pub wait: bool,
    /// With `--wait`: commit what was recovered and end the recovery.
    #[arg(long, requires = "wait")]
    pub commit: bool,
}

#[derive(Subcommand)]
pub enum RecoveryCommand {
    /// Every recovery, with its status.
    List,
    /// One recovery: each missing PIndex's state, bytes, ETA.
    Show { id: String },
    /// Make recovered PIndexes readable (all recovered ones without `--pindex`).
    Commit {
        id: String,
        #[arg(long = "pindex")]
        pindexes: Vec<String>,
    },
    /// Finish: PIndexes not committed go back to the planner's normal handling.
    End { id: String },
    /// Undo everything not committed.
    Abort { id: String },
}

/// `from` as the API takes it.
fn parse_from(from: &str) -> Result<Value, Exit> {
    if from == "source" {
        return Ok(json!("source"));
    }
    if let Some(url) = from.strip_prefix("cluster:") {
        return Ok(json!({"cluster": url}));
    }
    if let Some((repo, id)) = from
        .strip_prefix("snapshot:")
        .and_then(|s| s.split_once('/'))
    {
        if !repo.is_empty() && !id.is_empty() {
            return Ok(json!({"snapshot": {"repo": repo, "id": id}}));
        }
    }
    Err(Exit::new(
        INVALID,
        format!("--from {from}: expected snapshot:REPO/ID, cluster:URL or source"),
    ))
}

pub async fn recover(http: &Http, args: RecoverArgs, raw: bool) -> Result<String, Exit> {
    let show = |answer: &Value| if raw { pretty(answer) } else { summary(answer) };
    let body = json!({"indexes": args.indexes, "from": parse_from(&args.from)?,
        "dry_run": args.dry_run});
    let answer = http
        .call("POST", "/api/ctl/recovery", body.to_string())
        .await?;
    let id = match answer["id"].as_str() {
        Some(id) if args.wait => id.to_string(),
        _ => return Ok(show(&answer)),
    };
    let ended = follow(http, &id).await?;
    if !args.commit {
        return Ok(show(&ended));
    }
    http.call("POST", &format!("/api/ctl/recovery/{id}/commit"), "")
        .await?;
    let done = http
        .call("POST", &format!("/api/ctl/recovery/{id}/end"), "")
        .await?;
    Ok(show(&done))
}

pub async fn run(http: &Http, cmd: RecoveryCommand, raw: bool) -> Result<String, Exit> {
    let answer = match &cmd {
        RecoveryCommand::List => http.call("GET", "/api/ctl/recovery", "").await?,
        RecoveryCommand::Show { id } => {
            http.call("GET", &format!("/api/ctl/recovery/{id}"), "")
                .await?
        }
        RecoveryCommand::Commit { id, pindexes } => {
            let body = if pindexes.is_empty() {
                json!({})
            } else {
                json!({"pindexes": pindexes})
            };
            let path = format!("/api/ctl/recovery/{id}/commit");
            http.call("POST", &path, body.to_string()).await?
        }
        RecoveryCommand::End { id } => {
            http.call("POST", &format!("/api/ctl/recovery/{id}/end"), "")
                .await?
        }
        RecoveryCommand::Abort { id } => {
            http.call("POST", &format!("/api/ctl/recovery/{id}/abort"), "")
                .await?
        }
    };
    if raw {
        return Ok(pretty(&answer));
    }
    Ok(match cmd {
        RecoveryCommand::List => answer["recoveries"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                format!(
                    "{}  {:<8} {}  {}",
                    r["id"].as_str().unwrap_or("?"),
                    r["status"].as_str().unwrap_or("?"),
                    r["indexes"],
                    r["summary"].as_str().unwrap_or("")
                )
            })
            .collect::<Vec<_>>()
            .join("\n"),
        _ => summary(&answer),
    })
}

/// Polls the recovery, drawing a bar over its PIndexes, until none is still on its way.
async fn follow(http: &Http, id: &str) -> Result<Value, Exit> {
    let path = format!("/api/ctl/recovery/{id}");
    let first = http.call("GET", &path, "").await?;
    let total = first["progress"]["pindexes_total"].as_u64().unwrap_or(0);
    let mut bar = progress::Progress::new(&format!("recovery {id}"), total);
    let mut shown = 0;
    loop {
        let r = http.call("GET", &path, "").await?;
        let states = &r["progress"]["states"];
        let count = |s: &str| states[s].as_u64().unwrap_or(0);
        let settled = count("recovered") + count("failed");
        let p = &r["progress"];
        bar.detail(format!(
            "{:.1}/{:.1} MB{}",
            p["bytes_done"].as_f64().unwrap_or(0.0) / 1e6,
            p["bytes_total"].as_f64().unwrap_or(0.0) / 1e6,
            p["eta_s"]
                .as_f64()
                .map(|s| format!(" ETA {s:.0} s"))
                .unwrap_or_default()
        ));
        if settled > shown {
            bar.advance(settled - shown);
            shown = settled;
        }
        if settled >= total || r["status"] != "running" {
            bar.finish();
            return Ok(r);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A recovery in lines: status, then each missing PIndex.
fn summary(r: &Value) -> String {
    let mut lines = Vec::new();
    match r["id"].as_str() {
        Some(id) => lines.push(format!(
            "recovery {id}: {} ({}% recovered){}",
            r["status"].as_str().unwrap_or("?"),
            r["progress"]["percent"],
            r["summary"]
                .as_str()
                .map(|s| format!(" — {s}"))
                .unwrap_or_default()
        )),
        None if r["dry_run"] == true => lines.push("dry run: nothing changed".into()),
        None => {}
    }
    let missing = r["missing"].as_object();
    if missing.is_none_or(|m| m.is_empty()) {
        lines.push("nothing is missing".into());
    }
    for (index, pindexes) in missing.into_iter().flatten() {
        for p in pindexes.as_array().into_iter().flatten() {
            lines.push(format!(
                "{index}  {:<28} on {:<34} {:<12} {:>12} bytes  from {}{}{}",
                p["pindex"].as_str().unwrap_or("?"),
                p["node"].as_str().unwrap_or("(not placed)"),
                p["state"].as_str().unwrap_or("?"),
                p["bytes"],
                p["from"].as_str().unwrap_or("?"),
                if p["committed"] == true {
                    ", committed"
                } else {
                    ""
                },
                p["reason"]
                    .as_str()
                    .map(|s| format!(" ({s})"))
                    .unwrap_or_default()
            ));
        }
    }
    for h in r["handed_to_planner"].as_array().into_iter().flatten() {
        lines.push(format!(
            "{}: {}",
            h["pindex"].as_str().unwrap_or("?"),
            h["next"].as_str().unwrap_or("?")
        ));
    }
    lines.join("\n")
}
