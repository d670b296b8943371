//! Indexes of held segments: which ones a segment should have (recorded in its catalogue
//! record, for an index definition the collection still has), loading them (memory-mapped from a
//! local object store), attaching them in one step for readers, detaching dropped ones.

use std::collections::BTreeMap;
use std::sync::Arc;

use ferrovus_core::CoreError;
use ferrovus_core::segment::SegmentIndexMeta;
use ferrovus_core::store::ObjectStore;
use ferrovus_core::vindex::VectorIndex;

use super::hold::ShardHold;
use super::load::{FIRST_BACKOFF, next_backoff};
use super::metrics::QueryMetrics;
use super::{Inner, SegKey};
use crate::api::{CollectionRecord, SegmentTarget};

/// The indexes a segment should have: recorded for it, and still defined by the collection.
pub(super) fn wanted<'a>(
    target: &'a SegmentTarget,
    collection: &CollectionRecord,
) -> impl Iterator<Item = &'a SegmentIndexMeta> {
    let specs: Vec<(i64, i64)> = collection
        .indexes
        .iter()
        .map(|s| (s.index_id, s.field_id))
        .collect();
    target
        .record
        .meta
        .indexes
        .iter()
        .filter(move |im| specs.contains(&(im.index_id, im.field_id)))
}

/// Load an index object: memory-mapped when the store has it as a local file, else read whole.
pub(super) async fn load_index(
    objects: &dyn ObjectStore,
    key: &str,
) -> Result<VectorIndex, CoreError> {
    let source = match objects.local_path(key) {
        Some(path) => Err(path),
        None => Ok(objects.get(key).await?),
    };
    tokio::task::spawn_blocking(move || match source {
        Ok(bytes) => VectorIndex::load(bytes),
        Err(path) => VectorIndex::load_file(&path),
    })
    .await
    .map_err(|e| CoreError::Internal(format!("index load task: {e}")))?
}

/// How one index of one segment should change.
enum Change {
    Attach {
        field_id: i64,
        index_id: i64,
        key: String,
    },
    Detach {
        field_id: i64,
        index_id: i64,
    },
}

impl Inner {
    /// Bring the indexes of every held segment (or only of `only`) to the target: load and
    /// attach newly recorded ones, detach the ones whose definition was dropped.
    pub(super) fn reconcile_indexes(self: &Arc<Self>, only: Option<SegKey>) {
        let target = self.current_target();
        let holds: Vec<Arc<ShardHold>> = match only {
            Some((cid, shard, _)) => self.hold((cid, shard)).into_iter().collect(),
            None => self.holds.read().values().cloned().collect(),
        };
        for hold in holds {
            for (sid, held) in hold.serving() {
                let key = (hold.collection_id, hold.shard, sid);
                if only.is_some_and(|k| k != key) {
                    continue;
                }
                let (Some(st), Some(coll)) = (
                    target.segments.get(&key),
                    target.collections.get(&hold.collection_id),
                ) else {
                    continue;
                };
                let want: BTreeMap<i64, (i64, String)> = wanted(st, coll)
                    .map(|im| (im.field_id, (im.index_id, im.key.clone())))
                    .collect();
                let mut changes = Vec::new();
                for (&field_id, (index_id, okey)) in &want {
                    if held.indexes.get(&field_id) != Some(index_id) {
                        changes.push(Change::Attach {
                            field_id,
                            index_id: *index_id,
                            key: okey.clone(),
                        });
                    }
                }
                for (&field_id, &index_id) in &held.indexes {
                    if !want.contains_key(&field_id) {
                        changes.push(Change::Detach { field_id, index_id });
                    }
                }
                // Loads of indexes no longer wanted stop.
                self.index_loads.lock().retain(|(k, field), (iid, h)| {
                    let keep = *k != key || want.get(field).is_some_and(|w| w.0 == *iid);
                    if !keep {
                        h.abort();
                    }
                    keep
                });
                for c in changes {
                    match c {
                        Change::Attach {
                            field_id,
                            index_id,
                            key: okey,
                        } => self.spawn_index_load(&hold, key, field_id, index_id, okey),
                        Change::Detach { field_id, index_id } => {
                            let hold = hold.clone();
                            let me = self.clone();
                            tokio::spawn(async move {
                                let set = hold.set.clone();
                                let _ = tokio::task::spawn_blocking(move || {
                                    set.detach_index(sid, field_id)
                                })
                                .await;
                                hold.set_index(sid, field_id, None);
                                tracing::info!(
                                    collection_id = key.0,
                                    shard = key.1,
                                    segment_id = sid,
                                    field_id,
                                    index_id,
                                    "index detached (dropped)"
                                );
                                me.update_gauges();
                                me.bump();
                            });
                        }
                    }
                }
            }
        }
    }

    fn spawn_index_load(
        self: &Arc<Self>,
        hold: &Arc<ShardHold>,
        key: SegKey,
        field_id: i64,
        index_id: i64,
        object: String,
    ) {
        let mut loads = self.index_loads.lock();
        if loads
            .get(&(key, field_id))
            .is_some_and(|(iid, _)| *iid == index_id)
        {
            return;
        }
        let me = self.clone();
        let hold = hold.clone();
        let task = tokio::spawn(async move {
            let sid = key.2;
            let mut backoff = FIRST_BACKOFF;
            loop {
                let r = async {
                    let idx = Arc::new(load_index(&*me.objects, &object).await?);
                    let set = hold.set.clone();
                    // Swapped in under the set's write lock: a search sees the old state or
                    // the new one, never half of it.
                    tokio::task::spawn_blocking(move || {
                        set.attach_index(sid, field_id, index_id, idx)
                    })
                    .await
                    .map_err(|e| CoreError::Internal(format!("index attach task: {e}")))?
                }
                .await;
                me.metrics
                    .index_loads
                    .get_or_create(&QueryMetrics::outcome(r.is_ok()))
                    .inc();
                match r {
                    Ok(()) => {
                        hold.set_index(sid, field_id, Some(index_id));
                        tracing::info!(
                            collection_id = key.0,
                            shard = key.1,
                            segment_id = sid,
                            field_id,
                            index_id,
                            "index attached"
                        );
                        break;
                    }
                    Err(CoreError::NotFound(_)) if !hold.holds(sid) => break, // released meanwhile
                    Err(e) => {
                        tracing::warn!(
                            segment_id = sid,
                            field_id,
                            index_id,
                            key = %object,
                            error = %e,
                            retry_in_ms = backoff.as_millis() as u64,
                            "loading index failed"
                        );
                        tokio::time::sleep(backoff).await;
                        backoff = next_backoff(backoff, me.config.retry_max_ms);
                    }
                }
            }
            let mut loads = me.index_loads.lock();
            if loads
                .get(&(key, field_id))
                .is_some_and(|(iid, _)| *iid == index_id)
            {
                loads.remove(&(key, field_id));
            }
            drop(loads);
            me.update_gauges();
            me.bump();
        });
        if let Some((_, old)) = loads.insert((key, field_id), (index_id, task.abort_handle())) {
            old.abort();
        }
    }
}
