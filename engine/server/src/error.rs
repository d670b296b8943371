//! The server's error type and its one mapping to the Milvus `Status`.

use ferrovus_core::CoreError;
use ferrovus_proto::codes;
use ferrovus_proto::common::Status;
use ferrovus_proto::status;
use thiserror::Error;

use crate::rpc::ClusterError;
use crate::security::SecurityError;

#[derive(Debug, Error)]
pub enum ApiError {
    #[error(transparent)]
    Core(#[from] CoreError),
    /// A cluster condition (a node unreachable, a route or term stale, no leader) that outlasted
    /// the proxy's retries: `SERVICE_UNAVAILABLE`, which clients may retry. Built by
    /// `From<ClusterError>`, which turns the core kinds a node reported into [`ApiError::Core`].
    #[error("{0}")]
    Cluster(ClusterError),
    #[error("invalid parameter[{field}]: {message}")]
    Invalid { field: String, message: String },
    #[error("{0} is not implemented by Ferrovus yet")]
    Unimplemented(&'static str),
    #[error("database not found[database={0}]")]
    DatabaseNotFound(String),
    #[error("internal error: {0}")]
    Internal(String),
    #[error(transparent)]
    Security(#[from] SecurityError),
    /// `limits.max_concurrent_requests` requests are already running.
    #[error("too many concurrent requests, queue is full[limit={limit}]")]
    TooManyRequests { limit: usize },
    /// A per-collection rate of `limits.*` was exceeded.
    #[error("rate limit exceeded[{what}][collection={collection}][limit={limit}]")]
    RateLimited {
        what: &'static str,
        collection: String,
        limit: String,
    },
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
            ApiError::Cluster(e) => e.milvus_code(),
            ApiError::Invalid { .. } => codes::PARAMETER_INVALID,
            ApiError::Unimplemented(_) => codes::UNIMPLEMENTED,
            ApiError::DatabaseNotFound(_) => codes::DATABASE_NOT_FOUND,
            ApiError::Internal(_) => codes::UNEXPECTED,
            ApiError::Security(e) => security_code(e),
            ApiError::TooManyRequests { .. } => codes::TOO_MANY_REQUESTS,
            ApiError::RateLimited { .. } => codes::RATE_LIMIT,
        }
    }

    pub fn to_status(&self) -> Status {
        status::from_code(self.code(), self.to_string())
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// The Milvus code of a refused security operation (denials and failed logins inside a
/// `Status`; at the edge they are gRPC errors, see `crate::proxy::guard`).
pub fn security_code(e: &SecurityError) -> i32 {
    match e {
        SecurityError::Unauthenticated(_) => codes::NOT_AUTHENTICATED,
        SecurityError::PermissionDenied { .. } | SecurityError::NotAllowed(_) => {
            codes::NOT_PERMITTED
        }
        SecurityError::Invalid { .. }
        | SecurityError::UserNotFound(_)
        | SecurityError::UserExists(_)
        | SecurityError::RoleNotFound(_)
        | SecurityError::RoleExists(_) => codes::PARAMETER_INVALID,
        SecurityError::Internal(_) => codes::UNEXPECTED,
    }
}

/// A node's error as the Milvus API reports it: the core kinds exactly as standalone would
/// (same text, same code), cluster conditions as [`ApiError::Cluster`].
impl From<ClusterError> for ApiError {
    fn from(e: ClusterError) -> Self {
        match e {
            ClusterError::Security(e) => ApiError::Security(e),
            e @ (ClusterError::MemoryLimit(_)
            | ClusterError::Unavailable(_)
            | ClusterError::NotLeader { .. }
            | ClusterError::WrongTerm { .. }
            | ClusterError::NotServing(_)
            | ClusterError::UnknownMethod { .. }) => ApiError::Cluster(e),
            e => ApiError::Core(CoreError::from(e)),
        }
    }
}

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

    #[test]
    fn cluster_errors_keep_their_milvus_codes() {
        let e = ApiError::from(ClusterError::WrongTerm {
            channel: "1/0".into(),
            expected: 3,
            got: 2,
        });
        assert!(matches!(e, ApiError::Cluster(_)));
        let s = e.to_status();
        assert_eq!(s.code, codes::SERVICE_UNAVAILABLE);
        assert!(s.retriable, "clients may retry");
        assert!(s.reason.contains("wrong term"), "{}", s.reason);
        // A core kind a node reported is the core error again, as standalone answers it.
        let e = ApiError::from(ClusterError::CollectionNotLoaded("c".into()));
        assert!(matches!(
            e,
            ApiError::Core(CoreError::CollectionNotLoaded(ref c)) if c == "c"
        ));
        assert_eq!(e.to_status().code, codes::COLLECTION_NOT_LOADED);
        let e = ApiError::from(ClusterError::UnknownMethod {
            method: "query.x".into(),
        });
        assert_eq!(e.code(), codes::UNIMPLEMENTED);
    }
}
