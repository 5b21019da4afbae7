//! `tessera ctl keys create|list|revoke`, through `/api/keys` (an admin key's calls).

use clap::Subcommand;
use serde_json::{json, Value};

use super::http::Http;
use super::pretty;
use crate::exit::Exit;

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Make a key; its secret is printed once and stored nowhere.
    Create {
        /// What the key is for (letters, digits, - and _).
        #[arg(long)]
        name: String,
        /// `admin`, `index_admin:GLOB`, `searcher:GLOB`, `ingest:GLOB`, `monitor` or
        /// `operator` (repeatable).
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// After how long the key stops working: `45s`, `90m`, `12h`, `30d` (never without).
        #[arg(long)]
        expires: Option<String>,
    },
    /// Every key: id, name, roles, state; never a secret.
    List,
    /// Revoke a key by id; every node refuses it within moments.
    Revoke { id: String },
}

pub async fn run(http: &Http, cmd: KeysCommand, raw: bool) -> Result<String, Exit> {
    match cmd {
        KeysCommand::Create {
            name,
            roles,
            expires,
        } => {
            let mut body = json!({"name": name, "roles": roles});
            if let Some(expires) = expires {
                body["expires"] = json!(expires);
            }
            let answer = http.call("POST", "/api/keys", body.to_string()).await?;
            Ok(if raw {
                pretty(&answer)
            } else {
                format!(
                    "{}\n(key {} `{}`: keep it now, it is not shown again)",
                    answer["key"].as_str().unwrap_or("?"),
                    answer["id"].as_str().unwrap_or("?"),
                    answer["name"].as_str().unwrap_or("?"),
                )
            })
        }
        KeysCommand::List => {
            let answer = http.call("GET", "/api/keys", "").await?;
            if raw {
                return Ok(pretty(&answer));
            }
            let keys = answer["keys"].as_array().cloned().unwrap_or_default();
            let mut lines = vec![format!(
                "{:<16}  {:<24}  {:<8}  roles",
                "id", "name", "state"
            )];
            lines.extend(keys.iter().map(line));
            Ok(lines.join("\n"))
        }
        KeysCommand::Revoke { id } => {
            let answer = http.call("DELETE", &format!("/api/keys/{id}"), "").await?;
            Ok(if raw {
                pretty(&answer)
            } else {
                format!("key {id} revoked")
            })
        }
    }
}

fn line(key: &Value) -> String {
    let roles: Vec<&str> = key["roles"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    format!(
        "{:<16}  {:<24}  {:<8}  {}",
        key["id"].as_str().unwrap_or("?"),
        key["name"].as_str().unwrap_or("?"),
        key["state"].as_str().unwrap_or("?"),
        roles.join(",")
    )
}
