//! Local compaction: pick small sealed segments of a partition and segments with many deleted
//! rows, and merge them inside a checkpoint with the same code data nodes run
//! ([`crate::compaction`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::Inner;
use super::state::{RowLoc, ShardState};
use crate::compaction;
use crate::keys;
use crate::segment::{Segment, SegmentData, SegmentKind, SegmentMeta};

/// A sealed segment whose files a checkpoint writes.
pub(super) struct NewSegment {
    pub meta: SegmentMeta,
    pub data: Arc<SegmentData>,
}

/// Merge small sealed segments of a partition, and rewrite segments with many deleted rows,
/// into new segments without the deleted rows. Runs under the state lock inside a checkpoint, so
/// no write can interleave; the new segments are committed by that checkpoint. Returns the new
/// segments and the object keys of the replaced ones (garbage once the checkpoint commits).
pub(super) fn compact(
    st: &mut ShardState,
    inner: &Inner,
    next_id: &mut i64,
) -> Vec<(Option<NewSegment>, Vec<String>)> {
    let cfg = &inner.env.config;
    let mut by_partition: BTreeMap<i64, Vec<u64>> = BTreeMap::new();
    for seg in st.segments.values() {
        let SegmentKind::Sealed { data, .. } = &seg.kind else {
            continue;
        };
        let rows = data.num_rows();
        let small = rows < cfg.compaction_small_rows;
        let dirty =
            rows > 0 && seg.deleted.count() as f64 / rows as f64 > cfg.compaction_deleted_ratio;
        if small || dirty {
            by_partition
                .entry(seg.partition_id)
                .or_default()
                .push(seg.handle);
        }
    }
    let mut out = Vec::new();
    for (partition_id, handles) in by_partition {
        let dirty_single = handles.len() == 1
            && st.segments.get(&handles[0]).is_some_and(|s| {
                s.deleted.count() as f64 / s.data().num_rows().max(1) as f64
                    > cfg.compaction_deleted_ratio
            });
        if handles.len() < 2 && !dirty_single {
            continue;
        }
        let olds: Vec<Segment> = handles
            .iter()
            .filter_map(|h| st.segments.remove(h))
            .collect();
        let refs: Vec<&Segment> = olds.iter().collect();
        let merged = match compaction::merge(&inner.schema, &refs, st.applied_ts) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(collection_id = inner.collection_id, shard = inner.shard, error = %e, "compaction failed");
                for seg in olds {
                    st.segments.insert(seg.handle, seg);
                }
                continue;
            }
        };
        let seg_id = *next_id;
        *next_id += 1;
        let new_handle = st.alloc_handle();
        let mut garbage = Vec::new();
        let mut new_row = 0u32;
        for (seg, kept) in olds.iter().zip(&merged.kept) {
            if let SegmentKind::Sealed { meta, .. } = &seg.kind {
                garbage.push(meta.data_key.clone());
                garbage.extend(meta.pks_key.clone());
                garbage.extend(meta.deletes_key.clone());
                garbage.extend(meta.indexes.iter().map(|i| i.key.clone()));
            }
            for &row in kept {
                let old = RowLoc {
                    handle: seg.handle,
                    row: row as u32,
                };
                if let Some(pk) = merged.pks.pk(new_row as usize)
                    && let Some(loc) = st.pk_map.get_mut(&pk)
                    && *loc == old
                {
                    *loc = RowLoc {
                        handle: new_handle,
                        row: new_row,
                    };
                }
                new_row += 1;
            }
        }
        let rows = merged.data.num_rows();
        if rows == 0 {
            out.push((None, garbage));
            continue;
        }
        let data = Arc::new(merged.data);
        let (cid, shard) = (inner.collection_id, inner.shard);
        let mut meta = SegmentMeta::new(
            seg_id,
            partition_id,
            rows,
            keys::segment_data(cid, shard, seg_id),
        );
        meta.base_ts = st.applied_ts;
        meta.pks_key = Some(keys::segment_pks(cid, shard, seg_id));
        st.segments.insert(
            new_handle,
            Segment::sealed(new_handle, data.clone(), meta.clone(), merged.deletes),
        );
        tracing::info!(
            collection_id = inner.collection_id,
            shard = inner.shard,
            segment_id = seg_id,
            merged = handles.len(),
            rows,
            "compacted segments"
        );
        out.push((Some(NewSegment { meta, data }), garbage));
    }
    out
}
