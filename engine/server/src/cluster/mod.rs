//! The Milvus API of a stateless cluster proxy: [`ClusterBackend`], a
//! [`crate::backend::Backend`] over the other roles ([`Nodes`]), and [`ProxyRole`], the
//! `ferrovus run proxy` process around it.
//!
//! * **Catalogue** (DDL, describe, list, indexes, loading, segments, replicas, timestamps): the
//!   coordinator. Collection records are cached by name and alias; routes (channel owners and
//!   terms, per-replica delegators) by collection id. The cache is dropped when the catalogue
//!   version changes (a background long poll, [`ClusterBackend::watch_catalog`]), on every DDL
//!   through this proxy and when a node answers that it is stale; routes alone are refreshed
//!   after a retriable node error.
//! * **Writes**: validated and normalised against the cached schema with the core's planning
//!   functions ([`ferrovus_core::plan`]), auto ids from id blocks, split by primary-key hash, one
//!   log record per shard sent to the channel owner with its term, all shards in parallel.
//! * **Reads**: planned the same way, one replica's delegator per shard (replicas rotate), a
//!   failed shard retried at once on another replica, then with refreshed routes; shards merged
//!   with the core's merge functions.
//! * Retriable conditions (`Unavailable`, `NotLeader`, `WrongTerm`, `NotServing`) are retried
//!   until `proxy.retry_deadline_ms`, then answered as a retriable `ServiceUnavailable`. A
//!   request never reports success for a shard that failed, and never returns a partial result.
//!
//! Consistency levels and guarantee timestamps are accepted and need no wait: every shard read
//! sees every write acknowledged before it (docs/distributed.md).

mod backend_impl;
mod cache;
mod catalog;
mod channels;
mod ids;
mod metrics;
mod read;
mod retry;
mod role;
mod write;

#[cfg(test)]
mod tests;

pub use metrics::ProxyMetrics;
pub use role::ProxyRole;

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use crate::backend::LoadState;
use ferrovus_core::CoreError;
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::api::{
    CollectionRecord, CollectionRoutes, CoordApi, NameReq, Nodes, RoutesReq, WatchReq,
};
use crate::backend::{CollectionInfo, PartitionInfo, ServerIdentity};
use crate::config::ProxyConfig;
use crate::error::{ApiError, ApiResult};
use crate::rpc::ClusterError;
use cache::CatalogCache;
use ids::IdBlocks;

/// Timings and sizes of a [`ClusterBackend`] (`proxy.*` settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterBackendConfig {
    /// How long a request retries retriable cluster conditions.
    pub retry_deadline: Duration,
    /// How long one catalogue long poll waits.
    pub catalog_watch: Duration,
    /// Auto ids fetched at a time.
    pub id_block: u32,
}

impl Default for ClusterBackendConfig {
    fn default() -> Self {
        ClusterBackendConfig::from(&ProxyConfig::default())
    }
}

impl From<&ProxyConfig> for ClusterBackendConfig {
    fn from(p: &ProxyConfig) -> Self {
        ClusterBackendConfig {
            retry_deadline: Duration::from_millis(p.retry_deadline_ms),
            catalog_watch: Duration::from_millis(p.catalog_watch_ms),
            id_block: p.id_block,
        }
    }
}

/// What the proxy knows about its coordinator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct CoordHealth {
    /// The coordinator answered at least once.
    reached: bool,
    /// The last call failed with this.
    error: Option<String>,
    /// The catalogue version the cache reflects (its entries were fetched at or after it).
    version: Option<u64>,
}

/// A [`crate::backend::Backend`] over the cluster's roles; see the module docs.
pub struct ClusterBackend {
    nodes: Arc<dyn Nodes>,
    config: ClusterBackendConfig,
    identity: ServerIdentity,
    cache: Arc<CatalogCache>,
    ids: IdBlocks,
    /// Rotates the replica a shard read starts with.
    rotation: AtomicUsize,
    metrics: ProxyMetrics,
    coord_health: Arc<watch::Sender<CoordHealth>>,
    watcher: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for ClusterBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterBackend")
            .field("config", &self.config)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl Drop for ClusterBackend {
    fn drop(&mut self) {
        if let Some(w) = self.watcher.lock().take() {
            w.abort();
        }
    }
}

impl ClusterBackend {
    /// A backend over `nodes` that answers as `identity` (`ServerIdentity::standalone()` when
    /// every role runs in this process). Call [`ClusterBackend::watch_catalog`] once a tokio
    /// runtime runs, or cached records are only dropped by DDL through this proxy.
    pub fn new(
        nodes: Arc<dyn Nodes>,
        config: ClusterBackendConfig,
        identity: ServerIdentity,
    ) -> Self {
        ClusterBackend {
            nodes,
            ids: IdBlocks::new(config.id_block),
            config,
            identity,
            cache: Arc::default(),
            rotation: AtomicUsize::new(0),
            metrics: ProxyMetrics::default(),
            coord_health: Arc::new(watch::Sender::new(CoordHealth::default())),
            watcher: Mutex::new(None),
        }
    }

    /// The proxy's counters (register them with [`ProxyMetrics::register`]).
    pub fn metrics(&self) -> &ProxyMetrics {
        &self.metrics
    }

    /// Start the background long poll of the catalogue version (replacing a running one): every
    /// change drops the cached records and routes. It also tracks whether the coordinator
    /// answers ([`ClusterBackend::coordinator_reached`], [`crate::backend::Backend::unhealthy_reasons`]).
    pub fn watch_catalog(&self) {
        let task = tokio::spawn(watch_loop(
            self.nodes.clone(),
            self.cache.clone(),
            self.coord_health.clone(),
            self.metrics.clone(),
            self.config.catalog_watch,
        ));
        if let Some(old) = self.watcher.lock().replace(task) {
            old.abort();
        }
    }

    /// Stop the catalogue watch (the cache is then only dropped by DDL through this proxy).
    pub fn stop_watching(&self) {
        if let Some(w) = self.watcher.lock().take() {
            w.abort();
        }
    }

    /// Resolves once the coordinator has answered (the catalogue watch, or any call).
    pub async fn coordinator_reached(&self) {
        let mut rx = self.coord_health.subscribe();
        let _ = rx.wait_for(|h| h.reached).await;
    }

    /// Resolves once the cache reflects catalogue version `version` or a later one.
    #[cfg(test)]
    async fn caught_up(&self, version: u64) {
        let mut rx = self.coord_health.subscribe();
        let _ = rx
            .wait_for(|h| h.version.is_some_and(|v| v >= version))
            .await;
    }

    fn coord(&self) -> Arc<dyn CoordApi> {
        self.nodes.coord()
    }

    /// Note the outcome of a coordinator call for health reporting; pass the result through.
    fn coord_outcome<T>(&self, r: Result<T, ClusterError>) -> Result<T, ClusterError> {
        let unreachable = match &r {
            Err(e) if e.is_retriable() => Some(e.to_string()),
            _ => None,
        };
        self.coord_health.send_if_modified(|h| {
            let next = CoordHealth {
                reached: h.reached || unreachable.is_none(),
                error: unreachable.clone(),
                version: h.version,
            };
            let changed = *h != next;
            *h = next;
            changed
        });
        r
    }

    /// Drop every cached record and route (after DDL through this proxy, or a stale answer).
    fn drop_cache(&self, why: &'static str) {
        self.cache.clear();
        self.metrics.cache_drops.inc();
        tracing::debug!(why, "cached catalogue dropped");
    }

    /// The collection record of a name or alias, from the cache or the coordinator; and whether
    /// it came from the cache.
    async fn record(&self, name: &str) -> ApiResult<(Arc<CollectionRecord>, bool)> {
        if let Some(r) = self.cache.record(name) {
            return Ok((r, true));
        }
        Ok((self.fetch_record(name).await?, false))
    }

    /// The collection record of a name or alias from the coordinator (cached).
    async fn fetch_record(&self, name: &str) -> ApiResult<Arc<CollectionRecord>> {
        let since = self.cache.records_generation();
        let rec = self.coord_outcome(
            self.coord()
                .describe_collection(NameReq {
                    name: name.to_string(),
                })
                .await,
        )?;
        let rec = Arc::new(rec);
        self.cache.put_record(since, rec.clone());
        Ok(rec)
    }

    /// Run `op` on the record of `name`; when it fails in a way a stale cached record explains
    /// (the collection, a partition or its load state not as cached), drop the cache and run it
    /// once more on a fresh record.
    async fn with_record<T, F, Fut>(&self, name: &str, op: F) -> ApiResult<T>
    where
        F: Fn(Arc<CollectionRecord>) -> Fut,
        Fut: Future<Output = ApiResult<T>>,
    {
        let (rec, cached) = self.record(name).await?;
        match op(rec).await {
            Err(e) if cached && maybe_stale(&e) => {
                self.drop_cache("a cached record looked stale");
                op(self.fetch_record(name).await?).await
            }
            r => r,
        }
    }

    /// The routes of a collection, from the cache or the coordinator.
    async fn routes(&self, collection_id: i64) -> Result<Arc<CollectionRoutes>, ClusterError> {
        if let Some(r) = self.cache.routes(collection_id) {
            return Ok(r);
        }
        let since = self.cache.routes_generation();
        let routes = self.coord_outcome(self.coord().routes(RoutesReq { collection_id }).await)?;
        let routes = Arc::new(routes);
        self.cache.put_routes(since, routes.clone());
        Ok(routes)
    }

    /// The collection's routes; `None` after a pause when the coordinator cannot answer yet (a
    /// channel without an owner, a leader being elected: retried like a node's refusal), the
    /// error once `retry`'s deadline has passed or when it is not retriable.
    async fn routes_or_pause(
        &self,
        collection_id: i64,
        retry: &mut retry::Retry,
    ) -> Result<Option<Arc<CollectionRoutes>>, ClusterError> {
        match self.routes(collection_id).await {
            Ok(r) => Ok(Some(r)),
            Err(e) if e.is_retriable() => {
                if retry.pause().await {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Routes that failed with a retriable error are stale: drop them (once).
    fn routes_failed(&self, used: &Arc<CollectionRoutes>) {
        if self.cache.drop_routes(used) {
            self.metrics.route_refreshes.inc();
            tracing::info!(
                collection_id = used.collection_id,
                "routes are stale (a node refused or did not answer): refreshing"
            );
        }
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.config.retry_deadline
    }
}

/// Errors a stale cached record explains.
fn maybe_stale(e: &ApiError) -> bool {
    matches!(
        e,
        ApiError::Core(
            CoreError::CollectionNotFound(_)
                | CoreError::PartitionNotFound(_)
                | CoreError::CollectionNotLoaded(_)
        )
    )
}

/// A collection's catalogue entry as the Milvus handlers read it. The load state is the
/// record's (loaded or not); `Backend::load_state` asks the coordinator for progress.
fn info(rec: &CollectionRecord) -> CollectionInfo {
    let mut aliases = rec.aliases.clone();
    aliases.sort();
    CollectionInfo {
        id: rec.id,
        name: rec.name.clone(),
        schema: rec.schema.clone(),
        num_shards: rec.num_shards as usize,
        partitions: rec
            .partitions
            .iter()
            .map(|p| PartitionInfo {
                id: p.id,
                name: p.name.clone(),
                created_ts: p.created_ts,
            })
            .collect(),
        aliases,
        indexes: rec.indexes.clone(),
        load_state: if rec.load.is_some() {
            LoadState::Loaded
        } else {
            LoadState::NotLoad
        },
        properties: rec.properties.clone(),
        consistency: rec.consistency,
        created_ts: rec.created_ts,
    }
}

/// The catalogue long poll: drops the cache whenever the version changes (and after an outage,
/// when changes may have been missed).
async fn watch_loop(
    nodes: Arc<dyn Nodes>,
    cache: Arc<CatalogCache>,
    health: Arc<watch::Sender<CoordHealth>>,
    metrics: ProxyMetrics,
    wait: Duration,
) {
    const MAX_PAUSE: Duration = Duration::from_secs(2);
    let mut known: Option<u64> = None;
    let mut pause = Duration::from_millis(50);
    loop {
        let asked = Instant::now();
        let req = WatchReq {
            after: known.unwrap_or(0),
            wait_ms: wait.as_millis() as u64,
        };
        match nodes.coord().watch_catalog(req).await {
            Ok(version) => {
                pause = Duration::from_millis(50);
                let changed = known != Some(version);
                if changed {
                    cache.clear();
                    metrics.cache_drops.inc();
                    metrics
                        .catalog_version
                        .set(i64::try_from(version).unwrap_or(i64::MAX));
                    tracing::info!(
                        version,
                        "catalogue version changed: cached collections and routes dropped"
                    );
                    known = Some(version);
                }
                health.send_if_modified(|h| {
                    let next = CoordHealth {
                        reached: true,
                        error: None,
                        version: Some(version),
                    };
                    let changed = *h != next;
                    *h = next;
                    changed
                });
                if !changed && asked.elapsed() < wait / 10 {
                    // An unchanged answer long before the wait: do not spin on a coordinator
                    // that does not hold long polls.
                    tokio::time::sleep(wait / 10).await;
                }
            }
            Err(e) => {
                let first = health.send_if_modified(|h| {
                    let msg = Some(e.to_string());
                    let changed = h.error != msg;
                    h.error = msg;
                    changed
                });
                if first {
                    tracing::warn!(error = %e, "cannot watch the catalogue; retrying");
                }
                // Changes may be missed while we cannot watch: drop the cache at the next answer.
                known = None;
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_PAUSE);
            }
        }
    }
}
