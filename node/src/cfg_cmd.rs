//! `tessera cfg ...`: operator access to the Cfg, against etcd or the embedded store.

use std::io::Read;

use anyhow::Context;
use serde_json::json;
use tessera_cfg::cfg::DumpEntry;
use tessera_cfg::{Cfg, CfgError};

use crate::cli::{CfgCommand, Global};

pub async fn run(global: &Global, command: CfgCommand) -> anyhow::Result<()> {
    let cfg = open(global).await?;
    match command {
        CfgCommand::Dump => print_json(&serde_json::to_value(cfg.dump().await?)?),
        CfgCommand::Get { key } => {
            let key = cfg.keys().resolve(&key);
            let kv = cfg
                .store()
                .get(&key)
                .await?
                .ok_or(CfgError::NotFound { key: key.clone() })?;
            let mut out = serde_json::to_value(DumpEntry::from(kv))?;
            out["key"] = json!(key);
            print_json(&out)
        }
        CfgCommand::Put {
            key,
            value,
            file,
            cas,
            raw,
        } => {
            let key = cfg.keys().resolve(&key);
            let bytes = read_value(value, file)?;
            let bytes = cfg.normalize_input(&key, &bytes, raw)?;
            let cas = match cas {
                Some(cas) => cas,
                None => cfg.store().get(&key).await?.map_or(0, |kv| kv.mod_revision),
            };
            let revision = cfg.store().set(&key, bytes, cas).await?;
            print_json(&json!({"key": key, "mod_revision": revision}))
        }
        CfgCommand::Del { key, cas } => {
            let key = cfg.keys().resolve(&key);
            let revision = cfg.store().delete(&key, cas.unwrap_or(0)).await?;
            print_json(&json!({"key": key, "deleted_at_revision": revision}))
        }
    }
}

async fn open(global: &Global) -> anyhow::Result<Cfg> {
    global.cfg.open(&global.data_dir).await.map_err(|e| match e {
        CfgError::Unavailable { reason } if reason.contains("in use") => anyhow::Error::new(
            CfgError::Unavailable {
                reason: format!(
                    "{reason}; stop the node first, or read it through the node's REST API (GET /api/cfg)"
                ),
            },
        ),
        other => other.into(),
    })
}

fn read_value(value: Option<String>, file: Option<std::path::PathBuf>) -> anyhow::Result<Vec<u8>> {
    if let Some(value) = value {
        return Ok(value.into_bytes());
    }
    if let Some(file) = file {
        return std::fs::read(&file).with_context(|| format!("reading {}", file.display()));
    }
    let mut bytes = Vec::new();
    std::io::stdin()
        .read_to_end(&mut bytes)
        .context("reading the value from stdin")?;
    Ok(bytes)
}

fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
