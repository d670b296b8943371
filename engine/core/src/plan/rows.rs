//! Writes: rows validated and normalised against the schema (auto ids filled), and split into
//! one log record per shard.

use std::collections::HashSet;

use super::{partition_id, route, write_partition_name};
use crate::collection::PartitionMeta;
use crate::error::{CoreError, Result};
use crate::schema::{CollectionSchema, DataType, FieldSchema};
use crate::value::{Column, PrimaryKey, RowBatch};
use crate::wal::WalRecord;

/// The partition id an insert or upsert into `name` writes to (the default partition when
/// `name` is empty); `PartitionNotFound` when there is no such partition.
pub fn write_partition_id(partitions: &[PartitionMeta], name: &str) -> Result<i64> {
    partition_id(partitions, write_partition_name(name))
}

/// How many ids must be allocated for `batch`: its row count when the primary key is
/// auto-generated and the batch does not supply it, else 0.
pub fn auto_id_count(schema: &CollectionSchema, batch: &RowBatch) -> usize {
    let pk = schema.primary_field();
    if pk.auto_id && batch.column(&pk.name).is_none() {
        batch.num_rows()
    } else {
        0
    }
}

/// Validate a batch against the schema and return schema-ordered columns and primary keys.
/// `auto_ids` is the first of [`auto_id_count`] allocated ids, supplying the keys when the
/// primary key is auto-generated and absent.
pub fn normalize_rows(
    schema: &CollectionSchema,
    mut batch: RowBatch,
    auto_ids: Option<i64>,
    upsert: bool,
) -> Result<(Vec<Column>, Vec<PrimaryKey>)> {
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
                let first =
                    auto_ids.ok_or_else(|| CoreError::Internal("no auto ids allocated".into()))?;
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
                        format!("duplicate primary keys are not allowed in the same batch: {dup}"),
                    ));
                }
            }
        }
        out.push(col);
    }
    Ok((out, pks))
}

/// Normalised rows (schema-ordered `columns` with their primary keys `pks`) as one log record
/// per shard that receives rows: `(shard, record, approximate bytes)`, in shard order, each
/// record `Insert` or `Upsert` into `partition_id` with `ts: 0` (the channel assigns it).
pub fn shard_records(
    schema: &CollectionSchema,
    partition_id: i64,
    columns: Vec<Column>,
    pks: &[PrimaryKey],
    num_shards: usize,
    upsert: bool,
) -> Vec<(usize, WalRecord, usize)> {
    let routes = route(pks, num_shards);
    let used = routes.iter().filter(|r| !r.is_empty()).count();
    let mut whole = Some(columns);
    let mut out = Vec::with_capacity(used);
    for (shard, rows) in routes.iter().enumerate() {
        if rows.is_empty() {
            continue;
        }
        let names = schema.fields.iter().map(|f| f.name.clone());
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
        out.push((shard, record, bytes));
    }
    out
}

/// Approximate in-memory size of a column (group-commit sizing).
pub(super) fn approx_bytes(c: &Column) -> usize {
    match c {
        Column::FloatVector { data, .. } => data.len() * 4,
        Column::VarChar(v) => v.iter().map(|s| s.len() + 8).sum(),
        Column::Json(v) => v.len() * 32,
        other => other.len() * 8,
    }
}

/// Check one column against its field: type, integer range, VarChar length, vector dimension,
/// finite floats.
pub fn check_column(f: &FieldSchema, col: &Column) -> Result<()> {
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
