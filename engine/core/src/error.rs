//! The core's error type. The proxy maps each variant once to a Milvus status code.

use thiserror::Error;

pub type Result<T, E = CoreError> = std::result::Result<T, E>;

#[derive(Debug, Error)]
pub enum CoreError {
    /// A request argument is wrong; `field` names the argument or schema field.
    #[error("invalid {field}: {message}")]
    InvalidArgument { field: String, message: String },
    #[error("collection not found[collection={0}]")]
    CollectionNotFound(String),
    #[error("collection already exists with a different schema[collection={0}]")]
    CollectionExists(String),
    #[error("partition not found[partition={0}]")]
    PartitionNotFound(String),
    #[error("index not found[collection={collection}, field={field}]")]
    IndexNotFound { collection: String, field: String },
    #[error("collection not loaded[collection={0}]")]
    CollectionNotLoaded(String),
    #[error("the vector field {field} expects dim {expected}, got {actual}")]
    DimensionMismatch {
        field: String,
        expected: usize,
        actual: usize,
    },
    #[error("filter expression error: {0}")]
    Expr(#[from] crate::expr::ExprError),
    #[error("data corruption in {what}: {message}")]
    Corrupted { what: String, message: String },
    #[error("storage error: {0}")]
    Storage(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("index error: {0}")]
    Index(#[from] ferrovus_index::IndexError),
    #[error("io error: {0}")]
    Io(#[from] std::io::Error),
    #[error("internal error: {0}")]
    Internal(String),
}

impl CoreError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        CoreError::InvalidArgument {
            field: field.into(),
            message: message.into(),
        }
    }
    pub fn corrupted(what: impl Into<String>, message: impl Into<String>) -> Self {
        CoreError::Corrupted {
            what: what.into(),
            message: message.into(),
        }
    }
    pub fn storage(e: impl std::fmt::Display) -> Self {
        CoreError::Storage(e.to_string())
    }
}
