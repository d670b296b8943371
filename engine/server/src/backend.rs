//! What the Milvus front door needs from the database, as a trait over plain data.
//!
//! [`Backend`] is everything the [`crate::proxy`] handlers call, in core types (schema, values,
//! `ferrovus_core::request`) and never core-internal handles (`Arc<Collection>`, shards): the
//! proxy must work the same over the in-process [`LocalBackend`] (standalone, over
//! [`Database`]) and over a cluster client that routes each call to the coordinator, the
//! streaming nodes (writes) or the query nodes' delegators (reads). Every method is async so a
//! remote implementation can await the network, and returns [`ApiResult`] so it can report its
//! own failures; the local one only wraps [`CoreError`]s.
//!
//! Milvus-protocol details (status codes, channel names, the default database) stay in the
//! proxy and [`crate::convert`]; a backend only reports facts.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use ferrovus_core::database::LoadState;
use ferrovus_core::request::{
    Consistency, IndexSpec, MutationResult, QueryRequest, QueryResult, SearchRequest, SearchResult,
};
use ferrovus_core::schema::CollectionSchema;
use ferrovus_core::value::RowBatch;
use ferrovus_core::{CoreError, Database};

use crate::error::{ApiError, ApiResult};

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
}

/// Standalone: the backend is the in-process [`Database`]. Reads run on the blocking pool.
#[derive(Debug, Clone)]
pub struct LocalBackend {
    db: Arc<Database>,
}

/// The single query node of standalone.
const LOCAL_NODE: i64 = 1;

impl LocalBackend {
    pub fn new(db: Arc<Database>) -> Self {
        LocalBackend { db }
    }

    pub fn database(&self) -> &Arc<Database> {
        &self.db
    }

    fn info(&self, c: &ferrovus_core::collection::Collection) -> CollectionInfo {
        let m = c.meta.read().clone();
        CollectionInfo {
            aliases: self.db.aliases_of(&m.name),
            indexes: c.indexes.read().clone(),
            load_state: if c.is_loaded() {
                LoadState::Loaded
            } else {
                LoadState::NotLoad
            },
            id: m.id,
            name: m.name,
            schema: m.schema,
            num_shards: m.num_shards,
            partitions: m
                .partitions
                .into_iter()
                .map(|p| PartitionInfo {
                    id: p.id,
                    name: p.name,
                    created_ts: p.created_ts,
                })
                .collect(),
            properties: m.properties,
            consistency: m.consistency,
            created_ts: m.created_ts,
        }
    }

    /// Fail with `PartitionNotFound` unless every partition exists.
    fn check_partitions(&self, collection: &str, partitions: &[String]) -> ApiResult<()> {
        let c = self.db.collection(collection)?;
        for p in partitions {
            c.partition_id(p)?;
        }
        Ok(())
    }
}

#[async_trait]
impl Backend for LocalBackend {
    async fn create_collection(
        &self,
        schema: CollectionSchema,
        num_shards: usize,
        consistency: Consistency,
        properties: BTreeMap<String, String>,
    ) -> ApiResult<()> {
        Ok(self
            .db
            .create_collection(schema, num_shards, consistency, properties)
            .await?)
    }

    async fn drop_collection(&self, name: &str) -> ApiResult<()> {
        Ok(self.db.drop_collection(name).await?)
    }

    async fn has_collection(&self, name: &str) -> ApiResult<bool> {
        Ok(self.db.collection(name).is_ok())
    }

    async fn describe_collection(&self, name: &str) -> ApiResult<CollectionInfo> {
        Ok(self.info(&*self.db.collection(name)?))
    }

    async fn list_collections(&self) -> ApiResult<Vec<CollectionInfo>> {
        Ok(self
            .db
            .list_collections()
            .iter()
            .map(|c| self.info(c))
            .collect())
    }

    async fn row_count(&self, collection: &str, partition: Option<&str>) -> ApiResult<usize> {
        Ok(match partition {
            None => self.db.row_count(collection)?,
            Some(p) => self
                .db
                .collection(collection)?
                .count_rows(&[p.to_string()])?,
        })
    }

    async fn alter_properties(
        &self,
        name: &str,
        properties: BTreeMap<String, String>,
    ) -> ApiResult<()> {
        Ok(self.db.alter_properties(name, properties).await?)
    }

    async fn rename_collection(&self, old: &str, new: &str) -> ApiResult<()> {
        Ok(self.db.rename_collection(old, new).await?)
    }

    async fn create_partition(&self, collection: &str, partition: &str) -> ApiResult<()> {
        Ok(self.db.create_partition(collection, partition).await?)
    }

    async fn drop_partition(&self, collection: &str, partition: &str) -> ApiResult<()> {
        Ok(self.db.drop_partition(collection, partition).await?)
    }

    async fn load_collection(&self, name: &str, replicas: usize) -> ApiResult<()> {
        if replicas > 1 {
            return Err(ApiError::invalid(
                "replica_number",
                format!("standalone serves one replica, got replica_number {replicas}"),
            ));
        }
        Ok(self.db.load(name).await?)
    }

    /// Standalone loads whole collections: the partitions are checked, then all is loaded.
    async fn load_partitions(&self, collection: &str, partitions: &[String]) -> ApiResult<()> {
        self.check_partitions(collection, partitions)?;
        Ok(self.db.load(collection).await?)
    }

    async fn release_collection(&self, name: &str) -> ApiResult<()> {
        Ok(self.db.release(name).await?)
    }

    /// Standalone releases whole collections only: the partitions are checked, nothing else.
    async fn release_partitions(&self, collection: &str, partitions: &[String]) -> ApiResult<()> {
        self.check_partitions(collection, partitions)
    }

    async fn load_state(&self, name: &str) -> ApiResult<LoadState> {
        Ok(self.db.load_state(name)?)
    }

    /// Loading is instantaneous in standalone (segments are opened lazily).
    async fn loading_progress(&self, name: &str) -> ApiResult<u32> {
        let c = self.db.collection(name)?;
        if !c.is_loaded() {
            return Err(CoreError::CollectionNotLoaded(name.to_string()).into());
        }
        Ok(100)
    }

    async fn create_alias(&self, alias: &str, collection: &str) -> ApiResult<()> {
        Ok(self.db.create_alias(alias, collection).await?)
    }

    async fn drop_alias(&self, alias: &str) -> ApiResult<()> {
        Ok(self.db.drop_alias(alias).await?)
    }

    async fn alter_alias(&self, alias: &str, collection: &str) -> ApiResult<()> {
        Ok(self.db.alter_alias(alias, collection).await?)
    }

    async fn alias_target(&self, alias: &str) -> ApiResult<Option<String>> {
        Ok(self.db.alias_target(alias))
    }

    async fn create_index(
        &self,
        collection: &str,
        field_name: &str,
        index_name: &str,
        params: BTreeMap<String, String>,
    ) -> ApiResult<()> {
        Ok(self
            .db
            .create_index(collection, field_name, index_name, params)
            .await?)
    }

    async fn describe_indexes(&self, collection: &str, name: &str) -> ApiResult<Vec<IndexInfo>> {
        Ok(self
            .db
            .describe_indexes(collection, name)?
            .into_iter()
            .map(|(spec, indexed_rows, total_rows)| IndexInfo {
                spec,
                indexed_rows,
                total_rows,
            })
            .collect())
    }

    async fn drop_index(
        &self,
        collection: &str,
        field_name: &str,
        index_name: &str,
    ) -> ApiResult<()> {
        Ok(self
            .db
            .drop_index(collection, field_name, index_name)
            .await?)
    }

    async fn insert(
        &self,
        collection: &str,
        partition: &str,
        rows: RowBatch,
    ) -> ApiResult<MutationResult> {
        Ok(self.db.insert(collection, partition, rows).await?)
    }

    async fn upsert(
        &self,
        collection: &str,
        partition: &str,
        rows: RowBatch,
    ) -> ApiResult<MutationResult> {
        Ok(self.db.upsert(collection, partition, rows).await?)
    }

    async fn delete(
        &self,
        collection: &str,
        partition: &str,
        filter: &str,
        params: &HashMap<String, serde_json::Value>,
    ) -> ApiResult<MutationResult> {
        Ok(self
            .db
            .delete(collection, partition, filter, params)
            .await?)
    }

    async fn search(&self, request: SearchRequest) -> ApiResult<SearchResult> {
        let db = self.db.clone();
        Ok(tokio::task::spawn_blocking(move || db.search(&request))
            .await
            .map_err(|e| ApiError::Internal(format!("search task failed: {e}")))??)
    }

    async fn query(&self, request: QueryRequest) -> ApiResult<QueryResult> {
        let db = self.db.clone();
        Ok(tokio::task::spawn_blocking(move || db.query(&request))
            .await
            .map_err(|e| ApiError::Internal(format!("query task failed: {e}")))??)
    }

    async fn flush(&self, collection: &str) -> ApiResult<()> {
        Ok(self.db.flush(collection).await?)
    }

    async fn segments(&self, collection: &str) -> ApiResult<Vec<SegmentInfo>> {
        let c = self.db.collection(collection)?;
        let collection_id = c.id();
        Ok(c.shards
            .iter()
            .enumerate()
            .flat_map(|(shard, s)| s.segment_infos().into_iter().map(move |x| (shard, x)))
            .map(|(shard, x)| SegmentInfo {
                segment_id: x.segment_id,
                collection_id,
                partition_id: x.partition_id,
                shard,
                num_rows: x.rows,
                state: if x.sealed {
                    SegmentState::Sealed
                } else {
                    SegmentState::Growing
                },
                node_ids: vec![LOCAL_NODE],
            })
            .collect())
    }

    /// One replica: the local query node leads every shard.
    async fn replicas(&self, collection: &str) -> ApiResult<Vec<ReplicaInfo>> {
        let c = self.db.collection(collection)?;
        let m = c.meta.read();
        Ok(vec![ReplicaInfo {
            replica_id: 1,
            collection_id: m.id,
            partition_ids: m.partitions.iter().map(|p| p.id).collect(),
            shards: (0..m.num_shards)
                .map(|shard| ShardReplica {
                    shard,
                    leader_id: LOCAL_NODE,
                    leader_addr: "localhost".into(),
                    node_ids: vec![LOCAL_NODE],
                })
                .collect(),
            node_ids: vec![LOCAL_NODE],
            resource_group: "__default_resource_group".into(),
        }])
    }

    async fn alloc_timestamp(&self) -> ApiResult<u64> {
        Ok(self.db.alloc_timestamp().await?)
    }

    async fn totals(&self) -> ApiResult<Totals> {
        let (collections, rows, segments, memory_bytes) = self.db.totals();
        Ok(Totals {
            collections,
            rows,
            segments,
            memory_bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrovus_core::request::{IndexType, MetricType};
    use ferrovus_core::schema::{DataType, FieldSchema};
    use ferrovus_core::store::memory::{MemoryMetaStore, MemoryObjectStore};
    use ferrovus_core::value::Column;

    async fn backend() -> LocalBackend {
        let db = Database::open(
            Arc::new(MemoryMetaStore::default()),
            Arc::new(MemoryObjectStore::default()),
            ferrovus_core::CoreConfig::default(),
        )
        .await
        .unwrap();
        LocalBackend::new(db)
    }

    fn schema() -> CollectionSchema {
        CollectionSchema {
            name: "c".into(),
            description: String::new(),
            fields: vec![
                FieldSchema::new("id", DataType::Int64).primary(false),
                FieldSchema::new("v", DataType::FloatVector).with_dim(2),
            ],
            enable_dynamic_field: false,
        }
    }

    fn code(e: ApiError) -> i32 {
        e.code()
    }

    #[tokio::test]
    async fn the_catalogue_is_plain_data() {
        let b = backend().await;
        b.create_collection(schema(), 2, Consistency::Strong, BTreeMap::new())
            .await
            .unwrap();
        b.create_partition("c", "p").await.unwrap();
        b.create_alias("a", "c").await.unwrap();
        let c = b.describe_collection("a").await.unwrap();
        assert_eq!((c.name.as_str(), c.num_shards), ("c", 2));
        assert_eq!(c.aliases, ["a"]);
        assert_eq!(
            c.partitions
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>(),
            ["_default", "p"]
        );
        assert_eq!(c.load_state, LoadState::NotLoad);
        assert_eq!(c.consistency, Consistency::Strong);
        assert!(b.has_collection("a").await.unwrap());
        assert!(!b.has_collection("nope").await.unwrap());
        assert_eq!(b.alias_target("a").await.unwrap().as_deref(), Some("c"));
        assert_eq!(
            b.list_collections().await.unwrap(),
            std::slice::from_ref(&c)
        );
        assert_eq!(
            code(b.describe_collection("nope").await.unwrap_err()),
            ferrovus_proto::codes::COLLECTION_NOT_FOUND
        );

        // Loading needs an index; standalone serves one replica.
        assert_eq!(
            code(b.load_collection("c", 1).await.unwrap_err()),
            ferrovus_proto::codes::PARAMETER_INVALID
        );
        assert_eq!(
            b.load_collection("c", 2).await.unwrap_err().to_string(),
            "invalid parameter[replica_number]: standalone serves one replica, got replica_number 2"
        );
        assert_eq!(
            code(b.loading_progress("c").await.unwrap_err()),
            ferrovus_proto::codes::COLLECTION_NOT_LOADED
        );
        let params: BTreeMap<String, String> = [
            ("index_type".to_string(), "HNSW".to_string()),
            ("metric_type".to_string(), "L2".to_string()),
        ]
        .into();
        b.create_index("c", "v", "", params).await.unwrap();
        let idx = b.describe_indexes("c", "v").await.unwrap();
        assert_eq!(idx.len(), 1);
        assert_eq!(
            (idx[0].spec.index_type, idx[0].spec.metric),
            (IndexType::Hnsw, MetricType::L2)
        );
        assert!(idx[0].finished());
        assert_eq!(
            code(
                b.load_partitions("c", &["nope".to_string()])
                    .await
                    .unwrap_err()
            ),
            ferrovus_proto::codes::PARTITION_NOT_FOUND
        );
        b.load_partitions("c", &["p".to_string()]).await.unwrap();
        assert_eq!(b.load_state("c").await.unwrap(), LoadState::Loaded);
        assert_eq!(b.loading_progress("c").await.unwrap(), 100);
        b.release_partitions("c", &["p".to_string()]).await.unwrap();
        assert_eq!(b.load_state("c").await.unwrap(), LoadState::Loaded);
        b.release_collection("c").await.unwrap();
        assert_eq!(b.load_state("c").await.unwrap(), LoadState::NotLoad);

        let replicas = b.replicas("c").await.unwrap();
        assert_eq!(replicas.len(), 1);
        assert_eq!(replicas[0].collection_id, c.id);
        assert_eq!(
            replicas[0].partition_ids,
            c.partitions.iter().map(|p| p.id).collect::<Vec<_>>()
        );
        assert_eq!(
            replicas[0]
                .shards
                .iter()
                .map(|s| s.shard)
                .collect::<Vec<_>>(),
            [0, 1]
        );
    }

    #[tokio::test]
    async fn rows_segments_and_totals() {
        let b = backend().await;
        b.create_collection(schema(), 1, Consistency::Bounded, BTreeMap::new())
            .await
            .unwrap();
        let rows = RowBatch {
            columns: vec![
                ("id".into(), Column::Int(vec![1, 2, 3])),
                (
                    "v".into(),
                    Column::FloatVector {
                        dim: 2,
                        data: vec![0.0, 1.0, 1.0, 0.0, 1.0, 1.0],
                    },
                ),
            ],
        };
        let res = b.insert("c", "", rows).await.unwrap();
        assert_eq!(res.insert_count, 3);
        let growing = b.segments("c").await.unwrap();
        assert!(!growing.is_empty());
        assert!(growing.iter().all(|s| s.state == SegmentState::Growing));
        b.flush("c").await.unwrap();
        let sealed = b.segments("c").await.unwrap();
        assert!(sealed.iter().any(|s| s.state == SegmentState::Sealed));
        let c = b.describe_collection("c").await.unwrap();
        assert!(
            sealed
                .iter()
                .all(|s| s.collection_id == c.id && s.shard == 0)
        );
        assert_eq!(b.row_count("c", None).await.unwrap(), 3);
        assert_eq!(b.row_count("c", Some("_default")).await.unwrap(), 3);
        assert_eq!(
            code(b.row_count("c", Some("nope")).await.unwrap_err()),
            ferrovus_proto::codes::PARTITION_NOT_FOUND
        );
        let del = b
            .delete("c", "", "id in [1]", &HashMap::new())
            .await
            .unwrap();
        assert_eq!(del.delete_count, 1);
        let t = b.totals().await.unwrap();
        assert_eq!((t.collections, t.rows), (1, 2));
        assert!(b.alloc_timestamp().await.unwrap() > res.timestamp);
    }
}
