//! [`ClusterError`]: the error of every internal RPC, serialisable so it crosses the hop intact.
//!
//! Two groups of variants:
//! * cluster conditions ([`Unavailable`](ClusterError::Unavailable),
//!   [`NotLeader`](ClusterError::NotLeader), [`WrongTerm`](ClusterError::WrongTerm),
//!   [`NotServing`](ClusterError::NotServing)) — retriable after a back-off or a route refresh
//!   ([`ClusterError::is_retriable`]);
//! * the [`CoreError`] kinds the proxy maps to distinct Milvus codes (collection / partition /
//!   index not found, not loaded, dimension mismatch, filter expression, invalid argument, ...),
//!   with the same fields and the same text, so `CoreError -> ClusterError -> CoreError` is exact
//!   for them and a cluster answers the same `Status` as standalone
//!   ([`ClusterError::milvus_code`]).

use ferrovus_core::CoreError;
use ferrovus_core::expr::ExprError;
use ferrovus_core::vindex::IndexError;
use ferrovus_proto::codes;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// An internal RPC failure. Variants are never removed or renamed (old nodes must decode new
/// nodes' errors); an error a node cannot decode becomes [`ClusterError::Internal`].
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum ClusterError {
    /// The peer could not be reached, did not answer in time, or went away. Retriable.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// This node is not the leader of the role (e.g. a standby coordinator); `leader` is the
    /// current leader's address when known. Retriable against the leader.
    #[error("not the leader{}", leader.as_deref().map(|l| format!(" (leader: {l})")).unwrap_or_default())]
    NotLeader { leader: Option<String> },
    /// The caller's term for `channel` is not the node's: routes are stale. Retriable after a
    /// route refresh.
    #[error(
        "wrong term for channel {channel}: this node is at term {expected}, the request carries {got}"
    )]
    WrongTerm {
        channel: String,
        expected: u64,
        got: u64,
    },
    /// The node does not hold this shard / segment / role assignment. Retriable after a route
    /// refresh.
    #[error("not serving: {0}")]
    NotServing(String),
    /// The peer has no handler for this method (a node of another role, or an older version).
    #[error("unknown method {method:?}")]
    UnknownMethod { method: String },
    #[error("not found: {0}")]
    NotFound(String),
    #[error("invalid {field}: {message}")]
    InvalidArgument { field: String, message: String },
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("internal error: {0}")]
    Internal(String),

    // ---- CoreError kinds, same text as `CoreError`'s Display ----
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
        expected: u64,
        actual: u64,
    },
    #[error("filter expression error: {0}")]
    Expr(ExprFault),
    #[error("index error: invalid index parameter {param}: {message}")]
    IndexParam { param: String, message: String },
    #[error("data corruption in {what}: {message}")]
    Corrupted { what: String, message: String },
    #[error("storage error: {0}")]
    Storage(String),
    /// A refused user, role or grant operation (same text as the proxy reports).
    #[error("{0}")]
    Security(crate::security::SecurityError),
    /// A node's memory budget refused work (a segment load).
    #[error("{0}")]
    MemoryLimit(String),
}

/// [`ExprError`] in a serialisable form (same variants and fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExprFault {
    Syntax {
        pos: u64,
        token: String,
        message: String,
    },
    Type {
        pos: u64,
        token: String,
        message: String,
    },
    UnknownField {
        pos: u64,
        name: String,
    },
    Template {
        pos: u64,
        name: String,
        message: String,
    },
}

impl std::fmt::Display for ExprFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        ExprError::from(self.clone()).fmt(f)
    }
}

fn to_usize(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

impl From<&ExprError> for ExprFault {
    fn from(e: &ExprError) -> Self {
        match e.clone() {
            ExprError::Syntax {
                pos,
                token,
                message,
            } => ExprFault::Syntax {
                pos: pos as u64,
                token,
                message,
            },
            ExprError::Type {
                pos,
                token,
                message,
            } => ExprFault::Type {
                pos: pos as u64,
                token,
                message,
            },
            ExprError::UnknownField { pos, name } => ExprFault::UnknownField {
                pos: pos as u64,
                name,
            },
            ExprError::Template { pos, name, message } => ExprFault::Template {
                pos: pos as u64,
                name,
                message,
            },
        }
    }
}

impl From<ExprFault> for ExprError {
    fn from(e: ExprFault) -> Self {
        match e {
            ExprFault::Syntax {
                pos,
                token,
                message,
            } => ExprError::Syntax {
                pos: to_usize(pos),
                token,
                message,
            },
            ExprFault::Type {
                pos,
                token,
                message,
            } => ExprError::Type {
                pos: to_usize(pos),
                token,
                message,
            },
            ExprFault::UnknownField { pos, name } => ExprError::UnknownField {
                pos: to_usize(pos),
                name,
            },
            ExprFault::Template { pos, name, message } => ExprError::Template {
                pos: to_usize(pos),
                name,
                message,
            },
        }
    }
}

impl ClusterError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ClusterError::InvalidArgument {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Whether the same request may succeed if retried: after a back-off
    /// ([`Unavailable`](Self::Unavailable)) or after refreshing routes / the leader address
    /// (`NotLeader`, `WrongTerm`, `NotServing`). A timed-out request may have been executed:
    /// only retry what is idempotent or fenced (terms, revisions).
    pub fn is_retriable(&self) -> bool {
        matches!(
            self,
            ClusterError::Unavailable(_)
                | ClusterError::NotLeader { .. }
                | ClusterError::WrongTerm { .. }
                | ClusterError::NotServing(_)
        )
    }

    /// The Milvus status code the proxy answers for this error. For the core kinds it is exactly
    /// the code standalone answers for the corresponding [`CoreError`]
    /// (`crate::error::ApiError::code`); cluster conditions that survived the proxy's retries
    /// are `SERVICE_UNAVAILABLE` (retriable for clients).
    pub fn milvus_code(&self) -> i32 {
        match self {
            ClusterError::Unavailable(_)
            | ClusterError::NotLeader { .. }
            | ClusterError::WrongTerm { .. }
            | ClusterError::NotServing(_) => codes::SERVICE_UNAVAILABLE,
            ClusterError::UnknownMethod { .. } => codes::UNIMPLEMENTED,
            ClusterError::CollectionNotFound(_) => codes::COLLECTION_NOT_FOUND,
            ClusterError::CollectionNotLoaded(_) => codes::COLLECTION_NOT_LOADED,
            ClusterError::PartitionNotFound(_) => codes::PARTITION_NOT_FOUND,
            ClusterError::IndexNotFound { .. } => codes::INDEX_NOT_FOUND,
            ClusterError::InvalidArgument { .. }
            | ClusterError::DimensionMismatch { .. }
            | ClusterError::Expr(_)
            | ClusterError::CollectionExists(_)
            | ClusterError::IndexParam { .. } => codes::PARAMETER_INVALID,
            ClusterError::NotFound(_)
            | ClusterError::Conflict(_)
            | ClusterError::Internal(_)
            | ClusterError::Corrupted { .. }
            | ClusterError::Storage(_) => codes::UNEXPECTED,
            ClusterError::Security(e) => crate::error::security_code(e),
            ClusterError::MemoryLimit(_) => codes::MEMORY_LIMIT_EXCEEDED,
        }
    }
}

impl From<CoreError> for ClusterError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::InvalidArgument { field, message } => {
                ClusterError::InvalidArgument { field, message }
            }
            CoreError::CollectionNotFound(c) => ClusterError::CollectionNotFound(c),
            CoreError::CollectionExists(c) => ClusterError::CollectionExists(c),
            CoreError::PartitionNotFound(p) => ClusterError::PartitionNotFound(p),
            CoreError::IndexNotFound { collection, field } => {
                ClusterError::IndexNotFound { collection, field }
            }
            CoreError::CollectionNotLoaded(c) => ClusterError::CollectionNotLoaded(c),
            CoreError::DimensionMismatch {
                field,
                expected,
                actual,
            } => ClusterError::DimensionMismatch {
                field,
                expected: expected as u64,
                actual: actual as u64,
            },
            CoreError::Expr(e) => ClusterError::Expr(ExprFault::from(&e)),
            CoreError::Corrupted { what, message } => ClusterError::Corrupted { what, message },
            CoreError::Storage(s) => ClusterError::Storage(s),
            CoreError::NotFound(s) => ClusterError::NotFound(s),
            CoreError::Conflict(s) => ClusterError::Conflict(s),
            CoreError::Index(IndexError::InvalidParam { param, message }) => {
                ClusterError::IndexParam { param, message }
            }
            e @ (CoreError::Index(_) | CoreError::Io(_)) => ClusterError::Internal(e.to_string()),
            CoreError::Internal(s) => ClusterError::Internal(s),
        }
    }
}

/// Back to the core's error, exactly for the core kinds. Cluster conditions have no core
/// equivalent and become `CoreError::Internal` with the cluster error's text: a caller that
/// cares (the proxy) should use [`ClusterError::milvus_code`] / [`ClusterError::is_retriable`]
/// before converting.
impl From<ClusterError> for CoreError {
    fn from(e: ClusterError) -> Self {
        match e {
            ClusterError::InvalidArgument { field, message } => {
                CoreError::InvalidArgument { field, message }
            }
            ClusterError::CollectionNotFound(c) => CoreError::CollectionNotFound(c),
            ClusterError::CollectionExists(c) => CoreError::CollectionExists(c),
            ClusterError::PartitionNotFound(p) => CoreError::PartitionNotFound(p),
            ClusterError::IndexNotFound { collection, field } => {
                CoreError::IndexNotFound { collection, field }
            }
            ClusterError::CollectionNotLoaded(c) => CoreError::CollectionNotLoaded(c),
            ClusterError::DimensionMismatch {
                field,
                expected,
                actual,
            } => CoreError::DimensionMismatch {
                field,
                expected: to_usize(expected),
                actual: to_usize(actual),
            },
            ClusterError::Expr(f) => CoreError::Expr(f.into()),
            ClusterError::IndexParam { param, message } => {
                CoreError::Index(IndexError::InvalidParam { param, message })
            }
            ClusterError::Corrupted { what, message } => CoreError::Corrupted { what, message },
            ClusterError::Storage(s) => CoreError::Storage(s),
            ClusterError::NotFound(s) => CoreError::NotFound(s),
            ClusterError::Conflict(s) => CoreError::Conflict(s),
            ClusterError::Internal(s) => CoreError::Internal(s),
            e @ (ClusterError::Security(_)
            | ClusterError::MemoryLimit(_)
            | ClusterError::Unavailable(_)
            | ClusterError::NotLeader { .. }
            | ClusterError::WrongTerm { .. }
            | ClusterError::NotServing(_)
            | ClusterError::UnknownMethod { .. }) => CoreError::Internal(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ApiError;

    fn core_kinds() -> Vec<CoreError> {
        vec![
            CoreError::invalid("limit", "must be positive"),
            CoreError::CollectionNotFound("c".into()),
            CoreError::CollectionExists("c".into()),
            CoreError::PartitionNotFound("p".into()),
            CoreError::IndexNotFound {
                collection: "c".into(),
                field: "v".into(),
            },
            CoreError::CollectionNotLoaded("c".into()),
            CoreError::DimensionMismatch {
                field: "v".into(),
                expected: 4,
                actual: 3,
            },
            CoreError::Expr(ExprError::Syntax {
                pos: 3,
                token: "=".into(),
                message: "unexpected".into(),
            }),
            CoreError::Expr(ExprError::Type {
                pos: 1,
                token: "a".into(),
                message: "bad".into(),
            }),
            CoreError::Expr(ExprError::UnknownField {
                pos: 0,
                name: "nope".into(),
            }),
            CoreError::Expr(ExprError::Template {
                pos: 2,
                name: "x".into(),
                message: "missing".into(),
            }),
            CoreError::Index(IndexError::InvalidParam {
                param: "M".into(),
                message: "too big".into(),
            }),
            CoreError::corrupted("wal", "bad crc"),
            CoreError::Storage("s3 down".into()),
            CoreError::NotFound("segment 3".into()),
            CoreError::Conflict("raced".into()),
            CoreError::Internal("bug".into()),
        ]
    }

    #[test]
    fn core_kinds_survive_the_hop_with_the_same_milvus_code_and_text() {
        // `CoreError` is not `Clone` (it can hold an `io::Error`): build each kind twice.
        for (core, twin) in core_kinds().into_iter().zip(core_kinds()) {
            let want_text = core.to_string();
            let want_code = ApiError::from(core).code();
            let cluster = ClusterError::from(twin);
            assert_eq!(cluster.milvus_code(), want_code, "{cluster:?}");
            assert_eq!(cluster.to_string(), want_text, "{cluster:?}");
            // over the wire
            let bytes = crate::rpc::encode(&cluster).unwrap();
            let back: ClusterError = crate::rpc::decode(&bytes).unwrap();
            assert_eq!(back, cluster);
            let core_again = CoreError::from(back);
            assert_eq!(core_again.to_string(), want_text, "{cluster:?}");
            assert_eq!(ApiError::from(core_again).code(), want_code, "{cluster:?}");
            assert!(!cluster.is_retriable());
        }
    }

    #[test]
    fn cluster_conditions_are_retriable_and_service_unavailable() {
        for e in [
            ClusterError::Unavailable("x".into()),
            ClusterError::NotLeader {
                leader: Some("10.0.0.1:19531".into()),
            },
            ClusterError::NotLeader { leader: None },
            ClusterError::WrongTerm {
                channel: "1/0".into(),
                expected: 3,
                got: 2,
            },
            ClusterError::NotServing("segment 7".into()),
        ] {
            assert!(e.is_retriable(), "{e}");
            assert_eq!(e.milvus_code(), codes::SERVICE_UNAVAILABLE);
            let back: ClusterError = crate::rpc::decode(&crate::rpc::encode(&e).unwrap()).unwrap();
            assert_eq!(back, e);
        }
        let e = ClusterError::UnknownMethod {
            method: "x.y".into(),
        };
        assert!(!e.is_retriable());
        assert_eq!(e.milvus_code(), codes::UNIMPLEMENTED);
        assert_eq!(
            ClusterError::NotLeader {
                leader: Some("h:1".into())
            }
            .to_string(),
            "not the leader (leader: h:1)"
        );
    }
}
