//! `tessera`: the one binary. Subcommands: `node` (run a node), `planner` and `source` (run
//! one part alone), `cfg` (operator access to the Cfg), `plan` (what-if planning), `ctl`
//! (operate a running cluster through a node). Errors become a message on stderr and an exit
//! code a script can act on.

mod cfg_cmd;
mod cli;
mod ctl;
mod drill_cmd;
mod exit;
mod limits;
mod node;
mod plan_cmd;
mod signals;
mod source_cmd;
mod trim;

use clap::Parser;

use cli::{Cli, Command};

fn main() {
    let cli = Cli::parse();
    init_tracing(cli.log.as_deref());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tessera: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Node(args) => node::run(&cli.global, args).await,
            Command::Cfg(cmd) => cfg_cmd::run(&cli.global, cmd).await,
            Command::Planner(args) => plan_cmd::run_planner(&cli.global, args).await,
            Command::Plan(cmd) => plan_cmd::run(&cli.global, cmd).await,
            Command::Source(args) => source_cmd::run(&cli.global, args).await,
            Command::Ctl(args) => ctl::run(args).await,
            Command::Drill(args) => drill_cmd::run(args).await,
        }
    });
    if let Err(error) = result {
        eprintln!("tessera: {error:#}");
        std::process::exit(exit::code_for(&error));
    }
}

fn init_tracing(filter: Option<&str>) {
    use tracing_subscriber::EnvFilter;
    let filter = filter
        .map(EnvFilter::new)
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
