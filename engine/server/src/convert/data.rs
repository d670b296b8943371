//! Row data: request columns → core row batches, result columns and primary keys → wire, filter
//! template values.

use std::collections::HashMap;

use ferrovus_core::request::{MutationResult as CoreMutation, OutputColumn};
use ferrovus_core::schema::{CollectionSchema, DataType};
use ferrovus_core::value::{Column, PrimaryKey, RowBatch};
use ferrovus_proto::milvus::MutationResult;
use ferrovus_proto::schema as ps;
use ferrovus_proto::status;

use crate::error::{ApiError, ApiResult};

/// The rows of an Insert or Upsert request, checked against the schema and against the
/// request's `num_rows` (0: not given).
pub fn rows_from_request(
    fields: Vec<ps::FieldData>,
    num_rows: u32,
    schema: &CollectionSchema,
) -> ApiResult<RowBatch> {
    let batch = field_data_to_batch(fields, schema)?;
    if num_rows != 0 && num_rows as usize != batch.num_rows() {
        return Err(ApiError::invalid(
            "num_rows",
            format!(
                "num_rows is {num_rows} but the columns have {} rows",
                batch.num_rows()
            ),
        ));
    }
    Ok(batch)
}

/// The reply to Insert and Upsert: the keys written, in request order.
pub fn write_reply(res: &CoreMutation) -> MutationResult {
    MutationResult {
        status: Some(status::success()),
        i_ds: Some(ids_to_proto(&res.ids)),
        succ_index: (0..res.insert_count as u32).collect(),
        insert_cnt: res.insert_count as i64,
        upsert_cnt: res.upsert_count as i64,
        timestamp: res.timestamp,
        ..Default::default()
    }
}

/// The reply to Delete. It carries no IDs: pymilvus reports `delete_count` only then.
pub fn delete_reply(res: &CoreMutation) -> MutationResult {
    MutationResult {
        status: Some(status::success()),
        delete_cnt: res.delete_count as i64,
        timestamp: res.timestamp,
        ..Default::default()
    }
}

/// Convert request `FieldData` columns into a core `RowBatch`, checking each column against
/// the schema's declared type (so an Int64 column sent for a VarChar field is a clear error).
pub fn field_data_to_batch(
    fields: Vec<ps::FieldData>,
    schema: &CollectionSchema,
) -> Result<RowBatch, ApiError> {
    let mut columns = Vec::with_capacity(fields.len());
    for fd in fields {
        let name = if fd.is_dynamic && fd.field_name.is_empty() {
            ferrovus_core::schema::DYNAMIC_FIELD_NAME.to_string()
        } else {
            fd.field_name.clone()
        };
        let declared = schema.field(&name);
        let col = match fd.field {
            Some(ps::field_data::Field::Scalars(sf)) => {
                use ps::scalar_field::Data as D;
                match sf.data {
                    Some(D::BoolData(a)) => Column::Bool(a.data),
                    Some(D::IntData(a)) => {
                        Column::Int(a.data.iter().map(|x| i64::from(*x)).collect())
                    }
                    Some(D::LongData(a)) => Column::Int(a.data),
                    Some(D::FloatData(a)) => match declared.map(|f| f.data_type) {
                        Some(DataType::Double) => {
                            Column::Double(a.data.iter().map(|x| f64::from(*x)).collect())
                        }
                        _ => Column::Float(a.data),
                    },
                    Some(D::DoubleData(a)) => match declared.map(|f| f.data_type) {
                        Some(DataType::Float) => {
                            Column::Float(a.data.iter().map(|x| *x as f32).collect())
                        }
                        _ => Column::Double(a.data),
                    },
                    Some(D::StringData(a)) => Column::VarChar(a.data),
                    Some(D::JsonData(a)) => {
                        let mut v = Vec::with_capacity(a.data.len());
                        for (i, b) in a.data.iter().enumerate() {
                            v.push(serde_json::from_slice(b).map_err(|e| {
                                ApiError::invalid(
                                    &name,
                                    format!("row {i} of JSON field {name} is not valid JSON: {e}"),
                                )
                            })?);
                        }
                        Column::Json(v)
                    }
                    Some(_) => {
                        return Err(ApiError::invalid(
                            &name,
                            format!("field {name}: data type not supported by Ferrovus"),
                        ));
                    }
                    None => {
                        return Err(ApiError::invalid(
                            &name,
                            format!("field {name} has no data"),
                        ));
                    }
                }
            }
            Some(ps::field_data::Field::Vectors(vf)) => match vf.data {
                Some(ps::vector_field::Data::FloatVector(a)) => {
                    let dim = usize::try_from(vf.dim).map_err(|_| {
                        ApiError::invalid(&name, format!("negative dim {}", vf.dim))
                    })?;
                    if dim == 0 || a.data.len() % dim != 0 {
                        return Err(ApiError::invalid(
                            &name,
                            format!(
                                "vector field {name}: {} values is not a multiple of dim {dim}",
                                a.data.len()
                            ),
                        ));
                    }
                    Column::FloatVector {
                        dim,
                        data: a.data.clone(),
                    }
                }
                _ => {
                    return Err(ApiError::invalid(
                        &name,
                        format!("vector field {name}: only FloatVector is supported"),
                    ));
                }
            },
            _ => {
                return Err(ApiError::invalid(
                    &name,
                    format!("field {name} has no data"),
                ));
            }
        };
        columns.push((name, col));
    }
    Ok(RowBatch { columns })
}

pub fn column_to_field_data(c: &OutputColumn) -> ps::FieldData {
    use ps::scalar_field::Data as D;
    let scalars = |d: D| {
        Some(ps::field_data::Field::Scalars(ps::ScalarField {
            data: Some(d),
        }))
    };
    let field = match (&c.column, c.data_type) {
        (Column::Bool(v), _) => scalars(D::BoolData(ps::BoolArray { data: v.clone() })),
        (Column::Int(v), DataType::Int64) => {
            scalars(D::LongData(ps::LongArray { data: v.clone() }))
        }
        (Column::Int(v), _) => scalars(D::IntData(ps::IntArray {
            data: v.iter().map(|x| *x as i32).collect(),
        })),
        (Column::Float(v), _) => scalars(D::FloatData(ps::FloatArray { data: v.clone() })),
        (Column::Double(v), _) => scalars(D::DoubleData(ps::DoubleArray { data: v.clone() })),
        (Column::VarChar(v), _) => scalars(D::StringData(ps::StringArray { data: v.clone() })),
        (Column::Json(v), _) => scalars(D::JsonData(ps::JsonArray {
            data: v
                .iter()
                .map(|j| serde_json::to_vec(j).unwrap_or_default())
                .collect(),
        })),
        (Column::FloatVector { dim, data }, _) => {
            Some(ps::field_data::Field::Vectors(ps::VectorField {
                dim: *dim as i64,
                data: Some(ps::vector_field::Data::FloatVector(ps::FloatArray {
                    data: data.clone(),
                })),
            }))
        }
    };
    ps::FieldData {
        r#type: c.data_type.code(),
        field_name: c.name.clone(),
        field_id: c.field_id,
        is_dynamic: c.is_dynamic,
        field,
        ..Default::default()
    }
}

pub fn ids_to_proto(ids: &[PrimaryKey]) -> ps::IDs {
    let is_str = matches!(ids.first(), Some(PrimaryKey::Str(_)));
    if is_str {
        ps::IDs {
            id_field: Some(ps::i_ds::IdField::StrId(ps::StringArray {
                data: ids
                    .iter()
                    .map(|p| match p {
                        PrimaryKey::Str(s) => s.clone(),
                        PrimaryKey::Int(i) => i.to_string(),
                    })
                    .collect(),
            })),
        }
    } else {
        ps::IDs {
            id_field: Some(ps::i_ds::IdField::IntId(ps::LongArray {
                data: ids
                    .iter()
                    .map(|p| match p {
                        PrimaryKey::Int(i) => *i,
                        PrimaryKey::Str(_) => 0,
                    })
                    .collect(),
            })),
        }
    }
}

/// Empty `IDs` of the right kind for the collection's primary key.
pub fn empty_ids(schema: &CollectionSchema) -> ps::IDs {
    if schema.primary_field().data_type == DataType::VarChar {
        ps::IDs {
            id_field: Some(ps::i_ds::IdField::StrId(ps::StringArray::default())),
        }
    } else {
        ps::IDs {
            id_field: Some(ps::i_ds::IdField::IntId(ps::LongArray::default())),
        }
    }
}
/// Convert `expr_template_values` into JSON values for the expression compiler.
pub fn template_values(
    map: &HashMap<String, ps::TemplateValue>,
) -> HashMap<String, serde_json::Value> {
    fn val(v: &ps::TemplateValue) -> serde_json::Value {
        use ps::template_value::Val;
        match &v.val {
            Some(Val::BoolVal(b)) => serde_json::Value::Bool(*b),
            Some(Val::Int64Val(i)) => serde_json::Value::from(*i),
            Some(Val::FloatVal(f)) => serde_json::Value::from(*f),
            Some(Val::StringVal(s)) => serde_json::Value::String(s.clone()),
            Some(Val::ArrayVal(a)) => arr(a),
            Some(Val::BytesVal(b)) => serde_json::from_slice(b).unwrap_or(serde_json::Value::Null),
            None => serde_json::Value::Null,
        }
    }
    fn arr(a: &ps::TemplateArrayValue) -> serde_json::Value {
        use ps::template_array_value::Data;
        match &a.data {
            Some(Data::BoolData(x)) => x.data.iter().map(|b| serde_json::Value::Bool(*b)).collect(),
            Some(Data::LongData(x)) => x.data.iter().map(|b| serde_json::Value::from(*b)).collect(),
            Some(Data::DoubleData(x)) => {
                x.data.iter().map(|b| serde_json::Value::from(*b)).collect()
            }
            Some(Data::StringData(x)) => x
                .data
                .iter()
                .map(|b| serde_json::Value::String(b.clone()))
                .collect(),
            Some(Data::ArrayData(x)) => x.data.iter().map(arr).collect(),
            Some(Data::JsonData(x)) => x
                .data
                .iter()
                .map(|b| serde_json::from_slice(b).unwrap_or(serde_json::Value::Null))
                .collect(),
            None => serde_json::Value::Array(vec![]),
        }
    }
    map.iter().map(|(k, v)| (k.clone(), val(v))).collect()
}
#[cfg(test)]
mod tests {
    use super::*;
    use ferrovus_core::schema::FieldSchema;

    #[test]
    fn field_data_conversion() {
        let s = CollectionSchema {
            name: "c".into(),
            description: String::new(),
            fields: vec![
                FieldSchema::new("id", DataType::Int64).primary(false),
                FieldSchema::new("score", DataType::Double),
                FieldSchema::new("v", DataType::FloatVector).with_dim(2),
            ],
            enable_dynamic_field: true,
        };
        let fd = vec![
            ps::FieldData {
                field_name: "id".into(),
                field: Some(ps::field_data::Field::Scalars(ps::ScalarField {
                    data: Some(ps::scalar_field::Data::LongData(ps::LongArray {
                        data: vec![1, 2],
                    })),
                })),
                ..Default::default()
            },
            ps::FieldData {
                field_name: "score".into(),
                field: Some(ps::field_data::Field::Scalars(ps::ScalarField {
                    data: Some(ps::scalar_field::Data::FloatData(ps::FloatArray {
                        data: vec![0.5, 1.5],
                    })),
                })),
                ..Default::default()
            },
            ps::FieldData {
                field_name: "v".into(),
                field: Some(ps::field_data::Field::Vectors(ps::VectorField {
                    dim: 2,
                    data: Some(ps::vector_field::Data::FloatVector(ps::FloatArray {
                        data: vec![1.0, 2.0, 3.0, 4.0],
                    })),
                })),
                ..Default::default()
            },
            ps::FieldData {
                field_name: "$meta".into(),
                is_dynamic: true,
                field: Some(ps::field_data::Field::Scalars(ps::ScalarField {
                    data: Some(ps::scalar_field::Data::JsonData(ps::JsonArray {
                        data: vec![b"{\"a\":1}".to_vec(), b"{}".to_vec()],
                    })),
                })),
                ..Default::default()
            },
        ];
        let b = field_data_to_batch(fd, &s).unwrap();
        assert_eq!(b.num_rows(), 2);
        assert_eq!(b.column("score"), Some(&Column::Double(vec![0.5, 1.5])));
        assert_eq!(
            b.column("$meta"),
            Some(&Column::Json(vec![
                serde_json::json!({"a": 1}),
                serde_json::json!({})
            ]))
        );
        let bad_json = vec![ps::FieldData {
            field_name: "$meta".into(),
            is_dynamic: true,
            field: Some(ps::field_data::Field::Scalars(ps::ScalarField {
                data: Some(ps::scalar_field::Data::JsonData(ps::JsonArray {
                    data: vec![b"{nope".to_vec()],
                })),
            })),
            ..Default::default()
        }];
        assert!(
            field_data_to_batch(bad_json, &s)
                .unwrap_err()
                .to_string()
                .contains("$meta")
        );
    }

    fn long_column(name: &str, v: Vec<i64>) -> ps::FieldData {
        ps::FieldData {
            field_name: name.into(),
            field: Some(ps::field_data::Field::Scalars(ps::ScalarField {
                data: Some(ps::scalar_field::Data::LongData(ps::LongArray { data: v })),
            })),
            ..Default::default()
        }
    }

    #[test]
    fn request_rows_are_checked_against_num_rows_and_the_schema() {
        let s = CollectionSchema {
            name: "c".into(),
            description: String::new(),
            fields: vec![
                FieldSchema::new("id", DataType::Int64).primary(false),
                FieldSchema::new("v", DataType::FloatVector).with_dim(2),
            ],
            enable_dynamic_field: false,
        };
        let rows = rows_from_request(vec![long_column("id", vec![1, 2])], 2, &s).unwrap();
        assert_eq!(rows.num_rows(), 2);
        // 0: the client did not say.
        assert!(rows_from_request(vec![long_column("id", vec![1, 2])], 0, &s).is_ok());
        let e = rows_from_request(vec![long_column("id", vec![1, 2])], 3, &s).unwrap_err();
        assert_eq!(e.code(), ferrovus_proto::codes::PARAMETER_INVALID);
        assert_eq!(
            e.to_string(),
            "invalid parameter[num_rows]: num_rows is 3 but the columns have 2 rows"
        );
        let no_data = ps::FieldData {
            field_name: "id".into(),
            ..Default::default()
        };
        assert_eq!(
            rows_from_request(vec![no_data], 0, &s)
                .unwrap_err()
                .to_string(),
            "invalid parameter[id]: field id has no data"
        );
        let odd_vector = ps::FieldData {
            field_name: "v".into(),
            field: Some(ps::field_data::Field::Vectors(ps::VectorField {
                dim: 2,
                data: Some(ps::vector_field::Data::FloatVector(ps::FloatArray {
                    data: vec![1.0, 2.0, 3.0],
                })),
            })),
            ..Default::default()
        };
        assert_eq!(
            rows_from_request(vec![odd_vector], 0, &s)
                .unwrap_err()
                .to_string(),
            "invalid parameter[v]: vector field v: 3 values is not a multiple of dim 2"
        );
    }

    #[test]
    fn mutation_replies() {
        let res = CoreMutation {
            ids: vec![PrimaryKey::Int(4), PrimaryKey::Int(5)],
            timestamp: 99,
            insert_count: 2,
            delete_count: 0,
            upsert_count: 2,
        };
        let w = write_reply(&res);
        assert_eq!(w.succ_index, [0, 1]);
        assert_eq!((w.insert_cnt, w.upsert_cnt, w.timestamp), (2, 2, 99));
        assert_eq!(
            w.i_ds.unwrap().id_field,
            Some(ps::i_ds::IdField::IntId(ps::LongArray { data: vec![4, 5] }))
        );
        let d = delete_reply(&CoreMutation {
            delete_count: 2,
            ..res
        });
        assert_eq!((d.delete_cnt, d.timestamp), (2, 99));
        assert!(
            d.i_ds.is_none(),
            "pymilvus reports delete_count only without IDs"
        );
    }
}
