//! The data node (docs/distributed.md: "Roles", "Hand-offs: Compaction, Index"): it keeps
//! nothing durable and runs the tasks the coordinator hands out — index builds and compactions
//! of sealed segments, read from and written to the object store.
//!
//! - `sync`: the long-poll loop on `CoordApi::data_sync` — report free slots, running tasks'
//!   progress and finished results; receive new tasks and cancellations.
//! - `index`: an index build; `compact`: a compaction; both report progress.
//! - `metrics`; `role`: [`DataRole`], `ferrovus run data`.
//!
//! [`DataNode::new`] builds a node for any process: `ferrovus run data` (through [`DataRole`],
//! with remote [`Nodes`]) or standalone (with in-process [`Nodes`]).

mod compact;
mod index;
mod metrics;
mod role;
mod sync;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Instant;

use ferrovus_core::store::ObjectStore;
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::AbortHandle;

use self::metrics::DataMetrics;
pub use self::role::DataRole;
use crate::api::{NodeId, Nodes, Task, TaskKind, TaskOutput, TaskProgress, TaskResult};
use crate::config::{Config, DataNodeConfig};
use crate::metrics::Metrics;
use crate::node::StopReason;

/// A running task's progress, 0.0..=1.0.
#[derive(Debug, Default)]
pub(crate) struct Progress(AtomicU32);

impl Progress {
    pub fn set(&self, fraction: f32) {
        self.0
            .store(fraction.clamp(0.0, 1.0).to_bits(), Ordering::Relaxed);
    }

    pub fn get(&self) -> f32 {
        f32::from_bits(self.0.load(Ordering::Relaxed))
    }
}

struct Running {
    kind: &'static str,
    progress: Arc<Progress>,
    started: Instant,
    abort: AbortHandle,
}

/// A data node. Cheap to clone (one shared state).
#[derive(Clone)]
pub struct DataNode {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for DataNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataNode")
            .field("node_id", &self.inner.node_id)
            .field("addr", &self.inner.addr)
            .finish_non_exhaustive()
    }
}

struct Inner {
    node_id: NodeId,
    addr: String,
    nodes: Arc<dyn Nodes>,
    objects: Arc<dyn ObjectStore>,
    config: DataNodeConfig,
    /// Threads of one index build (`core.index_build_threads`; 0 = all cores).
    build_threads: usize,
    metrics: DataMetrics,
    running: Mutex<HashMap<u64, Running>>,
    /// Results not yet reported to the coordinator.
    finished: Mutex<Vec<TaskResult>>,
    /// Whether the coordinator answered at least once.
    registered: AtomicBool,
    /// Bumped whenever a task starts or ends, or a result is reported.
    changed: watch::Sender<u64>,
    draining: AtomicBool,
    stop: watch::Sender<bool>,
    sync_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl DataNode {
    /// A data node `node_id` reachable at `addr`, taking tasks from the coordinator found
    /// through `nodes` and reading and writing segments in `objects`. Registers its metrics on
    /// `metrics` when given. Nothing runs (and `nodes` is not asked for the coordinator) until
    /// [`DataNode::start`].
    pub fn new(
        nodes: Arc<dyn Nodes>,
        objects: Arc<dyn ObjectStore>,
        config: &Config,
        node_id: NodeId,
        addr: impl Into<String>,
        metrics: Option<&Metrics>,
    ) -> DataNode {
        DataNode {
            inner: Arc::new(Inner {
                node_id,
                addr: addr.into(),
                nodes,
                objects,
                config: config.datanode.clone(),
                build_threads: config.core.index_build_threads,
                metrics: DataMetrics::new(metrics),
                running: Mutex::new(HashMap::new()),
                finished: Mutex::new(Vec::new()),
                registered: AtomicBool::new(false),
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

    /// Ready once the coordinator answered (it knows the node) and while not draining.
    pub fn status(&self) -> Result<(), String> {
        if self.inner.draining.load(Ordering::SeqCst) {
            return Err("draining: finishing its tasks".into());
        }
        if !self.inner.registered.load(Ordering::SeqCst) {
            return Err("registering with the coordinator".into());
        }
        Ok(())
    }

    /// A receiver that changes whenever [`DataNode::status`] may have changed.
    pub fn watch_changes(&self) -> watch::Receiver<u64> {
        self.inner.changed.subscribe()
    }

    /// Before the node stops. On SIGTERM (`Shutdown`): take no new task (report no free slot)
    /// and finish the running ones, reporting their results; the caller bounds the wait by the
    /// shutdown grace, and tasks still running then are abandoned (the coordinator re-queues
    /// them). On a lost session: abandon them at once.
    pub async fn drain(&self, reason: StopReason) {
        if reason == StopReason::Shutdown {
            self.inner.draining.store(true, Ordering::SeqCst);
            self.inner.bump();
            tracing::info!(
                node_id = self.inner.node_id,
                running = self.inner.running.lock().len(),
                "data node draining: finishing its tasks"
            );
            let mut changes = self.inner.changed.subscribe();
            loop {
                let done =
                    self.inner.running.lock().is_empty() && self.inner.finished.lock().is_empty();
                if done || changes.changed().await.is_err() {
                    break;
                }
            }
            tracing::info!(
                node_id = self.inner.node_id,
                "data node drained: every task finished and reported"
            );
        }
        self.stop().await;
    }

    /// Stop the sync loop and abandon the running tasks.
    pub async fn stop(&self) {
        let _ = self.inner.stop.send(true);
        let task = self.inner.sync_task.lock().take();
        if let Some(t) = task {
            let _ = t.await;
        }
        let abandoned: Vec<(u64, Running)> = self.inner.running.lock().drain().collect();
        for (id, r) in abandoned {
            r.abort.abort();
            tracing::warn!(task = id, kind = r.kind, "task abandoned: the node stops");
        }
        self.inner.bump();
    }
}

impl Inner {
    fn bump(&self) {
        self.changed.send_modify(|g| *g += 1);
    }

    /// Free task slots to report.
    fn free_slots(&self) -> u32 {
        if self.draining.load(Ordering::SeqCst) {
            return 0;
        }
        let running = self.running.lock().len() as u32;
        self.config.slots.saturating_sub(running)
    }

    fn progress(&self) -> Vec<TaskProgress> {
        let mut v: Vec<TaskProgress> = self
            .running
            .lock()
            .iter()
            .map(|(id, r)| TaskProgress {
                id: *id,
                fraction: r.progress.get(),
            })
            .collect();
        v.sort_by_key(|p| p.id);
        v
    }

    /// Start a task in the background.
    fn start_task(self: &Arc<Self>, task: Task) {
        let id = task.id;
        if self.running.lock().contains_key(&id) {
            tracing::warn!(task = id, "task handed out twice; it is already running");
            return;
        }
        let kind = match &task.kind {
            TaskKind::IndexBuild { .. } => "index_build",
            TaskKind::Compaction { .. } => "compaction",
        };
        let progress = Arc::new(Progress::default());
        let inner = self.clone();
        let p = progress.clone();
        // The entry exists before the task can finish and remove it.
        let mut running = self.running.lock();
        let handle = tokio::spawn(async move {
            let started = Instant::now();
            let outcome = inner.execute(task, &p).await;
            inner.finish(id, kind, started, outcome);
        });
        running.insert(
            id,
            Running {
                kind,
                progress,
                started: Instant::now(),
                abort: handle.abort_handle(),
            },
        );
        drop(running);
        self.metrics.running.set(self.running.lock().len() as i64);
        self.bump();
    }

    async fn execute(&self, task: Task, progress: &Progress) -> Result<TaskOutput, String> {
        let Task {
            id,
            collection,
            shard,
            kind,
        } = task;
        match kind {
            TaskKind::IndexBuild {
                segment,
                field_id,
                spec,
                index_key,
            } => {
                tracing::info!(
                    task = id,
                    collection_id = collection.id,
                    shard,
                    segment_id = segment.segment_id,
                    field_id,
                    index_id = spec.index_id,
                    rows = segment.num_rows,
                    "index build started"
                );
                index::build(
                    self,
                    &collection.schema,
                    &segment,
                    field_id,
                    &spec,
                    &index_key,
                    progress,
                )
                .await
            }
            TaskKind::Compaction {
                partition_id,
                sources,
                deltas,
                snapshot_ts,
                target_segment_id,
            } => {
                tracing::info!(
                    task = id,
                    collection_id = collection.id,
                    shard,
                    sources = ?sources.iter().map(|s| s.segment_id).collect::<Vec<_>>(),
                    target_segment_id,
                    snapshot_ts,
                    "compaction started"
                );
                compact::run(
                    self,
                    &collection,
                    shard,
                    compact::Job {
                        partition_id,
                        sources: &sources,
                        deltas: &deltas,
                        snapshot_ts,
                        target_segment_id,
                    },
                    progress,
                )
                .await
            }
        }
        .map_err(|e| e.to_string())
    }

    /// A task ended: queue its result for the coordinator, unless it was cancelled meanwhile.
    fn finish(
        &self,
        id: u64,
        kind: &'static str,
        started: Instant,
        outcome: Result<TaskOutput, String>,
    ) {
        if self.running.lock().remove(&id).is_none() {
            return; // cancelled or abandoned: nobody wants the result
        }
        let seconds = started.elapsed().as_secs_f64();
        match &outcome {
            Ok(out) => tracing::info!(task = id, kind, seconds, output = ?out, "task finished"),
            Err(error) => tracing::warn!(task = id, kind, seconds, %error, "task failed"),
        }
        self.metrics.finished(kind, outcome.is_ok(), seconds);
        self.finished.lock().push(TaskResult { id, outcome });
        self.metrics.running.set(self.running.lock().len() as i64);
        self.bump();
    }

    /// The coordinator no longer wants task `id`.
    fn cancel(&self, id: u64) {
        if let Some(r) = self.running.lock().remove(&id) {
            r.abort.abort();
            tracing::info!(
                task = id,
                kind = r.kind,
                seconds = r.started.elapsed().as_secs_f64(),
                "task cancelled by the coordinator"
            );
            self.metrics.cancelled.inc();
        }
        self.metrics.running.set(self.running.lock().len() as i64);
        self.bump();
    }
}
