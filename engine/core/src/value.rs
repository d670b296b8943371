//! Scalar values and columns.

use serde::{Deserialize, Serialize};

use crate::schema::DataType;

/// An owned value of any supported type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
    Json(serde_json::Value),
    FloatVector(Vec<f32>),
}

/// A borrowed view of one cell, as the expression evaluator reads it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
    Json(&'a serde_json::Value),
    FloatVector(&'a [f32]),
}

impl Value {
    pub fn as_ref(&self) -> ValueRef<'_> {
        match self {
            Value::Null => ValueRef::Null,
            Value::Bool(b) => ValueRef::Bool(*b),
            Value::Int(i) => ValueRef::Int(*i),
            Value::Float(f) => ValueRef::Float(*f),
            Value::String(s) => ValueRef::Str(s),
            Value::Json(j) => ValueRef::Json(j),
            Value::FloatVector(v) => ValueRef::FloatVector(v),
        }
    }
}

/// Primary key value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PrimaryKey {
    Int(i64),
    Str(String),
}

impl PrimaryKey {
    /// Shard routing hash (stable across versions and processes: FNV-1a/64 over the key bytes).
    pub fn shard_hash(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut feed = |bytes: &[u8]| {
            for b in bytes {
                h ^= u64::from(*b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        };
        match self {
            PrimaryKey::Int(i) => feed(&i.to_le_bytes()),
            PrimaryKey::Str(s) => feed(s.as_bytes()),
        }
        h
    }
}

impl std::fmt::Display for PrimaryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PrimaryKey::Int(i) => write!(f, "{i}"),
            PrimaryKey::Str(s) => write!(f, "{s:?}"),
        }
    }
}

/// A column of values of one field. Integer types of every width are held as i64 and
/// checked against the field's range on insert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Column {
    Bool(Vec<bool>),
    Int(Vec<i64>),
    Float(Vec<f32>),
    Double(Vec<f64>),
    VarChar(Vec<String>),
    Json(Vec<serde_json::Value>),
    FloatVector { dim: usize, data: Vec<f32> },
}

impl Column {
    pub fn empty_for(dt: DataType, dim: usize) -> Column {
        match dt {
            DataType::Bool => Column::Bool(Vec::new()),
            DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
                Column::Int(Vec::new())
            }
            DataType::Float => Column::Float(Vec::new()),
            DataType::Double => Column::Double(Vec::new()),
            DataType::VarChar => Column::VarChar(Vec::new()),
            DataType::Json => Column::Json(Vec::new()),
            DataType::FloatVector => Column::FloatVector {
                dim,
                data: Vec::new(),
            },
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Column::Bool(v) => v.len(),
            Column::Int(v) => v.len(),
            Column::Float(v) => v.len(),
            Column::Double(v) => v.len(),
            Column::VarChar(v) => v.len(),
            Column::Json(v) => v.len(),
            Column::FloatVector { dim, data } => {
                if *dim == 0 {
                    0
                } else {
                    data.len() / dim
                }
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether this column can hold values of a field of type `dt` (and dimension `dim` for
    /// vectors): the variant [`Column::empty_for`] gives.
    pub fn fits(&self, dt: DataType, dim: usize) -> bool {
        match (dt, self) {
            (DataType::Bool, Column::Bool(_))
            | (DataType::Float, Column::Float(_))
            | (DataType::Double, Column::Double(_))
            | (DataType::VarChar, Column::VarChar(_))
            | (DataType::Json, Column::Json(_)) => true,
            (dt, Column::Int(_)) => dt.is_integer(),
            (DataType::FloatVector, Column::FloatVector { dim: d, .. }) => *d == dim,
            _ => false,
        }
    }

    pub fn get(&self, row: usize) -> ValueRef<'_> {
        match self {
            Column::Bool(v) => v.get(row).map_or(ValueRef::Null, |b| ValueRef::Bool(*b)),
            Column::Int(v) => v.get(row).map_or(ValueRef::Null, |b| ValueRef::Int(*b)),
            Column::Float(v) => v
                .get(row)
                .map_or(ValueRef::Null, |b| ValueRef::Float(f64::from(*b))),
            Column::Double(v) => v.get(row).map_or(ValueRef::Null, |b| ValueRef::Float(*b)),
            Column::VarChar(v) => v.get(row).map_or(ValueRef::Null, |b| ValueRef::Str(b)),
            Column::Json(v) => v.get(row).map_or(ValueRef::Null, ValueRef::Json),
            Column::FloatVector { dim, data } => data
                .get(row * dim..(row + 1) * dim)
                .map_or(ValueRef::Null, ValueRef::FloatVector),
        }
    }

    /// Append row `row` of `other` (same variant) to self.
    pub fn push_from(&mut self, other: &Column, row: usize) {
        match (self, other) {
            (Column::Bool(a), Column::Bool(b)) => a.push(b[row]),
            (Column::Int(a), Column::Int(b)) => a.push(b[row]),
            (Column::Float(a), Column::Float(b)) => a.push(b[row]),
            (Column::Double(a), Column::Double(b)) => a.push(b[row]),
            (Column::VarChar(a), Column::VarChar(b)) => a.push(b[row].clone()),
            (Column::Json(a), Column::Json(b)) => a.push(b[row].clone()),
            (Column::FloatVector { dim, data: a }, Column::FloatVector { data: b, .. }) => {
                a.extend_from_slice(&b[row * *dim..(row + 1) * *dim])
            }
            _ => {}
        }
    }

    /// A new column with the given rows of self, in order.
    pub fn take(&self, rows: &[usize]) -> Column {
        let mut out = match self {
            Column::FloatVector { dim, .. } => Column::FloatVector {
                dim: *dim,
                data: Vec::with_capacity(rows.len() * dim),
            },
            Column::Bool(_) => Column::Bool(Vec::with_capacity(rows.len())),
            Column::Int(_) => Column::Int(Vec::with_capacity(rows.len())),
            Column::Float(_) => Column::Float(Vec::with_capacity(rows.len())),
            Column::Double(_) => Column::Double(Vec::with_capacity(rows.len())),
            Column::VarChar(_) => Column::VarChar(Vec::with_capacity(rows.len())),
            Column::Json(_) => Column::Json(Vec::with_capacity(rows.len())),
        };
        for &r in rows {
            out.push_from(self, r);
        }
        out
    }

    pub fn extend(&mut self, other: &Column) {
        match (self, other) {
            (Column::Bool(a), Column::Bool(b)) => a.extend_from_slice(b),
            (Column::Int(a), Column::Int(b)) => a.extend_from_slice(b),
            (Column::Float(a), Column::Float(b)) => a.extend_from_slice(b),
            (Column::Double(a), Column::Double(b)) => a.extend_from_slice(b),
            (Column::VarChar(a), Column::VarChar(b)) => a.extend_from_slice(b),
            (Column::Json(a), Column::Json(b)) => a.extend_from_slice(b),
            (Column::FloatVector { data: a, .. }, Column::FloatVector { data: b, .. }) => {
                a.extend_from_slice(b)
            }
            _ => {}
        }
    }

    pub fn primary_key(&self, row: usize) -> Option<PrimaryKey> {
        match self {
            Column::Int(v) => v.get(row).map(|i| PrimaryKey::Int(*i)),
            Column::VarChar(v) => v.get(row).map(|s| PrimaryKey::Str(s.clone())),
            _ => None,
        }
    }
}

/// Rows of a write, as named columns (the shape of Milvus' `FieldData`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RowBatch {
    pub columns: Vec<(String, Column)>,
}

impl RowBatch {
    pub fn num_rows(&self) -> usize {
        self.columns.first().map_or(0, |(_, c)| c.len())
    }
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|(n, _)| n == name).map(|(_, c)| c)
    }
}
