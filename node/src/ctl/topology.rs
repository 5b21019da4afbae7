//! `tessera ctl topology|rebalance|tasks|cancel|health`: the supervisor API from the command
//! line. `rebalance --wait` follows the task with a progress bar and ends with its summary.

use std::time::Duration;

use clap::Args;
use serde_json::{json, Value};

use super::http::Http;
use super::progress::Progress;
use crate::exit::{Exit, CONFLICT, UNAVAILABLE};

#[derive(Args)]
pub struct ChangeArgs {
    /// rebalance, drain, swap, failover-hard or failover-graceful.
    #[arg(long = "type", default_value = "rebalance")]
    pub kind: String,
    /// Nodes that stay or come in (repeatable).
    #[arg(long = "keep")]
    pub keep_nodes: Vec<String>,
    /// Nodes that go (repeatable).
    #[arg(long = "eject")]
    pub eject_nodes: Vec<String>,
    /// Only say what would move.
    #[arg(long)]
    pub dry_run: bool,
    /// Follow the task to its end with a progress bar.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up after this many seconds (the task goes on).
    #[arg(long, default_value_t = 3600)]
    pub timeout_s: u64,
}

pub async fn topology(http: &Http, raw: bool) -> Result<String, Exit> {
    let answer = http.call("GET", "/api/ctl/topology", "").await?;
    if raw {
        return Ok(super::pretty(&answer));
    }
    let mut lines = vec![format!(
        "{:<34} {:<22} {:<8} {:<5} {:>6} {:>9}  GROUP",
        "NODE", "ADDRESS", "STATE", "LIVE", "COPIES", "PRIMARIES"
    )];
    for n in answer["nodes"].as_array().into_iter().flatten() {
        lines.push(format!(
            "{:<34} {:<22} {:<8} {:<5} {:>6} {:>9}  {}",
            n["uuid"].as_str().unwrap_or("?"),
            n["host_port"].as_str().unwrap_or("?"),
            n["state"].as_str().unwrap_or("?"),
            n["live"],
            n["copies"],
            n["primaries"],
            n["group"].as_str().unwrap_or(""),
        ));
    }
    Ok(lines.join("\n"))
}

pub async fn change(http: &Http, args: ChangeArgs, raw: bool) -> Result<String, Exit> {
    let body = json!({"type": args.kind, "keep_nodes": args.keep_nodes,
                      "eject_nodes": args.eject_nodes, "dry_run": args.dry_run});
    let answer = http
        .call("POST", "/api/ctl/topology-change", body.to_string())
        .await?;
    if raw && !args.wait {
        return Ok(super::pretty(&answer));
    }
    if args.dry_run {
        let mut lines = vec![format!(
            "possible: {} copies to build",
            answer["copies_to_build"]
        )];
        for (node, moves) in answer["per_node"].as_object().into_iter().flatten() {
            lines.push(format!(
                "  {node}: {} in, {} out",
                moves["in"], moves["out"]
            ));
        }
        for w in answer["warnings"].as_array().into_iter().flatten() {
            lines.push(format!("warning: {}", w.as_str().unwrap_or_default()));
        }
        return Ok(lines.join("\n"));
    }
    let id = answer["task"].as_str().unwrap_or_default().to_string();
    if !args.wait {
        return Ok(format!("task {id} running"));
    }
    follow(http, &id, Duration::from_secs(args.timeout_s)).await
}

/// Polls the task until it ends, drawing its progress.
async fn follow(http: &Http, id: &str, timeout: Duration) -> Result<String, Exit> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut bar = Progress::new(&format!("task {id}"), 1000);
    let mut shown = 0u64;
    loop {
        let task: Value = http
            .call("GET", &format!("/api/ctl/tasks/{id}"), "")
            .await?["task"]
            .clone();
        let permille = (task["progress"]["percent"].as_f64().unwrap_or(0.0) * 10.0) as u64;
        if permille > shown {
            bar.advance(permille - shown);
            shown = permille;
        }
        match task["status"].as_str() {
            Some("running") => {}
            Some("completed") => {
                bar.finish();
                return Ok(format!(
                    "task {id} completed: {}",
                    task["summary"].as_str().unwrap_or("done")
                ));
            }
            Some(other) => {
                bar.finish();
                return Err(Exit::new(
                    CONFLICT,
                    format!(
                        "task {id} {other}: {}",
                        task["summary"].as_str().unwrap_or_default()
                    ),
                ));
            }
            None => return Err(Exit::new(1, format!("task {id}: unreadable answer {task}"))),
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Exit::new(
                UNAVAILABLE,
                format!("task {id} still running after {timeout:?}; it goes on"),
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub async fn tasks(http: &Http, raw: bool) -> Result<String, Exit> {
    let answer = http.call("GET", "/api/ctl/tasks", "").await?;
    if raw {
        return Ok(super::pretty(&answer));
    }
    let mut lines = vec![format!(
        "{:<24} {:<18} {:<10} {:>7} {:>11} {:>10} {:>12}  SUMMARY",
        "TASK", "TYPE", "STATUS", "PERCENT", "MOVES", "DOCS", "BYTES COPIED"
    )];
    for t in answer["tasks"].as_array().into_iter().flatten() {
        lines.push(format!(
            "{:<24} {:<18} {:<10} {:>6}% {:>5}/{:<5} {:>10} {:>12}  {}",
            t["id"].as_str().unwrap_or("?"),
            t["type"].as_str().unwrap_or("?"),
            t["status"].as_str().unwrap_or("?"),
            t["progress"]["percent"],
            t["progress"]["moves_done"],
            t["progress"]["moves_total"],
            t["progress"]["docs_moved"],
            t["progress"]["bytes_copied"],
            t["summary"].as_str().unwrap_or(""),
        ));
    }
    Ok(lines.join("\n"))
}

pub async fn cancel(http: &Http, id: &str, raw: bool) -> Result<String, Exit> {
    let answer = http
        .call("POST", &format!("/api/ctl/tasks/{id}/cancel"), "")
        .await?;
    Ok(if raw {
        super::pretty(&answer)
    } else {
        format!(
            "task {id}: {}",
            answer["task"]["summary"].as_str().unwrap_or("cancelled")
        )
    })
}

pub async fn health(http: &Http, raw: bool) -> Result<String, Exit> {
    let answer = http.call("GET", "/api/cluster/health", "").await?;
    if raw {
        return Ok(super::pretty(&answer));
    }
    let mut lines = vec![answer["status"].as_str().unwrap_or("?").to_string()];
    for r in answer["reasons"].as_array().into_iter().flatten() {
        lines.push(format!("  {}", r.as_str().unwrap_or_default()));
    }
    Ok(lines.join("\n"))
}
