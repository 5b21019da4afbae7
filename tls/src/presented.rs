//! Who a TLS connection is, asked again at every request: the certificate chain the client
//! presented is kept with the connection, and each request's [`ClientCert`] says what it names
//! under the server's configuration and the cluster's node definitions as they are now. A
//! certificate a CRL revoked since the handshake (the configuration was rebuilt) proves nothing
//! more from the next request on, and a node removed from the cluster is no longer a node on
//! its open connections either; the chain is verified again only when the configuration
//! changed, so a request normally costs a lock and a lookup.

use std::net::SocketAddr;
use std::sync::Mutex;

use rustls::pki_types::{CertificateDer, UnixTime};

use crate::directory::NodeDirectory;
use crate::identity::{name_of, CertName};
use crate::server::{Built, ClientCert, ServerTls};

/// What the chain proves under one configuration.
#[derive(Debug, Clone, Copy)]
struct Verdict {
    /// It verifies (trusted CA, not revoked).
    valid: bool,
    /// It chains to the node CA (or there is no separate node CA).
    of_node_ca: bool,
}

/// A connection's verified client certificate chain.
pub struct Presented {
    chain: Vec<CertificateDer<'static>>,
    name: CertName,
    /// The verdict and the configuration generation it was reached under.
    verdict: Mutex<(u64, Verdict)>,
}

impl Presented {
    /// The chain of a connection whose handshake ran with `built`; `None` without one.
    pub(crate) fn after_handshake(
        session: &rustls::ServerConnection,
        built: &Built,
    ) -> Option<Self> {
        let chain: Vec<CertificateDer<'static>> = session
            .peer_certificates()?
            .iter()
            .map(|c| c.clone().into_owned())
            .collect();
        let name = name_of(chain.first()?.as_ref());
        // The handshake verified it; only the node CA is left to ask.
        let verdict = Verdict {
            valid: true,
            of_node_ca: of_node_ca(built, &chain),
        };
        Some(Self {
            chain,
            name,
            verdict: Mutex::new((built.generation, verdict)),
        })
    }

    /// What the certificate proves now.
    pub(crate) fn client_cert(
        &self,
        tls: &ServerTls,
        directory: &NodeDirectory,
        address: SocketAddr,
    ) -> ClientCert {
        let built = tls.built();
        let verdict = match self.verdict.lock() {
            Ok(cached) if cached.0 == built.generation => cached.1,
            Ok(mut cached) => {
                let verdict = verdict_of(&built, &self.chain);
                *cached = (built.generation, verdict);
                verdict
            }
            Err(_) => verdict_of(&built, &self.chain),
        };
        if !verdict.valid {
            return ClientCert::of_name(None, Some(address));
        }
        let name = match &self.name {
            CertName::Node(uuid) if !verdict.of_node_ca || !directory.is_node(uuid) => None,
            name => Some(name.clone()),
        };
        ClientCert::of_name(name, Some(address))
    }
}

fn verdict_of(built: &Built, chain: &[CertificateDer<'static>]) -> Verdict {
    let valid = match (&built.clients, chain.split_first()) {
        (Some(verifier), Some((leaf, rest))) => verifier
            .verify_client_cert(leaf, rest, UnixTime::now())
            .is_ok(),
        _ => false,
    };
    Verdict {
        valid,
        of_node_ca: valid && of_node_ca(built, chain),
    }
}

fn of_node_ca(built: &Built, chain: &[CertificateDer<'static>]) -> bool {
    match (&built.nodes, chain.split_first()) {
        (None, _) => true,
        (Some(verifier), Some((leaf, rest))) => verifier
            .verify_client_cert(leaf, rest, UnixTime::now())
            .is_ok(),
        (Some(_), None) => false,
    }
}
