//! `--cfg` specifications and opening the store they name.
//!
//! - `embedded` or `embedded:PATH`: a redb file (default `<data-dir>/cfg.redb`), cluster `default`.
//! - `memory`: in-process, gone at exit (tests, demos), cluster `default`.
//! - `etcd://HOST:PORT[,HOST:PORT...][/CLUSTER]`: etcd members; keys under `/tessera/CLUSTER/`
//!   (`default` when no path is given). `etcds://` speaks TLS to them.
//!
//! How to reach a secured etcd (its CA, a client certificate, a user and password) comes from
//! flags, not the spec: [`EtcdAccess`], attached with [`CfgSpec::with_access`].

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use crate::cfg::Cfg;
use crate::error::{CfgError, Result};
pub use crate::etcd::EtcdAccess;
use crate::etcd::{EtcdOptions, EtcdStore};
use crate::keys::KeySpace;
use crate::local::LocalStore;
use crate::store::Store;

/// The cluster name used when a spec does not give one.
pub const DEFAULT_CLUSTER: &str = "default";

/// Which store to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CfgSpec {
    Embedded {
        path: Option<PathBuf>,
    },
    Memory,
    Etcd {
        endpoints: Vec<String>,
        cluster: String,
        /// `etcds://`: TLS to the members.
        tls: bool,
        access: EtcdAccess,
    },
}

impl Default for CfgSpec {
    fn default() -> Self {
        CfgSpec::Embedded { path: None }
    }
}

impl FromStr for CfgSpec {
    type Err = CfgError;

    fn from_str(spec: &str) -> Result<Self> {
        let bad = |reason: &str| CfgError::BadSpec {
            spec: spec.to_string(),
            reason: reason.to_string(),
        };
        if spec == "embedded" {
            return Ok(CfgSpec::Embedded { path: None });
        }
        if let Some(path) = spec.strip_prefix("embedded:") {
            if path.is_empty() {
                return Err(bad("empty path after `embedded:`"));
            }
            return Ok(CfgSpec::Embedded {
                path: Some(PathBuf::from(path)),
            });
        }
        if spec == "memory" {
            return Ok(CfgSpec::Memory);
        }
        let (rest, tls) = match (spec.strip_prefix("etcd://"), spec.strip_prefix("etcds://")) {
            (Some(rest), _) => (rest, false),
            (_, Some(rest)) => (rest, true),
            _ => {
                return Err(bad(
                    "expected `embedded[:PATH]`, `memory` or `etcd[s]://HOST:PORT[,HOST:PORT...][/CLUSTER]`",
                ))
            }
        };
        let (hosts, cluster) = match rest.split_once('/') {
            Some((hosts, cluster)) if !cluster.is_empty() => (hosts, cluster),
            Some((hosts, _)) => (hosts, DEFAULT_CLUSTER),
            None => (rest, DEFAULT_CLUSTER),
        };
        let endpoints: Vec<String> = hosts.split(',').map(str::to_string).collect();
        for endpoint in &endpoints {
            let port_ok = endpoint
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
            if !port_ok {
                return Err(bad(&format!("endpoint `{endpoint}` is not HOST:PORT")));
            }
        }
        KeySpace::new(cluster)?;
        Ok(CfgSpec::Etcd {
            endpoints,
            cluster: cluster.to_string(),
            tls,
            access: EtcdAccess::default(),
        })
    }
}

impl CfgSpec {
    /// The cluster whose keys this spec addresses.
    pub fn cluster(&self) -> &str {
        match self {
            CfgSpec::Etcd { cluster, .. } => cluster,
            _ => DEFAULT_CLUSTER,
        }
    }

    /// This spec with how to reach a secured etcd (nothing changes for other stores). An
    /// error names what does not fit: a client certificate or CA without `etcds://`, a user
    /// without a password.
    pub fn with_access(self, access: EtcdAccess) -> Result<Self> {
        let bad = |reason: &str| CfgError::BadSpec {
            spec: "--etcd-*".into(),
            reason: reason.into(),
        };
        match self {
            CfgSpec::Etcd {
                endpoints,
                cluster,
                tls,
                ..
            } => {
                if !tls && (access.ca.is_some() || access.cert.is_some()) {
                    return Err(bad("--etcd-ca and --etcd-cert need an etcds:// Cfg"));
                }
                if tls && access.ca.is_none() {
                    return Err(bad(
                        "etcds:// needs --etcd-ca (the CA of etcd's certificates)",
                    ));
                }
                if access.cert.is_some() != access.key.is_some() {
                    return Err(bad("--etcd-cert and --etcd-key go together"));
                }
                if access.user.is_some() != access.password.is_some() {
                    return Err(bad("--etcd-user needs a password (--etcd-password-file or TESSERA_ETCD_PASSWORD)"));
                }
                Ok(CfgSpec::Etcd {
                    endpoints,
                    cluster,
                    tls,
                    access,
                })
            }
            other if access != EtcdAccess::default() => Err(bad(&format!(
                "--etcd-* flags apply to an etcd Cfg, not {other:?}"
            ))),
            other => Ok(other),
        }
    }

    /// Opens the store (timed and counted in the node's metrics); `data_dir` places the
    /// embedded file when no path is given.
    pub async fn open(&self, data_dir: &Path) -> Result<Cfg> {
        let store: Arc<dyn Store> = match self {
            CfgSpec::Embedded { path } => {
                let path = path.clone().unwrap_or_else(|| data_dir.join("cfg.redb"));
                Arc::new(LocalStore::open_file(&path)?)
            }
            CfgSpec::Memory => Arc::new(LocalStore::open_memory()?),
            CfgSpec::Etcd {
                endpoints,
                tls,
                access,
                ..
            } => {
                let mut options = EtcdOptions::new(endpoints.clone());
                options.security = crate::etcd::EtcdSecurity::read(*tls, access)?;
                options.revision_key = KeySpace::new(self.cluster())?.root().to_string();
                Arc::new(EtcdStore::connect(options).await?)
            }
        };
        let store = crate::metered::MeteredStore::wrap(store);
        Ok(Cfg::new(store, KeySpace::new(self.cluster())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_forms() {
        assert_eq!(
            "embedded".parse::<CfgSpec>().unwrap(),
            CfgSpec::Embedded { path: None }
        );
        assert_eq!(
            "embedded:/x/cfg.redb".parse::<CfgSpec>().unwrap(),
            CfgSpec::Embedded {
                path: Some("/x/cfg.redb".into())
            }
        );
        assert_eq!("memory".parse::<CfgSpec>().unwrap(), CfgSpec::Memory);
        assert_eq!(
            "etcd://h1:2379,h2:2379/prod".parse::<CfgSpec>().unwrap(),
            CfgSpec::Etcd {
                endpoints: vec!["h1:2379".into(), "h2:2379".into()],
                cluster: "prod".into(),
                tls: false,
                access: EtcdAccess::default(),
            }
        );
        assert!(matches!(
            "etcds://h1:2379".parse::<CfgSpec>().unwrap(),
            CfgSpec::Etcd { tls: true, .. }
        ));
        let ca = EtcdAccess {
            ca: Some("/ca.pem".into()),
            ..EtcdAccess::default()
        };
        let no_tls = "etcd://h1:2379".parse::<CfgSpec>().unwrap();
        assert!(
            no_tls.with_access(ca.clone()).is_err(),
            "a CA without etcds://"
        );
        let tls = "etcds://h1:2379".parse::<CfgSpec>().unwrap();
        assert!(
            tls.clone().with_access(EtcdAccess::default()).is_err(),
            "etcds:// without a CA"
        );
        assert!(tls.with_access(ca).is_ok());
        let user = EtcdAccess {
            user: Some("tessera".into()),
            ..EtcdAccess::default()
        };
        assert!(
            "etcd://h1:2379"
                .parse::<CfgSpec>()
                .unwrap()
                .with_access(user)
                .is_err(),
            "no password"
        );
        assert_eq!(
            "etcd://h1:2379".parse::<CfgSpec>().unwrap().cluster(),
            "default"
        );
    }

    #[test]
    fn rejects_bad_specs_with_a_reason() {
        for bad in [
            "",
            "zookeeper://x",
            "etcd://h1",
            "etcd://h1:0",
            "etcd://:1",
            "embedded:",
            "etcd://h:1/a b",
        ] {
            match bad.parse::<CfgSpec>() {
                Err(CfgError::BadSpec { .. }) => {}
                other => panic!("{bad:?}: expected BadSpec, got {other:?}"),
            }
        }
    }
}
