//! Vector search: the request validated against the schema and the index definitions into an
//! owned [`SearchPlan`] that every shard executes, and the per-shard top-k merged into the
//! [`SearchResult`].

use std::collections::HashMap;

use super::{compile_filter, output_columns, output_indexes, partition_ids};
use crate::collection::PartitionMeta;
use crate::error::{CoreError, Result};
use crate::expr::Plan;
use crate::read::{PreparedSearch, ShardHit, merge_hits};
use crate::request::{IndexSpec, MAX_TOPK, MetricType, SearchRequest, SearchResult};
use crate::schema::{CollectionSchema, DataType};
use crate::value::Value;

/// A validated search: what each shard executes (field, metric, queries, `k`, `ef`, filter,
/// partitions, output fields) and what the merge needs (`limit`, `offset`).
#[derive(Debug, Clone)]
pub struct SearchPlan {
    /// Schema index of the searched vector field.
    pub field_index: usize,
    pub metric: MetricType,
    /// Row-major query vectors.
    pub queries: Vec<f32>,
    pub num_queries: usize,
    pub limit: usize,
    pub offset: usize,
    /// Hits wanted per query from each shard: `limit + offset`.
    pub k: usize,
    pub ef: usize,
    /// The filter as the request gave it (each node compiles it against its schema) ...
    pub filter: String,
    pub filter_params: HashMap<String, serde_json::Value>,
    /// ... and compiled here (which checked it).
    pub plan: Plan,
    /// Partition ids to read (`None`: all).
    pub partitions: Option<Vec<i64>>,
    /// Schema field indexes whose values the hits carry.
    pub output: Vec<usize>,
    pub ignore_growing: bool,
    pub radius: Option<f32>,
    pub range_filter: Option<f32>,
}

impl SearchPlan {
    /// The plan as a shard executes it in process.
    pub fn prepared(&self) -> PreparedSearch<'_> {
        PreparedSearch {
            field_index: self.field_index,
            metric: self.metric,
            queries: &self.queries,
            num_queries: self.num_queries,
            k: self.k,
            ef: self.ef,
            plan: &self.plan,
            partitions: self
                .partitions
                .as_ref()
                .map(|p| p.iter().copied().collect()),
            output: &self.output,
            ignore_growing: self.ignore_growing,
            radius: self.radius,
            range_filter: self.range_filter,
        }
    }
}

/// Validate a search against the schema, the collection's index definitions and partitions:
/// limit and offset bounds, the vector field (`anns_field`, or the only one), query vectors
/// (present, of the field's dimension, finite), the metric against the field's index, `ef`
/// (at least `k`), the filter, output fields and partition names. Loading is the caller's
/// check.
pub fn plan_search(
    schema: &CollectionSchema,
    indexes: &[IndexSpec],
    partitions: &[PartitionMeta],
    req: &SearchRequest,
) -> Result<SearchPlan> {
    if req.limit == 0 || req.limit > MAX_TOPK {
        return Err(CoreError::invalid(
            "limit",
            format!(
                "topk (limit) should be in range [1, {MAX_TOPK}], but got {}",
                req.limit
            ),
        ));
    }
    if req.offset + req.limit > MAX_TOPK {
        return Err(CoreError::invalid(
            "offset",
            format!(
                "offset + limit should be in range [1, {MAX_TOPK}], but got {}",
                req.offset + req.limit
            ),
        ));
    }
    let field = match &req.anns_field {
        Some(name) if !name.is_empty() => schema
            .field(name)
            .filter(|f| f.data_type == DataType::FloatVector)
            .ok_or_else(|| {
                CoreError::invalid("anns_field", format!("vector field {name} does not exist"))
            })?,
        _ => {
            let mut vf = schema.vector_fields();
            let first = vf.next().ok_or_else(|| {
                CoreError::invalid("anns_field", "collection has no vector field")
            })?;
            if vf.next().is_some() {
                return Err(CoreError::invalid(
                    "anns_field",
                    "collection has several vector fields: set anns_field",
                ));
            }
            first
        }
    };
    let dim = field.dim();
    if req.num_queries == 0 || req.vectors.is_empty() {
        return Err(CoreError::invalid("data", "no query vectors given"));
    }
    if req.vectors.len() != dim * req.num_queries {
        return Err(CoreError::DimensionMismatch {
            field: field.name.clone(),
            expected: dim,
            actual: req.vectors.len() / req.num_queries.max(1),
        });
    }
    if req.vectors.iter().any(|v| !v.is_finite()) {
        return Err(CoreError::invalid(
            "data",
            "query vectors contain NaN or infinite values",
        ));
    }
    let spec = indexes.iter().find(|s| s.field_id == field.field_id);
    let metric = match (req.metric, spec) {
        (Some(m), Some(s)) if m != s.metric => {
            return Err(CoreError::invalid(
                "metric_type",
                format!(
                    "metric type not match: the index on {} uses {}, the search asked for {}",
                    field.name,
                    s.metric.as_str(),
                    m.as_str()
                ),
            ));
        }
        (Some(m), _) => m,
        (None, Some(s)) => s.metric,
        (None, None) => MetricType::L2,
    };
    let k = req.limit + req.offset;
    let ef = req.ef.unwrap_or(crate::vindex::DEFAULT_SEARCH_EF).max(k);
    let plan = compile_filter(schema, &req.filter, &req.filter_params)?;
    let output = output_indexes(schema, &req.output_fields)?;
    let partitions = partition_ids(partitions, &req.partitions)?;
    let field_index = schema.field_index(&field.name).unwrap_or(0);
    Ok(SearchPlan {
        field_index,
        metric,
        queries: req.vectors.clone(),
        num_queries: req.num_queries,
        limit: req.limit,
        offset: req.offset,
        k,
        ef,
        filter: req.filter.clone(),
        filter_params: req.filter_params.clone(),
        plan,
        partitions,
        output,
        ignore_growing: req.ignore_growing,
        radius: req.radius,
        range_filter: req.range_filter,
    })
}

/// Merge the shards' answers — per shard, per query, hits best first — into the result: per
/// query the best `k` over all shards (ties keep shard order), then `offset` skipped and
/// `limit` kept, with the output columns over all hits of all queries in order.
pub fn merge_search(
    schema: &CollectionSchema,
    plan: &SearchPlan,
    shards: Vec<Vec<Vec<ShardHit>>>,
) -> SearchResult {
    let mut per_query: Vec<Vec<Vec<ShardHit>>> = vec![Vec::new(); plan.num_queries];
    for hits in shards {
        for (lists, hits) in per_query.iter_mut().zip(hits) {
            lists.push(hits);
        }
    }
    let mut result = SearchResult {
        num_queries: plan.num_queries,
        topk: plan.limit,
        ..Default::default()
    };
    let mut cols: Vec<Vec<Value>> = vec![Vec::new(); plan.output.len()];
    for lists in per_query {
        let hits = merge_hits(plan.metric, lists, plan.k);
        let mut ids = Vec::with_capacity(plan.limit.min(hits.len()));
        let mut scores = Vec::with_capacity(plan.limit.min(hits.len()));
        for h in hits.into_iter().skip(plan.offset).take(plan.limit) {
            ids.push(h.pk);
            scores.push(h.score);
            for (c, v) in cols.iter_mut().zip(h.values) {
                c.push(v);
            }
        }
        result.ids.push(ids);
        result.scores.push(scores);
    }
    result.fields = output_columns(schema, &plan.output, cols);
    result
}
