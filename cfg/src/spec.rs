//! `--cfg` specifications and opening the store they name.
//!
//! - `embedded` or `embedded:PATH`: a redb file (default `<data-dir>/cfg.redb`), cluster `default`.
//! - `memory`: in-process, gone at exit (tests, demos), cluster `default`.
//! - `etcd://HOST:PORT[,HOST:PORT...][/CLUSTER]`: etcd members; keys under `/tessera/CLUSTER/`
//!   (`default` when no path is given).

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use crate::cfg::Cfg;
use crate::error::{CfgError, Result};
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
        let Some(rest) = spec.strip_prefix("etcd://") else {
            return Err(bad(
                "expected `embedded[:PATH]`, `memory` or `etcd://HOST:PORT[,HOST:PORT...][/CLUSTER]`",
            ));
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

    /// Opens the store (timed and counted in the node's metrics); `data_dir` places the
    /// embedded file when no path is given.
    pub async fn open(&self, data_dir: &Path) -> Result<Cfg> {
        let store: Arc<dyn Store> = match self {
            CfgSpec::Embedded { path } => {
                let path = path.clone().unwrap_or_else(|| data_dir.join("cfg.redb"));
                Arc::new(LocalStore::open_file(&path)?)
            }
            CfgSpec::Memory => Arc::new(LocalStore::open_memory()?),
            CfgSpec::Etcd { endpoints, .. } => {
                Arc::new(EtcdStore::connect(EtcdOptions::new(endpoints.clone())).await?)
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
                cluster: "prod".into()
            }
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
