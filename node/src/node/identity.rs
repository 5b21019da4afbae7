//! The node's identity kept in its data dir: a stable uuid and the uuid of the cluster it
//! joined. A data dir that belongs to another cluster is refused.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::exit::{Exit, CONFLICT};

const FILE: &str = "node.json";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Identity {
    pub node_uuid: String,
    /// Set once the node has joined a cluster.
    #[serde(default)]
    pub cluster_uuid: Option<String>,
}

fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE)
}

/// Reads the identity, creating the data dir and a fresh uuid on first start.
pub fn load_or_create(data_dir: &Path) -> anyhow::Result<Identity> {
    let file = path(data_dir);
    match std::fs::read(&file) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            anyhow::anyhow!(
                "{} is damaged ({e}); restore it or start with an empty data dir",
                file.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(data_dir).map_err(|e| {
                anyhow::anyhow!("cannot create data dir {}: {e}", data_dir.display())
            })?;
            let identity = Identity {
                node_uuid: uuid::Uuid::new_v4().simple().to_string(),
                cluster_uuid: None,
            };
            save(data_dir, &identity)?;
            Ok(identity)
        }
        Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", file.display())),
    }
}

/// Records the cluster on first join; refuses a data dir of another cluster.
pub fn bind_cluster(
    data_dir: &Path,
    identity: &mut Identity,
    cluster_uuid: &str,
) -> anyhow::Result<()> {
    match &identity.cluster_uuid {
        Some(known) if known == cluster_uuid => Ok(()),
        Some(known) => Err(Exit::new(
            CONFLICT,
            format!(
                "data dir {} belongs to cluster {known}, but this Cfg is cluster {cluster_uuid}; \
                 use that cluster's Cfg or another data dir",
                data_dir.display()
            ),
        )
        .into()),
        None => {
            identity.cluster_uuid = Some(cluster_uuid.to_string());
            save(data_dir, identity)
        }
    }
}

/// Writes atomically: a crash leaves the old file or the new one, never half of one.
fn save(data_dir: &Path, identity: &Identity) -> anyhow::Result<()> {
    let file = path(data_dir);
    let tmp = data_dir.join(format!("{FILE}.tmp"));
    let bytes = serde_json::to_vec_pretty(identity)?;
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
        .and_then(|()| std::fs::rename(&tmp, &file))
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", file.display()))
}
