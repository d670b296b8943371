//! A shard ("channel") of a collection: its write-ahead log, its growing and sealed segments,
//! the primary-key map that makes the latest write of a key the only visible one, checkpoints
//! (seal + persist + log truncation), recovery, and the per-shard half of search and query.
//!
//! One concern per file: [`state`] (segments and the key map), [`pipeline`] (group commit),
//! [`checkpoint`] (seal, persist, truncate), [`checkpoint_store`] (where checkpoints are
//! committed), [`journal`] (deletes of sealed rows by key), [`compact`], [`index_build`],
//! [`read`] (search, query, get), [`channel`] (what a streaming node needs beyond standalone)
//! and [`recovery`] (open and replay). This file is the `Shard` API.

mod channel;
mod checkpoint;
mod checkpoint_store;
mod compact;
mod index_build;
mod journal;
mod pipeline;
mod read;
mod recovery;
pub(crate) mod state;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use async_trait::async_trait;
use parking_lot::RwLock;
use tokio::sync::{mpsc, oneshot};

use crate::config::CoreConfig;
use crate::error::{CoreError, Result};
use crate::keys;
use crate::request::IndexSpec;
use crate::schema::CollectionSchema;
use crate::store::{MetaStore, ObjectStore};
use crate::tso::{IdSource, TsoSource};
use crate::value::PrimaryKey;
use crate::wal::{Wal, WalRecord};

pub use self::checkpoint_store::{CheckpointStore, MetaCheckpointStore, ShardCheckpoint};
pub use self::read::{Rows, ShardRead};
pub use self::recovery::RecoveryStats;
pub use crate::read::{PreparedSearch, ShardHit};

use self::pipeline::WriteReq;
use self::state::ShardState;

/// Shared services a shard needs.
#[derive(Clone)]
pub struct ShardEnv {
    pub objects: Arc<dyn ObjectStore>,
    pub meta: Arc<dyn MetaStore>,
    pub tso: Arc<dyn TsoSource>,
    pub ids: Arc<dyn IdSource>,
    pub config: Arc<CoreConfig>,
    pub checkpoints: Arc<dyn CheckpointStore>,
    /// Test hooks (None in production).
    #[doc(hidden)]
    pub hooks: Option<Arc<dyn ShardHooks>>,
}

impl std::fmt::Debug for ShardEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardEnv")
            .field("objects", &self.objects)
            .field("meta", &self.meta)
            .field("tso", &self.tso)
            .field("ids", &self.ids)
            .field("config", &self.config)
            .field("checkpoints", &self.checkpoints)
            .field("hooks", &self.hooks.is_some())
            .finish_non_exhaustive()
    }
}

/// Points inside shard operations where a test can interleave other work deterministically.
#[doc(hidden)]
#[async_trait]
pub trait ShardHooks: Send + Sync {
    /// In a checkpoint, after segment ids were allocated and before the growing segments are
    /// sealed.
    async fn before_seal(&self) {}
}

/// How a shard runs: standalone (the defaults: today's behaviour) or as a streaming node's
/// channel in a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardOptions {
    /// The channel's term: log objects are written under it (fencing older owners).
    pub term: u64,
    /// Compact sealed segments in checkpoints (data nodes do it in a cluster).
    pub local_compaction: bool,
    /// Build indexes of sealed segments here (data nodes do it in a cluster).
    pub local_index_builds: bool,
    /// Sealed segments stay in memory and searchable only until [`Shard::release_sealed`]
    /// (query nodes serve them then); on recovery every sealed segment starts released. When
    /// false the shard owns its sealed segments for good (standalone).
    pub retain_sealed: bool,
}

impl Default for ShardOptions {
    fn default() -> Self {
        ShardOptions {
            term: 0,
            local_compaction: true,
            local_index_builds: true,
            retain_sealed: false,
        }
    }
}

/// One segment of a shard as `segment_infos` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentRowInfo {
    /// Persisted id of a sealed segment; a negative in-memory handle for a growing one.
    pub segment_id: i64,
    pub partition_id: i64,
    /// Rows stored (live and deleted).
    pub rows: usize,
    pub sealed: bool,
}

/// Shard internals shared with its background tasks.
struct Inner {
    collection_id: i64,
    shard: usize,
    schema: Arc<CollectionSchema>,
    pk_index: usize,
    env: ShardEnv,
    options: ShardOptions,
    wal: Wal,
    state: RwLock<ShardState>,
    indexes: Arc<RwLock<Vec<IndexSpec>>>,
    checkpoint_lock: tokio::sync::Mutex<()>,
    flush_scheduled: AtomicBool,
    closed: AtomicBool,
    /// The newer term whose fence stopped this owner (0: not fenced).
    fenced_by: AtomicU64,
    /// What recovery loaded and replayed.
    recovered: RecoveryStats,
    /// Group commits acknowledged, and the records in them.
    group_commits: AtomicU64,
    records_committed: AtomicU64,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shard")
            .field("collection_id", &self.collection_id)
            .field("shard", &self.shard)
            .finish()
    }
}

/// One shard of a collection.
#[derive(Debug)]
pub struct Shard {
    inner: Arc<Inner>,
    tx: mpsc::Sender<WriteReq>,
}

impl Shard {
    /// Open (or create) a standalone shard: load its checkpoint and sealed segments, replay its
    /// log.
    pub async fn open(
        collection_id: i64,
        shard: usize,
        schema: Arc<CollectionSchema>,
        indexes: Arc<RwLock<Vec<IndexSpec>>>,
        env: ShardEnv,
    ) -> Result<Shard> {
        Self::open_with(
            collection_id,
            shard,
            schema,
            indexes,
            env,
            ShardOptions::default(),
        )
        .await
    }

    /// Open (or create) a shard with explicit options (a streaming node's channel).
    pub async fn open_with(
        collection_id: i64,
        shard: usize,
        schema: Arc<CollectionSchema>,
        indexes: Arc<RwLock<Vec<IndexSpec>>>,
        env: ShardEnv,
        options: ShardOptions,
    ) -> Result<Shard> {
        let inner =
            Arc::new(recovery::recover(collection_id, shard, schema, indexes, env, options).await?);
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(pipeline::write_pipeline(inner.clone(), rx));
        let shard = Shard { inner, tx };
        shard.schedule_index_builds();
        Ok(shard)
    }

    /// Append a record durably and apply it; returns its timestamp. The record's own `ts` is
    /// replaced by the one the pipeline assigns, so timestamps follow log order.
    pub async fn write(&self, record: WalRecord, bytes: usize) -> Result<u64> {
        let (ack, rx) = oneshot::channel();
        self.tx
            .send(WriteReq { record, bytes, ack })
            .await
            .map_err(|_| CoreError::Internal("shard is closed".into()))?;
        rx.await
            .map_err(|_| CoreError::Internal("shard write pipeline stopped".into()))?
    }

    pub fn num_rows(&self) -> usize {
        self.inner.state.read().pk_map.len()
    }

    /// Persist growing segments and deletes, then truncate the log.
    pub async fn flush(&self) -> Result<()> {
        checkpoint::checkpoint(&self.inner).await
    }

    pub fn schedule_index_builds(&self) {
        let inner = self.inner.clone();
        tokio::spawn(async move {
            if let Err(e) = index_build::build_missing_indexes(&inner).await {
                tracing::error!(collection_id = inner.collection_id, shard = inner.shard, error = %e, "index build failed");
            }
        });
    }

    /// Detach a dropped index from every segment (its files become garbage at the next
    /// checkpoint's index update or are ignored on recovery, since the spec is gone).
    pub fn detach_index(&self, field_id: i64, index_id: i64) {
        let field_index = self.inner.schema.field_index_by_id(field_id);
        let mut st = self.inner.state.write();
        for seg in st.segments.values_mut() {
            if seg
                .indexes
                .get(&field_id)
                .is_some_and(|(id, _)| *id == index_id)
            {
                if let Some(fi) = field_index {
                    seg.restore_vectors(fi);
                }
                seg.indexes.remove(&field_id);
            }
        }
    }

    /// (indexed rows, total sealed rows) for an index id.
    pub fn index_progress(&self, index_id: i64, field_id: i64) -> (usize, usize) {
        let st = self.inner.state.read();
        let mut done = 0;
        let mut total = 0;
        for seg in st.segments.values().filter(|s| s.is_sealed()) {
            total += seg.data().num_rows();
            if seg
                .indexes
                .get(&field_id)
                .is_some_and(|(id, _)| *id == index_id)
            {
                done += seg.data().num_rows();
            }
        }
        (done, total)
    }

    /// Segment ids and row counts (sealed: persisted id; growing: negative handle), released
    /// sealed segments included.
    pub fn segment_infos(&self) -> Vec<SegmentRowInfo> {
        let st = self.inner.state.read();
        let held = st.segments.values().map(|s| SegmentRowInfo {
            segment_id: s.segment_id().unwrap_or(-(s.handle as i64)),
            partition_id: s.partition_id,
            rows: s.data().num_rows(),
            sealed: s.is_sealed(),
        });
        let released = st.released.values().map(|m| SegmentRowInfo {
            segment_id: m.segment_id,
            partition_id: m.partition_id,
            rows: m.num_rows,
            sealed: true,
        });
        held.chain(released).collect()
    }

    /// Sealed rows whose vectors (of some field) live only in an attached index.
    pub fn vectors_in_index_rows(&self) -> usize {
        let st = self.inner.state.read();
        st.segments
            .values()
            .filter(|s| !s.raw_vectors.is_empty())
            .map(|s| s.data().num_rows())
            .sum()
    }

    pub fn memory_bytes(&self) -> usize {
        let st = self.inner.state.read();
        st.segments
            .values()
            .map(|s| {
                s.data().memory_bytes()
                    + s.indexes
                        .values()
                        .map(|(_, i)| i.memory_bytes())
                        .sum::<usize>()
            })
            .sum()
    }

    /// Delete every object of this shard (collection dropped).
    pub async fn destroy(&self) -> Result<()> {
        self.inner.closed.store(true, Ordering::SeqCst);
        let _g = self.inner.checkpoint_lock.lock().await;
        self.inner.wal.destroy().await?;
        let (cid, shard) = (self.inner.collection_id, self.inner.shard);
        for prefix in [
            keys::segments_prefix(cid, shard),
            keys::deltas_prefix(cid, shard),
        ] {
            for k in self.inner.env.objects.list(&prefix).await? {
                self.inner.env.objects.delete(&k).await?;
            }
        }
        self.inner.env.checkpoints.remove(cid, shard).await
    }

    /// Drop all rows of a partition (partition dropped): deletes them like a delete would.
    pub async fn drop_partition(&self, partition_id: i64) -> Result<()> {
        let pks: Vec<PrimaryKey> = {
            let st = self.inner.state.read();
            st.pk_map
                .iter()
                .filter(|(_, loc)| st.partition_of(loc.handle) == Some(partition_id))
                .map(|(pk, _)| pk.clone())
                .collect()
        };
        if !pks.is_empty() {
            self.write(WalRecord::Delete { ts: 0, pks }, 0).await?;
        }
        Ok(())
    }
}

impl Drop for Shard {
    fn drop(&mut self) {
        self.inner.closed.store(true, Ordering::SeqCst);
    }
}
