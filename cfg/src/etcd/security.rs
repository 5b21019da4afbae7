//! How to reach a secured etcd: what the flags name ([`EtcdAccess`]: the CA, a client
//! certificate, a user) and what the client is built with ([`EtcdSecurity`]: the files read).

use std::path::PathBuf;

use crate::error::{CfgError, Result};

/// How to reach a secured etcd: files and a user, read when the store opens.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EtcdAccess {
    /// The CA that signed the members' certificates (PEM).
    pub ca: Option<PathBuf>,
    /// A client certificate and its key (PEM), for members started with `--client-cert-auth`.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// An etcd user and its password (etcd's auth enabled).
    pub user: Option<String>,
    pub password: Option<String>,
}

/// TLS to etcd (its CA, a client certificate) and a user, as read from their files.
#[derive(Debug, Clone, Default)]
pub struct EtcdSecurity {
    pub tls: Option<etcd_client::TlsOptions>,
    pub user: Option<(String, String)>,
}

impl EtcdSecurity {
    /// Reads the files `access` names; `tls`: the spec said `etcds://`.
    pub fn read(tls: bool, access: &EtcdAccess) -> Result<Self> {
        let read = |path: &std::path::PathBuf| {
            std::fs::read(path).map_err(|e| CfgError::BadSpec {
                spec: path.display().to_string(),
                reason: format!("cannot read it: {e}"),
            })
        };
        let tls = match (tls, &access.ca) {
            (true, Some(ca)) => {
                let mut options = etcd_client::TlsOptions::new()
                    .ca_certificate(etcd_client::Certificate::from_pem(read(ca)?));
                if let (Some(cert), Some(key)) = (&access.cert, &access.key) {
                    options =
                        options.identity(etcd_client::Identity::from_pem(read(cert)?, read(key)?));
                }
                Some(options)
            }
            _ => None,
        };
        let user = access.user.clone().zip(access.password.clone());
        Ok(Self { tls, user })
    }
}
