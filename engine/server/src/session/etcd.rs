//! [`EtcdCoordination`]: sessions and leader election on etcd leases.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ferrovus_core::store::{KeyValue, MetaStore};
use ferrovus_storage::{EtcdMetaStore, PrefixWatch, WatchEvent, WatchEventKind};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::keepalive::{KeepAlive, LossPolicy};
use super::{
    Coordination, CoordinationConfig, Fence, LeaderGuard, LeaderInfo, Release, RoleKind, Session,
    SessionError, SessionEvent, SessionInfo, SessionWatch, allocate_node_id, decode_session,
    parse_session_key, session_prefix,
};

/// [`Coordination`] on etcd: sessions and leader keys bound to leases (TTLs from
/// [`CoordinationConfig`], rounded up to whole seconds as etcd counts them). Cheap to clone.
#[derive(Debug, Clone)]
pub struct EtcdCoordination {
    store: EtcdMetaStore,
    config: CoordinationConfig,
}

pub(super) fn ttl_secs(d: Duration) -> i64 {
    (d.as_millis().div_ceil(1000) as i64).max(1)
}

impl EtcdCoordination {
    pub fn new(store: EtcdMetaStore, config: CoordinationConfig) -> Self {
        EtcdCoordination { store, config }
    }

    pub fn store(&self) -> &EtcdMetaStore {
        &self.store
    }

    pub fn config(&self) -> &CoordinationConfig {
        &self.config
    }

    /// Grants a lease of `ttl` and renews it once.
    async fn live_lease(
        &self,
        ttl: Duration,
        first_timeout: Duration,
    ) -> Result<(LeaseCleanup, KeepAlive), SessionError> {
        let lease_id = self.store.grant_lease(ttl_secs(ttl)).await?;
        let cleanup = LeaseCleanup {
            store: self.store.clone(),
            lease_id,
            armed: true,
        };
        let ka = KeepAlive::start(self.store.client(), lease_id, first_timeout).await?;
        Ok((cleanup, ka))
    }

    /// Returns once `key` does not exist (or after a broken watch, to let the caller re-check).
    async fn wait_vacant(&self, key: &str) -> Result<(), SessionError> {
        let (kvs, revision) = self.store.list_with_revision(key).await?;
        if !kvs.iter().any(|kv| kv.key == key) {
            return Ok(());
        }
        let mut w = self.store.watch_prefix(key, Some(revision + 1)).await?;
        loop {
            match w.next().await {
                Ok(Some(events)) => {
                    if events
                        .iter()
                        .any(|e| e.kind == WatchEventKind::Delete && e.kv.key == key)
                    {
                        return Ok(());
                    }
                }
                Ok(None) | Err(_) => {
                    // Re-check from a fresh listing, not in a tight loop.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    return Ok(());
                }
            }
        }
    }
}

/// Revokes a lease when dropped while armed (a cancelled campaign or registration), in the
/// background.
struct LeaseCleanup {
    store: EtcdMetaStore,
    lease_id: i64,
    armed: bool,
}

impl LeaseCleanup {
    fn disarm(mut self) -> i64 {
        self.armed = false;
        self.lease_id
    }
}

impl Drop for LeaseCleanup {
    fn drop(&mut self) {
        if self.armed
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            let (store, lease_id) = (self.store.clone(), self.lease_id);
            rt.spawn(async move {
                if let Err(e) = store.revoke_lease(lease_id).await {
                    tracing::debug!(lease_id, error = %e, "revoking an abandoned lease failed; it will expire");
                }
            });
        }
    }
}

/// The background keep-alive of a session or leader lease.
#[derive(Debug)]
struct EtcdRelease {
    store: EtcdMetaStore,
    lease_id: i64,
    task: JoinHandle<()>,
}

impl Drop for EtcdRelease {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[async_trait]
impl Release for EtcdRelease {
    async fn release(self: Box<Self>) -> Result<(), SessionError> {
        self.task.abort();
        self.store.revoke_lease(self.lease_id).await?;
        Ok(())
    }
}

enum Update {
    Snapshot(Vec<KeyValue>),
    Events(Vec<WatchEvent>),
}

/// Feeds `apply` every change under `prefix` from `watch`; when the watch breaks, waits, re-lists
/// (a `Snapshot`) and watches again from there. Ends when `closed` resolves.
async fn follow(
    store: EtcdMetaStore,
    prefix: String,
    mut watch: PrefixWatch,
    mut apply: impl FnMut(Update) + Send,
    closed: impl Future<Output = ()> + Send,
) {
    tokio::pin!(closed);
    loop {
        let next = tokio::select! {
            _ = &mut closed => return,
            next = watch.next() => next,
        };
        match next {
            Ok(Some(events)) => apply(Update::Events(events)),
            Ok(None) | Err(_) => {
                if let Err(e) = &next {
                    tracing::warn!(%prefix, error = %e, "etcd watch broke; re-listing");
                }
                let mut backoff = Duration::from_millis(100);
                loop {
                    tokio::select! {
                        _ = &mut closed => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    let (kvs, revision) = match store.list_with_revision(&prefix).await {
                        Ok(v) => v,
                        Err(e) => {
                            tracing::warn!(%prefix, error = %e, "re-listing failed; retrying");
                            continue;
                        }
                    };
                    match store.watch_prefix(&prefix, Some(revision + 1)).await {
                        Ok(w) => {
                            watch = w;
                            apply(Update::Snapshot(kvs));
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(%prefix, error = %e, "re-watching failed; retrying")
                        }
                    }
                }
            }
        }
    }
}

fn sessions_of(kvs: &[KeyValue]) -> BTreeMap<(RoleKind, u64), SessionInfo> {
    let mut out = BTreeMap::new();
    for kv in kvs {
        match decode_session(&kv.key, &kv.value) {
            Ok(info) => {
                out.insert((info.role, info.node_id), info);
            }
            Err(e) => tracing::warn!(error = %e, "ignoring an unreadable session entry"),
        }
    }
    out
}

fn leader_of(kvs: &[KeyValue], key: &str) -> Option<LeaderInfo> {
    kvs.iter().find(|kv| kv.key == key).map(|kv| LeaderInfo {
        value: kv.value.clone(),
        revision: kv.mod_revision,
    })
}

#[async_trait]
impl Coordination for EtcdCoordination {
    async fn allocate_node_id(&self) -> Result<u64, SessionError> {
        allocate_node_id(&self.store).await
    }

    async fn register(&self, info: SessionInfo) -> Result<Session, SessionError> {
        let value = serde_json::to_vec(&info).map_err(|e| SessionError::Invalid {
            field: "session",
            message: e.to_string(),
        })?;
        let (cleanup, ka) = self
            .live_lease(self.config.session_ttl, self.config.session_ttl / 2)
            .await?;
        self.store
            .put_with_lease(&info.key(), value, cleanup.lease_id)
            .await?;
        let (task, lost) = ka.spawn(self.config.keepalive_interval, LossPolicy::Expiry);
        let lease_id = cleanup.disarm();
        tracing::info!(key = %info.key(), lease_id, "session registered");
        Ok(Session {
            info,
            lost,
            release: Box::new(EtcdRelease {
                store: self.store.clone(),
                lease_id,
                task,
            }),
        })
    }

    async fn list_sessions(
        &self,
        role: Option<RoleKind>,
    ) -> Result<Vec<SessionInfo>, SessionError> {
        let kvs = self.store.list(&session_prefix(role)).await?;
        Ok(sessions_of(&kvs).into_values().collect())
    }

    async fn watch_sessions(&self, role: Option<RoleKind>) -> Result<SessionWatch, SessionError> {
        let prefix = session_prefix(role);
        let (kvs, revision) = self.store.list_with_revision(&prefix).await?;
        let mut known = sessions_of(&kvs);
        let initial: Vec<SessionInfo> = known.values().cloned().collect();
        let watch = self.store.watch_prefix(&prefix, Some(revision + 1)).await?;
        let (tx, events) = mpsc::unbounded_channel();
        let closed_tx = tx.clone();
        let apply = move |update: Update| match update {
            Update::Events(events) => {
                for ev in events {
                    let Some((role, node_id)) = parse_session_key(&ev.kv.key) else {
                        continue;
                    };
                    match ev.kind {
                        WatchEventKind::Put => match decode_session(&ev.kv.key, &ev.kv.value) {
                            Ok(info) => {
                                known.insert((role, node_id), info.clone());
                                let _ = tx.send(SessionEvent::Added(info));
                            }
                            Err(e) => tracing::warn!(error = %e, "ignoring an unreadable session"),
                        },
                        WatchEventKind::Delete => {
                            if known.remove(&(role, node_id)).is_some() {
                                let _ = tx.send(SessionEvent::Removed { role, node_id });
                            }
                        }
                    }
                }
            }
            Update::Snapshot(kvs) => {
                let now = sessions_of(&kvs);
                for (role, node_id) in known.keys() {
                    if !now.contains_key(&(*role, *node_id)) {
                        let _ = tx.send(SessionEvent::Removed {
                            role: *role,
                            node_id: *node_id,
                        });
                    }
                }
                for (k, info) in &now {
                    if known.get(k) != Some(info) {
                        let _ = tx.send(SessionEvent::Added(info.clone()));
                    }
                }
                known = now;
            }
        };
        tokio::spawn(follow(
            self.store.clone(),
            prefix,
            watch,
            apply,
            async move { closed_tx.closed().await },
        ));
        Ok(SessionWatch { initial, events })
    }

    async fn campaign(&self, key: &str, value: Vec<u8>) -> Result<LeaderGuard, SessionError> {
        loop {
            let lease_id = self
                .store
                .grant_lease(ttl_secs(self.config.leader_ttl))
                .await?;
            let cleanup = LeaseCleanup {
                store: self.store.clone(),
                lease_id,
                armed: true,
            };
            match self.store.try_acquire(key, value.clone(), lease_id).await? {
                Some(revision) => {
                    // Leader only once the lease is known renewable.
                    let ka = KeepAlive::start(
                        self.store.client(),
                        lease_id,
                        self.config.keepalive_interval,
                    )
                    .await?;
                    let (task, lost) =
                        ka.spawn(self.config.keepalive_interval, LossPolicy::FirstFailure);
                    let lease_id = cleanup.disarm();
                    tracing::info!(key, revision, lease_id, "elected leader");
                    return Ok(LeaderGuard {
                        fence: Fence {
                            key: key.to_string(),
                            revision,
                        },
                        value,
                        lost,
                        release: Box::new(EtcdRelease {
                            store: self.store.clone(),
                            lease_id,
                            task,
                        }),
                    });
                }
                None => {
                    drop(cleanup); // revoke the unused lease
                    self.wait_vacant(key).await?;
                }
            }
        }
    }

    async fn current_leader(&self, key: &str) -> Result<Option<LeaderInfo>, SessionError> {
        Ok(self.store.get(key).await?.map(|kv| LeaderInfo {
            value: kv.value,
            revision: kv.mod_revision,
        }))
    }

    async fn watch_leader(
        &self,
        key: &str,
    ) -> Result<watch::Receiver<Option<LeaderInfo>>, SessionError> {
        let (kvs, revision) = self.store.list_with_revision(key).await?;
        let (tx, rx) = watch::channel(leader_of(&kvs, key));
        let tx = Arc::new(tx);
        let w = self.store.watch_prefix(key, Some(revision + 1)).await?;
        let closed_tx = tx.clone();
        let key_owned = key.to_string();
        let apply = move |update: Update| match update {
            Update::Events(events) => {
                for ev in events.into_iter().filter(|e| e.kv.key == key_owned) {
                    tx.send_replace(match ev.kind {
                        WatchEventKind::Put => Some(LeaderInfo {
                            value: ev.kv.value,
                            revision: ev.kv.mod_revision,
                        }),
                        WatchEventKind::Delete => None,
                    });
                }
            }
            Update::Snapshot(kvs) => {
                let now = leader_of(&kvs, &key_owned);
                tx.send_if_modified(|cur| {
                    let changed = *cur != now;
                    *cur = now;
                    changed
                });
            }
        };
        tokio::spawn(follow(
            self.store.clone(),
            key.to_string(),
            w,
            apply,
            async move { closed_tx.closed().await },
        ));
        Ok(rx)
    }
}
