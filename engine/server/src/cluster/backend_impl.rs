//! [`Backend`] for [`ClusterBackend`]: each method forwards to its implementation in the
//! family's file (catalogue, channels, writes, reads).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::backend::LoadState;
use async_trait::async_trait;
use ferrovus_core::request::{
    Consistency, MutationResult, QueryRequest, QueryResult, SearchRequest, SearchResult,
};
use ferrovus_core::schema::CollectionSchema;
use ferrovus_core::value::RowBatch;

use super::ClusterBackend;
use crate::api::Empty;
use crate::backend::{
    Backend, CollectionInfo, IndexInfo, ReplicaInfo, SegmentInfo, ServerIdentity, Totals,
};
use crate::error::ApiResult;
use crate::security::{SecurityOp, SecurityState};

#[async_trait]
impl Backend for ClusterBackend {
    fn identity(&self) -> ServerIdentity {
        self.identity.clone()
    }

    async fn unhealthy_reasons(&self) -> Vec<String> {
        let h = self.coord_health.borrow().clone();
        if !h.reached {
            return vec!["the coordinator has not answered yet".into()];
        }
        match h.error {
            Some(e) => vec![format!("the coordinator does not answer: {e}")],
            None => Vec::new(),
        }
    }

    async fn create_collection(
        &self,
        schema: CollectionSchema,
        num_shards: usize,
        consistency: Consistency,
        properties: BTreeMap<String, String>,
    ) -> ApiResult<()> {
        self.create_collection_impl(schema, num_shards, consistency, properties)
            .await
    }

    async fn drop_collection(&self, name: &str) -> ApiResult<()> {
        self.drop_collection_impl(name).await
    }

    async fn has_collection(&self, name: &str) -> ApiResult<bool> {
        self.has_collection_impl(name).await
    }

    async fn describe_collection(&self, name: &str) -> ApiResult<CollectionInfo> {
        self.describe_collection_impl(name).await
    }

    async fn list_collections(&self) -> ApiResult<Vec<CollectionInfo>> {
        self.list_collections_impl().await
    }

    async fn row_count(&self, collection: &str, partition: Option<&str>) -> ApiResult<usize> {
        self.row_count_impl(collection, partition).await
    }

    async fn alter_properties(
        &self,
        name: &str,
        properties: BTreeMap<String, String>,
    ) -> ApiResult<()> {
        self.alter_properties_impl(name, properties).await
    }

    async fn rename_collection(&self, old: &str, new: &str) -> ApiResult<()> {
        self.rename_collection_impl(old, new).await
    }

    async fn create_partition(&self, collection: &str, partition: &str) -> ApiResult<()> {
        self.create_partition_impl(collection, partition).await
    }

    async fn drop_partition(&self, collection: &str, partition: &str) -> ApiResult<()> {
        self.drop_partition_impl(collection, partition).await
    }

    async fn load_collection(&self, name: &str, replicas: usize) -> ApiResult<()> {
        self.load_collection_impl(name, replicas).await
    }

    async fn load_partitions(&self, collection: &str, partitions: &[String]) -> ApiResult<()> {
        self.load_partitions_impl(collection, partitions).await
    }

    async fn release_collection(&self, name: &str) -> ApiResult<()> {
        self.release_collection_impl(name).await
    }

    async fn release_partitions(&self, collection: &str, partitions: &[String]) -> ApiResult<()> {
        self.release_partitions_impl(collection, partitions).await
    }

    async fn load_state(&self, name: &str) -> ApiResult<LoadState> {
        self.load_state_impl(name).await
    }

    async fn loading_progress(&self, name: &str) -> ApiResult<u32> {
        self.loading_progress_impl(name).await
    }

    async fn create_alias(&self, alias: &str, collection: &str) -> ApiResult<()> {
        self.create_alias_impl(alias, collection).await
    }

    async fn drop_alias(&self, alias: &str) -> ApiResult<()> {
        self.drop_alias_impl(alias).await
    }

    async fn alter_alias(&self, alias: &str, collection: &str) -> ApiResult<()> {
        self.alter_alias_impl(alias, collection).await
    }

    async fn alias_target(&self, alias: &str) -> ApiResult<Option<String>> {
        self.alias_target_impl(alias).await
    }

    async fn create_index(
        &self,
        collection: &str,
        field_name: &str,
        index_name: &str,
        params: BTreeMap<String, String>,
    ) -> ApiResult<()> {
        self.create_index_impl(collection, field_name, index_name, params)
            .await
    }

    async fn describe_indexes(&self, collection: &str, name: &str) -> ApiResult<Vec<IndexInfo>> {
        self.describe_indexes_impl(collection, name).await
    }

    async fn drop_index(
        &self,
        collection: &str,
        field_name: &str,
        index_name: &str,
    ) -> ApiResult<()> {
        self.drop_index_impl(collection, field_name, index_name)
            .await
    }

    async fn insert(
        &self,
        collection: &str,
        partition: &str,
        rows: RowBatch,
    ) -> ApiResult<MutationResult> {
        self.write_impl(collection, partition, rows, false).await
    }

    async fn upsert(
        &self,
        collection: &str,
        partition: &str,
        rows: RowBatch,
    ) -> ApiResult<MutationResult> {
        self.write_impl(collection, partition, rows, true).await
    }

    async fn delete(
        &self,
        collection: &str,
        partition: &str,
        filter: &str,
        params: &HashMap<String, serde_json::Value>,
    ) -> ApiResult<MutationResult> {
        self.delete_impl(collection, partition, filter, params)
            .await
    }

    async fn search(&self, request: SearchRequest) -> ApiResult<SearchResult> {
        self.search_impl(&request).await
    }

    async fn query(&self, request: QueryRequest) -> ApiResult<QueryResult> {
        self.query_impl(&request).await
    }

    async fn flush(&self, collection: &str) -> ApiResult<()> {
        self.flush_impl(collection).await
    }

    async fn segments(&self, collection: &str) -> ApiResult<Vec<SegmentInfo>> {
        self.segments_impl(collection).await
    }

    async fn replicas(&self, collection: &str) -> ApiResult<Vec<ReplicaInfo>> {
        self.replicas_impl(collection).await
    }

    async fn alloc_timestamp(&self) -> ApiResult<u64> {
        self.alloc_timestamp_impl().await
    }

    async fn security_op(&self, op: SecurityOp) -> ApiResult<bool> {
        self.security_op_impl(op).await
    }

    async fn security_state(&self) -> ApiResult<Arc<SecurityState>> {
        self.security_state_impl().await
    }

    /// Collections and their live rows and sealed segments (memory is held by other nodes and
    /// reported by them).
    async fn totals(&self) -> ApiResult<Totals> {
        let all = self.coord_outcome(self.coord().list_collections(Empty {}).await)?;
        let mut t = Totals {
            collections: all.len(),
            ..Totals::default()
        };
        for c in &all {
            t.rows += self.row_count_impl(&c.name, None).await?;
            t.segments += self.segments_impl(&c.name).await?.len();
        }
        Ok(t)
    }
}
