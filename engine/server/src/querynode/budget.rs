//! The memory budget of a query node (`query.memory_budget_mb`): a segment whose predicted size
//! does not fit next to what the node holds and is loading is not loaded — the node reports the
//! refusal to the coordinator, which answers the collection's load progress with
//! MEMORY_LIMIT_EXCEEDED, instead of loading it and being OOM-killed. The load is retried with
//! back-off, so it proceeds once memory is freed (a collection released) or the budget raised.

use ferrovus_core::schema::{CollectionSchema, DataType};
use ferrovus_core::segment::SegmentMeta;

use super::{Inner, SegKey};
use crate::rpc::ClusterError;

/// Bytes per row beyond the fields: primary-key map, timestamps, bookkeeping.
const ROW_OVERHEAD: usize = 32;
/// Variable-length fields (strings, JSON), on average.
const VARIABLE_FIELD: usize = 64;
/// An index's graph links and bookkeeping per row (HNSW with M=16: 2·M links of 4 bytes, plus
/// upper layers).
const INDEX_PER_ROW: usize = 160;

/// The predicted memory of a loaded segment.
pub(super) fn predicted_bytes(schema: &CollectionSchema, meta: &SegmentMeta) -> usize {
    let row: usize = schema
        .fields
        .iter()
        .map(|f| match f.data_type {
            DataType::Bool | DataType::Int8 => 1,
            DataType::Int16 => 2,
            DataType::Int32 | DataType::Float => 4,
            DataType::Int64 | DataType::Double => 8,
            DataType::VarChar | DataType::Json => VARIABLE_FIELD,
            DataType::FloatVector => 4 * f.dim.unwrap_or(0) as usize,
        })
        .sum();
    meta.num_rows
        .saturating_mul(row + ROW_OVERHEAD + INDEX_PER_ROW * meta.indexes.len())
}

const MB: usize = 1024 * 1024;

impl Inner {
    fn held_bytes(&self) -> usize {
        let holds: Vec<_> = self.holds.read().values().cloned().collect();
        holds.iter().map(|h| h.set.memory_bytes()).sum()
    }

    /// Reserve `bytes` for loading `key`, or refuse (and remember why, for the coordinator).
    /// The reservation ends with [`Inner::unreserve`].
    pub(super) fn reserve(&self, key: SegKey, bytes: usize) -> Result<(), ClusterError> {
        let budget = self.config.memory_budget_mb.saturating_mul(MB as u64) as usize;
        if budget == 0 {
            return Ok(());
        }
        let held = self.held_bytes();
        let mut reserved = self.reserved.lock();
        let loading: usize = reserved.values().sum();
        if held + loading + bytes > budget {
            let reason = format!(
                "memory limit exceeded: segment {} of collection {} needs ~{} MB but {} MB of query node {}'s {} MB budget (query.memory_budget_mb) are in use; add query nodes, raise the budget or release collections",
                key.2,
                key.0,
                bytes.div_ceil(MB),
                (held + loading).div_ceil(MB),
                self.node_id,
                self.config.memory_budget_mb
            );
            drop(reserved);
            let new = self.refused.lock().insert(key, reason.clone()).is_none();
            if new {
                self.metrics.loads_refused.inc();
                self.changed.send_modify(|v| *v += 1);
            }
            return Err(ClusterError::MemoryLimit(reason));
        }
        reserved.insert(key, bytes);
        drop(reserved);
        if self.refused.lock().remove(&key).is_some() {
            self.changed.send_modify(|v| *v += 1);
        }
        Ok(())
    }

    pub(super) fn unreserve(&self, key: SegKey) {
        self.reserved.lock().remove(&key);
    }

    /// Refused loads of segments still targeted: (collection, segment, reason).
    pub(super) fn refusals(&self) -> Vec<(i64, i64, String)> {
        let target = self.current_target();
        let mut refused = self.refused.lock();
        refused.retain(|k, _| target.segments.contains_key(k));
        refused.iter().map(|(k, r)| (k.0, k.2, r.clone())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrovus_core::schema::FieldSchema;

    #[test]
    fn predictions_follow_the_schema_and_the_indexes() {
        let schema = CollectionSchema {
            name: "c".into(),
            description: String::new(),
            fields: vec![
                FieldSchema::new("id", DataType::Int64).primary(false),
                FieldSchema::new("v", DataType::FloatVector).with_dim(128),
            ],
            enable_dynamic_field: false,
        };
        let meta = SegmentMeta::new(1, 0, 1000, "k".into());
        assert_eq!(
            predicted_bytes(&schema, &meta),
            1000 * (8 + 512 + ROW_OVERHEAD)
        );
        let huge = SegmentMeta::new(1, 0, usize::MAX / 2, "k".into());
        assert_eq!(predicted_bytes(&schema, &huge), usize::MAX, "saturates");
    }
}
