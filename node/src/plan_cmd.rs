//! `tessera planner` (the planner alone) and `tessera plan what-if`.

use std::io::Read;
use std::time::Duration;

use anyhow::Context;
use tessera_planner::model::{NodeSpec, NodeTag, PlanInput};
use tessera_planner::service::{inputs, what_if, PlannerOptions, PlannerService};

use crate::cli::{Global, PlanCommand, PlannerArgs, StandalonePlannerArgs, WhatIfArgs};
use crate::exit::{Exit, INVALID};

impl PlannerArgs {
    pub fn options(&self) -> PlannerOptions {
        PlannerOptions {
            lease_ttl: Duration::from_millis(self.planner_lease_ttl_ms.max(1000)),
            failover_delay: Duration::from_millis(self.failover_delay_ms),
            resync: Duration::from_millis(self.resync_ms.max(100)),
            move_limits: tessera_planner::orchestrate::Limits {
                incoming_per_node: self.max_moves_in_per_node as usize,
                outgoing_per_node: self.max_moves_out_per_node as usize,
                cluster: self.max_moves as usize,
            },
            max_auto_failovers: self.max_auto_failovers,
            ..PlannerOptions::default()
        }
    }
}

/// `tessera planner`: campaigns and plans until SIGTERM / Ctrl-C.
pub async fn run_planner(global: &Global, args: StandalonePlannerArgs) -> anyhow::Result<()> {
    let cfg = global.cfg.open(&global.data_dir).await?;
    cfg.ensure_cluster_meta().await?;
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let uuid = format!("planner-{name}");
    tessera_cfg::schema::validate::ident("--name", &uuid)
        .map_err(|e| Exit::new(INVALID, format!("`{}`: {}", e.field, e.reason)))?;
    let args = args.planner;
    let incarnation = uuid::Uuid::new_v4().simple().to_string();
    tracing::info!(
        planner = uuid,
        cfg = cfg.store().backend(),
        "standalone planner up"
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let service = PlannerService::new(cfg, &uuid, &incarnation, args.options());
    let task = tokio::spawn(service.run(stopped));
    crate::signals::shutdown_signal().await;
    let _ = stop.send(true);
    task.await.context("planner task")?;
    tracing::info!("planner stopped");
    Ok(())
}

pub async fn run(global: &Global, command: PlanCommand) -> anyhow::Result<()> {
    match command {
        PlanCommand::WhatIf(args) => what_if(global, args).await,
    }
}

async fn what_if(global: &Global, args: WhatIfArgs) -> anyhow::Result<()> {
    let input = match &args.input {
        Some(path) => read_input(path)?,
        None => live_input(global, &args).await?,
    };
    tessera_planner::validate::validate(&input).map_err(|e| Exit::new(INVALID, e.to_string()))?;
    let out = tessera_planner::plan_timed(&input);
    println!("{}", serde_json::to_string(&out)?);
    Ok(())
}

fn read_input(path: &std::path::Path) -> anyhow::Result<PlanInput> {
    let mut bytes = Vec::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("reading stdin")?;
    } else {
        bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    }
    let mut de = serde_json::Deserializer::from_slice(&bytes);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        Exit::new(
            INVALID,
            format!("{}: `{}`: {}", path.display(), e.path(), e.inner()),
        )
        .into()
    })
}

/// The live cluster as planner input, with the asked changes, by the leader's rules (the
/// planner's what-if: only failed-over nodes lose their copies).
async fn live_input(global: &Global, args: &WhatIfArgs) -> anyhow::Result<PlanInput> {
    let cfg = global.cfg.open(&global.data_dir).await?;
    let gathered = inputs::gather(&cfg).await?;
    let mut change = what_if::Change {
        removed: args.remove_node.clone(),
        ..what_if::Change::default()
    };
    for uuid in &args.drain_node {
        let mut def = gathered
            .node_defs
            .get(uuid)
            .map(|d| d.value.clone())
            .ok_or_else(|| Exit::new(INVALID, format!("--drain-node {uuid}: no such node")))?;
        def.wanted = false;
        change.changed.insert(uuid.clone(), def);
    }
    for spec in &args.add_node {
        let mut parts = spec.splitn(3, ':');
        let uuid = parts.next().unwrap_or_default().to_string();
        let group = parts.next().unwrap_or_default().to_string();
        let weight = match parts.next() {
            Some(w) => w.parse().map_err(|_| {
                Exit::new(
                    INVALID,
                    format!("--add-node {spec}: weight `{w}` is not a number"),
                )
            })?,
            None => 1,
        };
        change.added.push(NodeSpec {
            uuid,
            group,
            weight,
            tags: NodeTag::ALL.to_vec(),
            wanted: true,
        });
    }
    what_if::input(&gathered, &change)
        .map_err(|e| Exit::new(INVALID, format!("--remove-node: {e}")).into())
}
