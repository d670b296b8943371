//! Authentication and role-based access control, as Milvus does them.
//!
//! * [`model`]: users (argon2id hashes only), roles and grants, and the operations on them;
//! * [`privileges`]: Milvus' object types and privileges, the built-in roles and the check;
//! * [`password`]: hashing and the cache of verified credentials;
//! * [`credentials`]: the `authorization` metadata pymilvus sends.
//!
//! The state lives in the coordinator's catalogue (`catalog/security`); proxies (and standalone)
//! check each request against their copy before doing any work (`crate::proxy::guard`).

pub mod credentials;
pub mod model;
pub mod password;
pub mod privileges;

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use model::{Grant, SecurityOp, SecurityState};
pub use privileges::{ObjectType, Privilege, Requirement};

/// What the security layer refuses.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum SecurityError {
    /// Bad or missing credentials (gRPC UNAUTHENTICATED at the edge).
    #[error("{0}")]
    Unauthenticated(String),
    /// gRPC PERMISSION_DENIED at the edge; names the user, the privilege and the object.
    #[error(
        "Privilege{privilege}: permission deny to {user} on {object_type} `{object}` in the `{db}` database"
    )]
    PermissionDenied {
        user: String,
        privilege: Privilege,
        object_type: ObjectType,
        object: String,
        db: String,
    },
    #[error("invalid parameter[{field}]: {message}")]
    Invalid { field: String, message: String },
    #[error("user not found[user={0}]")]
    UserNotFound(String),
    #[error("user already exists[user={0}]")]
    UserExists(String),
    #[error("role not found[role={0}]")]
    RoleNotFound(String),
    #[error("role already exists[role={0}]")]
    RoleExists(String),
    #[error("operation not permitted: {0}")]
    NotAllowed(String),
    #[error("internal error: {0}")]
    Internal(String),
}

#[cfg(test)]
mod tests;
