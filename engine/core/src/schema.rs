//! Collection schema with Milvus semantics.

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};

/// Field identifier, unique within a collection (Milvus starts user fields at 100).
pub type FieldId = i64;

/// Largest vector dimension accepted (Milvus' default `proxy.maxDimension`).
pub const MAX_DIM: u32 = 32768;
/// Largest VarChar `max_length` accepted.
pub const MAX_VARCHAR_LENGTH: u32 = 65535;
/// Name of the hidden JSON field that stores dynamic keys.
pub const DYNAMIC_FIELD_NAME: &str = "$meta";

/// Data types, numbered as in milvus-proto `schema.DataType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DataType {
    Bool,
    Int8,
    Int16,
    Int32,
    Int64,
    Float,
    Double,
    VarChar,
    Json,
    FloatVector,
}

impl DataType {
    /// The milvus-proto enum value.
    pub fn code(self) -> i32 {
        match self {
            DataType::Bool => 1,
            DataType::Int8 => 2,
            DataType::Int16 => 3,
            DataType::Int32 => 4,
            DataType::Int64 => 5,
            DataType::Float => 10,
            DataType::Double => 11,
            DataType::VarChar => 21,
            DataType::Json => 23,
            DataType::FloatVector => 101,
        }
    }

    /// From the milvus-proto enum value; `None` for types Ferrovus does not support.
    pub fn from_code(code: i32) -> Option<Self> {
        Some(match code {
            1 => DataType::Bool,
            2 => DataType::Int8,
            3 => DataType::Int16,
            4 => DataType::Int32,
            5 => DataType::Int64,
            10 => DataType::Float,
            11 => DataType::Double,
            20 | 21 => DataType::VarChar,
            23 => DataType::Json,
            101 => DataType::FloatVector,
            _ => return None,
        })
    }

    pub fn is_integer(self) -> bool {
        matches!(
            self,
            DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64
        )
    }

    pub fn is_numeric(self) -> bool {
        self.is_integer() || matches!(self, DataType::Float | DataType::Double)
    }

    /// Inclusive range for integer types.
    pub fn int_range(self) -> Option<(i64, i64)> {
        match self {
            DataType::Int8 => Some((i8::MIN as i64, i8::MAX as i64)),
            DataType::Int16 => Some((i16::MIN as i64, i16::MAX as i64)),
            DataType::Int32 => Some((i32::MIN as i64, i32::MAX as i64)),
            DataType::Int64 => Some((i64::MIN, i64::MAX)),
            _ => None,
        }
    }
}

impl std::fmt::Display for DataType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            DataType::Bool => "Bool",
            DataType::Int8 => "Int8",
            DataType::Int16 => "Int16",
            DataType::Int32 => "Int32",
            DataType::Int64 => "Int64",
            DataType::Float => "Float",
            DataType::Double => "Double",
            DataType::VarChar => "VarChar",
            DataType::Json => "JSON",
            DataType::FloatVector => "FloatVector",
        };
        f.write_str(s)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldSchema {
    pub field_id: FieldId,
    pub name: String,
    pub description: String,
    pub data_type: DataType,
    pub is_primary: bool,
    pub auto_id: bool,
    /// VarChar only.
    pub max_length: Option<u32>,
    /// FloatVector only.
    pub dim: Option<u32>,
    /// The hidden `$meta` JSON field holding dynamic keys.
    pub is_dynamic: bool,
    pub nullable: bool,
}

impl FieldSchema {
    pub fn new(name: impl Into<String>, data_type: DataType) -> Self {
        FieldSchema {
            field_id: 0,
            name: name.into(),
            description: String::new(),
            data_type,
            is_primary: false,
            auto_id: false,
            max_length: None,
            dim: None,
            is_dynamic: false,
            nullable: false,
        }
    }
    pub fn primary(mut self, auto_id: bool) -> Self {
        self.is_primary = true;
        self.auto_id = auto_id;
        self
    }
    pub fn with_dim(mut self, dim: u32) -> Self {
        self.dim = Some(dim);
        self
    }
    pub fn with_max_length(mut self, len: u32) -> Self {
        self.max_length = Some(len);
        self
    }
    pub fn dim(&self) -> usize {
        self.dim.unwrap_or(0) as usize
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectionSchema {
    pub name: String,
    pub description: String,
    pub fields: Vec<FieldSchema>,
    pub enable_dynamic_field: bool,
}

impl CollectionSchema {
    /// Validate names, types and parameters and assign field ids (100, 101, …) where they are 0.
    /// Adds the hidden `$meta` field when the dynamic field is enabled and it is missing.
    pub fn validate_and_normalize(mut self) -> Result<Self> {
        validate_name("collection_name", &self.name)?;
        if self.fields.is_empty() {
            return Err(CoreError::invalid(
                "schema",
                "a collection needs at least a primary key field and a vector field",
            ));
        }
        let mut seen = std::collections::HashSet::new();
        let mut primaries = 0;
        let mut vectors = 0;
        for (i, f) in self.fields.iter_mut().enumerate() {
            if f.field_id == 0 {
                f.field_id = 100 + i as i64;
            }
            if !f.is_dynamic {
                validate_name("field name", &f.name)?;
            }
            if !seen.insert(f.name.clone()) {
                return Err(CoreError::invalid(
                    "schema",
                    format!("duplicated field name: {}", f.name),
                ));
            }
            if f.is_primary {
                primaries += 1;
                if !matches!(f.data_type, DataType::Int64 | DataType::VarChar) {
                    return Err(CoreError::invalid(
                        &f.name,
                        format!("primary key must be Int64 or VarChar, got {}", f.data_type),
                    ));
                }
                if f.nullable {
                    return Err(CoreError::invalid(
                        &f.name,
                        "primary key cannot be nullable",
                    ));
                }
            } else if f.auto_id {
                return Err(CoreError::invalid(
                    &f.name,
                    "auto_id can only be set on the primary key",
                ));
            }
            match f.data_type {
                DataType::FloatVector => {
                    vectors += 1;
                    match f.dim {
                        Some(d) if (1..=MAX_DIM).contains(&d) => {}
                        Some(d) => {
                            return Err(CoreError::invalid(
                                &f.name,
                                format!("dim must be in [1, {MAX_DIM}], got {d}"),
                            ));
                        }
                        None => {
                            return Err(CoreError::invalid(
                                &f.name,
                                "dim not set for FloatVector field",
                            ));
                        }
                    }
                }
                DataType::VarChar => match f.max_length {
                    Some(l) if (1..=MAX_VARCHAR_LENGTH).contains(&l) => {}
                    Some(l) => {
                        return Err(CoreError::invalid(
                            &f.name,
                            format!("max_length must be in [1, {MAX_VARCHAR_LENGTH}], got {l}"),
                        ));
                    }
                    None => {
                        return Err(CoreError::invalid(
                            &f.name,
                            "max_length not set for VarChar field",
                        ));
                    }
                },
                _ => {}
            }
        }
        if primaries != 1 {
            return Err(CoreError::invalid(
                "schema",
                format!("a collection needs exactly one primary key field, found {primaries}"),
            ));
        }
        if vectors == 0 {
            return Err(CoreError::invalid(
                "schema",
                "a collection needs at least one vector field",
            ));
        }
        let has_meta = self.fields.iter().any(|f| f.is_dynamic);
        if self.enable_dynamic_field && !has_meta {
            let id = self.fields.iter().map(|f| f.field_id).max().unwrap_or(99) + 1;
            let mut meta = FieldSchema::new(DYNAMIC_FIELD_NAME, DataType::Json);
            meta.field_id = id;
            meta.is_dynamic = true;
            self.fields.push(meta);
        }
        Ok(self)
    }

    pub fn primary_field(&self) -> &FieldSchema {
        // validate_and_normalize guarantees exactly one primary key
        self.fields
            .iter()
            .find(|f| f.is_primary)
            .unwrap_or(&self.fields[0])
    }

    pub fn field(&self, name: &str) -> Option<&FieldSchema> {
        self.fields.iter().find(|f| f.name == name)
    }

    pub fn field_by_id(&self, id: FieldId) -> Option<&FieldSchema> {
        self.fields.iter().find(|f| f.field_id == id)
    }

    pub fn field_index(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }

    /// Position of the field with id `id` in `fields` (the column index of segment data).
    pub fn field_index_by_id(&self, id: FieldId) -> Option<usize> {
        self.fields.iter().position(|f| f.field_id == id)
    }

    pub fn dynamic_field(&self) -> Option<&FieldSchema> {
        self.fields.iter().find(|f| f.is_dynamic)
    }

    pub fn vector_fields(&self) -> impl Iterator<Item = &FieldSchema> {
        self.fields
            .iter()
            .filter(|f| f.data_type == DataType::FloatVector)
    }
}

/// Milvus naming rules: starts with a letter or underscore, then letters, digits, underscores; ≤ 255.
pub fn validate_name(what: &str, name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok_first = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_');
    let ok_rest = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if name.is_empty() || name.len() > 255 || !ok_first || !ok_rest {
        return Err(CoreError::invalid(
            what,
            format!(
                "invalid name {name:?}: must be 1-255 characters, start with a letter or '_', and contain only letters, digits and '_'"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> CollectionSchema {
        CollectionSchema {
            name: "c".into(),
            description: String::new(),
            fields: vec![
                FieldSchema::new("id", DataType::Int64).primary(false),
                FieldSchema::new("v", DataType::FloatVector).with_dim(4),
            ],
            enable_dynamic_field: true,
        }
    }

    #[test]
    fn normalizes_ids_and_adds_meta() {
        let s = base().validate_and_normalize().unwrap();
        assert_eq!(s.fields[0].field_id, 100);
        assert_eq!(s.fields[1].field_id, 101);
        assert!(s.dynamic_field().is_some());
    }

    #[test]
    fn rejects_bad_dim_naming_field() {
        let mut s = base();
        s.fields[1].dim = Some(0);
        let e = s.validate_and_normalize().unwrap_err().to_string();
        assert!(e.contains("v") && e.contains("dim"), "{e}");
        let mut s = base();
        s.fields[1].dim = Some(40000);
        assert!(s.validate_and_normalize().is_err());
    }

    #[test]
    fn rejects_missing_primary_and_bad_pk_type() {
        let mut s = base();
        s.fields[0].is_primary = false;
        assert!(s.validate_and_normalize().is_err());
        let mut s = base();
        s.fields[0].data_type = DataType::Float;
        let e = s.validate_and_normalize().unwrap_err().to_string();
        assert!(e.contains("primary key"), "{e}");
    }

    #[test]
    fn rejects_varchar_without_max_length_and_bad_names() {
        let mut s = base();
        s.fields.push(FieldSchema::new("title", DataType::VarChar));
        assert!(s.validate_and_normalize().is_err());
        let mut s = base();
        s.name = "1abc".into();
        assert!(s.validate_and_normalize().is_err());
        let mut s = base();
        s.fields.push(FieldSchema::new("id", DataType::Int32));
        assert!(
            s.validate_and_normalize()
                .unwrap_err()
                .to_string()
                .contains("duplicated")
        );
    }
}
