//! Filter queries (and gets by primary key): the request validated into an owned
//! [`QueryPlan`], and the shards' rows merged in primary-key order into the [`QueryResult`].

use std::collections::HashMap;

use super::{compile_filter, output_columns, output_indexes, partition_ids, shard_of};
use crate::collection::PartitionMeta;
use crate::error::{CoreError, Result};
use crate::expr::Plan;
use crate::request::{MAX_TOPK, QueryRequest, QueryResult};
use crate::schema::CollectionSchema;
use crate::shard::Rows;
use crate::value::{PrimaryKey, Value};

/// A validated query.
#[derive(Debug, Clone)]
pub struct QueryPlan {
    /// `count(*)`: only the number of matching rows.
    pub count_only: bool,
    pub limit: Option<usize>,
    pub offset: usize,
    /// The filter as the request gave it (each node compiles it against its schema) ...
    pub filter: String,
    pub filter_params: HashMap<String, serde_json::Value>,
    /// ... and compiled here (which checked it).
    pub plan: Plan,
    /// Schema field indexes of the output columns; the primary key is always among them
    /// (first unless requested elsewhere). Empty for `count(*)`.
    pub output: Vec<usize>,
    /// Partition ids to read (`None`: all).
    pub partitions: Option<Vec<i64>>,
}

impl QueryPlan {
    /// Rows each shard must return at most (in primary-key order): `offset + limit`, when the
    /// query is bounded.
    pub fn shard_limit(&self) -> Option<usize> {
        self.limit.map(|l| l.saturating_add(self.offset))
    }

    /// The primary keys the filter names when it is a key lookup (`pk in [...]`, `pk == x`).
    pub fn keys(&self) -> Option<Vec<PrimaryKey>> {
        self.plan.primary_keys()
    }

    /// The shards that can hold a matching row, in shard order: those owning the keys of a key
    /// lookup, else every shard.
    pub fn shards(&self, num_shards: usize) -> Vec<usize> {
        match self.keys() {
            Some(keys) => {
                let mut hit = vec![false; num_shards.max(1)];
                for k in &keys {
                    hit[shard_of(k, num_shards)] = true;
                }
                (0..hit.len()).filter(|s| hit[*s]).collect()
            }
            None => (0..num_shards.max(1)).collect(),
        }
    }
}

/// Validate a query against the schema and partitions: `count(*)` alone, limit and offset
/// bounds, the filter (an empty one needs a limit unless counting), output fields (the primary
/// key added) and partition names. Loading is the caller's check.
pub fn plan_query(
    schema: &CollectionSchema,
    partitions: &[PartitionMeta],
    req: &QueryRequest,
) -> Result<QueryPlan> {
    let count_only = req
        .output_fields
        .iter()
        .any(|f| f.trim().eq_ignore_ascii_case("count(*)"));
    if count_only && req.output_fields.len() > 1 {
        return Err(CoreError::invalid(
            "output_fields",
            "count(*) cannot be combined with other output fields",
        ));
    }
    if let Some(l) = req.limit
        && (l > MAX_TOPK || req.offset + l > MAX_TOPK)
    {
        return Err(CoreError::invalid(
            "limit",
            format!(
                "limit + offset should be in range [1, {MAX_TOPK}], but got {}",
                l + req.offset
            ),
        ));
    }
    let plan = compile_filter(schema, &req.filter, &req.filter_params)?;
    if !count_only && plan.is_match_all() && req.limit.is_none() {
        return Err(CoreError::invalid(
            "expr",
            "empty expression should be used with limit",
        ));
    }
    let mut names: Vec<String> = if count_only {
        Vec::new()
    } else {
        req.output_fields.clone()
    };
    let pk_name = schema.primary_field().name.clone();
    if !count_only && !names.contains(&pk_name) {
        names.insert(0, pk_name);
    }
    let output = output_indexes(schema, &names)?;
    let partitions = partition_ids(partitions, &req.partitions)?;
    Ok(QueryPlan {
        count_only,
        limit: req.limit,
        offset: req.offset,
        filter: req.filter.clone(),
        filter_params: req.filter_params.clone(),
        plan,
        output,
        partitions,
    })
}

/// Merge the shards' answers — per shard, the number of matching rows and the rows as
/// (primary key, output values) — into the result: the summed count for `count(*)`, else the
/// rows in primary-key order with `offset` skipped and `limit` kept.
pub fn merge_query(
    schema: &CollectionSchema,
    plan: &QueryPlan,
    shards: Vec<(usize, Rows)>,
) -> QueryResult {
    if plan.count_only {
        let total: usize = shards.iter().map(|(c, _)| c).sum();
        return QueryResult {
            num_rows: 1,
            fields: Vec::new(),
            count: Some(total as u64),
        };
    }
    let mut rows: Rows = shards.into_iter().flat_map(|(_, rows)| rows).collect();
    // Deterministic order: by primary key (paging with limit/offset relies on it).
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let rows: Vec<_> = rows
        .into_iter()
        .skip(plan.offset)
        .take(plan.limit.unwrap_or(usize::MAX))
        .collect();
    let num_rows = rows.len();
    let mut cols: Vec<Vec<Value>> = vec![Vec::with_capacity(num_rows); plan.output.len()];
    for (_, values) in rows {
        for (c, v) in cols.iter_mut().zip(values) {
            c.push(v);
        }
    }
    QueryResult {
        num_rows,
        fields: output_columns(schema, &plan.output, cols),
        count: None,
    }
}
