//! [`EtcdMetaStore`]: the [`MetaStore`] for cluster mode, on etcd v3, plus the few lease and
//! watch primitives a coordinator's leader election needs (inherent methods, not in the trait).
//!
//! * Namespacing: every key is stored under [`EtcdConfig::key_prefix`] (e.g.
//!   `ferrovus/<cluster>/`), which is stripped again from everything returned.
//! * Revisions are etcd's: `mod_revision` of the key, the header revision for writes.
//!   `MetaCondition::ModRevision { revision: 0 }` compiles to `create_revision == 0` (key absent).
//! * Transient failures (etcd unreachable, leader election, timeouts) are retried with backoff
//!   while the tonic channel reconnects underneath. Reads, puts, deletes and lease calls are
//!   retried on any transient error; a transaction only when the request provably never reached
//!   etcd (connection refused), since replaying an applied compare-and-swap would report a
//!   spurious conflict.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, PutOptions, SortOrder,
    SortTarget, Txn, TxnOp, WatchOptions, WatchStream,
};
use ferrovus_core::Result;
use ferrovus_core::store::{KeyValue, MetaChange, MetaCondition, MetaOp, MetaStore, MetaWatch};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::error::{StorageError, StorageResult};
use crate::{validate_meta_key, validate_txn_ops};

/// Keys per page when listing, keeping responses far below gRPC's 4 MiB default message limit.
const LIST_PAGE: i64 = 512;

#[derive(Debug, Clone)]
pub struct EtcdConfig {
    /// `http://host:2379` URLs.
    pub endpoints: Vec<String>,
    /// Namespace for all keys, e.g. `ferrovus/<cluster>/`. May be empty.
    pub key_prefix: String,
    pub connect_timeout: Duration,
    /// Deadline of each attempt of a unary call.
    pub request_timeout: Duration,
    /// Attempts per call for retryable failures (at least 1).
    pub max_attempts: u32,
}

impl Default for EtcdConfig {
    fn default() -> Self {
        Self {
            endpoints: vec!["http://127.0.0.1:2379".into()],
            key_prefix: String::new(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            max_attempts: 8,
        }
    }
}

impl EtcdConfig {
    pub fn new(
        endpoints: impl IntoIterator<Item = impl Into<String>>,
        key_prefix: impl Into<String>,
    ) -> Self {
        Self {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            key_prefix: key_prefix.into(),
            ..Self::default()
        }
    }
}

/// A [`MetaStore`] on etcd. Cheap to clone.
#[derive(Clone)]
pub struct EtcdMetaStore {
    client: Client,
    config: Arc<EtcdConfig>,
}

impl fmt::Debug for EtcdMetaStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdMetaStore")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// Safe to replay: retry any transient failure.
    Idempotent,
    /// Retry only failures that prove the request was never sent.
    UnsentOnly,
}

fn is_transient(e: &StorageError) -> bool {
    match e {
        StorageError::Timeout { .. } => true,
        StorageError::Etcd { source, .. } => match source {
            etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
            etcd_client::Error::GRpcStatus(s) => {
                matches!(
                    i32::from(s.code()),
                    grpc_code::UNAVAILABLE | grpc_code::DEADLINE_EXCEEDED | grpc_code::ABORTED
                ) || s.message().contains("leader changed")
                    || s.message().contains("no leader")
                    // A request written to a connection that died: tonic reports `Unknown`
                    // "transport error" (broken pipe, reset). Replaying is fine for idempotent ops.
                    || (i32::from(s.code()) == grpc_code::UNKNOWN
                        && s.message().contains("transport error"))
            }
            _ => false,
        },
        _ => false,
    }
}

/// True when the failure happened while connecting, so the request never reached etcd.
fn is_unsent(e: &StorageError) -> bool {
    let StorageError::Etcd { source, .. } = e else {
        return false;
    };
    let text = match source {
        etcd_client::Error::TransportError(t) => format!("{t:?}"),
        etcd_client::Error::GRpcStatus(s) if i32::from(s.code()) == grpc_code::UNAVAILABLE => {
            format!("{} {:?}", s.message(), std::error::Error::source(s))
        }
        _ => return false,
    }
    .to_ascii_lowercase();
    // Connection-establishment failures only; "connection reset/closed" may follow a sent request.
    [
        "tcp connect error",
        "error trying to connect",
        "connecterror",
        "connection refused",
        "dns error",
    ]
    .iter()
    .any(|needle| text.contains(needle))
}

/// gRPC status codes (standardised numbers; compared as `i32` so we need not name tonic).
mod grpc_code {
    pub(super) const UNKNOWN: i32 = 2;
    pub(super) const DEADLINE_EXCEEDED: i32 = 4;
    pub(super) const ABORTED: i32 = 10;
    pub(super) const UNAVAILABLE: i32 = 14;
}

/// The smallest key greater than every key starting with `prefix` (etcd's range end for a
/// prefix); `[0]` means "to the end of the keyspace".
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// One change seen by a [`PrefixWatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    pub kind: WatchEventKind,
    /// For deletes, `value` is empty and `mod_revision` is the revision of the delete.
    pub kv: KeyValue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchEventKind {
    Put,
    Delete,
}

/// A watch on every key under a prefix. Dropping it cancels the watch.
pub struct PrefixWatch {
    stream: WatchStream,
    ns_len: usize,
}

impl fmt::Debug for PrefixWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrefixWatch").finish_non_exhaustive()
    }
}

#[async_trait]
impl MetaWatch for PrefixWatch {
    async fn next(&mut self) -> Result<Option<Vec<MetaChange>>> {
        let Some(events) = PrefixWatch::next(self).await? else {
            return Ok(None);
        };
        Ok(Some(
            events
                .into_iter()
                .map(|e| match e.kind {
                    WatchEventKind::Put => MetaChange::Put(e.kv),
                    WatchEventKind::Delete => MetaChange::Delete {
                        key: e.kv.key,
                        revision: e.kv.mod_revision,
                    },
                })
                .collect(),
        ))
    }
}

impl PrefixWatch {
    /// The next batch of events (all events of one revision arrive together). `Ok(None)` when
    /// the server closed the stream; an error when the watch was cancelled (e.g. the start
    /// revision was compacted) or the connection broke — re-list and watch again.
    pub async fn next(&mut self) -> StorageResult<Option<Vec<WatchEvent>>> {
        loop {
            let msg = self
                .stream
                .message()
                .await
                .map_err(|source| StorageError::Etcd {
                    op: "watch",
                    source,
                })?;
            let Some(resp) = msg else { return Ok(None) };
            if resp.canceled() {
                return Err(StorageError::Etcd {
                    op: "watch",
                    source: etcd_client::Error::WatchError(format!(
                        "watch cancelled by the server (compact revision {}): {}",
                        resp.compact_revision(),
                        resp.cancel_reason()
                    )),
                });
            }
            let mut events = Vec::with_capacity(resp.events().len());
            for ev in resp.events() {
                let Some(kv) = ev.kv() else { continue };
                let kind = match ev.event_type() {
                    EventType::Put => WatchEventKind::Put,
                    EventType::Delete => WatchEventKind::Delete,
                };
                events.push(WatchEvent {
                    kind,
                    kv: strip_kv(kv, self.ns_len)?,
                });
            }
            if !events.is_empty() {
                return Ok(Some(events));
            }
            // created / progress notifications carry no events
        }
    }
}

fn strip_kv(kv: &etcd_client::KeyValue, ns_len: usize) -> StorageResult<KeyValue> {
    let key = kv.key().get(ns_len..).unwrap_or_default();
    let key = std::str::from_utf8(key).map_err(|e| StorageError::Corrupted {
        what: "etcd key".into(),
        message: format!("{:?} is not UTF-8: {e}", String::from_utf8_lossy(kv.key())),
    })?;
    Ok(KeyValue {
        key: key.to_string(),
        value: kv.value().to_vec(),
        mod_revision: kv.mod_revision(),
    })
}

/// Keeps a lease alive in a background task. Dropping the handle (or [`Self::stop`]) stops the
/// keep-alives; the lease then expires after its TTL unless revoked.
#[derive(Debug)]
pub struct KeepAliveHandle {
    lease_id: i64,
    lost: watch::Receiver<bool>,
    task: JoinHandle<()>,
}

impl KeepAliveHandle {
    pub fn lease_id(&self) -> i64 {
        self.lease_id
    }

    /// Whether the lease is known to be gone (expired, revoked, or unrenewable for a whole TTL).
    pub fn is_lost(&self) -> bool {
        *self.lost.borrow()
    }

    /// Resolves once the lease is lost: the holder must stop acting as leader.
    pub async fn lost(&mut self) {
        let _ = self.lost.wait_for(|lost| *lost).await;
    }

    pub fn stop(self) {}
}

impl Drop for KeepAliveHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl EtcdMetaStore {
    /// Connects and checks that etcd answers (retrying for a while).
    pub async fn connect(config: EtcdConfig) -> StorageResult<Self> {
        if config.endpoints.is_empty() {
            return Err(StorageError::Config("no etcd endpoints".into()));
        }
        if config.max_attempts == 0 {
            return Err(StorageError::Config(
                "etcd max_attempts must be at least 1".into(),
            ));
        }
        let options = ConnectOptions::new()
            .with_connect_timeout(config.connect_timeout)
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
            .with_keep_alive_while_idle(true);
        let client = Client::connect(&config.endpoints, Some(options))
            .await
            .map_err(|source| StorageError::Etcd {
                op: "connect",
                source,
            })?;
        let store = Self {
            client,
            config: Arc::new(config),
        };
        store
            .call("status", Retry::Idempotent, |mut c| async move {
                c.status().await
            })
            .await?;
        Ok(store)
    }

    pub fn config(&self) -> &EtcdConfig {
        &self.config
    }

    /// The underlying client (its keys are not namespaced).
    pub fn client(&self) -> &Client {
        &self.client
    }

    fn full_key(&self, key: &str) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.config.key_prefix.len() + key.len());
        k.extend_from_slice(self.config.key_prefix.as_bytes());
        k.extend_from_slice(key.as_bytes());
        k
    }

    /// Runs `f` with a fresh client handle, with a per-attempt deadline and retries.
    async fn call<T, F, Fut>(&self, op: &'static str, retry: Retry, f: F) -> StorageResult<T>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        let mut delay = Duration::from_millis(50);
        let mut attempt = 1;
        loop {
            let after = self.config.request_timeout;
            let err = match tokio::time::timeout(after, f(self.client.clone())).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(source)) => StorageError::Etcd { op, source },
                Err(_) => StorageError::Timeout { op, after },
            };
            let retryable = match retry {
                Retry::Idempotent => is_transient(&err),
                Retry::UnsentOnly => is_unsent(&err),
            };
            if !retryable || attempt >= self.config.max_attempts {
                return Err(err);
            }
            tracing::warn!(op, attempt, error = %err, "transient etcd failure, retrying");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
            attempt += 1;
        }
    }

    /// Grants a lease of `ttl_secs` seconds; returns its id.
    pub async fn grant_lease(&self, ttl_secs: i64) -> StorageResult<i64> {
        let resp = self
            .call("lease_grant", Retry::Idempotent, |mut c| async move {
                c.lease_grant(ttl_secs, None).await
            })
            .await?;
        Ok(resp.id())
    }

    /// Revokes a lease, deleting every key attached to it. Revoking an unknown lease is not an error.
    pub async fn revoke_lease(&self, lease_id: i64) -> StorageResult<()> {
        match self
            .call("lease_revoke", Retry::Idempotent, |mut c| async move {
                c.lease_revoke(lease_id).await
            })
            .await
        {
            Ok(_) => Ok(()),
            Err(StorageError::Etcd {
                source: etcd_client::Error::GRpcStatus(s),
                ..
            }) if s.message().contains("lease not found") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Remaining TTL of a lease in seconds, `None` if it does not exist (expired or revoked).
    pub async fn lease_ttl(&self, lease_id: i64) -> StorageResult<Option<i64>> {
        let resp = self
            .call(
                "lease_time_to_live",
                Retry::Idempotent,
                |mut c| async move { c.lease_time_to_live(lease_id, None).await },
            )
            .await?;
        Ok((resp.ttl() >= 0).then_some(resp.ttl()))
    }

    /// Starts renewing `lease_id` every third of its TTL until the handle is dropped. The handle
    /// reports the lease lost when etcd says it expired, or when no renewal succeeded for a TTL.
    pub async fn keep_alive(&self, lease_id: i64) -> StorageResult<KeepAliveHandle> {
        let ttl = self
            .call(
                "lease_time_to_live",
                Retry::Idempotent,
                |mut c| async move { c.lease_time_to_live(lease_id, None).await },
            )
            .await?
            .granted_ttl();
        if ttl <= 0 {
            return Err(StorageError::NotFound(format!("etcd lease {lease_id:x}")));
        }
        let (tx, lost) = watch::channel(false);
        let client = self.client.clone();
        let task = tokio::spawn(keep_alive_loop(client, lease_id, ttl, tx));
        Ok(KeepAliveHandle {
            lease_id,
            lost,
            task,
        })
    }

    /// Unconditional put attached to a lease; returns the new revision.
    pub async fn put_with_lease(
        &self,
        key: &str,
        value: Vec<u8>,
        lease_id: i64,
    ) -> StorageResult<i64> {
        validate_meta_key(key)?;
        let full = self.full_key(key);
        let resp = self
            .call("put", Retry::Idempotent, |mut c| {
                let (full, value) = (full.clone(), value.clone());
                async move {
                    c.put(full, value, Some(PutOptions::new().with_lease(lease_id)))
                        .await
                }
            })
            .await?;
        Ok(resp.header().map_or(0, |h| h.revision()))
    }

    /// Campaign step: creates `key` = `value` attached to `lease_id` if `key` does not exist.
    /// Returns the revision of the write if this caller now holds the key, `None` if someone
    /// else does. The key disappears when the lease expires or is revoked.
    pub async fn try_acquire(
        &self,
        key: &str,
        value: Vec<u8>,
        lease_id: i64,
    ) -> StorageResult<Option<i64>> {
        validate_meta_key(key)?;
        let full = self.full_key(key);
        let resp = self
            .call("txn", Retry::UnsentOnly, |mut c| {
                let txn = Txn::new()
                    .when([Compare::create_revision(full.clone(), CompareOp::Equal, 0)])
                    .and_then([TxnOp::put(
                        full.clone(),
                        value.clone(),
                        Some(PutOptions::new().with_lease(lease_id)),
                    )]);
                async move { c.txn(txn).await }
            })
            .await?;
        Ok(resp
            .succeeded()
            .then(|| resp.header().map_or(0, |h| h.revision())))
    }

    /// Watches every key starting with `prefix`, from `start_revision` (inclusive) if given,
    /// else from now. Pass `list` revision + 1 to watch without a gap after a list.
    pub async fn watch_prefix(
        &self,
        prefix: &str,
        start_revision: Option<i64>,
    ) -> StorageResult<PrefixWatch> {
        let full = self.full_key(prefix);
        let mut options = WatchOptions::new().with_range(if full.is_empty() {
            vec![0]
        } else {
            prefix_end(&full)
        });
        if let Some(rev) = start_revision {
            options = options.with_start_revision(rev);
        }
        let key = if full.is_empty() { vec![0] } else { full };
        let stream = self
            .call("watch", Retry::Idempotent, |mut c| {
                let (key, options) = (key.clone(), options.clone());
                async move { c.watch(key, Some(options)).await }
            })
            .await?;
        Ok(PrefixWatch {
            stream,
            ns_len: self.config.key_prefix.len(),
        })
    }

    /// Like [`MetaStore::list`], also returning the revision the listing was taken at.
    pub async fn list_with_revision(&self, prefix: &str) -> StorageResult<(Vec<KeyValue>, i64)> {
        let full = self.full_key(prefix);
        let end = if full.is_empty() {
            vec![0]
        } else {
            prefix_end(&full)
        };
        let mut start = if full.is_empty() { vec![0] } else { full };
        let mut revision = 0i64;
        let mut out = Vec::new();
        let ns_len = self.config.key_prefix.len();
        loop {
            let mut options = GetOptions::new()
                .with_range(end.clone())
                .with_sort(SortTarget::Key, SortOrder::Ascend)
                .with_limit(LIST_PAGE);
            if revision > 0 {
                options = options.with_revision(revision); // one consistent snapshot across pages
            }
            let resp = self
                .call("range", Retry::Idempotent, |mut c| {
                    let (start, options) = (start.clone(), options.clone());
                    async move { c.get(start, Some(options)).await }
                })
                .await?;
            if revision == 0 {
                revision = resp.header().map_or(0, |h| h.revision());
            }
            for kv in resp.kvs() {
                out.push(strip_kv(kv, ns_len)?);
            }
            match resp.kvs().last() {
                Some(last) if resp.more() => {
                    start = last.key().to_vec();
                    start.push(0);
                }
                _ => return Ok((out, revision)),
            }
        }
    }
}

async fn keep_alive_loop(client: Client, lease_id: i64, ttl: i64, lost: watch::Sender<bool>) {
    let ttl = Duration::from_secs(ttl as u64);
    let interval = (ttl / 3).max(Duration::from_millis(300));
    // The lease certainly outlives this instant (it was alive when we started).
    let mut expires = Instant::now() + ttl;
    let mut backoff = Duration::from_millis(100);
    'reconnect: loop {
        if Instant::now() >= expires {
            break;
        }
        let mut c = client.clone();
        let (mut keeper, mut stream) = match c.lease_keep_alive(lease_id).await {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(lease_id, error = %e, "cannot open the lease keep-alive stream, retrying");
                tokio::time::sleep(backoff.min(expires.saturating_duration_since(Instant::now())))
                    .await;
                backoff = (backoff * 2).min(interval);
                continue 'reconnect;
            }
        };
        loop {
            let sent_at = Instant::now();
            let round = async {
                keeper.keep_alive().await?;
                stream.message().await
            };
            let deadline = expires
                .saturating_duration_since(sent_at)
                .max(Duration::from_millis(1));
            match tokio::time::timeout(deadline, round).await {
                Ok(Ok(Some(resp))) if resp.ttl() > 0 => {
                    expires = sent_at + Duration::from_secs(resp.ttl() as u64);
                    backoff = Duration::from_millis(100);
                }
                Ok(Ok(Some(_))) => {
                    tracing::warn!(lease_id, "etcd lease expired or was revoked");
                    break 'reconnect;
                }
                Ok(Ok(None)) | Ok(Err(_)) | Err(_) => {
                    tracing::warn!(lease_id, "lease keep-alive stream broke, reconnecting");
                    tokio::time::sleep(
                        backoff.min(expires.saturating_duration_since(Instant::now())),
                    )
                    .await;
                    backoff = (backoff * 2).min(interval);
                    continue 'reconnect;
                }
            }
            tokio::time::sleep(interval).await;
        }
    }
    let _ = lost.send(true);
}

#[async_trait]
impl MetaStore for EtcdMetaStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        validate_meta_key(key)?;
        let full = self.full_key(key);
        let resp = self
            .call("range", Retry::Idempotent, |mut c| {
                let full = full.clone();
                async move { c.get(full, None).await }
            })
            .await?;
        let ns_len = self.config.key_prefix.len();
        Ok(resp
            .kvs()
            .first()
            .map(|kv| strip_kv(kv, ns_len))
            .transpose()?)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<KeyValue>> {
        Ok(self.list_with_revision(prefix).await?.0)
    }

    async fn list_at(&self, prefix: &str) -> Result<(Vec<KeyValue>, i64)> {
        Ok(self.list_with_revision(prefix).await?)
    }

    async fn watch(&self, prefix: &str, revision: i64) -> Result<Option<Box<dyn MetaWatch>>> {
        let w = self.watch_prefix(prefix, Some(revision)).await?;
        Ok(Some(Box::new(w)))
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<i64> {
        validate_meta_key(key)?;
        let full = self.full_key(key);
        let resp = self
            .call("put", Retry::Idempotent, |mut c| {
                let (full, value) = (full.clone(), value.clone());
                async move { c.put(full, value, None).await }
            })
            .await?;
        Ok(resp.header().map_or(0, |h| h.revision()))
    }

    async fn delete(&self, key: &str) -> Result<()> {
        validate_meta_key(key)?;
        let full = self.full_key(key);
        self.call("delete", Retry::Idempotent, |mut c| {
            let full = full.clone();
            async move { c.delete(full, None).await }
        })
        .await?;
        Ok(())
    }

    async fn txn(&self, conditions: Vec<MetaCondition>, ops: Vec<MetaOp>) -> Result<bool> {
        validate_txn_ops(&ops)?;
        let mut compares = Vec::with_capacity(conditions.len());
        for MetaCondition::ModRevision { key, revision } in &conditions {
            validate_meta_key(key)?;
            let full = self.full_key(key);
            compares.push(if *revision == 0 {
                Compare::create_revision(full, CompareOp::Equal, 0)
            } else {
                Compare::mod_revision(full, CompareOp::Equal, *revision)
            });
        }
        let txn_ops: Vec<TxnOp> = ops
            .iter()
            .map(|op| match op {
                MetaOp::Put { key, value } => TxnOp::put(self.full_key(key), value.clone(), None),
                MetaOp::Delete { key } => TxnOp::delete(self.full_key(key), None),
            })
            .collect();
        let resp = self
            .call("txn", Retry::UnsentOnly, |mut c| {
                let txn = Txn::new().when(compares.clone()).and_then(txn_ops.clone());
                async move { c.txn(txn).await }
            })
            .await?;
        Ok(resp.succeeded())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_connect_failures_count_as_unsent() {
        let status = |code: i32, msg: &str| StorageError::Etcd {
            op: "txn",
            source: etcd_client::Error::GRpcStatus(tonic::Status::new(code.into(), msg)),
        };
        assert!(is_unsent(&status(
            grpc_code::UNAVAILABLE,
            "tcp connect error"
        )));
        assert!(!is_unsent(&status(
            grpc_code::UNAVAILABLE,
            "connection reset by peer"
        )));
        assert!(!is_unsent(&status(
            grpc_code::DEADLINE_EXCEEDED,
            "tcp connect error"
        )));
        assert!(is_transient(&status(
            grpc_code::UNAVAILABLE,
            "connection reset by peer"
        )));
        assert!(!is_transient(&status(3, "invalid argument")));
        let broken_pipe = status(grpc_code::UNKNOWN, "transport error");
        assert!(is_transient(&broken_pipe) && !is_unsent(&broken_pipe));
    }

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"abc"), b"abd");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
    }
}
