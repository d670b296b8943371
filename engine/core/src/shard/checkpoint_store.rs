//! Where a shard's checkpoint record is committed: the metadata store in standalone (one key
//! per shard), the coordinator in a cluster (checked against the channel's term).

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::delta::DeltaObjectMeta;
use crate::error::{CoreError, Result};
use crate::keys;
use crate::segment::SegmentMeta;
use crate::store::MetaStore;

/// Persisted state of a shard: what the log replay starts from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShardCheckpoint {
    /// Every record below this LSN is in `segments`.
    pub next_lsn: u64,
    /// Every sealed segment of the shard.
    pub segments: Vec<SegmentMeta>,
    /// The applied timestamp at the checkpoint.
    #[serde(default)]
    pub applied_ts: u64,
    /// Delta objects (deletes of sealed rows by key) some segment may still need: every
    /// delete after a segment's `base_ts` and up to `applied_ts` is in one of them.
    #[serde(default)]
    pub deltas: Vec<DeltaObjectMeta>,
}

/// Loads and commits checkpoint records.
#[async_trait]
pub trait CheckpointStore: Send + Sync + std::fmt::Debug {
    async fn load(&self, collection_id: i64, shard: usize) -> Result<Option<ShardCheckpoint>>;
    /// Commit `checkpoint` as the shard's new state; `new_segments` are the segments it adds
    /// (sealed or compacted by this checkpoint). A store that fences owners rejects a `term`
    /// that is not the channel's current one.
    async fn commit(
        &self,
        collection_id: i64,
        shard: usize,
        term: u64,
        checkpoint: &ShardCheckpoint,
        new_segments: &[SegmentMeta],
    ) -> Result<()>;
    /// Forget the shard (collection dropped).
    async fn remove(&self, collection_id: i64, shard: usize) -> Result<()>;
}

/// Checkpoints as JSON under `shards/<cid>/<shard>` in a metadata store (standalone: one owner
/// per shard, so the term is not checked).
#[derive(Debug, Clone)]
pub struct MetaCheckpointStore {
    meta: Arc<dyn MetaStore>,
}

impl MetaCheckpointStore {
    pub fn new(meta: Arc<dyn MetaStore>) -> Self {
        MetaCheckpointStore { meta }
    }
}

#[async_trait]
impl CheckpointStore for MetaCheckpointStore {
    async fn load(&self, collection_id: i64, shard: usize) -> Result<Option<ShardCheckpoint>> {
        let key = keys::checkpoint(collection_id, shard);
        match self.meta.get(&key).await? {
            Some(kv) => serde_json::from_slice(&kv.value)
                .map(Some)
                .map_err(|e| CoreError::corrupted(&key, e.to_string())),
            None => Ok(None),
        }
    }

    async fn commit(
        &self,
        collection_id: i64,
        shard: usize,
        _term: u64,
        checkpoint: &ShardCheckpoint,
        _new_segments: &[SegmentMeta],
    ) -> Result<()> {
        let value =
            serde_json::to_vec(checkpoint).map_err(|e| CoreError::Internal(e.to_string()))?;
        self.meta
            .put(&keys::checkpoint(collection_id, shard), value)
            .await?;
        Ok(())
    }

    async fn remove(&self, collection_id: i64, shard: usize) -> Result<()> {
        self.meta
            .delete(&keys::checkpoint(collection_id, shard))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryMetaStore;

    #[tokio::test]
    async fn records_without_the_new_fields_still_load() {
        let meta = Arc::new(MemoryMetaStore::default());
        // A record as the previous release wrote it.
        let old = br#"{"next_lsn":7,"segments":[{"segment_id":3,"partition_id":1,"num_rows":2,
            "data_key":"segments/1/0/3/data","deletes_key":null,"deletes_version":0}]}"#;
        meta.put("shards/1/0", old.to_vec()).await.unwrap();
        let store = MetaCheckpointStore::new(meta.clone());
        let ck = store.load(1, 0).await.unwrap().unwrap();
        assert_eq!((ck.next_lsn, ck.applied_ts, ck.deltas.len()), (7, 0, 0));
        assert_eq!(
            (ck.segments[0].base_ts, &ck.segments[0].pks_key),
            (0, &None)
        );
        store.commit(1, 0, 3, &ck, &[]).await.unwrap();
        assert_eq!(store.load(1, 0).await.unwrap(), Some(ck));
        store.remove(1, 0).await.unwrap();
        assert_eq!(store.load(1, 0).await.unwrap(), None);
    }
}
