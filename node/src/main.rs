//! `tessera`: the one binary. Subcommands: `node` (run a node), `planner` and `source` (run
//! one part alone), `cfg` (operator access to the Cfg), `cert` (development certificates),
//! `plan` (what-if planning), `ctl` (operate a running cluster through a node). Errors become a message on stderr and an exit
//! code a script can act on.

mod cert_cmd;
mod cfg_cmd;
mod cli;
mod ctl;
mod drill_cmd;
mod exit;
mod files;
mod limits;
mod node;
mod plan_cmd;
mod repair_cmd;
mod signals;
mod source_cmd;
mod trim;

use clap::Parser;

use cli::{Cli, Command};

fn main() {
    let mut cli = Cli::parse();
    // How to reach a secured etcd travels with the Cfg spec.
    let access = cli.global.etcd.access();
    match access.and_then(|a| {
        cli.global
            .cfg
            .clone()
            .with_access(a)
            .map_err(|e| e.to_string())
    }) {
        Ok(spec) => cli.global.cfg = spec,
        Err(e) => {
            eprintln!("tessera: {e}");
            std::process::exit(exit::INVALID);
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Blocking threads (embedded Cfg calls, source reads) come in bursts: a resync over a
        // thousand indexes, a thousand feeds catching up. Idle ones are woken oldest first, so
        // a trickle of calls keeps about rate × keep-alive of them alive; tokio's 10 s kept
        // ~95 threads on a node idling with 1,000 PIndexes. 2 s lets them go.
        .thread_keep_alive(std::time::Duration::from_secs(2))
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tessera: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    // The exporter's channel is made inside the runtime.
    let traces = match runtime.block_on(async { init_tracing(&cli) }) {
        Ok(traces) => traces,
        Err(e) => {
            eprintln!("tessera: {e}");
            std::process::exit(exit::INVALID);
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Node(args) => node::run(&cli.global, args).await,
            Command::Cfg(cmd) => cfg_cmd::run(&cli.global, cmd).await,
            Command::Cert(cmd) => cert_cmd::run(&cli.global.data_dir, cmd),
            Command::Planner(args) => plan_cmd::run_planner(&cli.global, args).await,
            Command::Plan(cmd) => plan_cmd::run(&cli.global, cmd).await,
            Command::Source(args) => source_cmd::run(&cli.global, args).await,
            Command::Ctl(args) => ctl::run(args).await,
            Command::Drill(args) => drill_cmd::run(args).await,
            Command::Repair(cmd) => {
                repair_cmd::run(&cli.global.data_dir, &cli.global.cfg, cmd).await
            }
        }
    });
    // The last spans go out while the runtime still drives the exporter's channel.
    runtime.block_on(async {
        let _ = tokio::task::spawn_blocking(move || traces.shutdown()).await;
    });
    if let Err(error) = result {
        eprintln!("tessera: {error:#}");
        std::process::exit(exit::code_for(&error));
    }
}

/// Logs to stderr (text or JSON lines, filtered by `--log`), and spans to the trace layer:
/// Tessera's own spans at info, whatever the log filter says, so traces do not depend on how
/// much is logged.
fn init_tracing(
    cli: &Cli,
) -> Result<tessera_telemetry::trace::Tracing, tessera_telemetry::trace::TraceError> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, Layer};
    let filter = cli
        .log
        .as_deref()
        .map(EnvFilter::new)
        .or_else(|| EnvFilter::try_from_default_env().ok())
        // The NATS client logs every (re)connection at info; a node says what matters itself.
        .unwrap_or_else(|| EnvFilter::new("info,async_nats=warn"));
    let traces = tessera_telemetry::trace::provider(cli.otlp_endpoint.as_deref(), "tessera")?;
    let spans = tracing_subscriber::filter::filter_fn(|m| {
        m.is_span() && *m.level() <= tracing::Level::INFO && m.target().starts_with("tessera")
    });
    let logs = match cli.log_format {
        cli::LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed(),
        cli::LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(false)
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(logs)
        .with(traces.layer().with_filter(spans))
        .init();
    Ok(traces)
}
