//! Requests as they come off the network, checked against the channel's schema before they
//! touch the shard: read specs ([`SearchSpec`], [`QuerySpec`]) compiled into what the core's
//! reads take, and log records checked for the shape the shard applies (schema-ordered columns
//! of the fields' types and equal lengths). Nothing here trusts an index or a length it was sent.

use std::collections::{HashMap, HashSet};

use ferrovus_core::CoreError;
use ferrovus_core::expr::{self, Plan};
use ferrovus_core::read::ShardHit;
use ferrovus_core::schema::{CollectionSchema, DataType};
use ferrovus_core::shard::Rows;
use ferrovus_core::value::Column;
use ferrovus_core::wal::WalRecord;

use crate::api::{Hit, QuerySpec, Row, SearchSpec};
use crate::rpc::ClusterError;

/// The filter as a plan (empty: match all), with the error standalone answers for a bad one.
pub(super) fn compile_filter(
    schema: &CollectionSchema,
    filter: &str,
    params: &HashMap<String, serde_json::Value>,
) -> Result<Plan, ClusterError> {
    expr::compile_str_with_params(filter, schema, params).map_err(|e| {
        CoreError::invalid(
            "expr",
            format!("cannot parse expression: {filter}, error: {e}"),
        )
        .into()
    })
}

pub(super) fn partition_set(partitions: &Option<Vec<i64>>) -> Option<HashSet<i64>> {
    partitions.as_ref().map(|p| p.iter().copied().collect())
}

fn check_output(schema: &CollectionSchema, output: &[usize]) -> Result<(), ClusterError> {
    match output.iter().find(|&&fi| fi >= schema.fields.len()) {
        Some(fi) => Err(ClusterError::invalid(
            "output_fields",
            format!(
                "field index {fi} is out of range: collection {} has {} fields",
                schema.name,
                schema.fields.len()
            ),
        )),
        None => Ok(()),
    }
}

/// A search spec checked against the schema (a vector field, query vectors of its dimension,
/// existing output fields); returns the compiled filter.
pub(super) fn check_search(
    schema: &CollectionSchema,
    spec: &SearchSpec,
) -> Result<Plan, ClusterError> {
    let field = schema
        .fields
        .get(spec.field_index)
        .filter(|f| f.data_type == DataType::FloatVector)
        .ok_or_else(|| {
            ClusterError::invalid(
                "anns_field",
                format!(
                    "field index {} is not a vector field of collection {}",
                    spec.field_index, schema.name
                ),
            )
        })?;
    let dim = field.dim();
    if dim == 0 || spec.num_queries.checked_mul(dim) != Some(spec.queries.len()) {
        return Err(ClusterError::DimensionMismatch {
            field: field.name.clone(),
            expected: dim as u64,
            actual: spec
                .queries
                .len()
                .checked_div(spec.num_queries)
                .unwrap_or(0) as u64,
        });
    }
    if spec.k == 0 {
        return Err(ClusterError::invalid(
            "limit",
            "topk (limit + offset) must be positive",
        ));
    }
    check_output(schema, &spec.output)?;
    compile_filter(schema, &spec.filter, &spec.filter_params)
}

/// A query spec checked against the schema; returns the compiled filter.
pub(super) fn check_query(
    schema: &CollectionSchema,
    spec: &QuerySpec,
) -> Result<Plan, ClusterError> {
    check_output(schema, &spec.output)?;
    compile_filter(schema, &spec.filter, &spec.filter_params)
}

pub(super) fn to_hits(hits: Vec<Vec<ShardHit>>) -> Vec<Vec<Hit>> {
    hits.into_iter()
        .map(|q| {
            q.into_iter()
                .map(|h| Hit {
                    score: h.score,
                    pk: h.pk,
                    values: h.values,
                })
                .collect()
        })
        .collect()
}

/// Rows in primary-key order, at most `limit`.
pub(super) fn to_rows(mut rows: Rows, limit: Option<usize>) -> Vec<Row> {
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    rows.truncate(limit.unwrap_or(usize::MAX));
    rows.into_iter()
        .map(|(pk, values)| Row { pk, values })
        .collect()
}

/// A record has the shape the shard applies: for inserts and upserts one column per schema
/// field, in schema order, of the field's type (and dimension), all of one length. (Values —
/// ranges, lengths, keys — were validated by the proxy.)
pub(super) fn check_record(
    schema: &CollectionSchema,
    record: &WalRecord,
) -> Result<(), ClusterError> {
    let rows = match record {
        WalRecord::Insert { rows, .. } | WalRecord::Upsert { rows, .. } => rows,
        WalRecord::Delete { .. } => return Ok(()),
    };
    if rows.columns.len() != schema.fields.len() {
        return Err(ClusterError::invalid(
            "rows",
            format!(
                "a write to collection {} carries {} columns; its schema has {} fields",
                schema.name,
                rows.columns.len(),
                schema.fields.len()
            ),
        ));
    }
    let n = rows.num_rows();
    for ((_, col), f) in rows.columns.iter().zip(&schema.fields) {
        let expected = Column::empty_for(f.data_type, f.dim());
        if std::mem::discriminant(col) != std::mem::discriminant(&expected) {
            return Err(ClusterError::invalid(
                &f.name,
                format!("field {} expects {} data", f.name, f.data_type),
            ));
        }
        if let Column::FloatVector { dim, data } = col
            && (*dim != f.dim() || data.len() != dim.saturating_mul(n))
        {
            return Err(ClusterError::DimensionMismatch {
                field: f.name.clone(),
                expected: f.dim() as u64,
                actual: *dim as u64,
            });
        }
        if col.len() != n {
            return Err(ClusterError::invalid(
                &f.name,
                format!(
                    "column {} has {} rows, the first has {n}",
                    f.name,
                    col.len()
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use ferrovus_core::request::MetricType;
    use ferrovus_core::schema::FieldSchema;
    use ferrovus_core::value::{PrimaryKey, RowBatch, Value};

    use super::*;

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
        .validate_and_normalize()
        .unwrap()
    }

    fn search(field_index: usize, queries: Vec<f32>, output: Vec<usize>) -> SearchSpec {
        SearchSpec {
            field_index,
            metric: MetricType::L2,
            num_queries: 2,
            queries,
            k: 3,
            ef: 16,
            filter: "id > 3".into(),
            filter_params: HashMap::new(),
            partitions: None,
            output,
            ignore_growing: false,
            radius: None,
            range_filter: None,
        }
    }

    #[test]
    fn bad_read_specs_are_errors_not_panics() {
        let s = schema();
        assert!(check_search(&s, &search(1, vec![0.0; 4], vec![0, 1])).is_ok());
        for bad in [
            search(0, vec![0.0; 4], vec![]),
            search(9, vec![0.0; 4], vec![]),
            search(1, vec![0.0; 4], vec![2]),
            SearchSpec {
                k: 0,
                ..search(1, vec![0.0; 4], vec![])
            },
        ] {
            let e = check_search(&s, &bad).unwrap_err();
            assert!(matches!(e, ClusterError::InvalidArgument { .. }), "{e}");
        }
        let e = check_search(&s, &search(1, vec![0.0; 6], vec![])).unwrap_err();
        assert!(
            matches!(
                e,
                ClusterError::DimensionMismatch {
                    expected: 2,
                    actual: 3,
                    ..
                }
            ),
            "{e}"
        );
        let mut bad = search(1, vec![0.0; 4], vec![]);
        bad.filter = "id >".into();
        let e = check_search(&s, &bad).unwrap_err();
        assert!(
            e.to_string().contains("cannot parse expression: id >"),
            "{e}"
        );
        let q = QuerySpec {
            filter: "nope == 1".into(),
            filter_params: HashMap::new(),
            partitions: None,
            output: vec![0],
            count_only: false,
            limit: None,
        };
        assert!(check_query(&s, &q).is_err());
    }

    #[test]
    fn rows_come_in_key_order_up_to_the_limit() {
        let rows = vec![
            (PrimaryKey::Int(5), vec![Value::Int(50)]),
            (PrimaryKey::Int(1), vec![Value::Int(10)]),
            (PrimaryKey::Int(3), vec![Value::Int(30)]),
        ];
        let got = to_rows(rows.clone(), Some(2));
        assert_eq!(
            got.iter().map(|r| r.pk.clone()).collect::<Vec<_>>(),
            vec![PrimaryKey::Int(1), PrimaryKey::Int(3)]
        );
        assert_eq!(to_rows(rows, None).len(), 3);
    }

    #[test]
    fn records_of_the_wrong_shape_are_refused() {
        let s = schema();
        let rec = |cols: Vec<(String, Column)>| WalRecord::Insert {
            partition_id: 1,
            ts: 0,
            rows: RowBatch { columns: cols },
        };
        let id = |v: Vec<i64>| ("id".to_string(), Column::Int(v));
        let vec_col =
            |dim: usize, data: Vec<f32>| ("v".to_string(), Column::FloatVector { dim, data });
        assert!(check_record(&s, &rec(vec![id(vec![1, 2]), vec_col(2, vec![0.0; 4])])).is_ok());
        for bad in [
            rec(vec![id(vec![1, 2])]),
            rec(vec![vec_col(2, vec![0.0; 4]), id(vec![1, 2])]),
            rec(vec![id(vec![1, 2]), vec_col(3, vec![0.0; 6])]),
            rec(vec![id(vec![1, 2]), vec_col(2, vec![0.0; 5])]),
            rec(vec![id(vec![1]), vec_col(2, vec![0.0; 4])]),
        ] {
            assert!(check_record(&s, &bad).is_err(), "{bad:?}");
        }
        let del = WalRecord::Delete {
            ts: 0,
            pks: vec![PrimaryKey::Int(1)],
        };
        assert!(check_record(&s, &del).is_ok());
    }
}
