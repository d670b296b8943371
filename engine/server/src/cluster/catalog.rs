//! The catalogue through the coordinator: DDL (each drops the cache), describe and list,
//! indexes, loading, segments, replicas, timestamps.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::backend::LoadState;
use ferrovus_core::CoreError;
use ferrovus_core::plan;
use ferrovus_core::request::Consistency;
use ferrovus_core::schema::CollectionSchema;

use super::{ClusterBackend, info};
use crate::api::{
    AliasReq, AlterCollectionReq, CreateCollectionReq, CreateIndexReq, DropIndexReq, Empty,
    LoadProgress, LoadReq, LoadStateKind, NameReq, PartitionReq, RenameReq,
    SegmentState as CatalogSegmentState,
};
use crate::backend::{
    CollectionInfo, IndexInfo, ReplicaInfo, SegmentInfo, SegmentState, ShardReplica,
};
use crate::error::{ApiError, ApiResult};
use crate::rpc::ClusterError;
use crate::security::{SecurityOp, SecurityState};

/// Milvus' only resource group.
const RESOURCE_GROUP: &str = "__default_resource_group";

fn name(name: &str) -> NameReq {
    NameReq {
        name: name.to_string(),
    }
}

impl ClusterBackend {
    /// A DDL call: the coordinator's answer, and the cache dropped whatever it was (a failed
    /// DDL may still have told us the cache is stale).
    async fn ddl<T>(
        &self,
        what: &'static str,
        call: impl Future<Output = Result<T, ClusterError>>,
    ) -> ApiResult<T> {
        let r = self.coord_outcome(call.await);
        self.drop_cache(what);
        Ok(r?)
    }

    pub(super) async fn create_collection_impl(
        &self,
        schema: CollectionSchema,
        num_shards: usize,
        consistency: Consistency,
        properties: BTreeMap<String, String>,
    ) -> ApiResult<()> {
        let num_shards = u32::try_from(num_shards).map_err(|_| {
            ApiError::invalid(
                "shards_num",
                format!("shards_num {num_shards} is too large"),
            )
        })?;
        let req = CreateCollectionReq {
            schema,
            num_shards,
            consistency,
            properties,
        };
        let rec = self
            .ddl("create_collection", self.coord().create_collection(req))
            .await?;
        tracing::info!(collection = %rec.name, id = rec.id, shards = rec.num_shards, "collection created");
        Ok(())
    }

    pub(super) async fn drop_collection_impl(&self, collection: &str) -> ApiResult<()> {
        self.ddl(
            "drop_collection",
            self.coord().drop_collection(name(collection)),
        )
        .await
    }

    pub(super) async fn has_collection_impl(&self, collection: &str) -> ApiResult<bool> {
        match self.record(collection).await {
            Ok(_) => Ok(true),
            Err(ApiError::Core(CoreError::CollectionNotFound(_))) => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub(super) async fn describe_collection_impl(
        &self,
        collection: &str,
    ) -> ApiResult<CollectionInfo> {
        Ok(info(&self.record(collection).await?.0))
    }

    pub(super) async fn list_collections_impl(&self) -> ApiResult<Vec<CollectionInfo>> {
        let mut all = self.coord_outcome(self.coord().list_collections(Empty {}).await)?;
        all.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(all.iter().map(info).collect())
    }

    pub(super) async fn alter_properties_impl(
        &self,
        collection: &str,
        properties: BTreeMap<String, String>,
    ) -> ApiResult<()> {
        let req = AlterCollectionReq {
            name: collection.to_string(),
            properties,
        };
        self.ddl("alter_collection", self.coord().alter_collection(req))
            .await
    }

    pub(super) async fn rename_collection_impl(&self, old: &str, new: &str) -> ApiResult<()> {
        let req = RenameReq {
            old_name: old.to_string(),
            new_name: new.to_string(),
        };
        self.ddl("rename_collection", self.coord().rename_collection(req))
            .await
    }

    pub(super) async fn create_partition_impl(
        &self,
        collection: &str,
        partition: &str,
    ) -> ApiResult<()> {
        let req = PartitionReq {
            collection: collection.to_string(),
            partition: partition.to_string(),
        };
        self.ddl("create_partition", self.coord().create_partition(req))
            .await
    }

    pub(super) async fn drop_partition_impl(
        &self,
        collection: &str,
        partition: &str,
    ) -> ApiResult<()> {
        let req = PartitionReq {
            collection: collection.to_string(),
            partition: partition.to_string(),
        };
        self.ddl("drop_partition", self.coord().drop_partition(req))
            .await
    }

    pub(super) async fn load_collection_impl(
        &self,
        collection: &str,
        replicas: usize,
    ) -> ApiResult<()> {
        let replica_number = u32::try_from(replicas.max(1)).map_err(|_| {
            ApiError::invalid(
                "replica_number",
                format!("replica_number {replicas} is too large"),
            )
        })?;
        let req = LoadReq {
            name: collection.to_string(),
            replica_number,
        };
        self.ddl("load_collection", self.coord().load_collection(req))
            .await
    }

    /// Collections are loaded whole: the partitions are checked, then the collection is loaded
    /// (with the replicas it already has, else one).
    pub(super) async fn load_partitions_impl(
        &self,
        collection: &str,
        partitions: &[String],
    ) -> ApiResult<()> {
        let rec = self.fetch_record(collection).await?;
        plan::partition_ids(&rec.partitions, partitions)?;
        let replicas = rec.load.as_ref().map_or(1, |l| l.replica_number as usize);
        self.load_collection_impl(collection, replicas).await
    }

    pub(super) async fn release_collection_impl(&self, collection: &str) -> ApiResult<()> {
        self.ddl(
            "release_collection",
            self.coord().release_collection(name(collection)),
        )
        .await
    }

    /// Collections are released whole: the partitions are checked, nothing else.
    pub(super) async fn release_partitions_impl(
        &self,
        collection: &str,
        partitions: &[String],
    ) -> ApiResult<()> {
        let rec = self.fetch_record(collection).await?;
        plan::partition_ids(&rec.partitions, partitions)?;
        Ok(())
    }

    async fn load_progress(&self, collection: &str) -> ApiResult<LoadProgress> {
        Ok(self.coord_outcome(self.coord().load_progress(name(collection)).await)?)
    }

    pub(super) async fn load_state_impl(&self, collection: &str) -> ApiResult<LoadState> {
        Ok(match self.load_progress(collection).await?.state {
            LoadStateKind::NotLoad => LoadState::NotLoad,
            LoadStateKind::Loading => LoadState::Loading,
            LoadStateKind::Loaded => LoadState::Loaded,
        })
    }

    pub(super) async fn loading_progress_impl(&self, collection: &str) -> ApiResult<u32> {
        let p = self.load_progress(collection).await?;
        if p.state == LoadStateKind::NotLoad {
            return Err(CoreError::CollectionNotLoaded(collection.to_string()).into());
        }
        Ok(p.percent.min(100))
    }

    pub(super) async fn security_op_impl(&self, op: SecurityOp) -> ApiResult<bool> {
        self.ddl("security", self.coord().security_op(op)).await
    }

    /// The users, roles and grants, cached until the catalogue version moves (or this proxy
    /// changed them).
    pub(super) async fn security_state_impl(&self) -> ApiResult<Arc<SecurityState>> {
        if let Some(s) = self.cache.security() {
            return Ok(s);
        }
        let since = self.cache.records_generation();
        let s = Arc::new(self.coord_outcome(self.coord().security_state(Empty {}).await)?);
        self.cache.put_security(since, s.clone());
        Ok(s)
    }

    pub(super) async fn create_alias_impl(&self, alias: &str, collection: &str) -> ApiResult<()> {
        let req = AliasReq {
            alias: alias.to_string(),
            collection: collection.to_string(),
        };
        self.ddl("create_alias", self.coord().create_alias(req))
            .await
    }

    pub(super) async fn drop_alias_impl(&self, alias: &str) -> ApiResult<()> {
        self.ddl("drop_alias", self.coord().drop_alias(name(alias)))
            .await
    }

    pub(super) async fn alter_alias_impl(&self, alias: &str, collection: &str) -> ApiResult<()> {
        let req = AliasReq {
            alias: alias.to_string(),
            collection: collection.to_string(),
        };
        self.ddl("alter_alias", self.coord().alter_alias(req)).await
    }

    pub(super) async fn alias_target_impl(&self, alias: &str) -> ApiResult<Option<String>> {
        match self.record(alias).await {
            Ok((rec, _)) if rec.aliases.iter().any(|a| a == alias) => Ok(Some(rec.name.clone())),
            Ok(_) | Err(ApiError::Core(CoreError::CollectionNotFound(_))) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub(super) async fn create_index_impl(
        &self,
        collection: &str,
        field_name: &str,
        index_name: &str,
        params: BTreeMap<String, String>,
    ) -> ApiResult<()> {
        let req = CreateIndexReq {
            collection: collection.to_string(),
            field_name: field_name.to_string(),
            index_name: index_name.to_string(),
            params,
        };
        self.ddl("create_index", self.coord().create_index(req))
            .await
    }

    /// Indexes named `index` or on the field `index` (all when empty); `IndexNotFound` when
    /// none matches.
    pub(super) async fn describe_indexes_impl(
        &self,
        collection: &str,
        index: &str,
    ) -> ApiResult<Vec<IndexInfo>> {
        let all = self.coord_outcome(self.coord().index_progress(name(collection)).await)?;
        let out: Vec<IndexInfo> = all
            .into_iter()
            .filter(|p| {
                index.is_empty() || p.spec.index_name == index || p.spec.field_name == index
            })
            .map(|p| IndexInfo {
                spec: p.spec,
                indexed_rows: p.indexed_rows,
                total_rows: p.total_rows,
            })
            .collect();
        if out.is_empty() {
            return Err(CoreError::IndexNotFound {
                collection: collection.to_string(),
                field: index.to_string(),
            }
            .into());
        }
        Ok(out)
    }

    pub(super) async fn drop_index_impl(
        &self,
        collection: &str,
        field_name: &str,
        index_name: &str,
    ) -> ApiResult<()> {
        let req = DropIndexReq {
            collection: collection.to_string(),
            field_name: field_name.to_string(),
            index_name: index_name.to_string(),
        };
        self.ddl("drop_index", self.coord().drop_index(req)).await
    }

    /// Sealed segments and the query nodes serving them (growing data lives on the streaming
    /// nodes and is not listed).
    pub(super) async fn segments_impl(&self, collection: &str) -> ApiResult<Vec<SegmentInfo>> {
        let views = self.coord_outcome(self.coord().segments(name(collection)).await)?;
        Ok(views
            .into_iter()
            .filter(|v| v.record.state == CatalogSegmentState::Flushed)
            .map(|v| SegmentInfo {
                segment_id: v.record.id(),
                collection_id: v.record.collection_id,
                partition_id: v.record.meta.partition_id,
                shard: v.record.shard as usize,
                num_rows: v.record.meta.num_rows,
                state: SegmentState::Sealed,
                node_ids: v.nodes.iter().map(|n| node_id(*n)).collect(),
            })
            .collect())
    }

    pub(super) async fn replicas_impl(&self, collection: &str) -> ApiResult<Vec<ReplicaInfo>> {
        let (rec, _) = self.record(collection).await?;
        let views = self.coord_outcome(self.coord().replicas(name(collection)).await)?;
        Ok(views
            .into_iter()
            .map(|v| {
                let node_ids: Vec<i64> = v.nodes.iter().map(|n| node_id(*n)).collect();
                let mut shards: Vec<ShardReplica> = v
                    .leaders
                    .iter()
                    .map(|l| ShardReplica {
                        shard: l.shard as usize,
                        leader_id: node_id(l.node),
                        leader_addr: l.addr.clone(),
                        node_ids: node_ids.clone(),
                    })
                    .collect();
                shards.sort_by_key(|s| s.shard);
                ReplicaInfo {
                    replica_id: v.replica_id,
                    collection_id: v.collection_id,
                    partition_ids: rec.partitions.iter().map(|p| p.id).collect(),
                    shards,
                    node_ids,
                    resource_group: RESOURCE_GROUP.into(),
                }
            })
            .collect())
    }

    pub(super) async fn alloc_timestamp_impl(&self) -> ApiResult<u64> {
        Ok(self.coord_outcome(self.coord().alloc_ts(1).await)?)
    }
}

/// A node id as Milvus reports it.
fn node_id(n: crate::api::NodeId) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
