//! Types shared by the role APIs: identities, catalogue records, routes, read specs and hits.

use std::collections::{BTreeMap, HashMap};

use ferrovus_core::collection::PartitionMeta;
use ferrovus_core::request::{Consistency, IndexSpec, MetricType};
use ferrovus_core::schema::CollectionSchema;
use ferrovus_core::segment::SegmentMeta;
use ferrovus_core::value::{PrimaryKey, Value};
use serde::{Deserialize, Serialize};

/// A process of the cluster, allocated at start-up and never reused.
pub type NodeId = u64;

/// A shard of a collection: the unit of write ownership (one streaming node at a time).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
pub struct ChannelId {
    pub collection_id: i64,
    pub shard: u32,
}

impl ChannelId {
    pub fn new(collection_id: i64, shard: u32) -> Self {
        ChannelId {
            collection_id,
            shard,
        }
    }
}

impl std::fmt::Display for ChannelId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.collection_id, self.shard)
    }
}

/// How a collection is loaded (absent: released).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadSpec {
    pub replica_number: u32,
}

/// A collection in the catalogue (`catalog/collections/<id>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectionRecord {
    pub id: i64,
    pub name: String,
    pub schema: CollectionSchema,
    pub num_shards: u32,
    pub partitions: Vec<PartitionMeta>,
    pub aliases: Vec<String>,
    pub indexes: Vec<IndexSpec>,
    pub consistency: Consistency,
    pub properties: BTreeMap<String, String>,
    pub created_ts: u64,
    #[serde(default)]
    pub load: Option<LoadSpec>,
}

impl CollectionRecord {
    pub fn channels(&self) -> impl Iterator<Item = ChannelId> + '_ {
        (0..self.num_shards).map(|s| ChannelId::new(self.id, s))
    }
    /// The shard a primary key belongs to (the same hash as standalone).
    pub fn shard_of(&self, pk: &PrimaryKey) -> u32 {
        (pk.shard_hash() % u64::from(self.num_shards.max(1))) as u32
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SegmentState {
    /// Sealed and persisted; served.
    Flushed,
    /// Replaced by a compaction result (`compacted_from` of another segment); still served until
    /// every replica serves its replacement, then garbage.
    Compacted,
}

/// A sealed segment in the catalogue (`catalog/segments/<cid>/<sid>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentRecord {
    pub collection_id: i64,
    pub shard: u32,
    pub meta: SegmentMeta,
    pub state: SegmentState,
    /// Segments this one replaces (compaction).
    #[serde(default)]
    pub compacted_from: Vec<i64>,
}

impl SegmentRecord {
    pub fn id(&self) -> i64 {
        self.meta.segment_id
    }
    pub fn channel(&self) -> ChannelId {
        ChannelId::new(self.collection_id, self.shard)
    }
}

/// Where a channel lives: its owner and term (`catalog/channels/<cid>/<shard>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelRoute {
    pub channel: ChannelId,
    pub node: NodeId,
    pub addr: String,
    pub term: u64,
}

/// The delegator of one shard in one replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardLeader {
    pub shard: u32,
    pub node: NodeId,
    pub addr: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaRoute {
    pub replica_id: i64,
    pub nodes: Vec<NodeId>,
    pub leaders: Vec<ShardLeader>,
}

/// What a proxy needs to reach a collection's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct CollectionRoutes {
    pub collection_id: i64,
    pub channels: Vec<ChannelRoute>,
    pub replicas: Vec<ReplicaRoute>,
}

/// A vector search prepared by the proxy against the schema, as every node executes it (each
/// compiles `filter` against its own copy of the schema).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchSpec {
    pub field_index: usize,
    pub metric: MetricType,
    #[serde(with = "f32_bytes")]
    pub queries: Vec<f32>,
    pub num_queries: usize,
    /// Hits wanted per query from each shard (limit + offset).
    pub k: usize,
    pub ef: usize,
    pub filter: String,
    pub filter_params: HashMap<String, serde_json::Value>,
    /// Partition ids to read (None: all).
    pub partitions: Option<Vec<i64>>,
    /// Schema field indexes whose values the hits carry.
    pub output: Vec<usize>,
    pub ignore_growing: bool,
    pub radius: Option<f32>,
    pub range_filter: Option<f32>,
}

/// A filter query prepared by the proxy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuerySpec {
    pub filter: String,
    pub filter_params: HashMap<String, serde_json::Value>,
    pub partitions: Option<Vec<i64>>,
    pub output: Vec<usize>,
    pub count_only: bool,
    /// At most this many rows in primary-key order from each shard (offset + limit), if bounded.
    pub limit: Option<usize>,
}

/// One search hit with its output values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    pub score: f32,
    pub pk: PrimaryKey,
    pub values: Vec<Value>,
}

/// One query row: its key and output values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub pk: PrimaryKey,
    pub values: Vec<Value>,
}

/// `Vec<f32>` as raw little-endian bytes (one memcpy instead of a tagged value per element).
pub mod f32_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[f32], s: S) -> Result<S::Ok, S::Error> {
        let mut bytes = Vec::with_capacity(v.len() * 4);
        for x in v {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
        serde_bytes::serialize(&bytes, s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f32>, D::Error> {
        let bytes: serde_bytes::ByteBuf = Deserialize::deserialize(d)?;
        if !bytes.len().is_multiple_of(4) {
            return Err(serde::de::Error::custom(format!(
                "f32 array of {} bytes is not a multiple of 4",
                bytes.len()
            )));
        }
        Ok(bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
}

/// A `WalRecord` in its log encoding (compact columns, as written to the write-ahead log).
pub mod wal_record {
    use ferrovus_core::wal::WalRecord;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(r: &WalRecord, s: S) -> Result<S::Ok, S::Error> {
        serde_bytes::serialize(&r.encode(), s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<WalRecord, D::Error> {
        let bytes: serde_bytes::ByteBuf = Deserialize::deserialize(d)?;
        WalRecord::decode(&bytes).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrovus_core::value::{Column, RowBatch};
    use ferrovus_core::wal::WalRecord;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Carrier {
        #[serde(with = "wal_record")]
        record: WalRecord,
        #[serde(with = "f32_bytes")]
        v: Vec<f32>,
    }

    #[test]
    fn log_records_and_float_arrays_round_trip_through_the_rpc_encoding() {
        let c = Carrier {
            record: WalRecord::Insert {
                partition_id: 3,
                ts: 9,
                rows: RowBatch {
                    columns: vec![("id".into(), Column::Int(vec![1, 2]))],
                },
            },
            v: vec![1.5, -0.0, f32::MAX],
        };
        let bytes = crate::rpc::encode(&c).unwrap();
        let back: Carrier = crate::rpc::decode(&bytes).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn shard_routing_matches_the_key_hash() {
        let rec = CollectionRecord {
            id: 1,
            name: "c".into(),
            schema: CollectionSchema {
                name: "c".into(),
                description: String::new(),
                fields: vec![],
                enable_dynamic_field: false,
            },
            num_shards: 4,
            partitions: vec![],
            aliases: vec![],
            indexes: vec![],
            consistency: Consistency::Bounded,
            properties: BTreeMap::new(),
            created_ts: 0,
            load: None,
        };
        let pk = PrimaryKey::Int(12345);
        assert_eq!(u64::from(rec.shard_of(&pk)), pk.shard_hash() % 4);
        assert_eq!(rec.channels().count(), 4);
    }
}
