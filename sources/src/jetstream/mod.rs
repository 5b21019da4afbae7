//! Type `jetstream`: a NATS JetStream stream as a source of record.
//!
//! - A document is a message on `<subject_prefix>.<partition>` whose key is in the
//!   [`KEY_HEADER`] header; a message with [`DELETE_HEADER`] set deletes the key. The
//!   partition is `crc32(key) % partitions` (see [`crate::partition_of`]), the reference
//!   source's routing, so producers compute it the same way.
//! - A partition's position is the stream sequence of its last applied message; a stream
//!   resumes with a consumer filtered on the partition's subject, after that sequence.
//! - A partition's uuid is the stream's identity: its name, its creation time and its first
//!   sequence. A stream deleted and created again, or purged, or that dropped messages by its
//!   limits, holds another history: every partition's uuid changes, and a feed resuming there
//!   rolls back (held as an incident first, since all of them changed at once).
//!
//! [`params`] reads a definition's parameters, [`feed`] reads the stream, [`producer`] creates
//! streams and publishes documents (`tessera ctl`).

pub mod feed;
pub mod params;
pub mod producer;

pub use feed::JetStreamSource;
pub use params::{JetStreamParams, NatsAccess};

/// The header holding a message's document key.
pub const KEY_HEADER: &str = "Tessera-Key";
/// The header marking a message as a deletion of its key (any value).
pub const DELETE_HEADER: &str = "Tessera-Delete";

/// Connects to `servers` with `access` (a credentials file; TLS verified against a CA, with a
/// client certificate). The client keeps reconnecting on its own; a first connection that
/// fails is an error.
pub async fn connect(
    servers: &[String],
    access: &NatsAccess,
) -> Result<async_nats::Client, crate::SourceError> {
    let mut options = async_nats::ConnectOptions::new()
        .connection_timeout(std::time::Duration::from_secs(3))
        .request_timeout(Some(std::time::Duration::from_secs(5)))
        .retry_on_initial_connect()
        // Only the servers the definition names (and the dial policy checked), never those a
        // server's INFO announces.
        .ignore_discovered_servers();
    if let Some(path) = &access.credentials_file {
        options = options
            .credentials_file(path)
            .await
            .map_err(|e| crate::SourceError::Invalid(format!("credentials_file `{path}`: {e}")))?;
    }
    let exists = |field: &str, path: &str| {
        if std::path::Path::new(path).is_file() {
            Ok(std::path::PathBuf::from(path))
        } else {
            Err(crate::SourceError::Invalid(format!(
                "{field} `{path}`: no such file"
            )))
        }
    };
    if let Some(ca) = &access.tls_ca_file {
        options = options
            .add_root_certificates(exists("tls_ca_file", ca)?)
            .require_tls(true);
    }
    if let (Some(cert), Some(key)) = (&access.tls_cert_file, &access.tls_key_file) {
        options = options
            .add_client_certificate(exists("tls_cert_file", cert)?, exists("tls_key_file", key)?);
    }
    options
        .connect(servers)
        .await
        .map_err(|e| crate::SourceError::Unavailable(format!("NATS {servers:?}: {e}")))
}
