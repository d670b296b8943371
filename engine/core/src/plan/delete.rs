//! Deletes by filter: the rules (a filter is required; a key lookup names the keys directly,
//! any other filter needs the matching keys read first) and one log record per shard.

use std::collections::HashMap;

use super::{compile_filter, partition_ids, shard_of};
use crate::collection::PartitionMeta;
use crate::error::{CoreError, Result};
use crate::expr::Plan;
use crate::schema::CollectionSchema;
use crate::value::PrimaryKey;
use crate::wal::WalRecord;

/// A validated delete.
#[derive(Debug, Clone)]
pub struct DeletePlan {
    /// The compiled filter.
    pub plan: Plan,
    /// The keys to delete when the filter is a key lookup (`pk in [...]`): deleted as given,
    /// in every partition, without reading anything. `None`: the keys of the rows matching
    /// `plan` must be read first.
    pub keys: Option<Vec<PrimaryKey>>,
}

/// Validate a delete: the filter must not be empty and must compile.
pub fn plan_delete(
    schema: &CollectionSchema,
    filter: &str,
    params: &HashMap<String, serde_json::Value>,
) -> Result<DeletePlan> {
    if filter.trim().is_empty() {
        return Err(CoreError::invalid(
            "expr",
            "delete needs a filter expression or primary keys",
        ));
    }
    let plan = compile_filter(schema, filter, params)?;
    let keys = plan.primary_keys();
    Ok(DeletePlan { plan, keys })
}

/// The partitions a delete by filter reads: all when `partition` is empty, else that one
/// (`PartitionNotFound` when missing).
pub fn delete_partitions(
    partitions: &[PartitionMeta],
    partition: &str,
) -> Result<Option<Vec<i64>>> {
    if partition.is_empty() {
        return Ok(None);
    }
    partition_ids(partitions, &[partition.to_string()])
}

/// Keys to delete as one `Delete` record per shard that owns some: `(shard, record, approximate
/// bytes)`, in shard order, `ts: 0` (the channel assigns it).
pub fn delete_records(pks: Vec<PrimaryKey>, num_shards: usize) -> Vec<(usize, WalRecord, usize)> {
    let mut per: Vec<Vec<PrimaryKey>> = vec![Vec::new(); num_shards.max(1)];
    for pk in pks {
        per[shard_of(&pk, num_shards)].push(pk);
    }
    per.into_iter()
        .enumerate()
        .filter(|(_, pks)| !pks.is_empty())
        .map(|(s, pks)| {
            let bytes = pks.len() * 16;
            (s, WalRecord::Delete { ts: 0, pks }, bytes)
        })
        .collect()
}
