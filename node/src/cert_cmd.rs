//! `tessera cert ca|node|client`: a development CA and the certificates a cluster with TLS
//! needs, for the local cluster script, the tests and first steps. A node's certificate names
//! its uuid (read from, or made in, `--data-dir`) so its peers know it as that node. Keys are
//! written readable by their owner only; files are replaced whole (written aside, then
//! renamed), so a node reloading them never reads half a file.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use tessera_tls::cert::{self, Pem};

use crate::exit::{Exit, CONFLICT, INVALID};

#[derive(Subcommand)]
pub enum CertCommand {
    /// Make a CA: `<out>/ca.pem` and `<out>/ca.key`.
    Ca {
        /// Directory to write to (created).
        #[arg(long)]
        out: PathBuf,
        /// What the CA is called (its subject).
        #[arg(long, default_value = "tessera")]
        name: String,
        #[arg(long, default_value_t = 3650)]
        days: u32,
    },
    /// Make a node's certificate, signed by the CA: `<out>/node.pem` and `<out>/node.key`.
    Node {
        /// The CA's directory (`ca.pem`, `ca.key`).
        #[arg(long)]
        ca: PathBuf,
        /// A host name or IP address its peers and clients dial (repeatable).
        #[arg(long = "host", required = true)]
        hosts: Vec<String>,
        /// The node's uuid; default: the one of `--data-dir` (made there if new).
        #[arg(long)]
        uuid: Option<String>,
        /// Directory to write to; default `<data-dir>/tls`.
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long, default_value_t = 825)]
        days: u32,
    },
    /// Make a client's certificate, signed by the CA: `<out>/<name>.pem` and `.key`.
    Client {
        #[arg(long)]
        ca: PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 825)]
        days: u32,
    },
}

pub fn run(data_dir: &Path, cmd: CertCommand) -> anyhow::Result<()> {
    let invalid = |e: tessera_tls::TlsError| Exit::new(INVALID, e.to_string());
    match cmd {
        CertCommand::Ca { out, name, days } => {
            if out.join("ca.key").exists() {
                return Err(Exit::new(
                    CONFLICT,
                    format!("{} already holds a CA; it is not replaced", out.display()),
                )
                .into());
            }
            let ca = cert::make_ca(&name, days).map_err(invalid)?;
            write_pair(&out, "ca", &ca)?;
            println!("CA written to {}/ca.pem (key ca.key)", out.display());
        }
        CertCommand::Node {
            ca,
            hosts,
            uuid,
            out,
            days,
        } => {
            let uuid = match uuid {
                Some(uuid) => uuid,
                None => crate::node::identity::load_or_create(data_dir)?.node_uuid,
            };
            let pem = cert::make_node(&read_ca(&ca)?, &uuid, &hosts, days).map_err(invalid)?;
            let out = out.unwrap_or_else(|| data_dir.join("tls"));
            write_pair(&out, "node", &pem)?;
            println!(
                "certificate of node {uuid} written to {}/node.pem (key node.key)",
                out.display()
            );
        }
        CertCommand::Client {
            ca,
            name,
            out,
            days,
        } => {
            let pem = cert::make_client(&read_ca(&ca)?, &name, days).map_err(invalid)?;
            write_pair(&out, &name, &pem)?;
            println!(
                "certificate of client `{name}` written to {}/{name}.pem (key {name}.key)",
                out.display()
            );
        }
    }
    Ok(())
}

fn read_ca(dir: &Path) -> Result<Pem, Exit> {
    let read = |file: &str| {
        std::fs::read_to_string(dir.join(file))
            .map_err(|e| Exit::new(INVALID, format!("{}: {e}", dir.join(file).display())))
    };
    Ok(Pem {
        cert: read("ca.pem")?,
        key: read("ca.key")?,
    })
}

fn write_pair(dir: &Path, stem: &str, pem: &Pem) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    // The key first: a node reloading between the two sees a key that does not match the
    // old certificate, keeps serving the old pair, and tries again.
    crate::files::replace(&dir.join(format!("{stem}.key")), &pem.key, 0o600)?;
    crate::files::replace(&dir.join(format!("{stem}.pem")), &pem.cert, 0o644)?;
    Ok(())
}
