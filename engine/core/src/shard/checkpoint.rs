//! Checkpoints: seal the growing segments, persist new segment files (data and keys), changed
//! delete logs and the journal's new deletes of sealed rows, commit the checkpoint record, then
//! truncate the log and remove superseded files.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::compact::{NewSegment, compact};
use super::index_build::build_missing_indexes;
use super::state::ShardState;
use super::{Inner, ShardCheckpoint};
use crate::delta::{self, Delta, DeltaObjectMeta};
use crate::error::Result;
use crate::keys;
use crate::pks::SegmentPks;
use crate::segment::{DeleteMarks, Segment, SegmentData, SegmentKind, SegmentMeta};

/// Seal growing segments, persist them, changed delete logs and journaled deletes, commit the
/// checkpoint, truncate the log. Crash-safe at every step: the checkpoint record is the commit
/// point.
pub(super) async fn checkpoint(inner: &Arc<Inner>) -> Result<()> {
    let _g = inner.checkpoint_lock.lock().await;
    if inner.closed.load(Ordering::SeqCst) {
        return Ok(());
    }
    let (cid, shard) = (inner.collection_id, inner.shard);
    // 1. Allocate segment ids for an upper bound of what this checkpoint can create, then take
    //    the growing list, seal it and capture `next_lsn` in ONE write-lock section, so the log
    //    is truncated exactly up to what was sealed. A growing segment created while the ids
    //    were being allocated (a write to a new partition) makes the bound too small: retry.
    let mut sealed = loop {
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
    let ckpt_ts = sealed.applied_ts;
    // 2. Write immutable files: new segments (data and keys), delete logs.
    for seg in &sealed.to_write {
        let m = &seg.meta;
        let bytes = seg.data.encode(m.segment_id, m.partition_id, &inner.schema);
        inner.env.objects.put(&m.data_key, bytes.into()).await?;
        if let Some(k) = &m.pks_key {
            let pks = SegmentPks::from_data(&seg.data, inner.pk_index)?;
            inner
                .env
                .objects
                .put(k, pks.encode(m.segment_id).into())
                .await?;
        }
    }
    let mut delete_updates = Vec::new();
    for d in &sealed.deletes {
        let key = keys::segment_deletes(cid, shard, d.segment_id, d.version);
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
    let standalone = !inner.options.retain_sealed;
    for m in sealed.metas.iter_mut() {
        if let Some(u) = delete_updates.iter().find(|u| u.segment_id == m.segment_id) {
            m.deletes_key = Some(u.key.clone());
            m.deletes_version = u.version;
        }
        if standalone && sealed.held.contains(&m.segment_id) {
            // Held segments' delete logs now hold every delete of their rows up to here.
            m.base_ts = m.base_ts.max(ckpt_ts);
        }
    }
    // Drop segments with every row deleted from the checkpoint (their files become garbage).
    let dead: Vec<i64> = delete_updates
        .iter()
        .filter(|u| u.all_deleted)
        .map(|u| u.segment_id)
        .collect();
    sealed.metas.retain(|m| !dead.contains(&m.segment_id));
    // 3. The journal's deletes some segment still needs (in a cluster all of them: query nodes
    //    may lag) as one delta object; a standalone shard drops the objects no segment needs.
    let min_base = sealed
        .metas
        .iter()
        .map(|m| m.base_ts)
        .min()
        .unwrap_or(u64::MAX);
    let mut deltas = sealed.delta_objects.clone();
    let mut garbage = std::mem::take(&mut sealed.garbage);
    if standalone {
        let (keep, drop): (Vec<_>, Vec<_>) = deltas.into_iter().partition(|d| d.to_ts > min_base);
        garbage.extend(drop.into_iter().map(|d| d.key));
        deltas = keep;
    }
    let needed: Vec<Delta> = std::mem::take(&mut sealed.journal)
        .into_iter()
        .filter(|(_, ts)| !standalone || *ts > min_base)
        .collect();
    if !needed.is_empty() {
        let key = keys::delta_object(cid, shard, sealed.journal_from, ckpt_ts);
        inner
            .env
            .objects
            .put(&key, delta::encode(&needed).into())
            .await?;
        deltas.push(DeltaObjectMeta {
            key,
            from_ts: sealed.journal_from,
            to_ts: ckpt_ts,
            entries: needed.len(),
        });
    }
    // 4. Commit point.
    let ckpt = ShardCheckpoint {
        next_lsn: sealed.next_lsn,
        segments: sealed.metas.clone(),
        applied_ts: ckpt_ts,
        deltas: deltas.clone(),
    };
    let new_ids: HashSet<i64> = sealed.to_write.iter().map(|s| s.meta.segment_id).collect();
    let new_segments: Vec<SegmentMeta> = sealed
        .metas
        .iter()
        .filter(|m| new_ids.contains(&m.segment_id))
        .cloned()
        .collect();
    inner
        .env
        .checkpoints
        .commit(cid, shard, inner.options.term, &ckpt, &new_segments)
        .await?;
    // 5. Reflect in memory, then truncate the log and remove superseded files.
    reflect(inner, &sealed.metas, &delete_updates, &dead, &mut garbage);
    {
        let mut st = inner.state.write();
        st.journal.mark_persisted(ckpt_ts);
        let previous = std::mem::replace(&mut st.checkpoint_ts, ckpt_ts);
        st.journal.trim(previous);
        st.delta_objects = deltas;
        st.committed
            .extend(sealed.metas.iter().map(|m| m.segment_id));
    }
    let removed = inner.wal.truncate_before(sealed.next_lsn).await?;
    for k in garbage {
        inner.env.objects.delete(&k).await?;
    }
    tracing::info!(
        collection_id = cid,
        shard,
        sealed = sealed.to_write.len(),
        delete_logs = delete_updates.len(),
        deltas = needed.len(),
        next_lsn = sealed.next_lsn,
        applied_ts = ckpt_ts,
        log_objects_removed = removed,
        "checkpoint committed"
    );
    drop(_g);
    // The written segments' data is shared no more: indexed vectors can live in the index alone.
    let sealed_any = !sealed.to_write.is_empty();
    drop(sealed);
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

/// Record what the checkpoint committed in the in-memory segments (held or released since):
/// delete-log keys and versions, base timestamps; drop the dead segments.
fn reflect(
    inner: &Inner,
    metas: &[SegmentMeta],
    delete_updates: &[DeleteUpdate],
    dead: &[i64],
    garbage: &mut Vec<String>,
) {
    let mut st = inner.state.write();
    let mut dead_handles = Vec::new();
    let update = |meta: &mut SegmentMeta, garbage: &mut Vec<String>| {
        if let Some(u) = delete_updates
            .iter()
            .find(|u| u.segment_id == meta.segment_id)
        {
            if let Some(old) = meta.deletes_key.replace(u.key.clone()) {
                garbage.push(old);
            }
            meta.deletes_version = u.version;
        }
        if let Some(m) = metas.iter().find(|m| m.segment_id == meta.segment_id) {
            meta.base_ts = m.base_ts;
        }
    };
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
                *persisted_generation = u.generation;
            }
            update(meta, garbage);
            if dead.contains(&meta.segment_id) && seg.deleted.count() == meta.num_rows {
                dead_handles.push(seg.handle);
            }
        }
    }
    for meta in st.released.values_mut() {
        update(meta, garbage);
    }
    for h in dead_handles {
        if let Some(seg) = st.segments.remove(&h)
            && let SegmentKind::Sealed { meta, .. } = seg.kind
        {
            garbage.push(meta.data_key.clone());
            garbage.extend(meta.pks_key.clone());
            garbage.extend(meta.deletes_key.clone());
            garbage.extend(meta.indexes.iter().map(|i| i.key.clone()));
        }
    }
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
    /// The applied timestamp at the seal: the checkpoint's snapshot.
    applied_ts: u64,
    to_write: Vec<NewSegment>,
    deletes: Vec<DeleteSnapshot>,
    /// Every sealed segment (held or released), as the checkpoint will record it.
    metas: Vec<SegmentMeta>,
    /// Ids of the sealed segments held in memory.
    held: HashSet<i64>,
    /// Objects of segments compaction replaced (garbage once the checkpoint commits).
    garbage: Vec<String>,
    /// Journaled deletes not yet persisted, with timestamps in `(journal_from, applied_ts]`.
    journal: Vec<Delta>,
    journal_from: u64,
    /// Delta objects of the previous checkpoint.
    delta_objects: Vec<DeltaObjectMeta>,
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
/// and snapshot the delete logs and journal entries to write and the sealed segments'
/// metadata, with the next LSN (everything below it is now in sealed segments).
fn seal(inner: &Inner, st: &mut ShardState, first_id: i64) -> Sealed {
    let (cid, shard) = (inner.collection_id, inner.shard);
    let applied_ts = st.applied_ts;
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
        let mut meta = SegmentMeta::new(
            seg_id,
            partition_id,
            data.num_rows(),
            keys::segment_data(cid, shard, seg_id),
        );
        meta.base_ts = applied_ts;
        meta.pks_key = Some(keys::segment_pks(cid, shard, seg_id));
        seg.kind = SegmentKind::Sealed {
            data: data.clone(),
            meta: meta.clone(),
            // Deletes while growing are not in the data file: the delete log is written now.
            persisted_generation: 0,
        };
        to_write.push(NewSegment { meta, data });
    }
    let mut compacted_garbage = Vec::new();
    if inner.options.local_compaction {
        for (new_segment, garbage) in compact(st, inner, &mut next_id) {
            compacted_garbage.extend(garbage);
            to_write.extend(new_segment);
        }
    }
    // Freshly sealed segments that compaction already merged need not be written.
    let held: HashSet<i64> = st
        .segments
        .values()
        .filter_map(Segment::segment_id)
        .collect();
    to_write.retain(|s| held.contains(&s.meta.segment_id));
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
    metas.extend(st.released.values().cloned());
    Sealed {
        next_lsn: st.next_lsn,
        applied_ts,
        to_write,
        deletes,
        metas,
        held,
        garbage: compacted_garbage,
        journal: st.journal.unpersisted(applied_ts),
        journal_from: st.journal.persisted_up_to(),
        delta_objects: st.delta_objects.clone(),
    }
}
