//! Collection metadata shared by the catalogue and request planning: partitions, and the
//! record the single-process engine of earlier releases persisted per collection (read once,
//! when `ferrovus standalone` imports such a data directory).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::request::{Consistency, IndexSpec};
use crate::schema::CollectionSchema;

/// The partition every collection has, and writes without a partition go to.
pub const DEFAULT_PARTITION: &str = "_default";
/// The most shards a collection can have.
pub const MAX_SHARDS: usize = 16;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionMeta {
    pub id: i64,
    pub name: String,
    pub created_ts: u64,
}

/// What the single-process engine persisted about a collection (key `collections/<id>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectionMeta {
    pub id: i64,
    pub name: String,
    pub schema: CollectionSchema,
    pub num_shards: usize,
    pub partitions: Vec<PartitionMeta>,
    pub indexes: Vec<IndexSpec>,
    pub loaded: bool,
    pub consistency: Consistency,
    pub properties: BTreeMap<String, String>,
    pub created_ts: u64,
    #[serde(default)]
    pub aliases: Vec<String>,
}
