//! Collection schema and consistency level: wire ↔ core.

use ferrovus_core::request::Consistency;
use ferrovus_core::schema::{CollectionSchema, DataType, FieldSchema};
use ferrovus_proto::common::ConsistencyLevel;
use ferrovus_proto::schema as ps;
use prost::Message;

use super::kv;
use crate::error::ApiError;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
