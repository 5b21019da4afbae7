//! The bootstrap admin key: the first way in to a cluster that runs with `--auth required`.
//!
//! - Made by itself only for a cluster that never had an admin key (no record of role `admin`
//!   in `keys/`, revoked and expired ones included: revoking keeps the record), that is, a new
//!   cluster, whichever process created its meta record (a standalone planner may start
//!   first). Otherwise only a node started with `--bootstrap-admin` makes one; a restart never
//!   does, so revoking every admin key on purpose stays revoked.
//! - One per cluster: its record lives at a fixed id ([`BOOTSTRAP_KEY_ID`]), created under
//!   CAS 0 (a new cluster) or replacing the previous bootstrap record under its revision
//!   (`--bootstrap-admin`, when that one is revoked or expired): of nodes starting at once, one
//!   wins and the others make nothing.
//! - It expires (`--bootstrap-admin-expires`, 24 h by default): make named keys with it, then
//!   revoke it.
//! - `--bootstrap-admin` while some admin key is usable makes nothing.

use std::path::{Path, PathBuf};

use tessera_auth::key::{self, KeyRecord};
use tessera_auth::Role;
use tessera_cfg::{Cfg, CfgError};

use super::security::BOOTSTRAP_FILE;

/// The id of the bootstrap admin key's record (`keys/<id>`): a fixed one, so the record is
/// one of a kind in the cluster.
pub const BOOTSTRAP_KEY_ID: &str = "b007000000000001";

/// Why a bootstrap key may be made now.
#[derive(Debug, Clone, Copy)]
pub struct Bootstrap {
    /// `--bootstrap-admin`.
    pub asked: bool,
    /// `--bootstrap-admin-expires`.
    pub expires_after_ms: u64,
}

/// Makes the bootstrap admin key when `why` allows it and the cluster has no usable admin
/// key; writes it to `<data_dir>/bootstrap-admin.key` and says where.
pub async fn admin(cfg: &Cfg, data_dir: &Path, why: Bootstrap) -> anyhow::Result<Option<PathBuf>> {
    let Some(token) = make(cfg, why, tessera_cfg::unix_ms()).await? else {
        return Ok(None);
    };
    let file = data_dir.join(BOOTSTRAP_FILE);
    crate::files::replace(&file, &format!("{token}\n"), 0o600)?;
    tracing::warn!(
        file = %file.display(),
        key = BOOTSTRAP_KEY_ID,
        expires_in_ms = why.expires_after_ms,
        "made the bootstrap admin key and wrote it to this file (mode 0600); make named keys with it (`tessera ctl keys create`), then revoke it"
    );
    Ok(Some(file))
}

/// The bootstrap key's token when this call made it (see the module docs).
async fn make(cfg: &Cfg, why: Bootstrap, now: u64) -> anyhow::Result<Option<String>> {
    let usable = |k: &KeyRecord| {
        k.revoked_ms.is_none()
            && k.expires_ms.is_none_or(|at| at > now)
            && k.roles.iter().any(|r| r == "admin")
    };
    let keys = cfg.api_keys().await?;
    if keys.items.iter().any(|k| usable(&k.value)) {
        if why.asked {
            tracing::info!("--bootstrap-admin: an admin key is usable; none made");
        }
        return Ok(None);
    }
    let ever = keys
        .items
        .iter()
        .any(|k| k.value.roles.iter().any(|r| r == "admin"));
    if ever && !why.asked {
        tracing::warn!(
            "no admin API key is usable, and this node makes none by itself: start one node with --bootstrap-admin to make one"
        );
        return Ok(None);
    }
    let previous = keys
        .items
        .iter()
        .find(|k| k.value.id == BOOTSTRAP_KEY_ID)
        .map(|k| k.revision);
    // A new cluster makes it once (create-if-absent); replacing a spent one needs the flag.
    let cas = previous.unwrap_or(0);
    let expires = now.saturating_add(why.expires_after_ms);
    let (token, record) = key::make_as(
        BOOTSTRAP_KEY_ID,
        "bootstrap-admin",
        &[Role::Admin],
        now,
        Some(expires),
    )?;
    match cfg.put_api_key(&record, cas).await {
        Ok(_) => Ok(Some(token)),
        // Another node made or replaced it first.
        Err(CfgError::AlreadyExists { .. } | CfgError::CasMismatch { .. }) => {
            tracing::info!("another node made the bootstrap admin key");
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn cfg() -> Cfg {
        Cfg::new(
            Arc::new(tessera_cfg::local::LocalStore::open_memory().expect("store")),
            tessera_cfg::KeySpace::new("t").expect("keys"),
        )
    }

    const DAY: u64 = 86_400_000;

    fn why(asked: bool) -> Bootstrap {
        Bootstrap {
            asked,
            expires_after_ms: DAY,
        }
    }

    async fn revoke_all(cfg: &Cfg) {
        for k in cfg.api_keys().await.expect("keys").items {
            let revoked = KeyRecord {
                revoked_ms: Some(1),
                ..k.value
            };
            cfg.put_api_key(&revoked, k.revision).await.expect("revoke");
        }
    }

    /// The bootstrap key's record as the Cfg holds it.
    async fn stored(cfg: &Cfg) -> KeyRecord {
        cfg.api_key(BOOTSTRAP_KEY_ID)
            .await
            .expect("read")
            .expect("stored")
            .value
    }

    #[tokio::test]
    async fn only_a_new_cluster_or_the_flag_makes_one_and_it_expires() {
        let cfg = cfg();
        // A new cluster: no admin key ever.
        let token = make(&cfg, why(false), 1_000)
            .await
            .expect("ran")
            .expect("made");
        let record = stored(&cfg).await;
        assert_eq!(record.expires_ms, Some(1_000 + DAY), "it expires");
        assert!(key::check(&record, &token, 2_000).is_ok());
        // The operator revokes it on purpose: restarts make none.
        revoke_all(&cfg).await;
        assert_eq!(make(&cfg, why(false), 3_000).await.expect("ran"), None);
        // Asked for: a fresh one replaces the spent record.
        let again = make(&cfg, why(true), 4_000)
            .await
            .expect("ran")
            .expect("made");
        let record = stored(&cfg).await;
        assert!(key::check(&record, &again, 5_000).is_ok());
        assert!(
            key::check(&record, &token, 5_000).is_err(),
            "the old one stays dead"
        );
        // While an admin key is usable, even the flag makes none.
        assert_eq!(make(&cfg, why(true), 5_000).await.expect("ran"), None);
    }

    #[tokio::test]
    async fn a_cluster_that_had_an_admin_key_gets_none_by_itself() {
        // Its admin key was a named one (not the bootstrap record), since revoked.
        let cfg = cfg();
        let (_, named) = key::make("ops", &[Role::Admin], 0, None).expect("key");
        cfg.put_api_key(&named, 0).await.expect("put");
        revoke_all(&cfg).await;
        assert_eq!(make(&cfg, why(false), 1_000).await.expect("ran"), None);
        assert!(make(&cfg, why(true), 1_000).await.expect("ran").is_some());
    }

    #[tokio::test]
    async fn nodes_asked_at_once_make_one_key() {
        let cfg = cfg();
        let runs = (0..8).map(|_| {
            let cfg = cfg.clone();
            tokio::spawn(async move { make(&cfg, why(false), 1_000).await })
        });
        let mut made = 0;
        for run in runs {
            let result = run.await.expect("joined").expect("ran");
            made += usize::from(result.is_some());
        }
        assert_eq!(made, 1);
        assert_eq!(cfg.api_keys().await.expect("keys").items.len(), 1);
    }
}
