//! [`Leader`]: everything a coordinator holds while it leads one term — the fenced store, the
//! TSO and id allocator writing through it, the catalogue snapshot and its write lock, the
//! run-time state, the versions long polls wait on — and its background tasks (session
//! follower, reconciler, garbage collector). A new leader is a new `Leader`: nothing of a
//! previous term's run-time state survives.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrovus_core::CoreConfig;
use ferrovus_core::store::{MetaStore, ObjectStore};
use ferrovus_core::tso::{IdAllocator, TimestampOracle};
use parking_lot::{Mutex, RwLock};
use tokio::sync::{Notify, mpsc, watch};

use super::catalog::{Catalog, Edit};
use super::fence::{FencedStore, store_error};
use super::gc::GcJob;
use super::metrics::CoordMetrics;
use super::runtime::{NodeView, Runtime};
use crate::api::NodeId;
use crate::config::CoordinatorConfig;
use crate::rpc::ClusterError;
use crate::session::{Coordination, RoleKind, SessionEvent, SessionWatch};

/// Key of the persisted-ahead TSO bound (the same as standalone's).
pub const TSO_KEY: &str = "tso/upper";
/// Key of the id blocks (the same as standalone's).
pub const IDS_KEY: &str = "ids/next";

/// What long polls wait on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Versions {
    /// The catalogue version (proxy-visible changes; persisted).
    pub catalog: u64,
    /// Moves at every change of what nodes should hold (channels, placements, distributions,
    /// releases, tasks). Starts at the leader's first timestamp, so it only grows across
    /// takeovers.
    pub targets: u64,
    /// The leader publishes distributions (see `Runtime::settled`).
    pub settled: bool,
}

pub(crate) fn not_leader() -> ClusterError {
    ClusterError::NotLeader { leader: None }
}

/// The guard of the catalogue write lock: [`Leader::commit`] needs it.
pub type WriteGuard<'a> = tokio::sync::MutexGuard<'a, ()>;

/// A leader's state for one term.
pub struct Leader {
    pub store: Arc<FencedStore>,
    pub objects: Arc<dyn ObjectStore>,
    pub tso: Arc<TimestampOracle>,
    pub ids: Arc<IdAllocator>,
    pub config: CoordinatorConfig,
    pub core: CoreConfig,
    pub metrics: Arc<CoordMetrics>,
    catalog: RwLock<Arc<Catalog>>,
    write: tokio::sync::Mutex<()>,
    pub rt: Mutex<Runtime>,
    versions: watch::Sender<Versions>,
    kick: Notify,
    stopped: watch::Sender<bool>,
    gc: mpsc::UnboundedSender<GcJob>,
    /// Nodes whose long poll was abandoned, to probe ([`super::liveness`]).
    suspects: mpsc::UnboundedSender<NodeId>,
    pub(super) polls: Arc<super::liveness::Polls>,
}

impl std::fmt::Debug for Leader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leader")
            .field("fence", self.store.fence())
            .field("versions", &*self.versions.borrow())
            .finish_non_exhaustive()
    }
}

/// Work a new leader starts with.
pub struct Takeover {
    pub store: Arc<FencedStore>,
    pub objects: Arc<dyn ObjectStore>,
    pub coordination: Arc<dyn Coordination>,
    pub catalog: Catalog,
    pub config: CoordinatorConfig,
    pub core: CoreConfig,
    pub metrics: Arc<CoordMetrics>,
}

impl Leader {
    /// Opens the TSO and id allocator through the fenced store (the first writes of the term:
    /// they fail if someone else already leads), learns the live sessions, and starts the
    /// background tasks.
    pub async fn take_over(t: Takeover) -> Result<Arc<Leader>, ClusterError> {
        let Takeover {
            store,
            objects,
            coordination,
            catalog,
            config,
            core,
            metrics,
        } = t;
        let fenced: Arc<dyn MetaStore> = store.clone();
        let tso = Arc::new(
            TimestampOracle::open(fenced.clone(), TSO_KEY)
                .await
                .map_err(store_error)?,
        );
        let ids = Arc::new(
            IdAllocator::open(fenced, IDS_KEY, 1_000)
                .await
                .map_err(store_error)?,
        );
        let base = tso.alloc(1).await.map_err(store_error)?;
        let sessions = coordination
            .watch_sessions(None)
            .await
            .map_err(|e| ClusterError::Unavailable(format!("watching sessions: {e}")))?;
        let now = Instant::now();
        let mut rt = Runtime::new(now, base);
        for s in &sessions.initial {
            if s.role != RoleKind::Coordinator && s.role != RoleKind::Proxy {
                rt.session_added(s.role, s.node_id, s.grpc_address.clone());
            }
        }
        let (gc_tx, gc_rx) = mpsc::unbounded_channel();
        let (suspects, suspects_rx) = mpsc::unbounded_channel();
        let leader = Arc::new(Leader {
            store,
            objects,
            tso,
            ids,
            versions: watch::channel(Versions {
                catalog: catalog.version,
                targets: base,
                settled: false,
            })
            .0,
            catalog: RwLock::new(Arc::new(catalog)),
            write: tokio::sync::Mutex::new(()),
            rt: Mutex::new(rt),
            kick: Notify::new(),
            stopped: watch::channel(false).0,
            gc: gc_tx,
            suspects,
            polls: Arc::default(),
            config,
            core,
            metrics,
        });
        leader.update_gauges();
        tokio::spawn(leader.clone().follow_sessions(coordination, sessions));
        tokio::spawn(leader.clone().reconcile_loop());
        tokio::spawn(leader.clone().gc_loop(gc_rx));
        tokio::spawn(leader.clone().probe_loop(suspects_rx));
        Ok(leader)
    }

    /// Stops acting: every call fails with `NotLeader`, background tasks end, long polls return.
    pub fn stop(&self) {
        self.store.depose();
        self.stopped.send_replace(true);
    }

    pub fn is_stopped(&self) -> bool {
        *self.stopped.borrow() || self.store.is_deposed()
    }

    pub async fn stopped(&self) {
        let mut rx = self.stopped.subscribe();
        tokio::select! {
            _ = rx.wait_for(|s| *s) => {}
            _ = self.store.deposed() => {}
        }
    }

    /// `NotLeader` once this term is over.
    pub fn check(&self) -> Result<(), ClusterError> {
        if self.is_stopped() {
            Err(not_leader())
        } else {
            Ok(())
        }
    }

    pub fn snapshot(&self) -> Arc<Catalog> {
        self.catalog.read().clone()
    }

    /// The catalogue write lock: DDL and reconciliation are serialised behind it.
    pub async fn lock(&self) -> Result<WriteGuard<'_>, ClusterError> {
        let g = self.write.lock().await;
        self.check()?;
        Ok(g)
    }

    /// Persists `edit` as one fenced transaction, then swaps it in (a failed write leaves the
    /// catalogue as it was). Wakes long polls and the reconciler.
    pub async fn commit(
        &self,
        _guard: &WriteGuard<'_>,
        edit: Edit,
    ) -> Result<Arc<Catalog>, ClusterError> {
        self.check()?;
        if edit.is_empty() {
            return Ok(self.snapshot());
        }
        let (cat, ops) = edit.finish().map_err(ClusterError::from)?;
        let n = ops.len();
        if !self.store.txn(vec![], ops).await.map_err(store_error)? {
            return Err(ClusterError::Internal(
                "a catalogue transaction without conditions was refused".into(),
            ));
        }
        let cat = Arc::new(cat);
        *self.catalog.write() = cat.clone();
        tracing::debug!(ops = n, version = cat.version, "catalogue change committed");
        self.versions.send_modify(|v| {
            v.catalog = cat.version;
            v.targets += 1;
        });
        self.update_gauges();
        self.kick();
        Ok(cat)
    }

    fn update_gauges(&self) {
        let cat = self.snapshot();
        let m = &self.metrics;
        m.catalog_version.set(cat.version as i64);
        m.collections.set(cat.collections.len() as i64);
        m.segments.set(
            cat.collections
                .values()
                .map(|c| c.segments.len() as i64)
                .sum(),
        );
        m.unassigned_channels.set(
            cat.collections
                .values()
                .flat_map(|c| &c.channels)
                .filter(|ch| ch.node.is_none())
                .count() as i64,
        );
    }

    /// Something nodes hold changed: wake their long polls. Returns the new version.
    pub fn touch(&self) -> u64 {
        let mut out = 0;
        self.versions.send_modify(|v| {
            v.targets += 1;
            out = v.targets;
        });
        out
    }

    /// Distributions are published from now on: wake the long polls that waited for it.
    pub fn set_settled(&self) {
        self.versions.send_modify(|v| {
            v.settled = true;
            v.targets += 1;
        });
    }

    pub fn versions(&self) -> Versions {
        *self.versions.borrow()
    }

    /// Waits up to `wait` for `ready` to hold; `NotLeader` if the term ends meanwhile.
    pub async fn wait_for(
        &self,
        wait: Duration,
        ready: impl Fn(&Versions) -> bool,
    ) -> Result<(), ClusterError> {
        let mut rx = self.versions.subscribe();
        tokio::select! {
            _ = rx.wait_for(|v| ready(v)) => {}
            _ = self.stopped() => {}
            _ = tokio::time::sleep(wait) => {}
        }
        self.check()
    }

    /// A long poll's wait, capped below the RPC timeout.
    pub fn wait_time(&self, wait_ms: u64) -> Duration {
        Duration::from_millis(wait_ms.min(self.config.max_wait_ms))
    }

    /// Asks the reconciler for a round.
    pub fn kick(&self) {
        self.kick.notify_one();
    }

    pub async fn kicked(&self) {
        self.kick.notified().await
    }

    pub fn grace(&self) -> Duration {
        Duration::from_millis(self.config.node_loss_grace_ms)
    }

    pub fn view(&self) -> NodeView {
        self.rt.lock().view(Instant::now(), self.grace())
    }

    pub fn gc(&self, job: GcJob) {
        let _ = self.gc.send(job);
    }

    /// A node is gone as of `at` (its session ended, or a probe found it dead): its tasks are
    /// handed out again, and its channels and segments move once the grace after `at` ends.
    pub(super) fn node_lost(&self, node_id: NodeId, at: Instant) {
        let requeued = {
            let mut rt = self.rt.lock();
            rt.session_removed(node_id, at);
            rt.tasks.drop_node(node_id)
        };
        for r in requeued {
            tracing::info!(task = r.task.id, node = node_id, what = %super::tasks::describe(&r.task), "task handed out again: its node left");
        }
        self.touch();
        self.kick();
    }

    /// Watches a node's long poll: abandoned, the node is probed.
    pub(super) fn watch_sync(&self, node: NodeId) -> super::liveness::SyncWatch {
        super::liveness::SyncWatch::new(self.suspects.clone(), self.polls.clone(), node)
    }

    /// Applies session changes until the term ends.
    async fn follow_sessions(
        self: Arc<Self>,
        coordination: Arc<dyn Coordination>,
        mut w: SessionWatch,
    ) {
        self.kick();
        loop {
            let ev = tokio::select! {
                _ = self.stopped() => return,
                ev = w.next() => ev,
            };
            let now = Instant::now();
            match ev {
                Some(SessionEvent::Added(info)) => {
                    if matches!(info.role, RoleKind::Coordinator | RoleKind::Proxy) {
                        continue;
                    }
                    tracing::info!(role = %info.role, node = info.node_id, addr = %info.grpc_address, "node joined");
                    self.rt
                        .lock()
                        .session_added(info.role, info.node_id, info.grpc_address);
                    self.kick();
                }
                Some(SessionEvent::Removed { role, node_id }) => {
                    if matches!(role, RoleKind::Coordinator | RoleKind::Proxy) {
                        continue;
                    }
                    tracing::info!(%role, node = node_id, grace_ms = self.config.node_loss_grace_ms, "node session lost");
                    self.node_lost(node_id, now);
                }
                None => {
                    // The backend dropped the watch: watch again, reconciling with a listing.
                    tracing::warn!("session watch ended; watching again");
                    loop {
                        tokio::select! {
                            _ = self.stopped() => return,
                            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                        }
                        match coordination.watch_sessions(None).await {
                            Ok(nw) => {
                                let now = Instant::now();
                                let mut rt = self.rt.lock();
                                let live: Vec<u64> = nw.initial.iter().map(|s| s.node_id).collect();
                                let known: Vec<u64> = rt.nodes.keys().copied().collect();
                                for id in known {
                                    if !live.contains(&id) {
                                        rt.session_removed(id, now);
                                    }
                                }
                                for s in &nw.initial {
                                    if !matches!(s.role, RoleKind::Coordinator | RoleKind::Proxy) {
                                        rt.session_added(s.role, s.node_id, s.grpc_address.clone());
                                    }
                                }
                                w = nw;
                                break;
                            }
                            Err(e) => tracing::warn!(error = %e, "watching sessions failed"),
                        }
                    }
                    self.kick();
                }
            }
        }
    }
}
