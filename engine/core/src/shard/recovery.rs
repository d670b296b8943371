//! Opening a shard: fence the owners of older terms (a channel owner), load its checkpoint and
//! sealed segments (whole, or only their keys and delete logs when query nodes serve them),
//! apply the persisted deltas, rebuild the primary-key map, replay the write-ahead log from the
//! checkpoint.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};

use futures::{StreamExt, stream};
use parking_lot::RwLock;

use super::journal::DeltaJournal;
use super::state::{RowLoc, ShardState};
use super::{Inner, ShardEnv, ShardOptions};
use crate::delta::{self, DeltaIndex};
use crate::error::{CoreError, Result};
use crate::keys;
use crate::pks::SegmentPks;
use crate::request::IndexSpec;
use crate::schema::CollectionSchema;
use crate::segment::{DeleteMarks, Segment, SegmentData, SegmentMeta};
use crate::value::PrimaryKey;
use crate::vindex::VectorIndex;
use crate::wal::Wal;

/// Key objects (pks and delete logs) of released segments read at the same time in recovery.
const KEY_LOADS: usize = 16;

/// What recovery found: the sealed segments of the checkpoint and the log records replayed
/// after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RecoveryStats {
    pub segments: usize,
    pub replayed: usize,
}

/// Recover a shard's state from its checkpoint and log.
pub(super) async fn recover(
    collection_id: i64,
    shard: usize,
    schema: Arc<CollectionSchema>,
    indexes: Arc<RwLock<Vec<IndexSpec>>>,
    env: ShardEnv,
    options: ShardOptions,
) -> Result<Inner> {
    let wal = Wal::new(
        env.objects.clone(),
        keys::wal_prefix(collection_id, shard),
        options.term,
    );
    // A channel owner fences the owners of older terms before it reads anything of the channel
    // (docs/distributed.md, "Fencing"); standalone (term 0) has one owner.
    if options.term > 0 {
        wal.fence().await?;
    }
    let ckpt = env
        .checkpoints
        .load(collection_id, shard)
        .await?
        .unwrap_or_default();
    let pk_index = schema.fields.iter().position(|f| f.is_primary).unwrap_or(0);
    let mut state = ShardState::new(ckpt.next_lsn);
    // Deletes of sealed rows after their segments' base timestamps.
    let deltas = match ckpt.segments.iter().map(|m| m.base_ts).min() {
        Some(min_base) => {
            DeltaIndex::new(delta::read_deltas(&*env.objects, &ckpt.deltas, min_base).await?)
        }
        None => DeltaIndex::default(),
    };
    let specs = indexes.read().clone();
    let mut keys = LiveKeys::default();
    let mut applied_ts = ckpt.applied_ts;
    if options.retain_sealed {
        // Query nodes serve them: only their keys and deletes are needed here (never their data
        // files), loaded a few at a time.
        // (The futures are collected first: a stream over a borrowing closure is not `Send`
        // for the compiler.)
        let loads: Vec<_> = ckpt
            .segments
            .iter()
            .map(|meta| {
                let (env, schema) = (&env, &*schema);
                async move { (meta, load_keys(env, schema, pk_index, meta).await) }
            })
            .collect();
        let mut loads = stream::iter(loads).buffered(KEY_LOADS);
        while let Some((meta, loaded)) = loads.next().await {
            let (pks, mut marks) = loaded?;
            let handle = state.alloc_handle();
            applied_ts = applied_ts.max(meta.base_ts);
            for row in 0..pks.len() {
                let ts = pks.timestamps[row];
                applied_ts = applied_ts.max(ts);
                if let Some(pk) = pks.pk(row) {
                    keys.add(&deltas, meta, &mut marks, pk, handle, row, ts);
                }
            }
            applied_ts = applied_ts.max(marks.max_ts());
            state.released.insert(handle, meta.clone());
        }
    } else {
        for meta in &ckpt.segments {
            let handle = state.alloc_handle();
            applied_ts = applied_ts.max(meta.base_ts);
            let mut seg = load_segment(&env, &schema, &specs, handle, meta).await?;
            let data = seg.data();
            let found: Vec<(PrimaryKey, usize, u64)> = (0..data.num_rows())
                .filter_map(|row| {
                    Some((data.primary_key(pk_index, row)?, row, data.timestamps[row]))
                })
                .collect();
            for (pk, row, ts) in found {
                keys.add(&deltas, meta, &mut seg.deleted, pk, handle, row, ts);
            }
            applied_ts = applied_ts.max(seg.max_row_ts()).max(seg.deleted.max_ts());
            state.segments.insert(handle, seg);
        }
    }
    for (loc, ts) in keys.superseded {
        state.mark_deleted(loc, ts);
    }
    state.pk_map = keys
        .live
        .into_iter()
        .map(|(pk, (loc, _))| (pk, loc))
        .collect();
    state.applied_ts = applied_ts;
    // Deletes up to here are in delete logs and delta objects; the journal starts now.
    state.journal = DeltaJournal::new(applied_ts);
    state.checkpoint_ts = applied_ts;
    state.delta_objects = ckpt.deltas.clone();

    let (entries, next) = wal.replay(ckpt.next_lsn).await?;
    let replayed = entries.len();
    for e in &entries {
        state.apply(&schema, pk_index, &e.record);
    }
    state.next_lsn = next.max(ckpt.next_lsn);
    if replayed > 0 || !ckpt.segments.is_empty() {
        tracing::info!(
            collection_id,
            shard,
            segments = ckpt.segments.len(),
            released = state.released.len(),
            replayed,
            next_lsn = state.next_lsn,
            "shard recovered"
        );
    }
    Ok(Inner {
        collection_id,
        shard,
        schema,
        pk_index,
        env,
        options,
        wal,
        state: RwLock::new(state),
        indexes,
        checkpoint_lock: tokio::sync::Mutex::new(()),
        flush_scheduled: AtomicBool::new(false),
        closed: AtomicBool::new(false),
        fenced_by: AtomicU64::new(0),
        recovered: RecoveryStats {
            segments: ckpt.segments.len(),
            replayed,
        },
        group_commits: AtomicU64::new(0),
        records_committed: AtomicU64::new(0),
    })
}

/// The live row of every key found so far, and the rows a newer row of their key superseded.
#[derive(Default)]
struct LiveKeys {
    live: HashMap<PrimaryKey, (RowLoc, u64)>,
    superseded: Vec<(RowLoc, u64)>,
}

impl LiveKeys {
    /// Row `row` (timestamp `ts`) of segment `meta` (held as `handle`) holds `pk`: unless its
    /// delete log or a delta after the segment's base timestamp deletes it, it is live. Should
    /// two live rows hold one key (a crash cannot do this, but be safe), the newer row wins and
    /// the older one is deleted at the newer one's timestamp.
    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        deltas: &DeltaIndex,
        meta: &SegmentMeta,
        marks: &mut DeleteMarks,
        pk: PrimaryKey,
        handle: u64,
        row: usize,
        ts: u64,
    ) {
        if marks.is_marked(row) {
            return;
        }
        if let Some(dts) = deltas.delete_ts(&pk, ts).filter(|t| *t > meta.base_ts) {
            marks.mark(row as u32, dts);
            return;
        }
        let loc = RowLoc {
            handle,
            row: row as u32,
        };
        match self.live.get_mut(&pk) {
            Some((old, old_ts)) if *old_ts <= ts => {
                self.superseded.push((*old, ts));
                (*old, *old_ts) = (loc, ts);
            }
            Some((_, old_ts)) => self.superseded.push((loc, *old_ts)),
            None => {
                self.live.insert(pk, (loc, ts));
            }
        }
    }
}

/// A sealed segment's keys and delete marks (its pks object, or its data file for segments
/// written before pks objects existed).
async fn load_keys(
    env: &ShardEnv,
    schema: &CollectionSchema,
    pk_index: usize,
    meta: &SegmentMeta,
) -> Result<(SegmentPks, DeleteMarks)> {
    let pks = match &meta.pks_key {
        Some(k) => SegmentPks::decode(&env.objects.get(k).await?, meta.num_rows, k)?.1,
        None => {
            let bytes = env.objects.get(&meta.data_key).await?;
            let (_, _, data) = SegmentData::decode(&bytes, schema, &meta.data_key)?;
            SegmentPks::from_data(&data, pk_index)?
        }
    };
    let marks = load_marks(env, meta, pks.len()).await?;
    Ok((pks, marks))
}

async fn load_marks(env: &ShardEnv, meta: &SegmentMeta, rows: usize) -> Result<DeleteMarks> {
    match &meta.deletes_key {
        Some(k) => DeleteMarks::decode(&env.objects.get(k).await?, rows, k),
        None => Ok(DeleteMarks::default()),
    }
}

/// A whole sealed segment: data, delete log, the indexes the collection still defines.
async fn load_segment(
    env: &ShardEnv,
    schema: &CollectionSchema,
    specs: &[IndexSpec],
    handle: u64,
    meta: &SegmentMeta,
) -> Result<Segment> {
    let bytes = env.objects.get(&meta.data_key).await?;
    let (_, _, data) = SegmentData::decode(&bytes, schema, &meta.data_key)?;
    let deleted = load_marks(env, meta, data.num_rows()).await?;
    let mut seg = Segment::sealed(handle, Arc::new(data), meta.clone(), deleted);
    for im in &meta.indexes {
        if !specs.iter().any(|s| s.index_id == im.index_id) {
            continue; // index dropped since
        }
        let bytes = env.objects.get(&im.key).await?;
        let idx = tokio::task::spawn_blocking(move || VectorIndex::load(bytes))
            .await
            .map_err(|e| CoreError::Internal(e.to_string()))??;
        seg.indexes
            .insert(im.field_id, (im.index_id, Arc::new(idx)));
    }
    seg.release_indexed_vectors(schema);
    Ok(seg)
}
