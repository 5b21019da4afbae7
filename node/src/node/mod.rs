//! `tessera node`: joins the cluster named by `--cfg` and stays in it until SIGTERM. This
//! module only wires: the behaviour lives in the crates it starts.
//!
//! Start-up: identity from the data dir → cluster meta (created on first use, and the data
//! dir must belong to it) → liveness key created under a lease (refused while another
//! incarnation of the same uuid keeps it alive) → node definition registered under CAS → the
//! janitor (`tessera-janitor`), the planner service when tagged `planner`
//! (`tessera-planner`), and the API (`tessera-api`: REST and gRPC on one port, with the
//! embedded source's routes). Shutdown stops the planner and the janitor (feeds commit), then
//! the server, and revokes the lease so the node is gone at once, not after the TTL.

mod bootstrap;
mod directory;
pub(crate) mod identity;
pub mod port;
pub mod security;

use std::time::Duration;

use anyhow::Context;
use tessera_cfg::schema::{Document, NodeDef, NodeLiveness, NodeTag};
use tessera_cfg::{Cfg, CfgError, LeaseKeeper};

use crate::cli::{Global, NodeArgs};
use crate::exit::{Exit, CONFLICT, INVALID};

pub async fn run(global: &Global, args: NodeArgs) -> anyhow::Result<()> {
    match crate::limits::raise_open_files() {
        Ok((before, after)) if before != after => {
            tracing::info!(?before, ?after, "open-files limit raised")
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = e, "keeping the open-files limit"),
    }
    let mut identity = identity::load_or_create(&global.data_dir)?;
    // The port and how it is guarded first: a node that must not start touches no Cfg.
    let listener = tokio::net::TcpListener::bind(&args.bind)
        .await
        .map_err(|e| Exit::new(INVALID, format!("cannot listen on {}: {e}", args.bind)))?;
    let bound = listener.local_addr().context("reading the bound address")?;
    let auth = security::mode(&args.security, bound)?;
    security::transport(&args.security, auth, bound, &global.cfg)?;
    let tls = security::NodeTls::load(&args.security, &identity.node_uuid)?;
    let cfg = global.cfg.open(&global.data_dir).await?;
    let meta = cfg.ensure_cluster_meta().await?;
    let bootstrapping = bootstrap::Bootstrap {
        asked: args.security.bootstrap_admin,
        expires_after_ms: args.security.bootstrap_admin_expires,
    };
    identity::bind_cluster(&global.data_dir, &mut identity, &meta.cluster_uuid)?;
    let host_port = match &args.advertise {
        Some(a) => a.clone(),
        None => listener
            .local_addr()
            .context("reading the bound address")?
            .to_string(),
    };
    let me = Me {
        uuid: identity.node_uuid.clone(),
        incarnation: uuid::Uuid::new_v4().simple().to_string(),
        host_port,
    };
    // Live first, then defined: a defined node without a liveness key counts as absent, and
    // with a failover delay of 0 the planner would fail it over in between.
    let lease = go_live(&cfg, &me.uuid, &me.incarnation, &me.host_port, &args).await?;
    register(&cfg, &me.uuid, &me.incarnation, &me.host_port, &args).await?;
    tracing::info!(
        node = me.uuid,
        incarnation = me.incarnation,
        cluster = meta.name,
        cluster_uuid = meta.cluster_uuid,
        address = me.host_port,
        cfg = cfg.store().backend(),
        "node up"
    );

    let source = crate::source_cmd::open_log(&global.data_dir, args.source_partitions)?;
    // One pooled channel per peer for every node-to-node call of this process, carrying the
    // node's own key when the cluster runs with auth.
    // (With mutual TLS, its certificate proves it instead.)
    let mutual = tls.as_ref().is_some_and(|t| t.mutual);
    let peers = match auth {
        tessera_api::access::AuthMode::Required if !mutual => {
            let token = security::node_key(&cfg, &global.data_dir, &me.uuid).await?;
            bootstrap::admin(&cfg, &global.data_dir, bootstrapping).await?;
            let credential = tessera_coord::NodeCredential::bearer(&token)
                .context("the node's API key is not a header value")?;
            tessera_coord::Peers::with_credential(credential)
        }
        tessera_api::access::AuthMode::Required => {
            bootstrap::admin(&cfg, &global.data_dir, bootstrapping).await?;
            tessera_coord::Peers::default()
        }
        tessera_api::access::AuthMode::Off => tessera_coord::Peers::default(),
    };
    // The cluster's nodes, known before any call: the only addresses the node's credential
    // goes to, and the node identities and reserved slots of the port.
    let (directory, directory_task) = directory::start(&cfg, &peers).await?;
    // Peers are dialled over TLS, and again with the node's certificate when it changes.
    let reloading = match &tls {
        Some(tls) => {
            peers.set_tls(tls.peer_config(&args.security)?);
            let (peers, security_args) = (peers.clone(), args.security.clone());
            let peer_ca = tls.peer_ca.clone();
            let mutual = tls.mutual;
            Some(tls.server.watch(Duration::from_secs(1), move || {
                let again = security::NodeTls::peer_config_of(&security_args, &peer_ca, mutual);
                match again {
                    Ok(config) => peers.set_tls(config),
                    Err(e) => tracing::warn!(error = %e, "peers keep the previous TLS identity"),
                }
            }))
        }
        None => None,
    };
    // One connection per NATS server list for every JetStream source of this process.
    let dial = security::dial_policy(&args.security, auth)?;
    let paths = security::path_policy(&args.security, auth, &global.data_dir, &global.etcd);
    let sources = tessera_sources::Sources::with_policy(peers.clone(), dial, paths);
    let indexing = tessera_index::IndexingPool::new(args.indexing_limits())
        .map_err(|e| Exit::new(INVALID, e.to_string()))?;
    let (janitor, board) = start_janitor(
        &cfg,
        &me,
        global,
        &args,
        (peers.clone(), &indexing, &sources),
    );
    let planner = start_planner(&cfg, &me, &args);
    let repos = repo_policy(&args, &sources);
    let (backups, saver) = start_backups(&cfg, &me, &meta, global, (peers.clone(), &board, repos));
    let copies = tessera_copy::serve::CopyService {
        cfg: cfg.clone(),
        node: me.uuid.clone(),
        url: format!("http://{}", me.host_port),
        pindex_dir: global.data_dir.join("pindexes"),
        held: std::sync::Arc::new(tessera_copy::held::HeldSets::new(
            global.data_dir.join("copy-staging"),
        )),
        peers: peers.clone(),
    };
    let trimming = tokio::spawn(crate::trim::run(indexing.clone()));
    let mut state = api_state(&cfg, &me, &meta, board, &args, (peers, sources));
    state.indexing = Some(indexing);
    state.access = security::access(&cfg, &global.data_dir, auth, &args.security)?;
    let access = state.access.clone();
    let recovery = {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let run = tessera_api::recovery::run_automatic(state.clone(), stopped);
        Part {
            stop,
            task: Some(tokio::spawn(run)),
        }
    };
    let app = tessera_api::app(state)
        .merge(tessera_backup::grpc::router(saver))
        .merge(tessera_copy::serve::router(copies))
        .merge(crate::source_cmd::routes(
            source,
            args.max_concurrent_writes as usize,
        ))
        .fallback(tessera_api::not_found)
        .layer(axum::middleware::from_fn_with_state(
            access,
            tessera_api::access::guard,
        ))
        .layer(axum::middleware::from_fn(tessera_api::guard::json_errors))
        .layer(axum::middleware::from_fn(
            tessera_api::request_metrics::record,
        ))
        .layer(axum::middleware::from_fn_with_state(
            me.uuid.clone(),
            tessera_api::request_trace::trace,
        ));
    let mut lost = lease.lost();
    // On the way out: planner and janitor first (feeds stop, PIndexes commit, and the feeds'
    // streams to this node's own source close, so the server can finish), then the server.
    let stop = async move {
        tokio::select! {
            () = crate::signals::shutdown_signal() => tracing::info!("shutting down"),
            () = until_true(&mut lost) => tracing::error!("liveness lease lost; stopping so a supervisor can restart the node"),
        }
        recovery.stop().await;
        backups.stop().await;
        planner.stop().await;
        janitor.stop().await;
    };
    // The port: connections bounded (total, per client, handshakes, time), node identities
    // pinned to the nodes the Cfg defines now.
    let port = tessera_tls::Port {
        tls: tls.map(|t| t.server),
        directory,
        limits: args.port.limits(),
    };
    tessera_tls::port::serve(listener, port, app, stop).await;
    directory_task.abort();
    if let Some(task) = reloading {
        task.abort();
    }
    trimming.abort();
    let lost = lease.is_lost();
    if let Err(e) = lease.revoke().await {
        tracing::warn!(error = %e, "could not revoke the liveness lease; it expires after its TTL");
    }
    if lost {
        anyhow::bail!("liveness lease lost");
    }
    tracing::info!("node stopped");
    Ok(())
}

/// Who this process is in the cluster.
struct Me {
    uuid: String,
    incarnation: String,
    host_port: String,
}

/// A background part of the node (janitor, planner) that stops on a signal, if it runs here.
struct Part {
    stop: tokio::sync::watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Part {
    async fn stop(self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task {
            let _ = task.await;
        }
    }
}

/// The janitor, when the node hosts PIndexes; its status board either way (empty without it).
fn start_janitor(
    cfg: &Cfg,
    me: &Me,
    global: &Global,
    args: &NodeArgs,
    (peers, indexing, sources): (
        tessera_coord::Peers,
        &std::sync::Arc<tessera_index::IndexingPool>,
        &tessera_sources::Sources,
    ),
) -> (Part, tessera_janitor::executor::StatusBoard) {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let executor = tessera_janitor::executor::Executor::new(
        cfg.clone(),
        &me.uuid,
        &me.incarnation,
        tessera_janitor::executor::ExecutorOptions {
            max_backfills: args.max_backfills,
            node_url: (!args.no_peer_copy).then(|| format!("http://{}", me.host_port)),
            copy_pace: std::sync::Arc::new(tessera_copy::pace::Pace::new(
                args.recovery_max_bytes_per_sec,
            )),
            indexing: Some(indexing.clone()),
            sources: sources.clone(),
            repos: repo_policy(args, sources),
            ..tessera_janitor::executor::ExecutorOptions::new(
                global.data_dir.join("pindexes"),
                format!("http://{}", me.host_port),
                peers,
            )
        },
    );
    let board = executor.board();
    let task = (args.tags.contains(&NodeTag::Janitor) && args.tags.contains(&NodeTag::Pindex))
        .then(|| tokio::spawn(executor.run(stopped)));
    (Part { stop, task }, board)
}

/// What backup repositories may make this node dial, read and write: its sources' dial and
/// path policies, and `--backup-path` for `fs` locations (checked on every open, on every node).
fn repo_policy(
    args: &NodeArgs,
    sources: &tessera_sources::Sources,
) -> std::sync::Arc<tessera_backup::RepoPolicy> {
    std::sync::Arc::new(tessera_backup::RepoPolicy {
        dial: sources.dial_policy().clone(),
        paths: sources.path_policy().clone(),
        fs_roots: args.backup_paths.clone(),
    })
}

/// The backup runner (every node drives the backup jobs it owns, and takes over those of nodes
/// gone) and the service saving this node's PIndexes for a job.
fn start_backups(
    cfg: &Cfg,
    me: &Me,
    meta: &tessera_cfg::schema::ClusterMeta,
    global: &Global,
    (peers, board, policy): (
        tessera_coord::Peers,
        &tessera_janitor::executor::StatusBoard,
        std::sync::Arc<tessera_backup::RepoPolicy>,
    ),
) -> (Part, tessera_backup::grpc::LocalSaver) {
    let board = board.clone();
    let staging_dir = global.data_dir.join("backup-staging");
    // File sets left by a run that stopped mid-save are of no use now.
    if staging_dir.exists() {
        if let Err(e) = std::fs::remove_dir_all(&staging_dir) {
            tracing::warn!(error = %e, dir = %staging_dir.display(), "could not clear old backup staging");
        }
    }
    // A PIndex saved commits what it has applied and what the source had when the backup
    // began first (waiting at most 30 s; a copy further behind is a reason to ask another).
    let before_save: tessera_backup::grpc::BeforeSave =
        std::sync::Arc::new(move |pindex, at_least| {
            let board = board.clone();
            Box::pin(async move {
                let within = std::time::Duration::from_secs(30);
                tessera_janitor::board::commit_applied(&board, &pindex, &at_least, within)
                    .await
                    .map_err(|behind| {
                        let parts: Vec<String> = behind
                            .iter()
                            .take(4)
                            .map(|(p, at, want)| format!("partition {p} at seq {at} of {want}"))
                            .collect();
                        format!("{} partitions behind ({})", behind.len(), parts.join(", "))
                    })
            })
        });
    let saver = tessera_backup::grpc::LocalSaver {
        cfg: cfg.clone(),
        node: me.uuid.clone(),
        pindex_dir: global.data_dir.join("pindexes"),
        staging_dir,
        before_save: Some(before_save),
        policy,
    };
    let driver = tessera_backup::job::Driver {
        cfg: cfg.clone(),
        peers,
        local: saver.clone(),
        cluster: format!("{}/{}", meta.name, meta.cluster_uuid),
        default_source_url: format!("http://{}", me.host_port),
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = Some(tokio::spawn(tessera_backup::runner::run(driver, stopped)));
    (Part { stop, task }, saver)
}

/// The planner service, when the node is tagged `planner` (one of them leads the cluster).
fn start_planner(cfg: &Cfg, me: &Me, args: &NodeArgs) -> Part {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = args.tags.contains(&NodeTag::Planner).then(|| {
        let service = tessera_planner::service::PlannerService::new(
            cfg.clone(),
            &me.uuid,
            &me.incarnation,
            args.planner.options(),
        );
        tokio::spawn(service.run(stopped))
    });
    Part { stop, task }
}

/// What the API's handlers share.
fn api_state(
    cfg: &Cfg,
    me: &Me,
    meta: &tessera_cfg::schema::ClusterMeta,
    board: tessera_janitor::executor::StatusBoard,
    args: &NodeArgs,
    (peers, sources): (tessera_coord::Peers, tessera_sources::Sources),
) -> tessera_api::AppState {
    let limits = tessera_coord::SearchLimits {
        max_concurrent_queries: args.max_concurrent_queries as usize,
        max_concurrent_shard_calls: args.max_concurrent_shard_calls as usize,
        max_shard_wait: std::time::Duration::from_millis(args.max_shard_wait_ms),
    };
    let search = tessera_coord::SearchState::new(limits, format!("http://{}", me.host_port), peers);
    // Queries route from an in-memory mirror of the cluster, not from Cfg reads.
    let _ = search
        .cluster_view
        .set(tessera_coord::ClusterView::start(cfg.clone()));
    let who = tessera_api::Identity {
        node_uuid: me.uuid.clone(),
        incarnation: me.incarnation.clone(),
        cluster_uuid: meta.cluster_uuid.clone(),
        cluster_name: meta.name.clone(),
    };
    tessera_api::AppState {
        sources,
        backup_paths: args.backup_paths.clone(),
        slow_query: (args.slow_query_ms > 0)
            .then(|| std::time::Duration::from_millis(args.slow_query_ms)),
        ..tessera_api::AppState::new(cfg.clone(), who, board, search)
    }
}

/// Writes the node definition, replacing the previous one of this uuid under CAS.
async fn register(
    cfg: &Cfg,
    uuid: &str,
    incarnation: &str,
    host_port: &str,
    args: &NodeArgs,
) -> anyhow::Result<()> {
    loop {
        let current = cfg.node_def(uuid).await?;
        let def = NodeDef {
            format_version: NodeDef::FORMAT_VERSION,
            uuid: uuid.to_string(),
            incarnation: incarnation.to_string(),
            host_port: host_port.to_string(),
            tags: args.tags.iter().copied().collect(),
            group: args.group.clone(),
            weight: args.weight,
            // An operator's drain outlives restarts. Managed nodes join as known only: the
            // supervisor decides when they are wanted.
            wanted: current.as_ref().map_or(!args.managed, |c| c.value.wanted),
            failed_over: false,
            reads: !args.managed || current.as_ref().is_none_or(|c| c.value.reads),
            extras: current
                .as_ref()
                .map(|c| c.value.extras.clone())
                .unwrap_or_default(),
        };
        // A failed-over node that comes back rejoins by itself when self-managed (its PIndex
        // files are reused where their checkpoints still hold); a managed one waits for the
        // supervisor.
        let mut def = def;
        def.set_failed_over(args.managed && current.as_ref().is_some_and(|c| c.value.failed_over));
        match cfg
            .put_node_def(&def, current.map_or(0, |c| c.revision))
            .await
        {
            Ok(_) => return Ok(()),
            Err(CfgError::CasMismatch { .. } | CfgError::AlreadyExists { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Creates the liveness key under a fresh lease. When another incarnation holds it, waits one
/// TTL (a crashed predecessor's lease runs out), then refuses: a live twin means a cloned
/// data dir.
async fn go_live(
    cfg: &Cfg,
    uuid: &str,
    incarnation: &str,
    host_port: &str,
    args: &NodeArgs,
) -> anyhow::Result<LeaseKeeper> {
    let ttl = Duration::from_millis(args.lease_ttl_ms.max(1000));
    let lease = LeaseKeeper::grant(cfg.store().clone(), ttl).await?;
    let live = NodeLiveness {
        format_version: NodeLiveness::FORMAT_VERSION,
        uuid: uuid.to_string(),
        incarnation: incarnation.to_string(),
        host_port: host_port.to_string(),
        started_at_unix_ms: tessera_cfg::unix_ms(),
    };
    let give_up = tokio::time::Instant::now() + ttl + Duration::from_secs(2);
    loop {
        match cfg.create_liveness(&live, lease.id()).await {
            Ok(_) => return Ok(lease),
            Err(CfgError::AlreadyExists { .. }) if tokio::time::Instant::now() < give_up => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(CfgError::AlreadyExists { .. }) => {
                let holder = cfg.liveness(uuid).await?.map(|l| l.value);
                let _ = lease.revoke().await;
                let who = holder.map_or_else(
                    || "another process".to_string(),
                    |h| format!("incarnation {} at {}", h.incarnation, h.host_port),
                );
                return Err(Exit::new(
                    CONFLICT,
                    format!(
                        "node {uuid} is already live ({who}); is another process running on a copy of this data dir?"
                    ),
                )
                .into());
            }
            Err(e) => {
                let _ = lease.revoke().await;
                return Err(e.into());
            }
        }
    }
}

async fn until_true(flag: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = flag.wait_for(|v| *v).await;
}
