//! Conversions between the Milvus wire types and the core's types. Pure functions, unit-tested.

use std::collections::{BTreeMap, HashMap};

use ferrovus_core::request::{Consistency, OutputColumn};
use ferrovus_core::schema::{CollectionSchema, DataType, FieldSchema};
use ferrovus_core::value::{Column, PrimaryKey, RowBatch};
use ferrovus_proto::common::{ConsistencyLevel, KeyValuePair, PlaceholderGroup, PlaceholderType};
use ferrovus_proto::schema as ps;
use prost::Message;

use crate::error::ApiError;

pub fn kv_get<'a>(params: &'a [KeyValuePair], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|kv| kv.key == key)
        .map(|kv| kv.value.as_str())
}

pub fn kv_map(params: &[KeyValuePair]) -> BTreeMap<String, String> {
    params
        .iter()
        .map(|kv| (kv.key.clone(), kv.value.clone()))
        .collect()
}

pub fn kv(key: &str, value: impl Into<String>) -> KeyValuePair {
    KeyValuePair {
        key: key.to_string(),
        value: value.into(),
    }
}

/// Decode the serialized `CollectionSchema` of a CreateCollection request.
pub fn schema_from_proto(
    bytes: &[u8],
    collection_name: &str,
) -> Result<CollectionSchema, ApiError> {
    let s = ps::CollectionSchema::decode(bytes)
        .map_err(|e| ApiError::invalid("schema", format!("cannot decode CollectionSchema: {e}")))?;
    let mut fields = Vec::with_capacity(s.fields.len());
    for f in &s.fields {
        let dt = DataType::from_code(f.data_type).ok_or_else(|| {
            ApiError::invalid(
                &f.name,
                format!(
                    "data type {} of field {} is not supported by Ferrovus",
                    ps::DataType::try_from(f.data_type)
                        .map(|d| d.as_str_name().to_string())
                        .unwrap_or(f.data_type.to_string()),
                    f.name
                ),
            )
        })?;
        let mut fs = FieldSchema::new(f.name.clone(), dt);
        fs.field_id = f.field_id;
        fs.description = f.description.clone();
        fs.is_primary = f.is_primary_key;
        fs.auto_id = f.auto_id || (f.is_primary_key && s.auto_id);
        fs.is_dynamic = f.is_dynamic;
        fs.nullable = f.nullable;
        if f.nullable && !f.is_dynamic {
            return Err(ApiError::invalid(
                &f.name,
                format!("nullable fields are not supported yet (field {})", f.name),
            ));
        }
        for tp in &f.type_params {
            match tp.key.as_str() {
                "dim" => {
                    fs.dim = Some(tp.value.trim().parse().map_err(|_| {
                        ApiError::invalid(
                            &f.name,
                            format!(
                                "dim of field {} must be an integer, got {:?}",
                                f.name, tp.value
                            ),
                        )
                    })?);
                }
                "max_length" => {
                    fs.max_length = Some(tp.value.trim().parse().map_err(|_| {
                        ApiError::invalid(
                            &f.name,
                            format!(
                                "max_length of field {} must be an integer, got {:?}",
                                f.name, tp.value
                            ),
                        )
                    })?);
                }
                _ => {}
            }
        }
        fields.push(fs);
    }
    let name = if s.name.is_empty() {
        collection_name.to_string()
    } else {
        s.name.clone()
    };
    if !collection_name.is_empty() && name != collection_name {
        return Err(ApiError::invalid(
            "collection_name",
            format!("collection name {collection_name} does not match the schema's name {name}"),
        ));
    }
    // All field ids 0 → let the core number them; otherwise keep the client's.
    if fields.iter().all(|f| f.field_id == 0) {
        for f in &mut fields {
            f.field_id = 0;
        }
    }
    Ok(CollectionSchema {
        name,
        description: s.description,
        fields,
        enable_dynamic_field: s.enable_dynamic_field,
    })
}

pub fn schema_to_proto(s: &CollectionSchema) -> ps::CollectionSchema {
    ps::CollectionSchema {
        name: s.name.clone(),
        description: s.description.clone(),
        auto_id: s.primary_field().auto_id,
        enable_dynamic_field: s.enable_dynamic_field,
        fields: s
            .fields
            .iter()
            .map(|f| {
                let mut type_params = Vec::new();
                if let Some(d) = f.dim {
                    type_params.push(kv("dim", d.to_string()));
                }
                if let Some(l) = f.max_length {
                    type_params.push(kv("max_length", l.to_string()));
                }
                ps::FieldSchema {
                    field_id: f.field_id,
                    name: f.name.clone(),
                    is_primary_key: f.is_primary,
                    description: f.description.clone(),
                    data_type: f.data_type.code(),
                    type_params,
                    auto_id: f.auto_id,
                    is_dynamic: f.is_dynamic,
                    nullable: f.nullable,
                    ..Default::default()
                }
            })
            .collect(),
        ..Default::default()
    }
}

pub fn consistency_from(level: i32) -> Consistency {
    match ConsistencyLevel::try_from(level) {
        Ok(ConsistencyLevel::Strong) => Consistency::Strong,
        Ok(ConsistencyLevel::Session) => Consistency::Session,
        Ok(ConsistencyLevel::Eventually) => Consistency::Eventually,
        _ => Consistency::Bounded,
    }
}

pub fn consistency_to(c: Consistency) -> i32 {
    (match c {
        Consistency::Strong => ConsistencyLevel::Strong,
        Consistency::Session => ConsistencyLevel::Session,
        Consistency::Bounded => ConsistencyLevel::Bounded,
        Consistency::Eventually => ConsistencyLevel::Eventually,
    }) as i32
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

/// Parse a serialized `PlaceholderGroup` of float vectors into (row-major data, nq, dim).
pub fn parse_placeholder_group(bytes: &[u8]) -> Result<(Vec<f32>, usize, usize), ApiError> {
    let g = PlaceholderGroup::decode(bytes).map_err(|e| {
        ApiError::invalid(
            "placeholder_group",
            format!("cannot decode PlaceholderGroup: {e}"),
        )
    })?;
    let ph = g
        .placeholders
        .first()
        .ok_or_else(|| ApiError::invalid("data", "no query vectors in the request"))?;
    if ph.r#type != PlaceholderType::FloatVector as i32 {
        let name = PlaceholderType::try_from(ph.r#type)
            .map(|t| t.as_str_name().to_string())
            .unwrap_or(ph.r#type.to_string());
        return Err(ApiError::invalid(
            "data",
            format!("placeholder type {name} is not supported; only FloatVector queries are"),
        ));
    }
    if ph.values.is_empty() {
        return Err(ApiError::invalid("data", "no query vectors in the request"));
    }
    let first_len = ph.values[0].len();
    if first_len == 0 || first_len % 4 != 0 {
        return Err(ApiError::invalid(
            "data",
            format!("query vector byte length {first_len} is not a positive multiple of 4"),
        ));
    }
    let dim = first_len / 4;
    let mut data = Vec::with_capacity(dim * ph.values.len());
    for (i, v) in ph.values.iter().enumerate() {
        if v.len() != first_len {
            return Err(ApiError::invalid(
                "data",
                format!(
                    "query vector {i} has dim {}, the first has {dim}",
                    v.len() / 4
                ),
            ));
        }
        data.extend(
            v.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        );
    }
    Ok((data, ph.values.len(), dim))
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
    use ferrovus_proto::common::PlaceholderValue;

    #[test]
    fn placeholder_group_round_trip_and_errors() {
        let v1: Vec<u8> = [1.0f32, 2.0, 3.0]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let v2: Vec<u8> = [4.0f32, 5.0, 6.0]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let g = PlaceholderGroup {
            placeholders: vec![PlaceholderValue {
                tag: "$0".into(),
                r#type: PlaceholderType::FloatVector as i32,
                values: vec![v1, v2.clone()],
                ..Default::default()
            }],
        };
        let (data, nq, dim) = parse_placeholder_group(&g.encode_to_vec()).unwrap();
        assert_eq!((nq, dim), (2, 3));
        assert_eq!(data, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let bad = PlaceholderGroup {
            placeholders: vec![PlaceholderValue {
                tag: "$0".into(),
                r#type: PlaceholderType::FloatVector as i32,
                values: vec![v2, vec![0; 8]],
                ..Default::default()
            }],
        };
        assert!(
            parse_placeholder_group(&bad.encode_to_vec())
                .unwrap_err()
                .to_string()
                .contains("query vector 1")
        );
        let empty = PlaceholderGroup::default();
        assert!(parse_placeholder_group(&empty.encode_to_vec()).is_err());
        assert!(parse_placeholder_group(b"\xff\xff\xff").is_err());
    }

    #[test]
    fn schema_round_trip() {
        let s = CollectionSchema {
            name: "c".into(),
            description: "d".into(),
            fields: vec![
                FieldSchema::new("id", DataType::Int64).primary(true),
                FieldSchema::new("t", DataType::VarChar).with_max_length(20),
                FieldSchema::new("v", DataType::FloatVector).with_dim(8),
            ],
            enable_dynamic_field: true,
        }
        .validate_and_normalize()
        .unwrap();
        let p = schema_to_proto(&s);
        let back = schema_from_proto(&p.encode_to_vec(), "c")
            .unwrap()
            .validate_and_normalize()
            .unwrap();
        assert_eq!(back, s);
        assert!(schema_from_proto(&p.encode_to_vec(), "other").is_err());
    }

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
}
