//! The query node (docs/distributed.md: "Read path", "Hand-offs"): it holds the sealed segments
//! the coordinator assigns to it and serves [`QueryApi`] as a **worker** (reads of the segments
//! it holds at a delegator's snapshot) and, for the (shard, replica) pairs it leads, as a
//! **delegator** (whole-shard reads: the channel owner's growing side plus every query node of
//! the replica, checked for coverage, merged).
//!
//! - `sync`: the long-poll loop on `CoordApi::query_sync` — report what is loaded, receive the
//!   target (segments, delegations, collections) and converge on it.
//! - `load`: loading a segment (data, delete log, keys, indexes, then every delete after its
//!   base timestamp) and joining it to its shard's set; `indexes`: indexes recorded later,
//!   swapped in atomically; `deltas`: deletes from delta objects and the owner's journal.
//! - `worker`, `delegator`: the reads; `coverage`: exactly-once coverage of a shard read.
//! - `hold`: one shard's segments, reads in flight, the watermark lock.
//! - `role`: [`QueryRole`], `ferrovus run query`.
//!
//! [`QueryNode::new`] builds a node for any process: `ferrovus run query` (through
//! [`QueryRole`], with remote [`Nodes`]) or standalone (with in-process [`Nodes`]).

mod budget;
mod coverage;
mod delegator;
mod deltas;
mod hold;
mod indexes;
mod load;
mod metrics;
mod role;
mod spec;
mod sync;
mod worker;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use ferrovus_core::store::ObjectStore;
use parking_lot::{Mutex, RwLock};
use tokio::sync::{Semaphore, watch};
use tokio::task::AbortHandle;

use self::hold::ShardHold;
use self::metrics::QueryMetrics;
pub use self::role::QueryRole;
use crate::api::{
    ChannelRoute, CollectionRecord, Delegation, Hit, NodeId, Nodes, QueryApi, SegmentTarget,
    SegmentsQueryReq, SegmentsSearchReq, ShardQueryReq, ShardQueryResp, ShardSearchReq,
};
use crate::config::{Config, QueryNodeConfig};
use crate::metrics::Metrics;
use crate::node::StopReason;
use crate::rpc::ClusterError;

/// (collection id, shard).
type ShardKey = (i64, u32);
/// (collection id, shard, segment id).
type SegKey = (i64, u32, i64);
/// (collection id, shard, replica id).
type DelegationKey = (i64, u32, i64);

/// What the coordinator last told this node to hold.
#[derive(Debug, Default)]
struct Target {
    /// Whether any answer arrived yet (the coordinator knows this node).
    received: bool,
    version: u64,
    collections: HashMap<i64, Arc<CollectionRecord>>,
    segments: HashMap<SegKey, Arc<SegmentTarget>>,
    delegations: HashMap<DelegationKey, Arc<Delegation>>,
}

/// A query node. Cheap to clone (one shared state).
#[derive(Clone)]
pub struct QueryNode {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for QueryNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryNode")
            .field("node_id", &self.inner.node_id)
            .field("addr", &self.inner.addr)
            .finish_non_exhaustive()
    }
}

struct Inner {
    node_id: NodeId,
    /// The address other nodes reach this one at (reported to the coordinator).
    addr: String,
    nodes: Arc<dyn Nodes>,
    objects: Arc<dyn ObjectStore>,
    config: QueryNodeConfig,
    metrics: QueryMetrics,
    target: RwLock<Arc<Target>>,
    holds: RwLock<HashMap<ShardKey, Arc<ShardHold>>>,
    /// Segment loads in flight.
    loads: Mutex<HashMap<SegKey, AbortHandle>>,
    /// Index loads in flight: (segment, field id) → (index id, task).
    index_loads: Mutex<HashMap<(SegKey, i64), (i64, AbortHandle)>>,
    /// Predicted bytes of the segment loads in flight (the memory budget).
    reserved: Mutex<HashMap<SegKey, usize>>,
    /// Loads refused by the memory budget, with the reason (reported to the coordinator).
    refused: Mutex<BTreeMap<SegKey, String>>,
    load_permits: Semaphore,
    /// Channel routes learnt from the coordinator (for loads on shards this node does not
    /// delegate); dropped when a call on them fails.
    routes: Mutex<HashMap<ShardKey, ChannelRoute>>,
    /// Bumped at every change of what the node holds or reports (the sync loop reports again,
    /// readiness is re-evaluated).
    changed: watch::Sender<u64>,
    draining: AtomicBool,
    stop: watch::Sender<bool>,
    sync_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    gauges: Mutex<()>,
}

impl QueryNode {
    /// A query node `node_id` reachable at `addr`, finding the other roles through `nodes` and
    /// reading segments from `objects`. Registers its metrics on `metrics` when given. Nothing
    /// runs until [`QueryNode::start`].
    pub fn new(
        nodes: Arc<dyn Nodes>,
        objects: Arc<dyn ObjectStore>,
        config: &Config,
        node_id: NodeId,
        addr: impl Into<String>,
        metrics: Option<&Metrics>,
    ) -> QueryNode {
        let qc = config.query.clone();
        QueryNode {
            inner: Arc::new(Inner {
                node_id,
                addr: addr.into(),
                nodes,
                objects,
                load_permits: Semaphore::new(qc.load_parallelism.max(1)),
                config: qc,
                metrics: QueryMetrics::new(metrics),
                target: RwLock::new(Arc::new(Target::default())),
                holds: RwLock::new(HashMap::new()),
                loads: Mutex::new(HashMap::new()),
                index_loads: Mutex::new(HashMap::new()),
                reserved: Mutex::new(HashMap::new()),
                refused: Mutex::new(BTreeMap::new()),
                routes: Mutex::new(HashMap::new()),
                changed: watch::channel(0).0,
                draining: AtomicBool::new(false),
                stop: watch::channel(false).0,
                sync_task: Mutex::new(None),
                gauges: Mutex::new(()),
            }),
        }
    }

    pub fn node_id(&self) -> NodeId {
        self.inner.node_id
    }

    /// Start the sync loop with the coordinator (once; later calls do nothing).
    pub fn start(&self) {
        let mut task = self.inner.sync_task.lock();
        if task.is_none() {
            let inner = self.inner.clone();
            *task = Some(tokio::spawn(inner.sync_loop()));
        }
    }

    /// Whether the node can do its job: registered with the coordinator and every assigned
    /// segment loaded; otherwise why not (for `/readyz`).
    pub fn status(&self) -> Result<(), String> {
        self.inner.status()
    }

    /// A receiver that changes whenever [`QueryNode::status`] may have changed.
    pub fn watch_changes(&self) -> watch::Receiver<u64> {
        self.inner.changed.subscribe()
    }

    /// Hand the node's work off before it stops. On SIGTERM (`Shutdown`): report `draining`, so
    /// the coordinator moves segments and delegations elsewhere, and keep serving until none is
    /// left here (the caller bounds the wait by the shutdown grace). On a lost session: stop at
    /// once (others are taking over already).
    pub async fn drain(&self, reason: StopReason) {
        if reason == StopReason::Shutdown {
            self.inner.draining.store(true, Ordering::SeqCst);
            tracing::info!(node_id = self.inner.node_id, "query node draining");
            self.inner.bump();
            let mut changes = self.inner.changed.subscribe();
            loop {
                let left = {
                    let t = self.inner.target.read();
                    t.received && t.segments.is_empty() && t.delegations.is_empty()
                };
                if left || changes.changed().await.is_err() {
                    break;
                }
            }
            tracing::info!(
                node_id = self.inner.node_id,
                "query node drained: no segment or delegation is assigned to it any more"
            );
        }
        self.stop().await;
    }

    /// Stop the sync loop and every load (reads keep being answered from what is held).
    pub async fn stop(&self) {
        let _ = self.inner.stop.send(true);
        let task = self.inner.sync_task.lock().take();
        if let Some(t) = task {
            let _ = t.await;
        }
        for (_, h) in self.inner.loads.lock().drain() {
            h.abort();
        }
        for (_, (_, h)) in self.inner.index_loads.lock().drain() {
            h.abort();
        }
    }
}

impl Inner {
    fn bump(&self) {
        self.changed.send_modify(|g| *g += 1);
    }

    fn hold(&self, key: ShardKey) -> Option<Arc<ShardHold>> {
        self.holds.read().get(&key).cloned()
    }

    fn current_target(&self) -> Arc<Target> {
        self.target.read().clone()
    }

    /// Gauges that follow what is held.
    fn update_gauges(&self) {
        // One update at a time, so an older count never overwrites a newer one.
        let _one = self.gauges.lock();
        let holds: Vec<Arc<ShardHold>> = self.holds.read().values().cloned().collect();
        let (mut segs, mut rows) = (0usize, 0usize);
        for h in &holds {
            for (_, s) in h.serving() {
                segs += 1;
                rows += s.rows;
            }
        }
        let m = &self.metrics;
        m.segments_loaded.set(segs as i64);
        m.rows_loaded.set(rows as i64);
        m.segments_targeted
            .set(self.target.read().segments.len() as i64);
        m.segments_loading.set(self.loads.lock().len() as i64);
        // The sets' memory sums take their read locks: off the runtime.
        let memory = self.metrics.memory_bytes.clone();
        tokio::task::spawn_blocking(move || {
            memory.set(holds.iter().map(|h| h.set.memory_bytes()).sum::<usize>() as i64);
        });
    }
}

#[async_trait]
impl QueryApi for QueryNode {
    async fn search_shard(&self, req: ShardSearchReq) -> Result<Vec<Vec<Hit>>, ClusterError> {
        let r = self.inner.search_shard(req).await;
        self.inner.metrics.read("search", "shard", r.is_ok());
        r
    }

    async fn query_shard(&self, req: ShardQueryReq) -> Result<ShardQueryResp, ClusterError> {
        let r = self.inner.query_shard(req).await;
        self.inner.metrics.read("query", "shard", r.is_ok());
        r
    }

    async fn search_segments(&self, req: SegmentsSearchReq) -> Result<Vec<Vec<Hit>>, ClusterError> {
        let r = self.inner.search_segments(req).await;
        self.inner.metrics.read("search", "segments", r.is_ok());
        r
    }

    async fn query_segments(&self, req: SegmentsQueryReq) -> Result<ShardQueryResp, ClusterError> {
        let r = self.inner.query_segments(req).await;
        self.inner.metrics.read("query", "segments", r.is_ok());
        r
    }
}
