//! The etcd backend: the [`Store`] trait over a real etcd (≥ 3.4) through `etcd-client`.
//!
//! CAS writes are etcd transactions comparing `mod_revision` (or `create_revision` for
//! create-only); a failed compare reads the key back in the same transaction so the error can
//! say what the current revision is. Calls retry transient failures until a deadline
//! ([`retry`]); watches reconnect and resume from the last revision they delivered ([`watch`]).

mod retry;
mod security;
mod watch;

use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{
    Client, CompareOp, ConnectOptions, GetOptions, PutOptions, TxnOp, TxnOpResponse, TxnResponse,
};

use crate::error::{CfgError, Result};
use crate::store::{
    Compare, KeyValue, LeaseId, Listing, Op, Revision, Store, Txn, TxnOutcome, WatchStream,
};
use retry::{classify, retrying, RetryError};
pub use security::{EtcdAccess, EtcdSecurity};

/// How an [`EtcdStore`] talks to etcd.
#[derive(Debug, Clone)]
pub struct EtcdOptions {
    /// `host:port` or `http://host:port` of each member.
    pub endpoints: Vec<String>,
    /// Time for one attempt of one call.
    pub attempt_timeout: Duration,
    /// Time after which a call that keeps failing transiently returns `Unavailable`.
    pub request_deadline: Duration,
    /// TLS and credentials, when etcd asks for them.
    pub security: EtcdSecurity,
    /// The key read (count only) to learn the store's revision: the cluster's root, so a
    /// user whose role covers only that prefix may read it.
    pub revision_key: String,
}

impl EtcdOptions {
    pub fn new(endpoints: Vec<String>) -> Self {
        Self {
            endpoints,
            attempt_timeout: Duration::from_secs(3),
            request_deadline: Duration::from_secs(15),
            security: EtcdSecurity::default(),
            revision_key: "\0".into(),
        }
    }
}

/// A [`Store`] on etcd.
#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
    /// One client per member, for lease renewals: they are sent to every member at once and
    /// the first answer wins, because the balanced `client` may go on sending calls to a
    /// member that went silent (isolated) until its connection is given up, and a renewal
    /// held up that long can let a short lease lapse while a quorum is there to renew it.
    members: Vec<Client>,
    options: EtcdOptions,
    label: String,
    /// The TTL of each lease this store granted: a renewal must get through well within it,
    /// so its attempts are bounded by it rather than by `attempt_timeout`.
    ttls: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<LeaseId, Duration>>>,
}

impl EtcdStore {
    /// Builds a client for the endpoints. Connections are made lazily, so this succeeds while
    /// etcd is down; calls then retry until `request_deadline`.
    pub async fn connect(options: EtcdOptions) -> Result<Self> {
        if options.endpoints.is_empty() {
            return Err(CfgError::BadSpec {
                spec: String::new(),
                reason: "no etcd endpoints".into(),
            });
        }
        let scheme = if options.security.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let endpoints: Vec<String> = options
            .endpoints
            .iter()
            .map(|e| {
                if e.contains("://") {
                    e.clone()
                } else {
                    format!("{scheme}://{e}")
                }
            })
            .collect();
        let mut connect = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            // A member that stops answering without closing (isolated by the network) is
            // given up within two seconds, so calls move to the others.
            .with_keep_alive(Duration::from_secs(1), Duration::from_secs(1))
            .with_keep_alive_while_idle(true)
            .with_require_leader(true);
        if let Some(tls) = &options.security.tls {
            connect = connect.with_tls(tls.clone());
        }
        if let Some((user, password)) = &options.security.user {
            // etcd's tokens expire (5 min by default): calls get a fresh one when it does.
            connect = connect
                .with_user(user.clone(), password.clone())
                .with_auto_token_refresh(true);
        }
        let set_up = |e: etcd_client::Error| CfgError::Unavailable {
            reason: format!("cannot set up etcd client for {}: {e}", endpoints.join(",")),
        };
        let client = Client::connect(&endpoints, Some(connect.clone()))
            .await
            .map_err(set_up)?;
        let mut members = Vec::new();
        if endpoints.len() > 1 {
            for endpoint in &endpoints {
                members.push(
                    Client::connect([endpoint], Some(connect.clone()))
                        .await
                        .map_err(set_up)?,
                );
            }
        } else {
            members.push(client.clone());
        }
        Ok(Self {
            client,
            members,
            label: endpoints.join(","),
            options,
            ttls: Default::default(),
        })
    }

    /// The endpoints, for messages.
    pub fn endpoints(&self) -> &str {
        &self.label
    }

    async fn call<T, F, Fut>(&self, what: &str, attempt: F) -> Result<T>
    where
        F: FnMut(Client) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        self.call_or(what, attempt, classify).await
    }

    /// Like `call`, with a custom mapping of definite etcd errors.
    async fn call_or<T, F, Fut>(
        &self,
        what: &str,
        attempt: F,
        on_error: impl FnOnce(etcd_client::Error) -> CfgError,
    ) -> Result<T>
    where
        F: FnMut(Client) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        let bounds = (self.options.attempt_timeout, self.options.request_deadline);
        self.call_within(what, bounds, attempt, on_error).await
    }

    /// Like `call_or`, each attempt bounded by `bounds.0` and the whole call by `bounds.1`.
    async fn call_within<T, F, Fut>(
        &self,
        what: &str,
        bounds: (Duration, Duration),
        mut attempt: F,
        on_error: impl FnOnce(etcd_client::Error) -> CfgError,
    ) -> Result<T>
    where
        F: FnMut(Client) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        let client = &self.client;
        retrying(what, &self.label, bounds.0, bounds.1, || {
            attempt(client.clone())
        })
        .await
        .map_err(|e| match e {
            RetryError::Failed(e) => on_error(e),
            RetryError::Unavailable(e) => e,
        })
    }

    /// A conditional single-key write or delete, with the current revision read on failure.
    /// Returns (applied, revision of the answer, current revision of the key when not applied).
    async fn guarded(
        &self,
        what: &str,
        compare: etcd_client::Compare,
        op: TxnOp,
        key: &str,
        on_error: impl FnOnce(etcd_client::Error) -> CfgError,
    ) -> Result<(bool, Revision, Revision)> {
        let resp = self
            .call_or(
                what,
                |mut c| {
                    let txn = etcd_client::Txn::new()
                        .when([compare.clone()])
                        .and_then([op.clone()])
                        .or_else([TxnOp::get(key, None)]);
                    async move { c.txn(txn).await }
                },
                on_error,
            )
            .await?;
        let revision = header_revision(resp.header());
        let current = if resp.succeeded() {
            0
        } else {
            failed_get_revision(&resp)
        };
        Ok((resp.succeeded(), revision, current))
    }
}

fn header_revision(header: Option<&etcd_client::ResponseHeader>) -> Revision {
    header.map_or(0, |h| h.revision())
}

/// The `mod_revision` read by the `or_else` get of a failed guarded transaction (0: absent).
fn failed_get_revision(resp: &TxnResponse) -> Revision {
    resp.op_responses()
        .into_iter()
        .find_map(|r| match r {
            TxnOpResponse::Get(get) => Some(get.kvs().first().map_or(0, |kv| kv.mod_revision())),
            _ => None,
        })
        .unwrap_or(0)
}

pub(crate) fn convert_kv(kv: &etcd_client::KeyValue) -> Result<KeyValue> {
    let key = String::from_utf8(kv.key().to_vec()).map_err(|e| CfgError::Corrupt {
        key: String::from_utf8_lossy(kv.key()).into_owned(),
        reason: format!("key is not UTF-8: {e}"),
    })?;
    Ok(KeyValue {
        key,
        value: kv.value().to_vec(),
        mod_revision: kv.mod_revision(),
        create_revision: kv.create_revision(),
        lease: (kv.lease() != 0).then_some(kv.lease()),
    })
}

fn status_code(error: &etcd_client::Error) -> Option<tonic::Code> {
    match error {
        etcd_client::Error::GRpcStatus(s) => Some(s.code()),
        _ => None,
    }
}

/// One renewal of `lease` sent to every member at once: the first member to answer settles
/// it (a definite error such as a lease not found included); it fails transiently only when
/// every member failed.
async fn first_renewal(
    members: &[Client],
    lease: LeaseId,
) -> std::result::Result<i64, etcd_client::Error> {
    let attempts = members.iter().map(|c| {
        let mut c = c.clone();
        Box::pin(async move {
            let (mut keeper, mut stream) = c.lease_keep_alive(lease).await?;
            keeper.keep_alive().await?;
            Ok::<_, etcd_client::Error>(stream.message().await?.map_or(0, |r| r.ttl()))
        })
    });
    let mut pending: Vec<_> = attempts.collect();
    let mut last = None;
    while !pending.is_empty() {
        let (outcome, _, rest) = futures::future::select_all(pending).await;
        match outcome {
            Ok(ttl) => return Ok(ttl),
            Err(e) if retry::is_transient(&e) => last = Some(e),
            Err(e) => return Err(e),
        }
        pending = rest;
    }
    Err(last.unwrap_or_else(|| etcd_client::Error::InvalidArgs("no etcd members".into())))
}

fn lease_error(lease: LeaseId) -> impl FnOnce(etcd_client::Error) -> CfgError {
    move |e| {
        let gone = status_code(&e) == Some(tonic::Code::NotFound)
            || matches!(&e, etcd_client::Error::LeaseKeepAliveError(m) if m.contains("not found"));
        if gone {
            CfgError::LeaseNotFound(lease)
        } else {
            classify(e)
        }
    }
}

#[async_trait]
impl Store for EtcdStore {
    fn backend(&self) -> &'static str {
        "etcd"
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let resp = self
            .call("get", |mut c| async move { c.get(key, None).await })
            .await?;
        resp.kvs().first().map(convert_kv).transpose()
    }

    async fn list(&self, prefix: &str) -> Result<Listing> {
        let resp = self
            .call("list", |mut c| async move {
                c.get(prefix, Some(GetOptions::new().with_prefix())).await
            })
            .await?;
        let kvs = resp.kvs().iter().map(convert_kv).collect::<Result<_>>()?;
        Ok(Listing {
            revision: header_revision(resp.header()),
            kvs,
        })
    }

    async fn revision(&self) -> Result<Revision> {
        let key = self.options.revision_key.clone();
        let resp = self
            .call("revision", |mut c| {
                let key = key.clone();
                async move { c.get(key, Some(GetOptions::new().with_count_only())).await }
            })
            .await?;
        Ok(header_revision(resp.header()))
    }

    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        cas: Revision,
        lease: Option<LeaseId>,
    ) -> Result<Revision> {
        crate::limits::check_value_size(key, value.len())?;
        let options = lease.map(|l| PutOptions::new().with_lease(l));
        let compare = if cas == 0 {
            etcd_client::Compare::create_revision(key, CompareOp::Equal, 0)
        } else {
            etcd_client::Compare::mod_revision(key, CompareOp::Equal, cas)
        };
        let op = TxnOp::put(key, value, options);
        let (applied, revision, current) = self
            .guarded("put", compare, op, key, |e| {
                match (lease, status_code(&e)) {
                    (Some(l), Some(tonic::Code::NotFound)) => CfgError::LeaseNotFound(l),
                    _ => classify(e),
                }
            })
            .await?;
        if applied {
            Ok(revision)
        } else {
            Err(CfgError::cas_failed(key, cas, current))
        }
    }

    async fn delete(&self, key: &str, cas: Revision) -> Result<Revision> {
        let compare = if cas == 0 {
            etcd_client::Compare::version(key, CompareOp::Greater, 0)
        } else {
            etcd_client::Compare::mod_revision(key, CompareOp::Equal, cas)
        };
        let (ok, revision, current) = self
            .guarded("delete", compare, TxnOp::delete(key, None), key, classify)
            .await?;
        if ok {
            Ok(revision)
        } else if current == 0 {
            Err(CfgError::NotFound {
                key: key.to_string(),
            })
        } else {
            Err(CfgError::cas_failed(key, cas, current))
        }
    }

    async fn txn(&self, txn: Txn) -> Result<TxnOutcome> {
        txn.check_writable()?;
        let compares: Vec<etcd_client::Compare> = txn
            .compares
            .iter()
            .map(|c| match c {
                Compare::ModRevision { key, revision } => {
                    etcd_client::Compare::mod_revision(key.as_str(), CompareOp::Equal, *revision)
                }
                Compare::Value { key, value } => {
                    etcd_client::Compare::value(key.as_str(), CompareOp::Equal, value.clone())
                }
            })
            .collect();
        let leases: Vec<LeaseId> = txn
            .ops
            .iter()
            .filter_map(|op| match op {
                Op::Put { lease, .. } => *lease,
                Op::Delete { .. } => None,
            })
            .collect();
        let ops: Vec<TxnOp> = txn
            .ops
            .into_iter()
            .map(|op| match op {
                Op::Put { key, value, lease } => {
                    TxnOp::put(key, value, lease.map(|l| PutOptions::new().with_lease(l)))
                }
                Op::Delete { key } => TxnOp::delete(key, None),
            })
            .collect();
        let resp = self
            .call_or(
                "txn",
                |mut c| {
                    let txn = etcd_client::Txn::new()
                        .when(compares.clone())
                        .and_then(ops.clone());
                    async move { c.txn(txn).await }
                },
                |e| match (leases.first(), status_code(&e)) {
                    (Some(l), Some(tonic::Code::NotFound)) => CfgError::LeaseNotFound(*l),
                    _ => classify(e),
                },
            )
            .await?;
        Ok(TxnOutcome {
            succeeded: resp.succeeded(),
            revision: header_revision(resp.header()),
        })
    }

    async fn watch(&self, prefix: &str, from: Revision) -> Result<WatchStream> {
        // Resolve "from now on" to a revision here, so a reconnect resumes exactly.
        let from = if from <= 0 {
            self.revision().await? + 1
        } else {
            from
        };
        Ok(watch::spawn(self.clone(), prefix.to_string(), from))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.call("compact", |mut c| async move {
            c.compact(revision, None).await.map(|_| ())
        })
        .await
        .or_else(|e| match e {
            // Already compacted at or past `revision`: nothing to do, as in the local engine.
            CfgError::Storage(ref m) if m.contains("required revision has been compacted") => {
                Ok(())
            }
            CfgError::Storage(ref m) if m.contains("future revision") => Err(CfgError::Invalid {
                key: "<compact>".into(),
                field: "revision".into(),
                reason: format!("{revision} is in the future"),
            }),
            other => Err(other),
        })
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId> {
        // etcd counts TTLs in whole seconds.
        let secs = ttl.as_millis().div_ceil(1000).max(1) as i64;
        let resp = self
            .call("grant lease", |mut c| async move {
                c.lease_grant(secs, None).await
            })
            .await?;
        if let Ok(mut ttls) = self.ttls.lock() {
            ttls.insert(resp.id(), ttl);
        }
        Ok(resp.id())
    }

    async fn keep_alive_lease(&self, lease: LeaseId) -> Result<()> {
        // Within the lease's TTL, in short attempts: one stuck on a member that stopped
        // answering must leave time to get through another before the lease runs out.
        let bounds = self
            .ttls
            .lock()
            .ok()
            .and_then(|t| t.get(&lease).copied())
            .map_or(
                (self.options.attempt_timeout, self.options.request_deadline),
                |ttl| {
                    let attempt =
                        (ttl / 4).clamp(Duration::from_millis(100), self.options.attempt_timeout);
                    (attempt, ttl)
                },
            );
        let members = &self.members;
        let ttl = retrying("keep lease alive", &self.label, bounds.0, bounds.1, || {
            first_renewal(members, lease)
        })
        .await
        .map_err(|e| match e {
            RetryError::Failed(e) => lease_error(lease)(e),
            RetryError::Unavailable(e) => e,
        })?;
        if ttl <= 0 {
            return Err(CfgError::LeaseNotFound(lease));
        }
        Ok(())
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<()> {
        if let Ok(mut ttls) = self.ttls.lock() {
            ttls.remove(&lease);
        }
        self.call_or(
            "revoke lease",
            |mut c| async move { c.lease_revoke(lease).await.map(|_| ()) },
            lease_error(lease),
        )
        .await
    }
}
