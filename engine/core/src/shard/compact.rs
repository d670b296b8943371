//! Local compaction: merge small sealed segments of a partition and rewrite segments with many
//! deleted rows, inside a checkpoint.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::Inner;
use super::state::{RowLoc, ShardState};
use crate::keys;
use crate::segment::{DeleteMarks, Segment, SegmentData, SegmentKind, SegmentMeta};
use crate::value::PrimaryKey;

/// A segment to write: (segment id, partition id, rows).
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
        let seg_id = *next_id;
        *next_id += 1;
        let new_handle = st.alloc_handle();
        let mut merged = SegmentData::empty(&inner.schema);
        let mut garbage = Vec::new();
        let mut moved: Vec<(PrimaryKey, u32)> = Vec::new();
        for h in &handles {
            let Some(seg) = st.segments.remove(h) else {
                continue;
            };
            let SegmentKind::Sealed { data, meta, .. } = &seg.kind else {
                continue;
            };
            let live: Vec<usize> = (0..data.num_rows())
                .filter(|r| !seg.deleted.is_marked(*r))
                .collect();
            let base = merged.num_rows();
            for (i, &r) in live.iter().enumerate() {
                if let Some(pk) = data.primary_key(inner.pk_index, r) {
                    moved.push((pk, (base + i) as u32));
                }
            }
            for (i, dst) in merged.columns.iter_mut().enumerate() {
                dst.extend(&seg.take_column(i, &live));
            }
            merged
                .timestamps
                .extend(live.iter().map(|&r| data.timestamps[r]));
            garbage.push(meta.data_key.clone());
            garbage.extend(meta.pks_key.clone());
            garbage.extend(meta.deletes_key.clone());
            garbage.extend(meta.indexes.iter().map(|i| i.key.clone()));
        }
        for (pk, row) in moved {
            st.pk_map.insert(
                pk,
                RowLoc {
                    handle: new_handle,
                    row,
                },
            );
        }
        let rows = merged.num_rows();
        if rows == 0 {
            out.push((None, garbage));
            continue;
        }
        let data = Arc::new(merged);
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
            Segment::sealed(
                new_handle,
                data.clone(),
                meta.clone(),
                DeleteMarks::default(),
            ),
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
