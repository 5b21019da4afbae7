//! The command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use tessera_cfg::schema::NodeTag;
use tessera_cfg::CfgSpec;
use tessera_planner::defaults;

#[derive(Parser)]
#[command(
    name = "tessera",
    version,
    about = "Partitioned, replicated full-text index hosting"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `tessera_cfg=debug`.
    #[arg(long, global = true, env = "TESSERA_LOG")]
    pub log: Option<String>,
    /// Log lines as `text` or `json` (one JSON object per line).
    #[arg(long, global = true, env = "TESSERA_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Export spans over OTLP/gRPC to this collector (`http://HOST:4317`); off when absent.
    #[arg(long, global = true, env = "TESSERA_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Options every subcommand shares.
#[derive(Args, Clone)]
pub struct Global {
    /// The Cfg store: `embedded[:PATH]` (default, `<data-dir>/cfg.redb`), `memory`, or
    /// `etcd://HOST:PORT[,HOST:PORT...][/CLUSTER]` (`etcds://` for TLS).
    #[arg(long, global = true, env = "TESSERA_CFG", default_value = "embedded", value_parser = parse_spec)]
    pub cfg: CfgSpec,
    /// The node's data directory (identity, embedded Cfg, index data).
    #[arg(
        long,
        global = true,
        env = "TESSERA_DATA_DIR",
        default_value = "tessera-data"
    )]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub etcd: EtcdArgs,
}

/// How to reach a secured etcd.
#[derive(Args, Clone, Default)]
pub struct EtcdArgs {
    /// The CA of etcd's certificates (PEM), for an `etcds://` Cfg.
    #[arg(long, global = true, env = "TESSERA_ETCD_CA")]
    pub etcd_ca: Option<PathBuf>,
    /// A client certificate for etcd (PEM; etcd started with `--client-cert-auth`).
    #[arg(long, global = true, env = "TESSERA_ETCD_CERT")]
    pub etcd_cert: Option<PathBuf>,
    /// The key of `--etcd-cert` (PEM).
    #[arg(long, global = true, env = "TESSERA_ETCD_KEY")]
    pub etcd_key: Option<PathBuf>,
    /// An etcd user (etcd's auth enabled); its password from `--etcd-password-file` or
    /// `TESSERA_ETCD_PASSWORD`.
    #[arg(long, global = true, env = "TESSERA_ETCD_USER")]
    pub etcd_user: Option<String>,
    /// A file holding the etcd user's password.
    #[arg(long, global = true, env = "TESSERA_ETCD_PASSWORD_FILE")]
    pub etcd_password_file: Option<PathBuf>,
}

impl EtcdArgs {
    /// The access these flags describe (the password read from its file or the environment).
    pub fn access(&self) -> Result<tessera_cfg::EtcdAccess, String> {
        let password = match &self.etcd_password_file {
            Some(file) => Some(
                std::fs::read_to_string(file)
                    .map_err(|e| format!("--etcd-password-file {}: {e}", file.display()))?
                    .trim_end_matches(['\r', '\n'])
                    .to_string(),
            ),
            None => std::env::var("TESSERA_ETCD_PASSWORD").ok(),
        };
        Ok(tessera_cfg::EtcdAccess {
            ca: self.etcd_ca.clone(),
            cert: self.etcd_cert.clone(),
            key: self.etcd_key.clone(),
            user: self.etcd_user.clone(),
            // A password in the environment without a user changes nothing.
            password: password.filter(|_| self.etcd_user.is_some()),
        })
    }
}

fn parse_spec(s: &str) -> Result<CfgSpec, String> {
    s.parse().map_err(|e: tessera_cfg::CfgError| e.to_string())
}

#[derive(Subcommand)]
pub enum Command {
    /// Run a node: register it in the Cfg, keep its liveness lease, serve its REST port.
    Node(NodeArgs),
    /// Read and edit the Cfg directly.
    #[command(subcommand)]
    Cfg(CfgCommand),
    /// Run the planner alone (it also runs inside every node tagged `planner`).
    Planner(StandalonePlannerArgs),
    /// Run the reference source alone (it is also embedded in every node).
    Source(SourceArgs),
    /// Operate a running cluster through a node's REST API: indexes, loading, queries, status.
    Ctl(crate::ctl::CtlArgs),
    /// Run a drill (drain, failover-graceful, failover-hard, rebalance) against a running
    /// cluster under ingest and queries, and print a report.
    Drill(crate::drill_cmd::DrillArgs),
    /// Offline repairs of a stopped node's data: inspect, check, plan, apply, rollback, list.
    #[command(subcommand)]
    Repair(crate::repair_cmd::RepairCommand),
    /// Planning tools.
    #[command(subcommand)]
    Plan(PlanCommand),
    /// A development CA and certificates for nodes and clients (TLS, mutual TLS).
    #[command(subcommand)]
    Cert(crate::cert_cmd::CertCommand),
}

/// `tessera planner`.
#[derive(Args, Clone)]
pub struct StandalonePlannerArgs {
    /// A stable name for this planner (its leader record says `planner-<name>`); random when
    /// absent.
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub planner: PlannerArgs,
}

/// Planner timings (shared by `tessera planner` and nodes tagged `planner`).
#[derive(Args, Clone)]
pub struct PlannerArgs {
    /// TTL of the planner's leader lease in milliseconds.
    #[arg(long, default_value_t = defaults::LEASE_TTL_MS)]
    pub planner_lease_ttl_ms: u64,
    /// How long a node must be absent before it counts as failed, in milliseconds (0: at
    /// once).
    #[arg(long, default_value_t = defaults::FAILOVER_DELAY_MS)]
    pub failover_delay_ms: u64,
    /// Copies one node builds at once because of moves.
    #[arg(long, default_value_t = defaults::MOVES_IN_PER_NODE, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub max_moves_in_per_node: u32,
    /// Copies one node hands over at once because of moves.
    #[arg(long, default_value_t = defaults::MOVES_OUT_PER_NODE, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub max_moves_out_per_node: u32,
    /// Moves under way in the whole cluster.
    #[arg(long, default_value_t = defaults::MOVES, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_moves: u32,
    /// Automatic failovers before an operator must acknowledge them
    /// (`POST /api/ctl/failover/ack`); 0 disables automatic failover.
    #[arg(long, default_value_t = defaults::MAX_AUTO_FAILOVERS)]
    pub max_auto_failovers: u32,
    /// Re-plan at least this often, in milliseconds.
    #[arg(long, default_value_t = defaults::RESYNC_MS)]
    pub resync_ms: u64,
}

#[derive(Subcommand)]
pub enum PlanCommand {
    /// Print the plan the planner would make, as one JSON object: from a file (`--input`,
    /// `-` for stdin), or from the live cluster named by `--cfg` with hypothetical changes.
    WhatIf(WhatIfArgs),
}

#[derive(Args)]
pub struct WhatIfArgs {
    /// Planner input JSON (see README). Without it, the live cluster is read from `--cfg`.
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// With the live cluster: add a node, `UUID[:GROUP[:WEIGHT]]` (repeatable).
    #[arg(long, conflicts_with = "input")]
    pub add_node: Vec<String>,
    /// With the live cluster: remove a node by uuid (repeatable).
    #[arg(long, conflicts_with = "input")]
    pub remove_node: Vec<String>,
    /// With the live cluster: drain a node by uuid, as a `drain` topology change does
    /// (repeatable); the answer's moves are those its dry run shows.
    #[arg(long, conflicts_with = "input")]
    pub drain_node: Vec<String>,
}

#[derive(Args)]
pub struct NodeArgs {
    /// Address to serve on (REST now; gRPC joins it on the same port).
    #[arg(long, default_value = "127.0.0.1:9100")]
    pub bind: String,
    /// Address other nodes use to reach this one (default: the bound address).
    #[arg(long)]
    pub advertise: Option<String>,
    /// What this node does (comma-separated).
    #[arg(long, value_delimiter = ',', value_parser = parse_tag,
          default_value = "feed,janitor,pindex,queryer,planner")]
    pub tags: Vec<NodeTag>,
    /// Server group path, e.g. `zone-a/rack-1`.
    #[arg(long, default_value = "")]
    pub group: String,
    /// Relative capacity (1..=100).
    #[arg(long, default_value_t = 1)]
    pub weight: u32,
    /// Liveness lease TTL in milliseconds: how long after a crash the node counts as gone.
    #[arg(long, default_value_t = 5000)]
    pub lease_ttl_ms: u64,
    #[command(flatten)]
    pub planner: PlannerArgs,
    /// PIndexes backfilling at once on this node; the rest wait.
    #[arg(long, default_value_t = tessera_janitor::executor::defaults::MAX_BACKFILLS)]
    pub max_backfills: usize,
    /// Bytes per second all copies of PIndex files into this node share (a new copy fetched
    /// from a peer, a recovery from another cluster); 0: unlimited.
    #[arg(long, default_value_t = 100 * 1024 * 1024)]
    pub recovery_max_bytes_per_sec: u64,
    /// New copies always build from the source, never from a peer's files.
    #[arg(long)]
    pub no_peer_copy: bool,
    /// Managed mode (a supervisor drives membership): the node joins as known, not wanted,
    /// and only the supervisor API (`/api/ctl/topology-change`) makes it wanted.
    #[arg(long)]
    pub managed: bool,
    /// Queries this node coordinates at once; past it, queries answer 429.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_concurrent_queries: u32,
    /// Shard calls from other nodes this node serves at once; past it, they answer
    /// `ResourceExhausted` and the coordinator asks another copy.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_concurrent_shard_calls: u32,
    /// The longest a shard call waits (for `at_plus` seqs, say), whatever its caller asked.
    #[arg(long, default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub max_shard_wait_ms: u64,
    /// Log a `slow query` line (the request, its trace id, each phase's time) for queries this
    /// node coordinates that take at least this long; 0 turns it off.
    #[arg(long, default_value_t = 1000)]
    pub slow_query_ms: u64,
    /// Partitions of a source created on first write to this node's embedded source.
    #[arg(long, default_value_t = tessera_source::DEFAULT_PARTITIONS)]
    pub source_partitions: u32,
    /// Writes to the embedded source (documents and bulks) in flight at once; past it, they
    /// answer 429 with `Retry-After`.
    #[arg(long, default_value_t = tessera_source::rest::DEFAULT_MAX_CONCURRENT_WRITES, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub max_concurrent_writes: u32,
    /// A directory under which `fs` backup repositories may be added (repeatable; without
    /// one, only `s3` repositories can be added through this node).
    #[arg(long = "backup-path", env = "TESSERA_BACKUP_PATH")]
    pub backup_paths: Vec<std::path::PathBuf>,
    /// Memory all this node's PIndexes share for indexing: buffered changes and open writers'
    /// arenas (bytes, or with a K, M, G suffix in binary units; at least 30M). Past it, the
    /// PIndexes with the largest buffers commit first. Default: a tenth of the machine's
    /// memory, at least 256M.
    #[arg(long, value_parser = parse_bytes)]
    pub indexing_memory: Option<u64>,
    /// Blocking indexing tasks (applying changes, committing) at once across all PIndexes.
    /// Default: the machine's cores.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub indexing_threads: Option<u32>,
    /// Tantivy writers open at once across all PIndexes (three threads each while open); a
    /// PIndex without one buffers its changes until it gets one. Default: four per core.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub indexing_writers: Option<u32>,
    /// A PIndex's writer with nothing uncommitted closes after this long (milliseconds).
    #[arg(long, default_value_t = 3000, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub writer_idle_ms: u64,
    #[command(flatten)]
    pub port: crate::node::port::PortArgs,
    #[command(flatten)]
    pub security: crate::node::security::SecurityArgs,
}

impl NodeArgs {
    /// The indexing limits: the flags given, the machine's defaults for the rest.
    pub fn indexing_limits(&self) -> tessera_index::IndexingLimits {
        let machine = tessera_index::IndexingLimits::for_machine();
        tessera_index::IndexingLimits {
            memory: self.indexing_memory.unwrap_or(machine.memory),
            threads: self
                .indexing_threads
                .map_or(machine.threads, |t| t as usize),
            writers: self
                .indexing_writers
                .map_or(machine.writers, |w| w as usize),
            writer_idle: std::time::Duration::from_millis(self.writer_idle_ms),
        }
    }
}

/// `1073741824`, `1024M`, `1G`, `512K` (binary units) → bytes; at least the pool's least.
fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (digits, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => t.split_at(i),
        None => (t, ""),
    };
    if digits.is_empty() {
        return Err(format!("`{s}` is not a size (e.g. 512M, 2G)"));
    }
    let scale: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        other => return Err(format!("unknown unit `{other}` (use K, M or G)")),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{s}` is not a size (e.g. 512M, 2G)"))?;
    let bytes = n
        .checked_mul(scale)
        .ok_or_else(|| format!("`{s}` is too large"))?;
    if bytes < tessera_index::pool::MIN_MEMORY {
        return Err(format!(
            "{bytes} bytes is below the least, {} (one writer and its buffers)",
            tessera_index::pool::MIN_MEMORY
        ));
    }
    Ok(bytes)
}

#[derive(Args)]
pub struct SourceArgs {
    /// Address to serve REST ingest and the gRPC source protocol on.
    #[arg(long, default_value = "127.0.0.1:9200")]
    pub bind: String,
    /// Partitions of a source created on first write.
    #[arg(long, default_value_t = tessera_source::DEFAULT_PARTITIONS)]
    pub partitions: u32,
    /// Writes (documents and bulks) in flight at once; past it, they answer 429.
    #[arg(long, default_value_t = tessera_source::rest::DEFAULT_MAX_CONCURRENT_WRITES, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub max_concurrent_writes: u32,
    /// Serve TLS with this certificate (PEM); re-read when it changes.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The key of `--tls-cert` (PEM).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Accept only clients presenting a certificate of this CA (nodes their node
    /// certificates, writers a client certificate): the standalone source keeps no API keys,
    /// so this is how it tells who may read and write.
    #[arg(long, requires = "tls_cert")]
    pub tls_client_ca: Option<std::path::PathBuf>,
}

fn parse_tag(s: &str) -> Result<NodeTag, String> {
    serde_json::from_value(serde_json::Value::String(s.to_string()))
        .map_err(|_| format!("unknown tag `{s}` (known: feed, janitor, pindex, queryer, planner)"))
}

#[derive(Subcommand)]
pub enum CfgCommand {
    /// Print the whole cluster Cfg as JSON, with revisions.
    Dump,
    /// Print one key as JSON with its revisions. KEY is relative to `/tessera/<cluster>/`
    /// (e.g. `indexes/books`) or absolute.
    Get { key: String },
    /// Write one key. Typed keys are validated against the schema first.
    Put {
        key: String,
        /// The value (JSON). Without --value or --file, read from stdin.
        #[arg(long, conflicts_with = "file")]
        value: Option<String>,
        /// Read the value from this file.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Write only if the key's revision is this (0: only if absent). Default: the revision
        /// read just before, so a concurrent change is not overwritten.
        #[arg(long)]
        cas: Option<i64>,
        /// Allow a key outside the schema (no validation).
        #[arg(long)]
        raw: bool,
    },
    /// Delete one key.
    Del {
        key: String,
        /// Delete only if the key's revision is this.
        #[arg(long)]
        cas: Option<i64>,
    },
}

#[cfg(test)]
mod tests {
    use super::parse_bytes;

    #[test]
    fn sizes_parse_in_binary_units_and_refuse_less_than_the_least() {
        assert_eq!(parse_bytes("512M"), Ok(512 << 20));
        assert_eq!(parse_bytes("2G"), Ok(2 << 30));
        assert_eq!(parse_bytes("2 GiB"), Ok(2 << 30));
        assert_eq!(parse_bytes("1073741824"), Ok(1 << 30));
        assert!(parse_bytes("1M").unwrap_err().contains("below the least"));
        assert!(parse_bytes("12T").unwrap_err().contains("unknown unit"));
        assert!(parse_bytes("lots").unwrap_err().contains("not a size"));
        assert!(parse_bytes("99999999999G")
            .unwrap_err()
            .contains("too large"));
    }
}
