//! Reads: search and query planned against the cached schema, one replica's delegator per
//! shard, shards merged with the core's merge functions.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use ferrovus_core::CoreError;
use ferrovus_core::plan::{self, SearchPlan};
use ferrovus_core::read::ShardHit;
use ferrovus_core::request::{QueryRequest, QueryResult, SearchRequest, SearchResult};
use futures::future::try_join_all;
use tokio::time::Instant;

use super::ClusterBackend;
use super::retry::Retry;
use crate::api::{
    CollectionRecord, Hit, NodeId, QueryApi, QuerySpec, SearchSpec, ShardQueryReq, ShardQueryResp,
    ShardSearchReq,
};
use crate::error::{ApiError, ApiResult};
use crate::rpc::ClusterError;

impl ClusterBackend {
    pub(super) async fn search_impl(&self, req: &SearchRequest) -> ApiResult<SearchResult> {
        self.with_record(&req.collection, |rec| self.search_on(rec, req))
            .await
    }

    async fn search_on(
        &self,
        rec: Arc<CollectionRecord>,
        req: &SearchRequest,
    ) -> ApiResult<SearchResult> {
        check_loaded(&rec)?;
        let mut p = plan::plan_search(&rec.schema, &rec.indexes, &rec.partitions, req)?;
        let spec = search_spec(&mut p);
        let deadline = self.deadline();
        let nq = p.num_queries;
        let collection_id = rec.id;
        let shards = try_join_all(super::channels::shards(&rec).map(|shard| {
            let spec = &spec;
            self.on_delegator("search", collection_id, shard, deadline, move |node, replica_id| {
                let req = ShardSearchReq {
                    collection_id,
                    shard,
                    replica_id,
                    spec: spec.clone(),
                };
                async move {
                    let hits = node.search_shard(req).await?;
                    if hits.len() != nq {
                        return Err(ClusterError::Internal(format!(
                            "the delegator of shard {shard} answered {} queries, {nq} were asked",
                            hits.len()
                        )));
                    }
                    Ok(hits)
                }
            })
        }))
        .await?;
        let shards = shards
            .into_iter()
            .map(|per_query| {
                per_query
                    .into_iter()
                    .map(|hits| hits.into_iter().map(shard_hit).collect())
                    .collect()
            })
            .collect();
        Ok(plan::merge_search(&rec.schema, &p, shards))
    }

    pub(super) async fn query_impl(&self, req: &QueryRequest) -> ApiResult<QueryResult> {
        self.with_record(&req.collection, |rec| self.query_on(rec, req))
            .await
    }

    async fn query_on(
        &self,
        rec: Arc<CollectionRecord>,
        req: &QueryRequest,
    ) -> ApiResult<QueryResult> {
        check_loaded(&rec)?;
        let p = plan::plan_query(&rec.schema, &rec.partitions, req)?;
        let spec = QuerySpec {
            filter: p.filter.clone(),
            filter_params: p.filter_params.clone(),
            partitions: p.partitions.clone(),
            output: p.output.clone(),
            count_only: p.count_only,
            limit: p.shard_limit(),
        };
        let shards: Vec<u32> = p
            .shards(rec.num_shards as usize)
            .into_iter()
            .filter_map(|s| u32::try_from(s).ok())
            .collect();
        let answers = self.query_shards(&rec, &shards, &spec).await?;
        let shards = answers
            .into_iter()
            .map(|a| {
                let rows = a.rows.into_iter().map(|r| (r.pk, r.values)).collect();
                (a.count, rows)
            })
            .collect();
        Ok(plan::merge_query(&rec.schema, &p, shards))
    }

    /// `spec` on each of `shards`, through one replica's delegator each.
    pub(super) async fn query_shards(
        &self,
        rec: &CollectionRecord,
        shards: &[u32],
        spec: &QuerySpec,
    ) -> ApiResult<Vec<ShardQueryResp>> {
        let deadline = self.deadline();
        Ok(try_join_all(shards.iter().map(|&shard| {
            self.on_delegator("query", rec.id, shard, deadline, move |node, replica_id| {
                let req = ShardQueryReq {
                    collection_id: rec.id,
                    shard,
                    replica_id,
                    spec: spec.clone(),
                };
                async move { node.query_shard(req).await }
            })
        }))
        .await?)
    }

    /// Call `op(delegator, replica)` on a delegator of shard `shard`. Replicas are tried from a
    /// rotating start; after a retriable error the next replica whose delegator is not a node
    /// that failed is tried at once; when none is left, the routes are refreshed and the round
    /// starts over, until `deadline`.
    async fn on_delegator<T, F, Fut>(
        &self,
        op_name: &'static str,
        collection_id: i64,
        shard: u32,
        deadline: Instant,
        mut op: F,
    ) -> Result<T, ClusterError>
    where
        F: FnMut(Arc<dyn QueryApi>, i64) -> Fut,
        Fut: Future<Output = Result<T, ClusterError>>,
    {
        let mut retry = Retry::until(deadline);
        loop {
            let Some(routes) = self.routes_or_pause(collection_id, &mut retry).await? else {
                continue;
            };
            let leaders: Vec<(i64, NodeId, &str)> = routes
                .replicas
                .iter()
                .filter_map(|r| {
                    let l = r.leaders.iter().find(|l| l.shard == shard)?;
                    Some((r.replica_id, l.node, l.addr.as_str()))
                })
                .collect();
            let mut last = ClusterError::NotServing(format!(
                "no replica of collection {collection_id} has a delegator for shard {shard}"
            ));
            let mut failed: HashSet<NodeId> = HashSet::new();
            let start = self.rotation.fetch_add(1, Ordering::Relaxed);
            for i in 0..leaders.len() {
                let (replica_id, node, addr) = leaders[(start + i) % leaders.len()];
                if failed.contains(&node) {
                    continue;
                }
                let result = match self.nodes.query(node, addr) {
                    Ok(delegator) => op(delegator, replica_id).await,
                    Err(e) => Err(e),
                };
                match result {
                    Ok(v) => return Ok(v),
                    Err(e) if e.is_retriable() => {
                        if matches!(e, ClusterError::Unavailable(_)) {
                            self.nodes.forget(addr);
                        }
                        tracing::debug!(op = op_name, collection_id, shard, replica_id, node, error = %e, "shard read failed; trying another replica");
                        self.metrics.retried(op_name);
                        failed.insert(node);
                        last = e;
                    }
                    Err(e) => return Err(e),
                }
            }
            self.routes_failed(&routes);
            if !retry.pause().await {
                tracing::warn!(op = op_name, collection_id, shard, error = %last, "shard read failed on every replica until the deadline");
                return Err(last);
            }
        }
    }
}

fn check_loaded(rec: &CollectionRecord) -> ApiResult<()> {
    if rec.load.is_none() {
        return Err(ApiError::Core(CoreError::CollectionNotLoaded(
            rec.name.clone(),
        )));
    }
    Ok(())
}

/// What every delegator executes (the query vectors move out of the plan: the merge does not
/// need them).
fn search_spec(p: &mut SearchPlan) -> SearchSpec {
    SearchSpec {
        field_index: p.field_index,
        metric: p.metric,
        queries: std::mem::take(&mut p.queries),
        num_queries: p.num_queries,
        k: p.k,
        ef: p.ef,
        filter: p.filter.clone(),
        filter_params: p.filter_params.clone(),
        partitions: p.partitions.clone(),
        output: p.output.clone(),
        ignore_growing: p.ignore_growing,
        radius: p.radius,
        range_filter: p.range_filter,
    }
}

fn shard_hit(h: Hit) -> ShardHit {
    ShardHit {
        score: h.score,
        pk: h.pk,
        values: h.values,
    }
}
