//! The server's error type and its one mapping to the Milvus `Status`.

use ferrovus_core::CoreError;
use ferrovus_proto::codes;
use ferrovus_proto::common::Status;
use ferrovus_proto::status;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ApiError {
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error("invalid parameter[{field}]: {message}")]
    Invalid { field: String, message: String },
    #[error("{0} is not implemented by Ferrovus yet")]
    Unimplemented(&'static str),
    #[error("database not found[database={0}]")]
    DatabaseNotFound(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The Milvus status code for this error (`pkg/util/merr` numbering).
    pub fn code(&self) -> i32 {
        match self {
            ApiError::Core(e) => match e {
                CoreError::CollectionNotFound(_) => codes::COLLECTION_NOT_FOUND,
                CoreError::CollectionNotLoaded(_) => codes::COLLECTION_NOT_LOADED,
                CoreError::PartitionNotFound(_) => codes::PARTITION_NOT_FOUND,
                CoreError::IndexNotFound { .. } => codes::INDEX_NOT_FOUND,
                CoreError::InvalidArgument { .. }
                | CoreError::DimensionMismatch { .. }
                | CoreError::Expr(_)
                | CoreError::CollectionExists(_)
                | CoreError::Index(ferrovus_core::vindex::IndexError::InvalidParam { .. }) => {
                    codes::PARAMETER_INVALID
                }
                _ => codes::UNEXPECTED,
            },
            ApiError::Invalid { .. } => codes::PARAMETER_INVALID,
            ApiError::Unimplemented(_) => codes::UNIMPLEMENTED,
            ApiError::DatabaseNotFound(_) => codes::DATABASE_NOT_FOUND,
            ApiError::Internal(_) => codes::UNEXPECTED,
        }
    }

    pub fn to_status(&self) -> Status {
        status::from_code(self.code(), self.to_string())
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_core_errors_to_milvus_codes() {
        let s = ApiError::from(CoreError::CollectionNotFound("c".into())).to_status();
        assert_eq!(s.code, 100);
        assert!(s.reason.contains("collection not found") && s.reason.contains("c"));
        let s = ApiError::from(CoreError::DimensionMismatch {
            field: "v".into(),
            expected: 4,
            actual: 3,
        })
        .to_status();
        assert_eq!(s.code, codes::PARAMETER_INVALID);
        assert!(s.reason.contains('v') && s.reason.contains('4') && s.reason.contains('3'));
        assert!(!status::is_success(&s));
        let s = ApiError::Unimplemented("HybridSearch").to_status();
        assert_eq!(s.code, codes::UNIMPLEMENTED);
    }
}
