//! `tessera repair`: repairs of what a node keeps in its data dir (offline: the node stopped)
//! and of the cluster's Cfg documents (on their revisions); `tessera-repair` does the work. Every answer is JSON on stdout; exit codes as the CLI's table: 3 bad edits,
//! 4 no such backup, 5 in use (the node runs, or another repair does), 7 damaged (a `check`
//! that found something, data that does not read), 1 a result that failed validation.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use serde::Serialize;
use tessera_repair::edits::EditList;
use tessera_repair::source::{self, Filter};
use tessera_repair::workspace::Workspace;
use tessera_repair::RepairError;

use crate::exit::{Exit, CONFLICT, CORRUPT, INVALID, NOT_FOUND};
use tessera_cfg::CfgSpec;

#[derive(Subcommand)]
pub enum RepairCommand {
    /// The reference source's log (`<data-dir>/source.redb`).
    #[command(subcommand)]
    Source(SourceRepair),
    /// A `fulltext` PIndex directory (`<data-dir>/pindexes/NAME`).
    #[command(subcommand)]
    Pindex(PIndexRepair),
    /// The cluster's Cfg documents (`--cfg`); backups and journal in `--data-dir`.
    #[command(subcommand)]
    Cfg(CfgRepair),
}

#[derive(Subcommand)]
pub enum CfgRepair {
    /// Every key whose document does not decode, has an unknown format version or fails
    /// validation, and dangling references (exit 7 if any).
    Scan,
    /// Deletes or replaces keys, each on the revision it must still have, in one transaction.
    Apply {
        #[arg(long)]
        edits: PathBuf,
        #[arg(long)]
        dry_run: bool,
    },
    /// Puts the values of backup ID back (refused when a key changed since).
    Rollback { id: String },
    /// The backups of Cfg repairs, and the journal.
    List {
        #[arg(long)]
        purge: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum PIndexRepair {
    /// Segments (documents, deletes, files, source partitions), checkpoints, orphan files.
    /// NAME is a PIndex of `--data-dir`, or its directory (`D/pindexes/NAME`).
    Inspect { name: String },
    /// Checksums of every file, orphan files, the commit and its checkpoints (exit 7 if any
    /// problem).
    Check { name: String },
    /// The edit list that repairs what `check` finds.
    Plan {
        name: String,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Backs the directory up, applies the edits to a copy, validates it, and exchanges it
    /// with the original.
    Apply {
        name: String,
        #[arg(long)]
        edits: PathBuf,
        #[arg(long)]
        dry_run: bool,
    },
    /// Puts the directory of backup ID back.
    Rollback { id: String },
    /// The backups of PIndex repairs, and the journal.
    List {
        #[arg(long)]
        purge: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum SourceRepair {
    /// Partitions (uuid, high seq, entries) and entries (seq, key, op, size, CRC-32).
    Inspect {
        #[arg(long)]
        source: Option<String>,
        #[arg(long)]
        partition: Option<u32>,
        #[arg(long)]
        from: Option<u64>,
        #[arg(long)]
        to: Option<u64>,
    },
    /// Reads every entry; names unreadable or inconsistent ones by position (exit 7 if any).
    Check,
    /// The edit list that repairs what `check` finds (to review, then `apply --edits`).
    Plan {
        /// Write the edit list here instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Backs the log up, applies the edits beside it, validates, and swaps the result in.
    Apply {
        /// The edit list (JSON, or YAML for a `.yaml`/`.yml` file).
        #[arg(long)]
        edits: PathBuf,
        /// Apply to a scratch copy and say what `apply` would change; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Builds a source's history anew from this node's PIndexes of it, when the log does not
    /// open (or lacks the source): each document they store, once, at fresh seqs.
    Salvage {
        /// The source (the index definitions' `source.name`).
        #[arg(long)]
        source: String,
        /// Its partition count (the index definitions' `source.partitions`).
        #[arg(long)]
        partitions: u32,
        /// A PIndex of the source to read (repeat for each; `plan` lists them).
        #[arg(long = "from-pindex", required = true)]
        from_pindex: Vec<String>,
        #[arg(long)]
        dry_run: bool,
    },
    /// Puts the log of backup ID back, byte for byte.
    Rollback { id: String },
    /// The backups of source repairs, and the journal.
    List {
        /// Remove this backup.
        #[arg(long)]
        purge: Option<String>,
    },
}

fn exit(e: RepairError) -> anyhow::Error {
    let code = match &e {
        RepairError::Invalid(_) => INVALID,
        RepairError::NoSuchBackup(_) => NOT_FOUND,
        RepairError::InUse(_) => CONFLICT,
        RepairError::Damaged(_) => CORRUPT,
        RepairError::Validation(_) | RepairError::Io { .. } => 1,
    };
    Exit::new(code, e.to_string()).into()
}

fn print(value: &impl Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Runs `command` on the data dir `data` (and, for the Cfg, the store `cfg` names).
pub async fn run(data: &Path, cfg: &CfgSpec, command: RepairCommand) -> anyhow::Result<()> {
    match command {
        RepairCommand::Source(cmd) => source_repair(data, cmd),
        RepairCommand::Pindex(cmd) => pindex_repair(data, cmd),
        RepairCommand::Cfg(cmd) => cfg_repair(data, cfg, cmd).await,
    }
}

async fn cfg_repair(data: &Path, spec: &CfgSpec, cmd: CfgRepair) -> anyhow::Result<()> {
    use tessera_repair::cfg;
    if let CfgRepair::List { purge } = cmd {
        return list(data, "cfg", purge);
    }
    let store = spec.open(data).await?;
    match cmd {
        CfgRepair::Scan => {
            let report = cfg::scan(&store).await.map_err(exit)?;
            print(&report)?;
            if report.findings.is_empty() {
                Ok(())
            } else {
                Err(Exit::new(
                    CORRUPT,
                    format!("{} problem(s) in the Cfg", report.findings.len()),
                )
                .into())
            }
        }
        CfgRepair::Apply { edits, dry_run } => {
            let list = EditList::read(&edits).map_err(exit)?;
            print(
                &cfg::apply(&store, data, &list, dry_run)
                    .await
                    .map_err(exit)?,
            )
        }
        CfgRepair::Rollback { id } => print(&cfg::rollback(&store, data, &id).await.map_err(exit)?),
        CfgRepair::List { .. } => Ok(()),
    }
}

/// The backups and journal of one kind of repair, or `purge` one backup.
fn list(data: &Path, kind: &str, purge: Option<String>) -> anyhow::Result<()> {
    let ws = Workspace::new(data);
    if let Some(id) = purge {
        let gone = ws.purge(&id).map_err(exit)?;
        return print(&serde_json::json!({"purged": gone}));
    }
    let backups: Vec<_> = ws
        .list()
        .map_err(exit)?
        .into_iter()
        .filter(|b| b.kind == kind)
        .collect();
    let journal: Vec<_> = ws
        .read_journal()
        .into_iter()
        .filter(|j| j.kind == kind)
        .collect();
    print(&serde_json::json!({"backups": backups, "journal": journal}))
}

/// Prints `plan` (to `out` when given), or why there is none.
fn print_plan<E: Serialize>(
    plan: Option<EditList<E>>,
    none: String,
    out: Option<PathBuf>,
) -> anyhow::Result<()> {
    let Some(plan) = plan else {
        return print(&serde_json::json!({"edits": [], "note": none}));
    };
    match out {
        Some(path) => {
            std::fs::write(&path, serde_json::to_string_pretty(&plan)?)?;
            print(&serde_json::json!({"written": path, "edits": plan.edits.len()}))
        }
        None => print(&plan),
    }
}

fn pindex_repair(data: &Path, cmd: PIndexRepair) -> anyhow::Result<()> {
    use tessera_repair::pindex;
    let target = match &cmd {
        PIndexRepair::Inspect { name }
        | PIndexRepair::Check { name }
        | PIndexRepair::Plan { name, .. }
        | PIndexRepair::Apply { name, .. } => Some(name.clone()),
        PIndexRepair::Rollback { .. } | PIndexRepair::List { .. } => None,
    };
    let (data_dir, name) = match &target {
        Some(t) => pindex::locate(data, t).map_err(exit)?,
        None => (data.to_path_buf(), String::new()),
    };
    let data = data_dir.as_path();
    match cmd {
        PIndexRepair::Inspect { .. } => print(&pindex::inspect(data, &name).map_err(exit)?),
        PIndexRepair::Check { .. } => {
            let inspection = pindex::inspect(data, &name).map_err(exit)?;
            print(&inspection)?;
            if inspection.clean() {
                return Ok(());
            }
            let damaged: Vec<&String> = inspection
                .damaged_segments()
                .iter()
                .flat_map(|s| s.damaged.iter())
                .collect();
            Err(Exit::new(
                CORRUPT,
                format!(
                    "PIndex {name}: damaged files {damaged:?}, {} orphan file(s), problems {:?}",
                    inspection.orphans.len(),
                    inspection.problems
                ),
            )
            .into())
        }
        PIndexRepair::Plan { out, .. } => {
            let inspection = pindex::inspect(data, &name).map_err(exit)?;
            print_plan(
                pindex::plan(&inspection),
                "nothing to repair: `check` finds no problem".into(),
                out,
            )
        }
        PIndexRepair::Apply { edits, dry_run, .. } => {
            let list = EditList::read(&edits).map_err(exit)?;
            print(&pindex::apply(data, &name, &list, dry_run).map_err(exit)?)
        }
        PIndexRepair::Rollback { id } => print(&pindex::rollback(data, &id).map_err(exit)?),
        PIndexRepair::List { purge } => list(data, "pindex", purge),
    }
}

fn source_repair(data: &Path, cmd: SourceRepair) -> anyhow::Result<()> {
    match cmd {
        SourceRepair::Inspect {
            source,
            partition,
            from,
            to,
        } => {
            let filter = Filter {
                source,
                partition,
                from,
                to,
            };
            print(&source::inspect(data, &filter).map_err(exit)?)
        }
        SourceRepair::Check => {
            let report = source::check(data).map_err(exit)?;
            print(&report)?;
            if report.clean() {
                Ok(())
            } else {
                let what = match &report.error {
                    Some(e) => format!("the source log does not open: {e}"),
                    None => format!("{} problem(s) in the source log", report.findings.len()),
                };
                Err(Exit::new(CORRUPT, what).into())
            }
        }
        SourceRepair::Plan { out } => {
            let report = source::check(data).map_err(exit)?;
            if let Some(e) = &report.error {
                // Nothing of the file reads: offer what this node's PIndexes still hold.
                let candidates = tessera_repair::salvage::candidates(data);
                return print(&serde_json::json!({
                    "edits": [],
                    "note": format!("the source log does not open ({e}): salvage each source from its PIndexes here, restore a snapshot (`tessera ctl restore`), or `rollback` an earlier repair"),
                    "salvage": {
                        "candidates": candidates,
                        "command": "tessera repair source salvage --source NAME --partitions N --from-pindex PINDEX [--from-pindex ...] [--dry-run]",
                    },
                }));
            }
            print_plan(
                source::plan(&report),
                "nothing to repair: `check` finds no problem".into(),
                out,
            )
        }
        SourceRepair::Salvage {
            source,
            partitions,
            from_pindex,
            dry_run,
        } => {
            let spec = tessera_repair::salvage::SalvageSpec {
                source,
                partitions,
                pindexes: from_pindex,
            };
            print(&tessera_repair::salvage::salvage(data, &spec, dry_run).map_err(exit)?)
        }
        SourceRepair::Apply { edits, dry_run } => {
            let list = EditList::read(&edits).map_err(exit)?;
            print(&source::apply(data, &list, dry_run).map_err(exit)?)
        }
        SourceRepair::Rollback { id } => print(&source::rollback(data, &id).map_err(exit)?),
        SourceRepair::List { purge } => list(data, "source", purge),
    }
}
