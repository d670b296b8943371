//! The streaming node (docs/distributed.md: "Write path", "Hand-offs", "Fencing"): it owns the
//! channels the coordinator assigns to it — each a core [`Shard`](ferrovus_core::shard::Shard)
//! with its write-ahead log, growing segments, key map and delete journal — and serves
//! [`StreamingApi`] on them.
//!
//! - `sync`: the long-poll loop on `CoordApi::streaming_sync` — report every channel (term,
//!   ready, applied timestamp, live rows, retained sealed segments), receive the assignment,
//!   open new channels, close the ones no longer assigned, release retained segments.
//! - `channel`: one channel's state and its opening (recovery at the assigned term).
//! - `env`: the coordinator as the shard's timestamp, id and checkpoint source (commits are
//!   term-checked there; a refused one loses the channel).
//! - `service`: the `StreamingApi` handlers, every one checked against the channel's term.
//! - `spec`: request checks against the schema; `metrics`; `role`: [`StreamingRole`].
//!
//! [`StreamingNode::new`] builds a node for any process: `ferrovus run streaming` (through
//! [`StreamingRole`], with remote [`Nodes`]) or standalone (with in-process [`Nodes`]).

pub(crate) mod backoff;
mod channel;
mod env;
mod metrics;
mod role;
mod service;
mod spec;
mod sync;

#[cfg(test)]
pub(crate) mod tests;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ferrovus_core::CoreConfig;
use ferrovus_core::store::memory::MemoryMetaStore;
use ferrovus_core::store::{MetaStore, ObjectStore};
use ferrovus_core::tso::{IdSource, TsoSource};
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

use self::channel::{Channel, OpenChannel};
use self::env::{CoordIds, CoordTso};
use self::metrics::StreamingMetrics;
pub use self::role::StreamingRole;
pub(crate) use self::role::mirror_readiness;
use crate::api::{ChannelId, NodeId, Nodes};
use crate::config::{Config, StreamingNodeConfig};
use crate::metrics::Metrics;
use crate::node::StopReason;
use crate::rpc::ClusterError;

/// What the coordinator last assigned to this node.
#[derive(Debug, Default)]
struct Target {
    /// Whether any answer arrived yet (the coordinator knows this node).
    received: bool,
    version: u64,
    /// Channel → term.
    channels: HashMap<ChannelId, u64>,
}

/// A streaming node. Cheap to clone (one shared state).
#[derive(Clone)]
pub struct StreamingNode {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for StreamingNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamingNode")
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
    core: Arc<CoreConfig>,
    config: StreamingNodeConfig,
    tso: Arc<dyn TsoSource>,
    ids: Arc<dyn IdSource>,
    /// `ShardEnv::meta`: a channel keeps nothing in a metadata store (its checkpoints go to
    /// the coordinator), so an empty in-memory one.
    unused_meta: Arc<dyn MetaStore>,
    metrics: StreamingMetrics,
    target: RwLock<Target>,
    channels: RwLock<HashMap<ChannelId, Arc<Channel>>>,
    /// Bumped at every change of what the node serves or reports (the sync loop reports at
    /// once, readiness is re-evaluated).
    changed: watch::Sender<u64>,
    draining: AtomicBool,
    stop: watch::Sender<bool>,
    sync_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl StreamingNode {
    /// A streaming node `node_id` reachable at `addr`, finding the coordinator through `nodes`
    /// and keeping its channels in `objects`. Registers its metrics on `metrics` when given.
    /// Nothing runs (and `nodes` is not asked for the coordinator) until
    /// [`StreamingNode::start`], so `nodes` may be an in-process set that includes this node.
    pub fn new(
        nodes: Arc<dyn Nodes>,
        objects: Arc<dyn ObjectStore>,
        config: &Config,
        node_id: NodeId,
        addr: impl Into<String>,
        metrics: Option<&Metrics>,
    ) -> StreamingNode {
        StreamingNode {
            inner: Arc::new(Inner {
                node_id,
                addr: addr.into(),
                tso: Arc::new(CoordTso {
                    nodes: nodes.clone(),
                }),
                ids: Arc::new(CoordIds::new(nodes.clone(), config.streaming.id_block)),
                nodes,
                objects,
                core: Arc::new(config.core.clone()),
                config: config.streaming.clone(),
                unused_meta: Arc::new(MemoryMetaStore::default()),
                metrics: StreamingMetrics::new(metrics),
                target: RwLock::new(Target::default()),
                channels: RwLock::new(HashMap::new()),
                changed: watch::channel(0).0,
                draining: AtomicBool::new(false),
                stop: watch::channel(false).0,
                sync_task: Mutex::new(None),
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
    /// channel recovered and serving; otherwise why not (for `/readyz`).
    pub fn status(&self) -> Result<(), String> {
        self.inner.status()
    }

    /// A receiver that changes whenever [`StreamingNode::status`] may have changed.
    pub fn watch_changes(&self) -> watch::Receiver<u64> {
        self.inner.changed.subscribe()
    }

    /// Hand the channels off before the node stops. On SIGTERM (`Shutdown`): flush every open
    /// channel (so the next owner replays little), then report `draining` so the coordinator
    /// moves the channels away, and keep serving until none is assigned here any more (the
    /// caller bounds the wait by the shutdown grace). On a lost session: stop at once (others
    /// are taking over already).
    pub async fn drain(&self, reason: StopReason) {
        if reason == StopReason::Shutdown {
            self.flush_all().await;
            self.inner.draining.store(true, Ordering::SeqCst);
            self.inner.bump();
            let mut changes = self.inner.changed.subscribe();
            loop {
                let left = {
                    let t = self.inner.target.read();
                    t.received && t.channels.is_empty()
                };
                if left || changes.changed().await.is_err() {
                    break;
                }
            }
            tracing::info!(
                node_id = self.inner.node_id,
                "streaming node drained: no channel is assigned to it any more"
            );
        }
        self.stop().await;
    }

    /// Seal and persist the growing data of every open channel (failures are logged: the log
    /// still holds every acknowledged write).
    pub async fn flush_all(&self) {
        let open: Vec<(ChannelId, Arc<OpenChannel>)> = self
            .inner
            .channels
            .read()
            .values()
            .filter_map(|c| Some((c.id, c.open()?)))
            .collect();
        tracing::info!(
            node_id = self.inner.node_id,
            channels = open.len(),
            "flushing the streaming node's channels"
        );
        let flushes = open.iter().map(|(id, o)| async move {
            if let Err(e) = o.shard.flush().await {
                tracing::warn!(channel = %id, error = %e, "flush failed; the log still holds every acknowledged write");
            }
        });
        futures::future::join_all(flushes).await;
    }

    /// Stop the sync loop and close every channel (nothing is deleted).
    pub async fn stop(&self) {
        let _ = self.inner.stop.send(true);
        let task = self.inner.sync_task.lock().take();
        if let Some(t) = task {
            let _ = t.await;
        }
        let channels: Vec<Arc<Channel>> = self
            .inner
            .channels
            .write()
            .drain()
            .map(|(_, c)| c)
            .collect();
        for c in channels {
            c.close();
            tracing::info!(channel = %c.id, term = c.term, "channel closed: the node stops");
        }
        self.inner.bump();
    }
}

impl Inner {
    fn bump(&self) {
        self.changed.send_modify(|g| *g += 1);
    }

    fn channel(&self, id: ChannelId) -> Option<Arc<Channel>> {
        self.channels.read().get(&id).cloned()
    }

    /// The channel `id` served here at `term`, or the retriable error telling the caller to
    /// refresh its routes: `WrongTerm` when this node holds the channel at another term,
    /// `NotServing` when it does not hold it, is still recovering it, or lost it.
    fn serving(&self, id: ChannelId, term: u64) -> Result<Arc<OpenChannel>, ClusterError> {
        let ch = self.channel(id).ok_or_else(|| {
            ClusterError::NotServing(format!(
                "channel {id} is not assigned to streaming node {}",
                self.node_id
            ))
        })?;
        if ch.term != term {
            return Err(ClusterError::WrongTerm {
                channel: id.to_string(),
                expected: ch.term,
                got: term,
            });
        }
        if let Some(open) = ch.open() {
            return Ok(open);
        }
        Err(ClusterError::NotServing(match ch.lost_reason() {
            Some(r) => format!("channel {id} at term {term} is not served here any more: {r}"),
            None => format!(
                "channel {id} at term {term} is recovering on streaming node {}",
                self.node_id
            ),
        }))
    }

    /// The channel `id` was lost at `term` (a refused checkpoint, a newer owner's fence): stop
    /// serving it.
    fn lose(&self, id: ChannelId, term: u64, reason: &str) {
        if let Some(ch) = self.channel(id).filter(|c| c.term == term)
            && ch.lose(reason)
        {
            self.metrics.channels_lost.inc();
            tracing::warn!(channel = %id, term, %reason, "channel lost: not serving it any more");
            self.bump();
        }
    }

    fn status(&self) -> Result<(), String> {
        if self.draining.load(Ordering::SeqCst) {
            return Err("draining: handing its channels off".into());
        }
        let t = self.target.read();
        if !t.received {
            return Err("registering with the coordinator".into());
        }
        let channels = self.channels.read();
        let mut ids: Vec<&ChannelId> = t.channels.keys().collect();
        ids.sort();
        for id in ids {
            let term = t.channels[id];
            match channels.get(id).filter(|c| c.term == term) {
                Some(c) if c.open().is_some() => {}
                Some(c) if c.is_recovering() => {
                    return Err(format!("channel {id} (term {term}) is recovering"));
                }
                Some(c) => {
                    return Err(format!(
                        "channel {id} (term {term}) is assigned here but not served: {}",
                        c.lost_reason().unwrap_or_default()
                    ));
                }
                None => return Err(format!("channel {id} (term {term}) is not open yet")),
            }
        }
        Ok(())
    }

    /// Gauges that follow what is served.
    fn update_gauges(&self) {
        let channels: Vec<Arc<Channel>> = self.channels.read().values().cloned().collect();
        let (mut ready, mut recovering, mut growing, mut live, mut retained) = (0, 0, 0, 0, 0);
        for c in &channels {
            if let Some(o) = c.open() {
                ready += 1;
                growing += o.shard.growing_rows();
                live += o.shard.live_rows();
                retained += o.shard.sealed_segments().len();
                let (groups, records) = o.new_commits();
                self.metrics.group_commits.inc_by(groups);
                self.metrics.group_commit_records.inc_by(records);
            } else if c.is_recovering() {
                recovering += 1;
            }
        }
        let m = &self.metrics;
        m.channels
            .get_or_create(&metrics::StateLabels { state: "ready" })
            .set(ready);
        m.channels
            .get_or_create(&metrics::StateLabels {
                state: "recovering",
            })
            .set(recovering);
        m.growing_rows.set(growing as i64);
        m.live_rows.set(live as i64);
        m.retained_segments.set(retained as i64);
    }
}
