//! What a streaming node needs of a shard beyond standalone: the sealed segments it still
//! retains and their release, the delete journal, and the applied timestamp.

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use super::{RecoveryStats, Shard, ShardOptions};
use crate::delta::DeltaRead;
use crate::error::{CoreError, Result};
use crate::segment::{SegmentKind, SegmentMeta};

impl Shard {
    pub fn options(&self) -> ShardOptions {
        self.inner.options
    }

    /// The highest applied write timestamp: a read now sees every write up to it.
    pub fn applied_ts(&self) -> u64 {
        self.inner.state.read().applied_ts
    }

    /// Live rows (one per primary key), wherever they are held.
    pub fn live_rows(&self) -> usize {
        self.inner.state.read().pk_map.len()
    }

    /// Live rows of some partitions (all when `None`), wherever they are held.
    pub fn live_rows_in(&self, partitions: &Option<HashSet<i64>>) -> usize {
        let st = self.inner.state.read();
        match partitions {
            None => st.pk_map.len(),
            Some(p) => st
                .pk_map
                .values()
                .filter(|loc| {
                    st.partition_of(loc.handle)
                        .is_some_and(|id| p.contains(&id))
                })
                .count(),
        }
    }

    /// Rows in growing segments (not sealed yet).
    pub fn growing_rows(&self) -> usize {
        let st = self.inner.state.read();
        st.growing
            .values()
            .filter_map(|h| st.segments.get(h))
            .map(|s| s.data().num_rows())
            .sum()
    }

    /// What recovery loaded and replayed when the shard opened.
    pub fn recovery_stats(&self) -> RecoveryStats {
        self.inner.recovered
    }

    /// Group commits acknowledged since the shard opened, and the records in them.
    pub fn commit_stats(&self) -> (u64, u64) {
        (
            self.inner.group_commits.load(Ordering::Relaxed),
            self.inner.records_committed.load(Ordering::Relaxed),
        )
    }

    /// Stop accepting writes and checkpoints (a channel owner that no longer owns the channel);
    /// reads still answer from memory. Nothing is deleted.
    pub fn close(&self) {
        self.inner.closed.store(true, Ordering::SeqCst);
    }

    /// The newer term whose fence stopped this channel owner, if any: it acknowledges no write
    /// any more (docs/distributed.md, "Fencing").
    pub fn fenced_by(&self) -> Option<u64> {
        match self.inner.fenced_by.load(Ordering::SeqCst) {
            0 => None,
            t => Some(t),
        }
    }

    /// The sealed segments held in memory (and searched by the shard's own reads).
    pub fn sealed_segments(&self) -> Vec<SegmentMeta> {
        self.inner
            .state
            .read()
            .segments
            .values()
            .filter_map(|s| match &s.kind {
                SegmentKind::Sealed { meta, .. } => Some(meta.clone()),
                SegmentKind::Growing(_) => None,
            })
            .collect()
    }

    /// The ids of the held sealed segments that a committed checkpoint lists: the ones the
    /// coordinator's catalogue knows and may ask to release. (A segment sealed in memory whose
    /// checkpoint is still being committed is not among them: reporting it would let the
    /// coordinator, which does not know it yet, mistake it for one that left the catalogue.)
    pub fn retained_committed(&self) -> Vec<i64> {
        let st = self.inner.state.read();
        let mut ids: Vec<i64> = st
            .segments
            .values()
            .filter_map(|s| match &s.kind {
                SegmentKind::Sealed { meta, .. } if st.committed.contains(&meta.segment_id) => {
                    Some(meta.segment_id)
                }
                _ => None,
            })
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Stop holding the given sealed segments (query nodes serve them now). Their keys stay in
    /// the primary-key map, so later deletes of them are still recognised and journaled. Ids
    /// that are not held are ignored. Only for shards that retain sealed segments: a
    /// standalone shard owns its sealed segments.
    pub fn release_sealed(&self, segment_ids: &[i64]) -> Result<()> {
        if !self.inner.options.retain_sealed {
            return Err(CoreError::invalid(
                "segment_ids",
                "this shard owns its sealed segments (retain_sealed is off)",
            ));
        }
        let mut st = self.inner.state.write();
        let handles: Vec<u64> = st
            .segments
            .values()
            .filter(|s| s.segment_id().is_some_and(|id| segment_ids.contains(&id)))
            .map(|s| s.handle)
            .collect();
        for h in handles {
            if let Some(seg) = st.segments.remove(&h)
                && let SegmentKind::Sealed { meta, .. } = seg.kind
            {
                tracing::info!(
                    collection_id = self.inner.collection_id,
                    shard = self.inner.shard,
                    segment_id = meta.segment_id,
                    "released sealed segment"
                );
                st.released.insert(h, meta);
            }
        }
        Ok(())
    }

    /// The deletes of sealed rows (by primary key) after `after_ts`, complete up to the
    /// applied timestamp; or the gap when the in-memory journal no longer reaches back there
    /// (read the persisted delta objects of the checkpoint first).
    pub fn deltas_since(&self, after_ts: u64) -> DeltaRead {
        let st = self.inner.state.read();
        st.journal.since(after_ts, st.applied_ts)
    }
}
