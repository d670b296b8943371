//! A collection: schema, partitions, index definitions, load state and its shards. Validates
//! writes against the schema and routes rows to shards by primary-key hash; fans searches and
//! queries out to shards and merges.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};
use crate::expr::{self, Plan};
use crate::request::*;
use crate::schema::{CollectionSchema, DataType, FieldSchema};
use crate::shard::{PreparedSearch, Shard, ShardHit};
use crate::value::{Column, PrimaryKey, RowBatch, Value};
use crate::wal::WalRecord;

pub const DEFAULT_PARTITION: &str = "_default";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionMeta {
    pub id: i64,
    pub name: String,
    pub created_ts: u64,
}

/// What is persisted about a collection (one metadata key).
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

#[derive(Debug)]
pub struct Collection {
    pub meta: RwLock<CollectionMeta>,
    pub schema: Arc<CollectionSchema>,
    pub shards: Vec<Shard>,
    pub indexes: Arc<RwLock<Vec<IndexSpec>>>,
    pub loaded: AtomicBool,
}

impl Collection {
    pub fn new(
        meta: CollectionMeta,
        shards: Vec<Shard>,
        indexes: Arc<RwLock<Vec<IndexSpec>>>,
    ) -> Self {
        let loaded = AtomicBool::new(meta.loaded);
        Collection {
            schema: Arc::new(meta.schema.clone()),
            meta: RwLock::new(meta),
            shards,
            indexes,
            loaded,
        }
    }

    pub fn id(&self) -> i64 {
        self.meta.read().id
    }
    pub fn name(&self) -> String {
        self.meta.read().name.clone()
    }
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::SeqCst)
    }
    pub fn set_loaded(&self, v: bool) {
        self.loaded.store(v, Ordering::SeqCst);
    }

    pub fn num_rows(&self) -> usize {
        self.shards.iter().map(Shard::num_rows).sum()
    }

    /// Live rows in the given partitions (all when empty); needs no load, like Milvus' statistics.
    pub fn count_rows(&self, partitions: &[String]) -> Result<usize> {
        let parts = self.partition_filter(partitions)?;
        let all = expr::Plan::match_all();
        let none = HashSet::new();
        Ok(self
            .shards
            .iter()
            .map(|s| s.query(&all, &parts, &[], true, &none).value.0)
            .sum())
    }

    pub fn partition_id(&self, name: &str) -> Result<i64> {
        self.meta
            .read()
            .partitions
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.id)
            .ok_or_else(|| CoreError::PartitionNotFound(name.to_string()))
    }

    fn partition_filter(&self, names: &[String]) -> Result<Option<HashSet<i64>>> {
        if names.is_empty() {
            return Ok(None);
        }
        let mut set = HashSet::new();
        for n in names {
            set.insert(self.partition_id(n)?);
        }
        Ok(Some(set))
    }

    fn shard_of(&self, pk: &PrimaryKey) -> usize {
        (pk.shard_hash() % self.shards.len().max(1) as u64) as usize
    }

    /// Validate a batch against the schema and return schema-ordered columns and primary keys.
    /// `auto_ids` supplies keys when the primary key is auto-generated and absent.
    pub fn normalize_rows(
        &self,
        mut batch: RowBatch,
        auto_ids: Option<i64>,
        upsert: bool,
    ) -> Result<(Vec<Column>, Vec<PrimaryKey>)> {
        let schema = &self.schema;
        let n = batch.num_rows();
        if n == 0 {
            return Err(CoreError::invalid(
                "data",
                "no rows to insert: the request has 0 rows",
            ));
        }
        for (name, col) in &batch.columns {
            if col.len() != n {
                return Err(CoreError::invalid(
                    name,
                    format!("column has {} rows but the first column has {n}", col.len()),
                ));
            }
            if schema.field(name).is_none() {
                return Err(CoreError::invalid(
                    name,
                    format!(
                        "field {name} does not exist in collection {}'s schema",
                        schema.name
                    ),
                ));
            }
        }
        let mut out = Vec::with_capacity(schema.fields.len());
        let mut pks = Vec::with_capacity(n);
        for f in &schema.fields {
            let pos = batch.columns.iter().position(|(name, _)| *name == f.name);
            let col = match pos {
                Some(p) => {
                    if f.is_primary && f.auto_id && !upsert {
                        return Err(CoreError::invalid(
                            &f.name,
                            format!(
                                "the primary key {} is auto_id; do not supply values for it",
                                f.name
                            ),
                        ));
                    }
                    batch.columns.swap_remove(p).1
                }
                None if f.is_primary && f.auto_id => {
                    let first = auto_ids
                        .ok_or_else(|| CoreError::Internal("no auto ids allocated".into()))?;
                    Column::Int((first..first + n as i64).collect())
                }
                None if f.is_dynamic => {
                    Column::Json(vec![serde_json::Value::Object(Default::default()); n])
                }
                None => {
                    return Err(CoreError::invalid(
                        &f.name,
                        format!(
                            "missing field {} ({}) in the inserted data",
                            f.name, f.data_type
                        ),
                    ));
                }
            };
            check_column(f, &col)?;
            if f.is_primary {
                for i in 0..n {
                    if let Some(pk) = col.primary_key(i) {
                        pks.push(pk);
                    }
                }
                if upsert {
                    let mut seen = HashSet::with_capacity(pks.len());
                    if let Some(dup) = pks.iter().find(|pk| !seen.insert(*pk)) {
                        return Err(CoreError::invalid(
                            &f.name,
                            format!(
                                "duplicate primary keys are not allowed in the same batch: {dup}"
                            ),
                        ));
                    }
                }
            }
            out.push(col);
        }
        Ok((out, pks))
    }

    /// Split schema-ordered rows by shard: per shard, the row indexes.
    pub fn route(&self, pks: &[PrimaryKey]) -> Vec<Vec<usize>> {
        let mut per = vec![Vec::new(); self.shards.len()];
        for (i, pk) in pks.iter().enumerate() {
            per[self.shard_of(pk)].push(i);
        }
        per
    }

    /// Write validated rows; returns the largest timestamp.
    pub async fn write_rows(
        &self,
        partition_id: i64,
        columns: Vec<Column>,
        pks: &[PrimaryKey],
        upsert: bool,
    ) -> Result<u64> {
        let routes = self.route(pks);
        let used = routes.iter().filter(|r| !r.is_empty()).count();
        let mut whole = Some(columns);
        let mut futs = Vec::new();
        for (shard, rows) in routes.iter().enumerate() {
            if rows.is_empty() {
                continue;
            }
            let names = self.schema.fields.iter().map(|f| f.name.clone());
            let cols: Vec<(String, Column)> = match (used, whole.as_ref()) {
                // All rows go to one shard: move the columns, no copy.
                (1, Some(_)) => names.zip(whole.take().unwrap_or_default()).collect(),
                (_, Some(all)) => names.zip(all.iter().map(|c| c.take(rows))).collect(),
                (_, None) => continue,
            };
            let bytes = cols.iter().map(|(_, c)| approx_bytes(c)).sum();
            let rows = RowBatch { columns: cols };
            let record = if upsert {
                WalRecord::Upsert {
                    partition_id,
                    ts: 0,
                    rows,
                }
            } else {
                WalRecord::Insert {
                    partition_id,
                    ts: 0,
                    rows,
                }
            };
            futs.push(self.shards[shard].write(record, bytes));
        }
        let mut ts = 0;
        for r in futures::future::join_all(futs).await {
            ts = ts.max(r?);
        }
        Ok(ts)
    }

    pub async fn delete_pks(&self, pks: Vec<PrimaryKey>) -> Result<u64> {
        let mut per: Vec<Vec<PrimaryKey>> = vec![Vec::new(); self.shards.len()];
        for pk in pks {
            let s = self.shard_of(&pk);
            per[s].push(pk);
        }
        let mut futs = Vec::new();
        for (s, pks) in per.into_iter().enumerate() {
            if !pks.is_empty() {
                let bytes = pks.len() * 16;
                futs.push(self.shards[s].write(WalRecord::Delete { ts: 0, pks }, bytes));
            }
        }
        let mut ts = 0;
        for r in futures::future::join_all(futs).await {
            ts = ts.max(r?);
        }
        Ok(ts)
    }

    pub fn compile_filter(
        &self,
        filter: &str,
        params: &HashMap<String, serde_json::Value>,
    ) -> Result<Plan> {
        expr::compile_str_with_params(filter, &self.schema, params).map_err(|e| {
            CoreError::invalid(
                "expr",
                format!("cannot parse expression: {filter}, error: {e}"),
            )
        })
    }

    /// Primary keys matching a delete filter.
    pub fn matching_pks(&self, plan: &Plan, partitions: &[String]) -> Result<Vec<PrimaryKey>> {
        if let Some(keys) = plan.primary_keys() {
            return Ok(keys);
        }
        let parts = self.partition_filter(partitions)?;
        Ok(self
            .shards
            .iter()
            .flat_map(|s| s.matching_pks(plan, &parts).value)
            .collect())
    }

    fn output_indexes(&self, names: &[String]) -> Result<Vec<usize>> {
        let mut out = Vec::new();
        for n in names {
            let n = n.trim();
            if n == "*" {
                for i in 0..self.schema.fields.len() {
                    if !out.contains(&i) {
                        out.push(i);
                    }
                }
                continue;
            }
            match self.schema.field_index(n) {
                Some(i) => {
                    if !out.contains(&i) {
                        out.push(i);
                    }
                }
                None if self.schema.enable_dynamic_field => {
                    // A dynamic key: returned inside `$meta`.
                    if let Some(i) = self.schema.fields.iter().position(|f| f.is_dynamic)
                        && !out.contains(&i)
                    {
                        out.push(i);
                    }
                }
                None => {
                    return Err(CoreError::invalid(
                        "output_fields",
                        format!(
                            "field {n} does not exist in collection {}",
                            self.schema.name
                        ),
                    ));
                }
            }
        }
        Ok(out)
    }

    pub fn search(&self, req: &SearchRequest) -> Result<SearchResult> {
        if !self.is_loaded() {
            return Err(CoreError::CollectionNotLoaded(self.name()));
        }
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
            Some(name) if !name.is_empty() => self
                .schema
                .field(name)
                .filter(|f| f.data_type == DataType::FloatVector)
                .ok_or_else(|| {
                    CoreError::invalid("anns_field", format!("vector field {name} does not exist"))
                })?,
            _ => {
                let mut vf = self.schema.vector_fields();
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
        let spec = self
            .indexes
            .read()
            .iter()
            .find(|s| s.field_id == field.field_id)
            .cloned();
        let metric = match (req.metric, &spec) {
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
        let plan = self.compile_filter(&req.filter, &req.filter_params)?;
        let output = self.output_indexes(&req.output_fields)?;
        let partitions = self.partition_filter(&req.partitions)?;
        let field_index = self.schema.field_index(&field.name).unwrap_or(0);
        let prepared = PreparedSearch {
            field_index,
            metric,
            queries: &req.vectors,
            num_queries: req.num_queries,
            k,
            ef,
            plan: &plan,
            partitions,
            output: &output,
            ignore_growing: req.ignore_growing,
            radius: req.radius,
            range_filter: req.range_filter,
        };
        let mut per_query: Vec<Vec<Vec<ShardHit>>> = vec![Vec::new(); req.num_queries];
        for shard in &self.shards {
            let hits = shard.search(&prepared, &HashSet::new())?.value;
            for (lists, hits) in per_query.iter_mut().zip(hits) {
                lists.push(hits);
            }
        }
        let mut result = SearchResult {
            num_queries: req.num_queries,
            topk: req.limit,
            ..Default::default()
        };
        let mut cols: Vec<Vec<Value>> = vec![Vec::new(); output.len()];
        for lists in per_query {
            let hits = crate::read::merge_hits(metric, lists, k);
            let page: Vec<ShardHit> = hits.into_iter().skip(req.offset).take(req.limit).collect();
            let mut ids = Vec::with_capacity(page.len());
            let mut scores = Vec::with_capacity(page.len());
            for h in page {
                ids.push(h.pk);
                scores.push(h.score);
                for (c, v) in cols.iter_mut().zip(h.values) {
                    c.push(v);
                }
            }
            result.ids.push(ids);
            result.scores.push(scores);
        }
        result.fields = self.output_columns(&output, cols);
        Ok(result)
    }

    fn output_columns(&self, output: &[usize], cols: Vec<Vec<Value>>) -> Vec<OutputColumn> {
        output
            .iter()
            .zip(cols)
            .map(|(&fi, values)| {
                let f = &self.schema.fields[fi];
                OutputColumn {
                    name: f.name.clone(),
                    field_id: f.field_id,
                    data_type: f.data_type,
                    is_dynamic: f.is_dynamic,
                    column: values_to_column(f, values),
                }
            })
            .collect()
    }

    pub fn query(&self, req: &QueryRequest) -> Result<QueryResult> {
        if !self.is_loaded() {
            return Err(CoreError::CollectionNotLoaded(self.name()));
        }
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
        let plan = self.compile_filter(&req.filter, &req.filter_params)?;
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
        let pk_name = self.schema.primary_field().name.clone();
        if !count_only && !names.contains(&pk_name) {
            names.insert(0, pk_name);
        }
        let output = self.output_indexes(&names)?;
        let partitions = self.partition_filter(&req.partitions)?;
        let mut total = 0;
        let mut rows = Vec::new();
        for shard in &self.shards {
            let (c, r) = shard
                .query(&plan, &partitions, &output, count_only, &HashSet::new())
                .value;
            total += c;
            rows.extend(r);
        }
        if count_only {
            return Ok(QueryResult {
                num_rows: 1,
                fields: Vec::new(),
                count: Some(total as u64),
            });
        }
        // Deterministic order: by primary key (paging with limit/offset relies on it).
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        let rows: Vec<_> = rows
            .into_iter()
            .skip(req.offset)
            .take(req.limit.unwrap_or(usize::MAX))
            .collect();
        let num_rows = rows.len();
        let mut cols: Vec<Vec<Value>> = vec![Vec::with_capacity(num_rows); output.len()];
        for (_, values) in rows {
            for (c, v) in cols.iter_mut().zip(values) {
                c.push(v);
            }
        }
        Ok(QueryResult {
            num_rows,
            fields: self.output_columns(&output, cols),
            count: None,
        })
    }
}

fn approx_bytes(c: &Column) -> usize {
    match c {
        Column::FloatVector { data, .. } => data.len() * 4,
        Column::VarChar(v) => v.iter().map(|s| s.len() + 8).sum(),
        Column::Json(v) => v.len() * 32,
        other => other.len() * 8,
    }
}

fn values_to_column(f: &FieldSchema, values: Vec<Value>) -> Column {
    let mut col = Column::empty_for(f.data_type, f.dim());
    for v in values {
        match (&mut col, v) {
            (Column::Bool(c), Value::Bool(b)) => c.push(b),
            (Column::Int(c), Value::Int(i)) => c.push(i),
            (Column::Float(c), Value::Float(x)) => c.push(x as f32),
            (Column::Double(c), Value::Float(x)) => c.push(x),
            (Column::VarChar(c), Value::String(s)) => c.push(s),
            (Column::Json(c), Value::Json(j)) => c.push(j),
            (Column::FloatVector { data, .. }, Value::FloatVector(v)) => data.extend(v),
            (Column::Json(c), _) => c.push(serde_json::Value::Null),
            _ => {}
        }
    }
    col
}

/// Check one column against its field: type, integer range, VarChar length, vector dimension,
/// finite floats.
fn check_column(f: &FieldSchema, col: &Column) -> Result<()> {
    let type_err = || {
        CoreError::invalid(
            &f.name,
            format!(
                "field {} expects {} data, got {}",
                f.name,
                f.data_type,
                column_type_name(col)
            ),
        )
    };
    match (f.data_type, col) {
        (DataType::Bool, Column::Bool(_)) => {}
        (dt, Column::Int(v)) if dt.is_integer() => {
            if let Some((lo, hi)) = dt.int_range()
                && let Some(bad) = v.iter().find(|x| **x < lo || **x > hi)
            {
                return Err(CoreError::invalid(
                    &f.name,
                    format!("value {bad} is out of range for {dt} field {}", f.name),
                ));
            }
        }
        (DataType::Float, Column::Float(v)) => {
            if v.iter().any(|x| !x.is_finite()) {
                return Err(CoreError::invalid(
                    &f.name,
                    format!("field {} contains NaN or infinite values", f.name),
                ));
            }
        }
        (DataType::Double, Column::Double(v)) => {
            if v.iter().any(|x| !x.is_finite()) {
                return Err(CoreError::invalid(
                    &f.name,
                    format!("field {} contains NaN or infinite values", f.name),
                ));
            }
        }
        (DataType::VarChar, Column::VarChar(v)) => {
            let max = f.max_length.unwrap_or(u32::MAX) as usize;
            if let Some(s) = v.iter().find(|s| s.len() > max) {
                return Err(CoreError::invalid(
                    &f.name,
                    format!(
                        "the length ({}) of VarChar field {} exceeds max_length ({max})",
                        s.len(),
                        f.name
                    ),
                ));
            }
        }
        (DataType::Json, Column::Json(v)) => {
            if f.is_dynamic && v.iter().any(|j| !j.is_object()) {
                return Err(CoreError::invalid(
                    &f.name,
                    "dynamic field data must be JSON objects",
                ));
            }
        }
        (DataType::FloatVector, Column::FloatVector { dim, data }) => {
            let expected = f.dim();
            if *dim != expected {
                return Err(CoreError::DimensionMismatch {
                    field: f.name.clone(),
                    expected,
                    actual: *dim,
                });
            }
            if data.iter().any(|x| !x.is_finite()) {
                return Err(CoreError::invalid(
                    &f.name,
                    format!("vector field {} contains NaN or infinite values", f.name),
                ));
            }
        }
        _ => return Err(type_err()),
    }
    Ok(())
}

fn column_type_name(c: &Column) -> &'static str {
    match c {
        Column::Bool(_) => "Bool",
        Column::Int(_) => "Int",
        Column::Float(_) => "Float",
        Column::Double(_) => "Double",
        Column::VarChar(_) => "VarChar",
        Column::Json(_) => "JSON",
        Column::FloatVector { .. } => "FloatVector",
    }
}
