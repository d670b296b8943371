//! The crate's error type, converted into [`CoreError`] once, at the trait boundary.

use std::path::PathBuf;

use ferrovus_core::CoreError;
use thiserror::Error;

pub type StorageResult<T> = std::result::Result<T, StorageError>;

#[derive(Debug, Error)]
pub enum StorageError {
    /// A key the backends refuse (empty, absolute, `..`, ...). Becomes `CoreError::InvalidArgument`.
    #[error("invalid key {key:?}: {reason}")]
    InvalidKey { key: String, reason: &'static str },
    /// A request the backend cannot express (e.g. two ops on one key in a transaction).
    #[error("invalid {field}: {message}")]
    InvalidRequest {
        field: &'static str,
        message: String,
    },
    /// Bad backend configuration (missing bucket, half of a credential pair, ...).
    #[error("invalid storage configuration: {0}")]
    Config(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("data corruption in {what}: {message}")]
    Corrupted { what: String, message: String },
    #[error("io error on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("s3 {op} {key:?}: {message}")]
    S3 {
        op: &'static str,
        key: String,
        message: String,
    },
    #[error("redb: {0}")]
    Redb(#[from] redb::Error),
    #[error("etcd {op}: {source}")]
    Etcd {
        op: &'static str,
        #[source]
        source: etcd_client::Error,
    },
    #[error("etcd {op}: timed out after {after:?}")]
    Timeout {
        op: &'static str,
        after: std::time::Duration,
    },
    #[error("background task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

impl StorageError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StorageError::Io {
            path: path.into(),
            source,
        }
    }
}

impl From<StorageError> for CoreError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::InvalidKey { key, reason } => {
                CoreError::invalid("key", format!("{key:?}: {reason}"))
            }
            StorageError::InvalidRequest { field, message } => CoreError::invalid(field, message),
            StorageError::NotFound(what) => CoreError::NotFound(what),
            StorageError::Corrupted { what, message } => CoreError::Corrupted { what, message },
            StorageError::Redb(redb::Error::Corrupted(message)) => CoreError::Corrupted {
                what: "redb metadata database".into(),
                message,
            },
            other => CoreError::Storage(other.to_string()),
        }
    }
}
