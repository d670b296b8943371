//! Read and write planning against a collection's schema, as free functions over plain data
//! (schema, partitions, index specs, requests): validating and normalising rows, routing them to
//! shards, preparing searches, queries and deletes, and merging per-shard results into the
//! result types.
//!
//! The stateless proxy calls them with the schema it cached from the coordinator, sends the
//! prepared work to the nodes that own the shards and merges their results here.

mod delete;
mod query;
mod rows;
mod search;
#[cfg(test)]
mod tests;

pub use delete::{DeletePlan, delete_partitions, delete_records, plan_delete};
pub use query::{QueryPlan, merge_query, plan_query};
pub use rows::{auto_id_count, check_column, normalize_rows, shard_records, write_partition_id};
pub use search::{SearchPlan, merge_search, plan_search};

use std::collections::HashMap;

use crate::collection::{DEFAULT_PARTITION, PartitionMeta};
use crate::error::{CoreError, Result};
use crate::expr::{self, Plan};
use crate::request::OutputColumn;
use crate::schema::{CollectionSchema, FieldSchema};
use crate::value::{Column, PrimaryKey, Value};

/// The shard a primary key belongs to among `num_shards` (FNV-1a of the key; stable across
/// versions and processes).
pub fn shard_of(pk: &PrimaryKey, num_shards: usize) -> usize {
    (pk.shard_hash() % num_shards.max(1) as u64) as usize
}

/// Split rows by shard: per shard (`num_shards` entries, empty ones included), the indexes of
/// its rows in `pks`.
pub fn route(pks: &[PrimaryKey], num_shards: usize) -> Vec<Vec<usize>> {
    let mut per = vec![Vec::new(); num_shards.max(1)];
    for (i, pk) in pks.iter().enumerate() {
        per[shard_of(pk, num_shards)].push(i);
    }
    per
}

/// The id of the partition named `name`; `PartitionNotFound` when there is none.
pub fn partition_id(partitions: &[PartitionMeta], name: &str) -> Result<i64> {
    partitions
        .iter()
        .find(|p| p.name == name)
        .map(|p| p.id)
        .ok_or_else(|| CoreError::PartitionNotFound(name.to_string()))
}

/// The ids of the partitions named in `names` (`None`, meaning all, when `names` is empty);
/// `PartitionNotFound` for the first unknown name.
pub fn partition_ids(partitions: &[PartitionMeta], names: &[String]) -> Result<Option<Vec<i64>>> {
    if names.is_empty() {
        return Ok(None);
    }
    let mut ids = Vec::with_capacity(names.len());
    for n in names {
        let id = partition_id(partitions, n)?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(Some(ids))
}

/// Compile a filter expression (with template values) against the schema; an empty filter
/// matches every row.
pub fn compile_filter(
    schema: &CollectionSchema,
    filter: &str,
    params: &HashMap<String, serde_json::Value>,
) -> Result<Plan> {
    expr::compile_str_with_params(filter, schema, params).map_err(|e| {
        CoreError::invalid(
            "expr",
            format!("cannot parse expression: {filter}, error: {e}"),
        )
    })
}

/// Schema field indexes of the requested output fields, each once, in request order: `*` is
/// every field; a name that is not a field is a dynamic key (returned inside `$meta`) when the
/// schema has a dynamic field, else an error.
pub fn output_indexes(schema: &CollectionSchema, names: &[String]) -> Result<Vec<usize>> {
    let mut out = Vec::new();
    for n in names {
        let n = n.trim();
        if n == "*" {
            for i in 0..schema.fields.len() {
                if !out.contains(&i) {
                    out.push(i);
                }
            }
            continue;
        }
        match schema.field_index(n) {
            Some(i) => {
                if !out.contains(&i) {
                    out.push(i);
                }
            }
            None if schema.enable_dynamic_field => {
                if let Some(i) = schema.fields.iter().position(|f| f.is_dynamic)
                    && !out.contains(&i)
                {
                    out.push(i);
                }
            }
            None => {
                return Err(CoreError::invalid(
                    "output_fields",
                    format!("field {n} does not exist in collection {}", schema.name),
                ));
            }
        }
    }
    Ok(out)
}

/// Result columns of the output fields `output` (schema field indexes) from their values.
pub fn output_columns(
    schema: &CollectionSchema,
    output: &[usize],
    cols: Vec<Vec<Value>>,
) -> Vec<OutputColumn> {
    output
        .iter()
        .zip(cols)
        .filter_map(|(&fi, values)| {
            let f = schema.fields.get(fi)?;
            Some(OutputColumn {
                name: f.name.clone(),
                field_id: f.field_id,
                data_type: f.data_type,
                is_dynamic: f.is_dynamic,
                column: values_to_column(f, values),
            })
        })
        .collect()
}

/// A column of `f`'s type from values (values of another type are skipped; JSON takes them as
/// `null`).
pub fn values_to_column(f: &FieldSchema, values: Vec<Value>) -> Column {
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

/// The partition a write goes to: `name`, or the default partition when empty.
fn write_partition_name(name: &str) -> &str {
    if name.is_empty() {
        DEFAULT_PARTITION
    } else {
        name
    }
}
