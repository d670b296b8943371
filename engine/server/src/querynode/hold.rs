//! What the node holds of one shard: the core's [`SegmentSet`] (segments and the delete
//! watermark), which of its segments serve reads, the reads in flight on each, and the lock
//! that serialises every change of the watermark (delta pulls and segments joining).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use ferrovus_core::delta::DeltaObjectMeta;
use ferrovus_core::schema::CollectionSchema;
use ferrovus_core::sealed::{SealedSegment, SegmentSet};
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::rpc::ClusterError;

/// One held segment.
#[derive(Debug, Clone, Default)]
pub(crate) struct HeldSegment {
    pub rows: usize,
    /// Attached indexes: field id → index id.
    pub indexes: BTreeMap<i64, i64>,
    /// Reads in flight on it.
    readers: usize,
    /// Being released: no new reads; removed once `readers` is 0.
    releasing: bool,
}

/// The segments of one (collection, shard) on this node.
#[derive(Debug)]
pub(crate) struct ShardHold {
    pub collection_id: i64,
    pub shard: u32,
    pub schema: Arc<CollectionSchema>,
    pub set: Arc<SegmentSet>,
    /// Held while the set's watermark moves (a delta pull) or a segment joins: one pull in
    /// flight per shard, and a joining segment sees a watermark that cannot move under it.
    pub pull: tokio::sync::Mutex<()>,
    segments: Mutex<HashMap<i64, HeldSegment>>,
    reads_done: Notify,
    /// The shard's persisted delta objects as the coordinator last listed them.
    deltas: Mutex<Vec<DeltaObjectMeta>>,
}

/// Reads in flight on some segments of a shard; dropping it lets a release go ahead.
#[derive(Debug)]
pub(crate) struct ReadGuard {
    hold: Arc<ShardHold>,
    ids: Vec<i64>,
}

impl Drop for ReadGuard {
    fn drop(&mut self) {
        let mut segs = self.hold.segments.lock();
        for id in &self.ids {
            if let Some(s) = segs.get_mut(id) {
                s.readers = s.readers.saturating_sub(1);
            }
        }
        drop(segs);
        self.hold.reads_done.notify_waiters();
    }
}

impl ShardHold {
    pub fn new(collection_id: i64, shard: u32, schema: Arc<CollectionSchema>) -> Self {
        ShardHold {
            collection_id,
            shard,
            set: Arc::new(SegmentSet::new(
                collection_id,
                shard as usize,
                schema.clone(),
            )),
            schema,
            pull: tokio::sync::Mutex::new(()),
            segments: Mutex::new(HashMap::new()),
            reads_done: Notify::new(),
            deltas: Mutex::new(Vec::new()),
        }
    }

    /// Start a read of `ids`: every one must be serving here (else `NotServing` naming it).
    pub fn acquire(self: &Arc<Self>, ids: &[i64], node: u64) -> Result<ReadGuard, ClusterError> {
        let mut segs = self.segments.lock();
        if let Some(missing) = ids
            .iter()
            .find(|id| segs.get(id).is_none_or(|s| s.releasing))
        {
            return Err(ClusterError::NotServing(format!(
                "segment {missing} of collection {} shard {} is not loaded on query node {node}",
                self.collection_id, self.shard
            )));
        }
        for id in ids {
            if let Some(s) = segs.get_mut(id) {
                s.readers += 1;
            }
        }
        Ok(ReadGuard {
            hold: self.clone(),
            ids: ids.to_vec(),
        })
    }

    /// A segment joined the set and serves reads from now on.
    pub fn add(&self, id: i64, rows: usize, indexes: BTreeMap<i64, i64>) {
        self.segments.lock().insert(
            id,
            HeldSegment {
                rows,
                indexes,
                ..HeldSegment::default()
            },
        );
    }

    /// Serving segments (not being released).
    pub fn serving(&self) -> Vec<(i64, HeldSegment)> {
        let mut v: Vec<(i64, HeldSegment)> = self
            .segments
            .lock()
            .iter()
            .filter(|(_, s)| !s.releasing)
            .map(|(id, s)| (*id, s.clone()))
            .collect();
        v.sort_by_key(|(id, _)| *id);
        v
    }

    /// Whether `id` is held (serving or being released).
    pub fn holds(&self, id: i64) -> bool {
        self.segments.lock().contains_key(&id)
    }

    pub fn is_empty(&self) -> bool {
        self.segments.lock().is_empty()
    }

    /// Record an attached (`Some`) or detached (`None`) index; false if the segment is gone.
    pub fn set_index(&self, id: i64, field_id: i64, index_id: Option<i64>) -> bool {
        let mut segs = self.segments.lock();
        let Some(s) = segs.get_mut(&id) else {
            return false;
        };
        match index_id {
            Some(i) => s.indexes.insert(field_id, i),
            None => s.indexes.remove(&field_id),
        };
        true
    }

    /// Stop new reads of `id`; true the first time (the caller then calls [`Self::release`]).
    pub fn start_release(&self, id: i64) -> bool {
        match self.segments.lock().get_mut(&id) {
            Some(s) if !s.releasing => {
                s.releasing = true;
                true
            }
            _ => false,
        }
    }

    /// Once the reads in flight on `id` finished, drop it from the set (after
    /// [`Self::start_release`]). Returns the segment.
    pub async fn release(&self, id: i64) -> Option<SealedSegment> {
        loop {
            let done = self.reads_done.notified();
            match self.segments.lock().get(&id) {
                None => return None,
                Some(s) if s.readers == 0 => break,
                Some(_) => {}
            }
            done.await;
        }
        let set = self.set.clone();
        // The set's write lock waits for searches of other segments in flight: off the runtime.
        let removed = tokio::task::spawn_blocking(move || set.remove(&[id]).pop())
            .await
            .ok()
            .flatten();
        self.segments.lock().remove(&id);
        removed
    }

    pub fn deltas(&self) -> Vec<DeltaObjectMeta> {
        self.deltas.lock().clone()
    }

    pub fn set_deltas(&self, deltas: Vec<DeltaObjectMeta>) {
        *self.deltas.lock() = deltas;
    }

    /// Deleted rows per held segment.
    pub fn deleted_rows(&self) -> HashMap<i64, usize> {
        let mut out = HashMap::new();
        self.set.for_each_segment(|s| {
            out.insert(s.id(), s.segment().deleted.count());
        });
        out
    }
}
