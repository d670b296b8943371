//! Import of a data directory written by the single-process engine of earlier releases
//! (`collections/<id>` collection metadata and `shards/<cid>/<shard>` checkpoints) into the
//! catalogue, so `ferrovus standalone` keeps every collection and row when it starts on the
//! role-based engine. Runs before the coordinator starts whenever old collection keys exist.
//! The segments, delete logs and log objects stay where they are (their keys are the same). All
//! catalogue puts are committed before any old key is deleted, and a collection whose catalogue
//! record exists is not imported again, so a crash in the middle only repeats the deletes.

use ferrovus_core::collection::CollectionMeta;
use ferrovus_core::error::{CoreError, Result};
use ferrovus_core::keys;
use ferrovus_core::shard::ShardCheckpoint;
use ferrovus_core::store::{MetaOp, MetaStore};

use super::catalog::{ChannelRecord, MAX_TXN_OPS, channel_key, collection_key, segment_key};
use crate::api::{ChannelId, CollectionRecord, LoadSpec, SegmentRecord, SegmentState};

/// Where the single-process engine kept its collections.
const OLD_COLLECTIONS: &str = "collections/";

/// Imports old collections; returns how many were imported (0: nothing to do).
pub async fn import_single_process_catalogue(meta: &dyn MetaStore) -> Result<usize> {
    let old = meta.list(OLD_COLLECTIONS).await?;
    let mut ops = Vec::new();
    let mut imported = 0;
    for kv in &old {
        let cm: CollectionMeta = serde_json::from_slice(&kv.value)
            .map_err(|e| CoreError::corrupted(&kv.key, e.to_string()))?;
        ops.push(MetaOp::Delete {
            key: kv.key.clone(),
        });
        if meta.get(&collection_key(cm.id)).await?.is_some() {
            continue; // imported before a crash that left the old keys
        }
        imported += 1;
        let record = CollectionRecord {
            id: cm.id,
            name: cm.name.clone(),
            schema: cm.schema.clone(),
            num_shards: cm.num_shards as u32,
            partitions: cm.partitions.clone(),
            aliases: cm.aliases.clone(),
            indexes: cm.indexes.clone(),
            consistency: cm.consistency,
            properties: cm.properties.clone(),
            created_ts: cm.created_ts,
            load: cm.loaded.then_some(LoadSpec { replica_number: 1 }),
        };
        ops.push(put(collection_key(cm.id), &record)?);
        for shard in 0..cm.num_shards {
            let ckey = keys::checkpoint(cm.id, shard);
            let mut channel = ChannelRecord::unassigned(ChannelId::new(cm.id, shard as u32));
            if let Some(ckv) = meta.get(&ckey).await? {
                let mut ckpt: ShardCheckpoint = serde_json::from_slice(&ckv.value)
                    .map_err(|e| CoreError::corrupted(&ckey, e.to_string()))?;
                for seg in std::mem::take(&mut ckpt.segments) {
                    let record = SegmentRecord {
                        collection_id: cm.id,
                        shard: shard as u32,
                        meta: seg,
                        state: SegmentState::Flushed,
                        compacted_from: Vec::new(),
                    };
                    ops.push(put(segment_key(cm.id, record.id()), &record)?);
                }
                channel.checkpoint = Some(ckpt);
                ops.push(MetaOp::Delete { key: ckey });
            }
            ops.push(put(channel_key(channel.channel), &channel)?);
        }
        tracing::info!(collection = %cm.name, id = cm.id, shards = cm.num_shards,
            "imported a collection of the single-process engine into the catalogue");
    }
    // Every put before any delete (a stable sort keeps their order).
    ops.sort_by_key(|op| matches!(op, MetaOp::Delete { .. }));
    for batch in ops.chunks(MAX_TXN_OPS) {
        if !meta.txn(Vec::new(), batch.to_vec()).await? {
            return Err(CoreError::Conflict(
                "importing the single-process catalogue".into(),
            ));
        }
    }
    Ok(imported)
}

fn put(key: String, value: &impl serde::Serialize) -> Result<MetaOp> {
    Ok(MetaOp::Put {
        key,
        value: serde_json::to_vec(value).map_err(|e| CoreError::Internal(e.to_string()))?,
    })
}
