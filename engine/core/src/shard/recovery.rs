//! Opening a shard: load its checkpoint and sealed segments, rebuild the primary-key map,
//! replay the write-ahead log from the checkpoint.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use parking_lot::RwLock;

use super::state::{RowLoc, ShardState};
use super::{Inner, ShardCheckpoint, ShardEnv, checkpoint_key};
use crate::error::{CoreError, Result};
use crate::keys;
use crate::request::IndexSpec;
use crate::schema::CollectionSchema;
use crate::segment::{DeleteMarks, Segment, SegmentData};
use crate::vindex::VectorIndex;
use crate::wal::Wal;

/// Recover a shard's state from its checkpoint and log.
pub(super) async fn recover(
    collection_id: i64,
    shard: usize,
    schema: Arc<CollectionSchema>,
    indexes: Arc<RwLock<Vec<IndexSpec>>>,
    env: ShardEnv,
) -> Result<Inner> {
    let key = checkpoint_key(collection_id, shard);
    let ckpt: ShardCheckpoint = match env.meta.get(&key).await? {
        Some(kv) => serde_json::from_slice(&kv.value)
            .map_err(|e| CoreError::corrupted(&key, e.to_string()))?,
        None => ShardCheckpoint::default(),
    };
    let pk_index = schema.fields.iter().position(|f| f.is_primary).unwrap_or(0);
    let mut state = ShardState::new(ckpt.next_lsn);
    let specs = indexes.read().clone();
    for meta in &ckpt.segments {
        let bytes = env.objects.get(&meta.data_key).await?;
        let (_, _, data) = SegmentData::decode(&bytes, &schema, &meta.data_key)?;
        let deleted = match &meta.deletes_key {
            Some(k) => DeleteMarks::decode(&env.objects.get(k).await?, data.num_rows(), k)?,
            None => DeleteMarks::default(),
        };
        let mut seg_indexes = HashMap::new();
        for im in &meta.indexes {
            if !specs.iter().any(|s| s.index_id == im.index_id) {
                continue; // index dropped since
            }
            let bytes = env.objects.get(&im.key).await?;
            let idx = tokio::task::spawn_blocking(move || VectorIndex::load(bytes))
                .await
                .map_err(|e| CoreError::Internal(e.to_string()))??;
            seg_indexes.insert(im.field_id, (im.index_id, Arc::new(idx)));
        }
        let handle = state.alloc_handle();
        let mut seg = Segment::sealed(handle, Arc::new(data), meta.clone(), deleted);
        seg.indexes = seg_indexes;
        seg.release_indexed_vectors(&schema);
        state.segments.insert(handle, seg);
    }
    // Rebuild the primary-key map from live sealed rows. Should two live rows hold one key (a
    // crash between writing segment files and their delete logs cannot do this, but be safe),
    // the newer row wins and the older one is deleted at the newer one's timestamp.
    let mut live: HashMap<_, (RowLoc, u64)> = HashMap::new();
    let mut superseded = Vec::new();
    for (h, seg) in &state.segments {
        let d = seg.data();
        for row in 0..d.num_rows() {
            if seg.deleted.is_marked(row) {
                continue;
            }
            let Some(pk) = d.primary_key(pk_index, row) else {
                continue;
            };
            let loc = RowLoc {
                handle: *h,
                row: row as u32,
            };
            let ts = d.timestamps[row];
            match live.get_mut(&pk) {
                Some((old, old_ts)) if *old_ts <= ts => {
                    superseded.push((*old, ts));
                    (*old, *old_ts) = (loc, ts);
                }
                Some((_, old_ts)) => superseded.push((loc, *old_ts)),
                None => {
                    live.insert(pk, (loc, ts));
                }
            }
        }
    }
    for (loc, ts) in superseded {
        state.mark_deleted(loc, ts);
    }
    state.applied_ts = state
        .segments
        .values()
        .map(|s| s.max_row_ts().max(s.deleted.max_ts()))
        .max()
        .unwrap_or(0);
    state.pk_map = live.into_iter().map(|(pk, (loc, _))| (pk, loc)).collect();
    let wal = Wal::new(env.objects.clone(), keys::wal_prefix(collection_id, shard));
    let (entries, next) = wal.replay(ckpt.next_lsn).await?;
    let replayed = entries.len();
    for e in &entries {
        state.apply(&schema, pk_index, &e.record);
    }
    state.next_lsn = next.max(ckpt.next_lsn);
    if replayed > 0 {
        tracing::info!(
            collection_id,
            shard,
            replayed,
            next_lsn = state.next_lsn,
            "replayed write-ahead log"
        );
    }
    Ok(Inner {
        collection_id,
        shard,
        schema,
        pk_index,
        env,
        wal,
        state: RwLock::new(state),
        indexes,
        checkpoint_lock: tokio::sync::Mutex::new(()),
        flush_scheduled: AtomicBool::new(false),
        closed: AtomicBool::new(false),
    })
}
