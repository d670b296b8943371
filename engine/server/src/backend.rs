//! What the Milvus front door needs from the database, as a trait over plain data.
//!
//! [`Backend`] is everything the [`crate::proxy`] handlers call, in core types (schema, values,
//! `ferrovus_core::request`) and never core-internal handles (shards, segments). Its
//! implementation is [`crate::cluster::ClusterBackend`], which routes each call to the
//! coordinator, the streaming nodes (writes) or the query nodes' delegators (reads) — over the
//! network in a cluster, directly in standalone ([`crate::standalone::Engine`]); tests also run
//! the proxy over fakes of those roles. Every method is async so an implementation can await the
//! network, and returns [`ApiResult`] so it can report its own failures.
//!
//! Milvus-protocol details (status codes, channel names, the default database) stay in the
//! proxy and [`crate::convert`]; a backend only reports facts.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use ferrovus_core::request::{
    Consistency, IndexSpec, MutationResult, QueryRequest, QueryResult, SearchRequest, SearchResult,
};
use ferrovus_core::schema::CollectionSchema;
use ferrovus_core::value::RowBatch;

use crate::error::ApiResult;
use crate::security::{SecurityOp, SecurityState};

/// Load progress of a collection, as Milvus reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadState {
    NotLoad,
    Loading,
    Loaded,
}

/// A collection's catalogue entry: what DescribeCollection, ShowCollections, ShowPartitions,
/// ListAliases and GetReplicas report, and the schema the proxy converts rows and results with.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionInfo {
    pub id: i64,
    /// The collection's own name (an alias used to find it resolves to this).
    pub name: String,
    pub schema: CollectionSchema,
    pub num_shards: usize,
    pub partitions: Vec<PartitionInfo>,
    /// Aliases pointing at the collection, sorted.
    pub aliases: Vec<String>,
    pub indexes: Vec<IndexSpec>,
    pub load_state: LoadState,
    pub properties: BTreeMap<String, String>,
    pub consistency: Consistency,
    pub created_ts: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    pub id: i64,
    pub name: String,
    pub created_ts: u64,
}

/// An index with its build progress over the collection's sealed rows.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexInfo {
    pub spec: IndexSpec,
    pub indexed_rows: usize,
    pub total_rows: usize,
}

impl IndexInfo {
    pub fn finished(&self) -> bool {
        self.indexed_rows >= self.total_rows
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentState {
    /// Still accepting rows (in the streaming node's memory).
    Growing,
    /// Immutable and persisted.
    Sealed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Persisted id when sealed; a negative handle while growing.
    pub segment_id: i64,
    pub collection_id: i64,
    pub partition_id: i64,
    pub shard: usize,
    pub num_rows: usize,
    pub state: SegmentState,
    /// Query nodes serving the segment.
    pub node_ids: Vec<i64>,
}

/// One replica group of a loaded collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaInfo {
    pub replica_id: i64,
    pub collection_id: i64,
    pub partition_ids: Vec<i64>,
    /// Per shard, in shard order.
    pub shards: Vec<ShardReplica>,
    pub node_ids: Vec<i64>,
    pub resource_group: String,
}

/// The delegator of one shard in one replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardReplica {
    pub shard: usize,
    pub leader_id: i64,
    pub leader_addr: String,
    pub node_ids: Vec<i64>,
}

/// Totals over every collection, for GetMetrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub collections: usize,
    pub rows: usize,
    pub segments: usize,
    pub memory_bytes: usize,
}

/// Who answers the Milvus API: what Connect, GetComponentStates and GetMetrics report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerIdentity {
    pub node_id: i64,
    /// The component's role: `standalone`, or `proxy` in a cluster.
    pub role: String,
    /// `STANDALONE` or `CLUSTER`.
    pub deploy_mode: String,
}

impl ServerIdentity {
    /// The one process of standalone.
    pub fn standalone() -> Self {
        ServerIdentity {
            node_id: 1,
            role: "standalone".into(),
            deploy_mode: "STANDALONE".into(),
        }
    }
}

/// Everything the Milvus handlers need from the database. Collection arguments accept a name
/// or an alias.
#[async_trait]
pub trait Backend: Send + Sync {
    // Identity and health (defaults: standalone, always healthy).

    fn identity(&self) -> ServerIdentity {
        ServerIdentity::standalone()
    }
    /// Why the server cannot serve right now; empty when healthy.
    async fn unhealthy_reasons(&self) -> Vec<String> {
        Vec::new()
    }

    // Collections.

    /// Creating an existing collection with an identical schema is a no-op (as in Milvus).
    async fn create_collection(
        &self,
        schema: CollectionSchema,
        num_shards: usize,
        consistency: Consistency,
        properties: BTreeMap<String, String>,
    ) -> ApiResult<()>;
    /// Dropping a missing collection succeeds.
    async fn drop_collection(&self, name: &str) -> ApiResult<()>;
    async fn has_collection(&self, name: &str) -> ApiResult<bool>;
    async fn describe_collection(&self, name: &str) -> ApiResult<CollectionInfo>;
    /// Every collection, ordered by name.
    async fn list_collections(&self) -> ApiResult<Vec<CollectionInfo>>;
    /// Live rows of the collection, or of one of its partitions.
    async fn row_count(&self, collection: &str, partition: Option<&str>) -> ApiResult<usize>;
    /// Add or replace properties.
    async fn alter_properties(
        &self,
        name: &str,
        properties: BTreeMap<String, String>,
    ) -> ApiResult<()>;
    async fn rename_collection(&self, old: &str, new: &str) -> ApiResult<()>;

    // Partitions (listed by `describe_collection`).

    async fn create_partition(&self, collection: &str, partition: &str) -> ApiResult<()>;
    async fn drop_partition(&self, collection: &str, partition: &str) -> ApiResult<()>;

    // Loading.

    /// Load with `replicas` replica groups (at least 1).
    async fn load_collection(&self, name: &str, replicas: usize) -> ApiResult<()>;
    async fn load_partitions(&self, collection: &str, partitions: &[String]) -> ApiResult<()>;
    async fn release_collection(&self, name: &str) -> ApiResult<()>;
    async fn release_partitions(&self, collection: &str, partitions: &[String]) -> ApiResult<()>;
    async fn load_state(&self, name: &str) -> ApiResult<LoadState>;
    /// Load progress in percent; `CollectionNotLoaded` when the collection is not loaded.
    async fn loading_progress(&self, name: &str) -> ApiResult<u32>;

    // Aliases (an alias's collection lists it in `CollectionInfo::aliases`).

    async fn create_alias(&self, alias: &str, collection: &str) -> ApiResult<()>;
    /// Dropping a missing alias succeeds.
    async fn drop_alias(&self, alias: &str) -> ApiResult<()>;
    async fn alter_alias(&self, alias: &str, collection: &str) -> ApiResult<()>;
    /// The collection an alias points at, if the alias exists.
    async fn alias_target(&self, alias: &str) -> ApiResult<Option<String>>;

    // Indexes.

    /// `params` are the flattened user parameters (`index_type`, `metric_type`, `M`, ...).
    async fn create_index(
        &self,
        collection: &str,
        field_name: &str,
        index_name: &str,
        params: BTreeMap<String, String>,
    ) -> ApiResult<()>;
    /// Indexes named `name` or on the field `name` (all when empty), with build progress;
    /// `IndexNotFound` when none matches.
    async fn describe_indexes(&self, collection: &str, name: &str) -> ApiResult<Vec<IndexInfo>>;
    async fn drop_index(
        &self,
        collection: &str,
        field_name: &str,
        index_name: &str,
    ) -> ApiResult<()>;

    // Writes. An empty partition is the default partition.

    async fn insert(
        &self,
        collection: &str,
        partition: &str,
        rows: RowBatch,
    ) -> ApiResult<MutationResult>;
    async fn upsert(
        &self,
        collection: &str,
        partition: &str,
        rows: RowBatch,
    ) -> ApiResult<MutationResult>;
    /// Delete the rows matching a filter expression (an empty partition means all).
    async fn delete(
        &self,
        collection: &str,
        partition: &str,
        filter: &str,
        params: &HashMap<String, serde_json::Value>,
    ) -> ApiResult<MutationResult>;

    // Reads.

    async fn search(&self, request: SearchRequest) -> ApiResult<SearchResult>;
    async fn query(&self, request: QueryRequest) -> ApiResult<QueryResult>;

    // Administration.

    /// Persist every acknowledged write of the collection as sealed segments.
    async fn flush(&self, collection: &str) -> ApiResult<()>;
    async fn segments(&self, collection: &str) -> ApiResult<Vec<SegmentInfo>>;
    async fn replicas(&self, collection: &str) -> ApiResult<Vec<ReplicaInfo>>;
    async fn alloc_timestamp(&self) -> ApiResult<u64>;
    async fn totals(&self) -> ApiResult<Totals>;

    // Users, roles and grants.

    /// Apply one change (passwords already hashed); whether anything changed.
    async fn security_op(&self, op: SecurityOp) -> ApiResult<bool>;
    /// The current users, roles and grants (an implementation may cache them; a change made
    /// through it is visible to its next call).
    async fn security_state(&self) -> ApiResult<Arc<SecurityState>>;
}
