//! Checkpoints: seal the growing segments, persist new segment files and changed delete logs,
//! commit the checkpoint record, then truncate the log and remove superseded files.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::compact::{NewSegment, compact};
use super::index_build::build_missing_indexes;
use super::state::ShardState;
use super::{Inner, ShardCheckpoint, checkpoint_key};
use crate::error::{CoreError, Result};
use crate::keys;
use crate::segment::{DeleteMarks, Segment, SegmentData, SegmentKind, SegmentMeta};

/// Seal growing segments, persist them and changed delete logs, commit the checkpoint, truncate
/// the log. Crash-safe at every step: the checkpoint record is the commit point.
pub(super) async fn checkpoint(inner: &Arc<Inner>) -> Result<()> {
    let _g = inner.checkpoint_lock.lock().await;
    if inner.closed.load(Ordering::SeqCst) {
        return Ok(());
    }
    // 1. Allocate segment ids for an upper bound of what this checkpoint can create, then take
    //    the growing list, seal it and capture `next_lsn` in ONE write-lock section, so the log
    //    is truncated exactly up to what was sealed. A growing segment created while the ids
    //    were being allocated (a write to a new partition) makes the bound too small: retry.
    let Sealed {
        next_lsn,
        to_write,
        deletes: delete_snapshots,
        mut metas,
        garbage: compacted_garbage,
    } = loop {
        let need = ids_needed(&inner.state.read());
        let first_id = inner.env.ids.alloc(need).await?;
        if let Some(hooks) = &inner.env.hooks {
            hooks.before_seal().await;
        }
        let mut st = inner.state.write();
        if ids_needed(&st) > need {
            continue;
        }
        break seal(inner, &mut st, first_id);
    };
    // 2. Write immutable files.
    for (seg_id, partition_id, data) in &to_write {
        let key = keys::segment_data(inner.collection_id, inner.shard, *seg_id);
        let bytes = data.encode(*seg_id, *partition_id, &inner.schema);
        inner.env.objects.put(&key, bytes.into()).await?;
    }
    let mut delete_updates = Vec::new();
    for d in &delete_snapshots {
        let key = keys::segment_deletes(inner.collection_id, inner.shard, d.segment_id, d.version);
        let bytes = d.marks.encode(d.rows);
        inner.env.objects.put(&key, bytes.into()).await?;
        delete_updates.push(DeleteUpdate {
            segment_id: d.segment_id,
            key,
            version: d.version,
            generation: d.marks.generation(),
            all_deleted: d.marks.count() == d.rows,
        });
    }
    for m in metas.iter_mut() {
        if let Some(u) = delete_updates.iter().find(|u| u.segment_id == m.segment_id) {
            m.deletes_key = Some(u.key.clone());
            m.deletes_version = u.version;
        }
    }
    // Drop segments with every row deleted from the checkpoint (their files become garbage).
    let dead: Vec<i64> = delete_updates
        .iter()
        .filter(|u| u.all_deleted)
        .map(|u| u.segment_id)
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
                persisted_generation,
                ..
            } = &mut seg.kind
            {
                if let Some(u) = delete_updates
                    .iter()
                    .find(|u| u.segment_id == meta.segment_id)
                {
                    if let Some(old) = meta.deletes_key.replace(u.key.clone()) {
                        garbage.push(old);
                    }
                    meta.deletes_version = u.version;
                    *persisted_generation = u.generation;
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

/// Segment ids a checkpoint may need: one per growing segment, plus one per partition for
/// compaction, plus one spare.
fn ids_needed(st: &ShardState) -> u32 {
    let partitions: HashSet<i64> = st.segments.values().map(|s| s.partition_id).collect();
    (st.growing.len() + partitions.len() + 1) as u32
}

/// What a checkpoint writes, captured under the state lock.
struct Sealed {
    /// Everything below this LSN is in the sealed segments.
    next_lsn: u64,
    to_write: Vec<NewSegment>,
    deletes: Vec<DeleteSnapshot>,
    /// Every sealed segment, as the checkpoint will record it.
    metas: Vec<SegmentMeta>,
    /// Objects of segments compaction replaced (garbage once the checkpoint commits).
    garbage: Vec<String>,
}

/// A sealed segment's delete marks to persist as its next delete-log version.
struct DeleteSnapshot {
    segment_id: i64,
    marks: DeleteMarks,
    rows: usize,
    version: u64,
}

/// A delete log written by this checkpoint.
struct DeleteUpdate {
    segment_id: i64,
    key: String,
    version: u64,
    /// Generation of the marks it holds.
    generation: u64,
    all_deleted: bool,
}

/// Seal every growing segment (ids from `first_id` on, at most `ids_needed` of them), compact,
/// and snapshot the delete logs to write and the sealed segments' metadata; returns them with
/// the next LSN (everything below it is now in sealed segments).
fn seal(inner: &Inner, st: &mut ShardState, first_id: i64) -> Sealed {
    let mut next_id = first_id;
    let mut to_write = Vec::new();
    let growing: Vec<(i64, u64)> = st.growing.drain().collect();
    for (partition_id, handle) in growing {
        let Some(seg) = st.segments.get_mut(&handle) else {
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
            st.segments.remove(&handle);
            continue;
        }
        let seg_id = next_id;
        next_id += 1;
        let data = Arc::new(data);
        let meta = SegmentMeta {
            segment_id: seg_id,
            partition_id,
            num_rows: data.num_rows(),
            data_key: keys::segment_data(inner.collection_id, inner.shard, seg_id),
            deletes_key: None,
            deletes_version: 0,
            indexes: Vec::new(),
        };
        seg.kind = SegmentKind::Sealed {
            data: data.clone(),
            meta,
            // Deletes while growing are not in the data file: the delete log is written now.
            persisted_generation: 0,
        };
        to_write.push((seg_id, partition_id, data));
    }
    let mut compacted_garbage = Vec::new();
    for (new_segment, garbage) in compact(st, inner, &mut next_id) {
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
            persisted_generation,
            data,
        } = &seg.kind
        {
            if seg.deleted.generation() != *persisted_generation {
                deletes.push(DeleteSnapshot {
                    segment_id: meta.segment_id,
                    marks: seg.deleted.clone(),
                    rows: data.num_rows(),
                    version: meta.deletes_version + 1,
                });
            }
            metas.push(meta.clone());
        }
    }
    Sealed {
        next_lsn: st.next_lsn,
        to_write,
        deletes,
        metas,
        garbage: compacted_garbage,
    }
}
