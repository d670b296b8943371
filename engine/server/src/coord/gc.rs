//! Garbage collection in the background: objects of segments that left the catalogue, and
//! dropped collections (their objects, then their segment records, then their
//! `catalog/dropped/<cid>` marker). Catalogue records always go first, so nothing live ever
//! points at a deleted object; a collection's marker makes its collection survive a leader
//! change (the next leader resumes it), while loose objects a crashed leader did not get to
//! are left behind (a leak, never a loss).

use std::sync::Arc;

use ferrovus_core::keys;
use tokio::sync::mpsc;

use super::catalog::{DroppedCollection, Edit, MAX_TXN_OPS};
use super::leader::Leader;
use crate::api::SegmentRecord;
use crate::rpc::ClusterError;

#[derive(Debug, Clone, PartialEq)]
pub enum GcJob {
    /// Objects to delete (missing ones are fine).
    Objects(Vec<String>),
    /// A dropped collection to collect entirely.
    Collection(DroppedCollection),
}

/// Every object a segment record names.
pub fn segment_objects(s: &SegmentRecord) -> Vec<String> {
    let m = &s.meta;
    let mut out = vec![m.data_key.clone()];
    out.extend(m.pks_key.clone());
    out.extend(m.deletes_key.clone());
    out.extend(m.indexes.iter().map(|i| i.key.clone()));
    out
}

impl Leader {
    pub(super) async fn gc_loop(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<GcJob>) {
        loop {
            let job = tokio::select! {
                _ = self.stopped() => return,
                job = rx.recv() => match job { Some(j) => j, None => return },
            };
            match job {
                GcJob::Objects(keys) => self.delete_objects(&keys).await,
                GcJob::Collection(d) => {
                    let cid = d.collection_id;
                    match self.collect_collection(&d).await {
                        Ok(()) => {
                            tracing::info!(collection_id = cid, "dropped collection collected")
                        }
                        Err(e) => {
                            tracing::warn!(collection_id = cid, error = %e, "collecting a dropped collection failed; retried later");
                            self.rt.lock().gc_started.remove(&cid);
                        }
                    }
                }
            }
        }
    }

    async fn delete_objects(&self, keys: &[String]) {
        for k in keys {
            if let Err(e) = self.objects.delete(k).await {
                tracing::warn!(key = %k, error = %e, "deleting a garbage object failed; it stays");
            }
        }
        if !keys.is_empty() {
            tracing::debug!(objects = keys.len(), "garbage objects deleted");
        }
    }

    async fn collect_collection(&self, d: &DroppedCollection) -> Result<(), ClusterError> {
        let cid = d.collection_id;
        for shard in 0..d.num_shards as usize {
            for prefix in [
                format!("{}/", keys::wal_prefix(cid, shard)),
                keys::segments_prefix(cid, shard),
                keys::deltas_prefix(cid, shard),
            ] {
                let found = self.objects.list(&prefix).await?;
                self.delete_objects(&found).await;
            }
        }
        // Segment records, in batches; then the marker.
        loop {
            self.check()?;
            let g = self.lock().await?;
            let cat = self.snapshot();
            let ids: Vec<i64> = cat
                .orphans
                .get(&cid)
                .map(|m| m.keys().copied().take(MAX_TXN_OPS).collect())
                .unwrap_or_default();
            let mut e = Edit::new(&cat);
            if ids.is_empty() {
                e.delete_dropped(cid);
                self.commit(&g, e).await?;
                return Ok(());
            }
            for sid in ids {
                e.delete_segment(cid, sid);
            }
            self.commit(&g, e).await?;
        }
    }
}
