//! A read spec as the proxy prepared it ([`SearchSpec`], [`QuerySpec`]), checked and compiled
//! against this node's copy of the schema into what the core's segment reads take. Every input
//! comes off the network: it is validated here, never trusted to index a column.

use std::collections::HashSet;

use ferrovus_core::CoreError;
use ferrovus_core::expr::{self, Plan};
use ferrovus_core::read::ShardHit;
use ferrovus_core::schema::{CollectionSchema, DataType};
use ferrovus_core::shard::Rows;

use crate::api::{Hit, QuerySpec, Row, SearchSpec};
use crate::rpc::ClusterError;

/// The filter as a plan (empty: match all), with the error standalone answers for a bad one.
pub(crate) fn compile_filter(
    schema: &CollectionSchema,
    filter: &str,
    params: &std::collections::HashMap<String, serde_json::Value>,
) -> Result<Plan, ClusterError> {
    expr::compile_str_with_params(filter, schema, params).map_err(|e| {
        CoreError::invalid(
            "expr",
            format!("cannot parse expression: {filter}, error: {e}"),
        )
        .into()
    })
}

pub(crate) fn partition_set(partitions: &Option<Vec<i64>>) -> Option<HashSet<i64>> {
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

/// A search spec checked against the schema: the vector field exists, the query vectors have
/// its dimension, output fields exist. Returns the compiled filter.
pub(crate) fn check_search(
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
    let want = spec.num_queries.checked_mul(dim);
    if dim == 0 || want != Some(spec.queries.len()) {
        let actual = spec
            .queries
            .len()
            .checked_div(spec.num_queries)
            .unwrap_or(0);
        return Err(ClusterError::DimensionMismatch {
            field: field.name.clone(),
            expected: dim as u64,
            actual: actual as u64,
        });
    }
    check_output(schema, &spec.output)?;
    compile_filter(schema, &spec.filter, &spec.filter_params)
}

/// A query spec checked against the schema; returns the compiled filter.
pub(crate) fn check_query(
    schema: &CollectionSchema,
    spec: &QuerySpec,
) -> Result<Plan, ClusterError> {
    check_output(schema, &spec.output)?;
    compile_filter(schema, &spec.filter, &spec.filter_params)
}

pub(crate) fn to_hits(hits: Vec<Vec<ShardHit>>) -> Vec<Vec<Hit>> {
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
pub(crate) fn to_rows(mut rows: Rows, limit: Option<usize>) -> Vec<Row> {
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    rows.truncate(limit.unwrap_or(usize::MAX));
    rows.into_iter()
        .map(|(pk, values)| Row { pk, values })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use ferrovus_core::request::MetricType;
    use ferrovus_core::schema::FieldSchema;
    use ferrovus_core::value::{PrimaryKey, Value};

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
    fn bad_specs_are_errors_not_panics() {
        let s = schema();
        assert!(check_search(&s, &search(1, vec![0.0; 4], vec![0, 1])).is_ok());
        let e = check_search(&s, &search(0, vec![0.0; 4], vec![])).unwrap_err();
        assert!(matches!(e, ClusterError::InvalidArgument { .. }), "{e}");
        let e = check_search(&s, &search(9, vec![0.0; 4], vec![])).unwrap_err();
        assert!(matches!(e, ClusterError::InvalidArgument { .. }), "{e}");
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
        let e = check_search(&s, &search(1, vec![0.0; 4], vec![2])).unwrap_err();
        assert!(matches!(e, ClusterError::InvalidArgument { .. }), "{e}");
        let mut bad = search(1, vec![0.0; 4], vec![]);
        bad.filter = "id >".into();
        let e = check_search(&s, &bad).unwrap_err();
        assert!(
            e.to_string().contains("cannot parse expression: id >"),
            "{e}"
        );
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
}
