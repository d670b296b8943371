//! Checkpoints: seal the growing segments, persist new segment files and changed delete logs,
//! commit the checkpoint record, then truncate the log and remove superseded files.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::compact::compact;
use super::index_build::build_missing_indexes;
use super::{Inner, ShardCheckpoint, checkpoint_key};
use crate::error::{CoreError, Result};
use crate::keys;
use crate::segment::{Segment, SegmentData, SegmentKind, SegmentMeta};

/// Seal growing segments, persist them and changed delete logs, commit the checkpoint, truncate
/// the log. Crash-safe at every step: the checkpoint record is the commit point.
pub(super) async fn checkpoint(inner: &Arc<Inner>) -> Result<()> {
    let _g = inner.checkpoint_lock.lock().await;
    if inner.closed.load(Ordering::SeqCst) {
        return Ok(());
    }
    // 1. Under the lock: seal growing segments and snapshot what must be written.
    let growing: Vec<(u64, i64)> = {
        let st = inner.state.read();
        st.growing.iter().map(|(p, h)| (*h, *p)).collect()
    };
    let mut new_ids = Vec::new();
    for _ in &growing {
        new_ids.push(inner.env.ids.alloc(1).await?);
    }
    // Ids for compacted segments: at most one per partition.
    let partitions: HashSet<i64> = inner
        .state
        .read()
        .segments
        .values()
        .map(|s| s.partition_id)
        .collect();
    let compact_first = inner.env.ids.alloc(partitions.len() as u32 + 1).await?;
    let mut compacted_garbage = Vec::new();
    let (next_lsn, to_write, delete_snapshots, mut metas) = {
        let mut st = inner.state.write();
        let mut to_write = Vec::new();
        for ((handle, partition_id), seg_id) in growing.iter().zip(&new_ids) {
            st.growing.remove(partition_id);
            let Some(seg) = st.segments.get_mut(handle) else {
                continue;
            };
            let SegmentKind::Growing(data) = std::mem::replace(
                &mut seg.kind,
                SegmentKind::Growing(SegmentData {
                    columns: vec![],
                    timestamps: vec![],
                }),
            ) else {
                continue;
            };
            if data.num_rows() == 0 {
                st.segments.remove(handle);
                continue;
            }
            let data = Arc::new(data);
            let meta = SegmentMeta {
                segment_id: *seg_id,
                partition_id: *partition_id,
                num_rows: data.num_rows(),
                data_key: keys::segment_data(inner.collection_id, inner.shard, *seg_id),
                deletes_key: None,
                deletes_version: 0,
                indexes: Vec::new(),
            };
            seg.kind = SegmentKind::Sealed {
                data: data.clone(),
                meta,
                persisted_deletes: 0,
            };
            to_write.push((*seg_id, *partition_id, data));
        }
        let mut next_compact_id = compact_first;
        for (new_segment, garbage) in compact(&mut st, inner, &mut next_compact_id) {
            compacted_garbage.extend(garbage);
            to_write.extend(new_segment);
        }
        // Freshly sealed segments that compaction already merged need not be written.
        let live_ids: HashSet<i64> = st
            .segments
            .values()
            .filter_map(Segment::segment_id)
            .collect();
        to_write.retain(|(id, _, _)| live_ids.contains(id));
        let mut deletes = Vec::new();
        let mut metas = Vec::new();
        for seg in st.segments.values() {
            if let SegmentKind::Sealed {
                meta,
                persisted_deletes,
                data,
            } = &seg.kind
            {
                if seg.deleted.count() != *persisted_deletes {
                    deletes.push((
                        meta.segment_id,
                        seg.deleted.clone(),
                        data.num_rows(),
                        meta.deletes_version + 1,
                    ));
                }
                metas.push(meta.clone());
            }
        }
        (st.next_lsn, to_write, deletes, metas)
    };
    // 2. Write immutable files.
    for (seg_id, partition_id, data) in &to_write {
        let key = keys::segment_data(inner.collection_id, inner.shard, *seg_id);
        let bytes = data.encode(*seg_id, *partition_id, &inner.schema);
        inner.env.objects.put(&key, bytes.into()).await?;
    }
    let mut delete_updates = Vec::new();
    for (seg_id, bits, rows, version) in &delete_snapshots {
        let key = keys::segment_deletes(inner.collection_id, inner.shard, *seg_id, *version);
        inner
            .env
            .objects
            .put(&key, bits.encode(*rows).into())
            .await?;
        delete_updates.push((*seg_id, key, *version, bits.count()));
    }
    for m in metas.iter_mut() {
        if let Some((_, key, version, _)) = delete_updates.iter().find(|u| u.0 == m.segment_id) {
            m.deletes_key = Some(key.clone());
            m.deletes_version = *version;
        }
    }
    // Drop segments with every row deleted from the checkpoint (their files become garbage).
    let dead: Vec<i64> = metas
        .iter()
        .filter(|m| {
            delete_updates
                .iter()
                .any(|u| u.0 == m.segment_id && u.3 == m.num_rows)
        })
        .map(|m| m.segment_id)
        .collect();
    metas.retain(|m| !dead.contains(&m.segment_id));
    // 3. Commit point.
    let ckpt = ShardCheckpoint {
        next_lsn,
        segments: metas.clone(),
    };
    let value = serde_json::to_vec(&ckpt).map_err(|e| CoreError::Internal(e.to_string()))?;
    inner
        .env
        .meta
        .put(&checkpoint_key(inner.collection_id, inner.shard), value)
        .await?;
    // 4. Reflect in memory, then truncate the log and remove superseded files.
    let mut garbage = Vec::new();
    {
        let mut st = inner.state.write();
        let mut dead_handles = Vec::new();
        for seg in st.segments.values_mut() {
            if let SegmentKind::Sealed {
                meta,
                persisted_deletes,
                ..
            } = &mut seg.kind
            {
                if let Some((_, key, version, count)) =
                    delete_updates.iter().find(|u| u.0 == meta.segment_id)
                {
                    if let Some(old) = meta.deletes_key.replace(key.clone()) {
                        garbage.push(old);
                    }
                    meta.deletes_version = *version;
                    *persisted_deletes = *count;
                }
                if dead.contains(&meta.segment_id) && seg.deleted.count() == meta.num_rows {
                    dead_handles.push(seg.handle);
                }
            }
        }
        for h in dead_handles {
            if let Some(seg) = st.segments.remove(&h)
                && let SegmentKind::Sealed { meta, .. } = seg.kind
            {
                garbage.push(meta.data_key.clone());
                garbage.extend(meta.deletes_key.clone());
                garbage.extend(meta.indexes.iter().map(|i| i.key.clone()));
            }
        }
    }
    garbage.extend(compacted_garbage);
    let removed = inner.wal.truncate_before(next_lsn).await?;
    for k in garbage {
        inner.env.objects.delete(&k).await?;
    }
    tracing::info!(
        collection_id = inner.collection_id,
        shard = inner.shard,
        sealed = to_write.len(),
        delete_logs = delete_updates.len(),
        next_lsn,
        log_objects_removed = removed,
        "checkpoint committed"
    );
    drop(_g);
    // The written segments' data is shared no more: indexed vectors can live in the index alone.
    let sealed_any = !to_write.is_empty();
    drop(to_write);
    {
        let mut st = inner.state.write();
        for seg in st.segments.values_mut() {
            seg.release_indexed_vectors(&inner.schema);
        }
    }
    if sealed_any {
        build_missing_indexes(inner).await?;
    }
    Ok(())
}
