//! TLS for Tessera: the one port served over TLS with certificates reloaded from their files
//! ([`server`]) and bounded in connections, handshakes and time ([`port`], plain too), what a
//! client certificate names ([`identity`]: a node of the cluster or a named client; pinned to
//! the nodes the cluster defines now by [`directory`]), client configurations for peers and tools ([`client`]), and a development
//! CA with node and client certificates ([`cert`], behind `tessera cert`). Only rustls with
//! the ring provider.

pub mod cert;
pub mod client;
pub mod directory;
pub mod identity;
pub mod port;
mod presented;
pub mod server;

#[cfg(test)]
mod tests;

use std::sync::Arc;

pub use directory::NodeDirectory;
pub use port::{Port, PortLimits};
pub use rustls;
pub use server::{ClientCert, ServerFiles, ServerTls, TlsListener};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{0}: {1}")]
    File(String, String),
    #[error("TLS configuration: {0}")]
    Config(String),
    #[error("making a certificate: {0}")]
    Make(String),
    #[error("TLS state poisoned by a panic")]
    Poisoned,
}

/// The one crypto provider (ring), whatever else the build links.
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate of a PEM bundle.
pub(crate) fn certs_of(
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, rustls::pki_types::pem::Error> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem).collect::<Result<_, _>>()?;
    if certs.is_empty() {
        return Err(rustls::pki_types::pem::Error::NoItemsFound);
    }
    Ok(certs)
}

/// A root store of every certificate of a PEM bundle.
pub(crate) fn roots_of(pem: &[u8]) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certs_of(pem).map_err(|e| TlsError::Config(format!("CA: {e}")))? {
        roots
            .add(cert)
            .map_err(|e| TlsError::Config(format!("CA: {e}")))?;
    }
    Ok(roots)
}
