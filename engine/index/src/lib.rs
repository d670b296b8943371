//! Vector indexes for Ferrovus (work in progress).

use thiserror::Error;

#[derive(Debug, Error)]
pub enum IndexError {
    #[error("invalid index parameter {param}: {message}")]
    InvalidParam { param: String, message: String },
    #[error("corrupted index file: {0}")]
    Corrupted(String),
    #[error("io error: {0}")]
    Io(#[from] std::io::Error),
}
