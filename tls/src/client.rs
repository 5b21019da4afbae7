//! TLS for what dials a node: its peers (tonic channels) and tools (`tessera ctl`, tests).
//! Both verify the server against the cluster's CA and may present a certificate (a node its
//! own, so its peers know it as a node).

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::PrivateKeyDer;
use rustls::ClientConfig;

pub use tonic::transport::ClientTlsConfig;

use crate::TlsError;

/// PEM of a certificate (chain) and its key.
pub struct Presented<'a> {
    pub cert: &'a [u8],
    pub key: &'a [u8],
}

/// A rustls client configuration trusting `ca_pem`, presenting `presented` when given (no
/// ALPN: the HTTP client says which protocols it speaks).
pub fn rustls_config(
    ca_pem: &[u8],
    presented: Option<Presented<'_>>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let roots = crate::roots_of(ca_pem)?;
    let builder = ClientConfig::builder_with_provider(crate::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots);
    let config = match presented {
        Some(p) => {
            let certs = crate::certs_of(p.cert).map_err(|e| TlsError::Config(e.to_string()))?;
            let key = PrivateKeyDer::from_pem_slice(p.key)
                .map_err(|e| TlsError::Config(e.to_string()))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| TlsError::Config(e.to_string()))?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// A tonic client configuration trusting `ca_pem`, presenting `presented` when given.
pub fn tonic_config(
    ca_pem: &[u8],
    presented: Option<Presented<'_>>,
) -> tonic::transport::ClientTlsConfig {
    let config = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(ca_pem));
    match presented {
        Some(p) => config.identity(tonic::transport::Identity::from_pem(p.cert, p.key)),
        None => config,
    }
}

/// A configuration that trusts no server (for a client that speaks plain HTTP and must refuse
/// `https://`).
pub fn trusting_nothing() -> Arc<ClientConfig> {
    let config = ClientConfig::builder_with_provider(crate::provider())
        .with_safe_default_protocol_versions()
        .map(|b| {
            b.with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth()
        });
    match config {
        Ok(config) => Arc::new(config),
        // The ring provider supports the default versions; this is never reached.
        Err(_) => Arc::new(
            ClientConfig::builder()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth(),
        ),
    }
}
