//! One channel on this node: the term it was assigned at, its state (recovering, ready, lost)
//! and how it opens: `CoordApi::open_channel` for the schema and checkpoint, then the core
//! shard's recovery (fence older owners, keys of the checkpoint's sealed segments, deltas, log
//! replay) with the coordinator as timestamp, id and checkpoint source. Opening is retried with
//! back-off until it succeeds, the coordinator refuses it (the channel moved on), or the channel
//! is closed here.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use ferrovus_core::CoreError;
use ferrovus_core::schema::CollectionSchema;
use ferrovus_core::shard::{Shard, ShardEnv, ShardOptions};
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;
use tokio::task::AbortHandle;

use super::Inner;
use super::backoff::Backoff;
use super::env::CoordCheckpoints;
use crate::api::{ChannelId, ChannelTermReq};
use crate::rpc::ClusterError;

/// A recovered channel, serving.
pub(super) struct OpenChannel {
    pub shard: Shard,
    pub schema: Arc<CollectionSchema>,
    /// Group-commit counters of the shard already added to the metrics.
    seen_commits: Mutex<(u64, u64)>,
}

impl OpenChannel {
    /// The group commits and records acknowledged since the last call.
    pub fn new_commits(&self) -> (u64, u64) {
        let (groups, records) = self.shard.commit_stats();
        let mut seen = self.seen_commits.lock();
        let new = (
            groups.saturating_sub(seen.0),
            records.saturating_sub(seen.1),
        );
        *seen = (groups, records);
        new
    }
}

pub(super) enum ChannelState {
    /// Being opened (recovery runs).
    Recovering,
    Ready(Arc<OpenChannel>),
    /// No longer served here at this term (refused checkpoint, fenced, refused open, closed).
    Lost(String),
}

/// A channel assigned to this node at `term`.
pub(super) struct Channel {
    pub id: ChannelId,
    pub term: u64,
    pub since: Instant,
    state: RwLock<ChannelState>,
    closed: watch::Sender<bool>,
    task: Mutex<Option<AbortHandle>>,
}

/// Why opening failed.
enum OpenError {
    /// The channel is not ours at this term (the coordinator refused, or a newer owner fenced
    /// the log): do not retry.
    Refused(String),
    /// Worth another attempt.
    Failed(String),
}

impl From<ClusterError> for OpenError {
    fn from(e: ClusterError) -> Self {
        match e {
            ClusterError::WrongTerm { .. }
            | ClusterError::NotServing(_)
            | ClusterError::Conflict(_)
            | ClusterError::CollectionNotFound(_) => OpenError::Refused(e.to_string()),
            other => OpenError::Failed(other.to_string()),
        }
    }
}

impl From<CoreError> for OpenError {
    fn from(e: CoreError) -> Self {
        match e {
            // A newer owner fenced the log.
            CoreError::Conflict(m) => OpenError::Refused(m),
            other => OpenError::Failed(other.to_string()),
        }
    }
}

impl Channel {
    pub fn new(id: ChannelId, term: u64) -> Arc<Channel> {
        Arc::new(Channel {
            id,
            term,
            since: Instant::now(),
            state: RwLock::new(ChannelState::Recovering),
            closed: watch::channel(false).0,
            task: Mutex::new(None),
        })
    }

    /// The open channel, when ready.
    pub fn open(&self) -> Option<Arc<OpenChannel>> {
        match &*self.state.read() {
            ChannelState::Ready(o) => Some(o.clone()),
            _ => None,
        }
    }

    pub fn is_recovering(&self) -> bool {
        matches!(*self.state.read(), ChannelState::Recovering)
    }

    /// Why the channel is not served any more, if it is not.
    pub fn lost_reason(&self) -> Option<String> {
        match &*self.state.read() {
            ChannelState::Lost(r) => Some(r.clone()),
            _ => None,
        }
    }

    fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    /// Ready, unless the channel was closed or lost meanwhile. Returns whether it became ready.
    fn set_ready(&self, open: OpenChannel) -> bool {
        let mut st = self.state.write();
        if self.is_closed() || !matches!(*st, ChannelState::Recovering) {
            open.shard.close();
            return false;
        }
        *st = ChannelState::Ready(Arc::new(open));
        true
    }

    /// Stop serving: the shard refuses writes from now on (reads in flight finish). Nothing is
    /// deleted. Returns whether the state changed.
    pub fn lose(&self, reason: impl Into<String>) -> bool {
        let mut st = self.state.write();
        if let ChannelState::Lost(_) = *st {
            return false;
        }
        if let ChannelState::Ready(open) = &*st {
            open.shard.close();
        }
        *st = ChannelState::Lost(reason.into());
        true
    }

    /// The channel is no longer assigned here: stop opening it, stop serving it, stop retrying
    /// its checkpoint commits. Nothing is deleted.
    pub fn close(&self) {
        let _ = self.closed.send(true);
        if let Some(t) = self.task.lock().take() {
            t.abort();
        }
        self.lose("closed: no longer assigned to this node");
    }
}

impl Inner {
    /// Start opening `ch` in the background.
    pub(super) fn spawn_open(self: &Arc<Self>, ch: Arc<Channel>) {
        let inner = self.clone();
        let c = ch.clone();
        let task = tokio::spawn(async move { inner.open_channel(c).await });
        *ch.task.lock() = Some(task.abort_handle());
        if ch.is_closed() {
            task.abort();
        }
    }

    async fn open_channel(self: Arc<Self>, ch: Arc<Channel>) {
        let mut backoff = Backoff::new(Duration::from_millis(self.config.retry_max_ms));
        let mut closed = ch.closed.subscribe();
        tracing::info!(channel = %ch.id, term = ch.term, node_id = self.node_id, "opening channel");
        loop {
            if ch.is_closed() {
                return;
            }
            match self.try_open(&ch).await {
                Ok(open) => {
                    let stats = open.shard.recovery_stats();
                    let (rows, applied_ts) = (open.shard.live_rows(), open.shard.applied_ts());
                    if ch.set_ready(open) {
                        self.metrics.channels_opened.inc();
                        self.metrics.replayed_records.inc_by(stats.replayed as u64);
                        tracing::info!(
                            channel = %ch.id,
                            term = ch.term,
                            segments = stats.segments,
                            replayed_records = stats.replayed,
                            live_rows = rows,
                            applied_ts,
                            seconds = ch.since.elapsed().as_secs_f64(),
                            "channel recovered and serving"
                        );
                        self.bump();
                    }
                    return;
                }
                Err(OpenError::Refused(reason)) => {
                    tracing::warn!(channel = %ch.id, term = ch.term, %reason, "opening the channel was refused; not serving it");
                    if ch.lose(format!("opening was refused: {reason}")) {
                        self.metrics.channels_lost.inc();
                        self.bump();
                    }
                    return;
                }
                Err(OpenError::Failed(error)) => {
                    let wait = backoff.next_delay();
                    tracing::warn!(
                        channel = %ch.id,
                        term = ch.term,
                        %error,
                        retry_in_ms = wait.as_millis() as u64,
                        "opening the channel failed; retrying"
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = closed.changed() => {}
                    }
                }
            }
        }
    }

    async fn try_open(self: &Arc<Self>, ch: &Arc<Channel>) -> Result<OpenChannel, OpenError> {
        let coord = self.nodes.coord();
        let resp = coord
            .open_channel(ChannelTermReq {
                channel: ch.id,
                term: ch.term,
                node: self.node_id,
            })
            .await?;
        let record = resp.collection;
        if record.id != ch.id.collection_id || ch.id.shard >= record.num_shards {
            return Err(OpenError::Refused(format!(
                "the coordinator answered collection {} with {} shards for channel {}",
                record.id, record.num_shards, ch.id
            )));
        }
        let weak: Weak<Inner> = Arc::downgrade(self);
        let (id, term) = (ch.id, ch.term);
        let checkpoints = CoordCheckpoints {
            coord: coord.clone(),
            channel: ch.id,
            term: ch.term,
            node: self.node_id,
            current: Mutex::new(resp.checkpoint),
            retry_max: Duration::from_millis(self.config.retry_max_ms),
            closed: ch.closed.subscribe(),
            on_lost: Box::new(move |reason| {
                if let Some(inner) = weak.upgrade() {
                    inner.lose(id, term, &reason);
                }
            }),
        };
        let env = ShardEnv {
            objects: self.objects.clone(),
            meta: self.unused_meta.clone(),
            tso: self.tso.clone(),
            ids: self.ids.clone(),
            config: self.core.clone(),
            checkpoints: Arc::new(checkpoints),
            hooks: None,
        };
        let schema = Arc::new(record.schema);
        let options = ShardOptions {
            term: ch.term,
            local_compaction: false,
            local_index_builds: false,
            retain_sealed: true,
        };
        let shard = Shard::open_with(
            ch.id.collection_id,
            ch.id.shard as usize,
            schema.clone(),
            Arc::new(RwLock::new(record.indexes)),
            env,
            options,
        )
        .await?;
        Ok(OpenChannel {
            shard,
            schema,
            seen_commits: Mutex::new((0, 0)),
        })
    }
}
