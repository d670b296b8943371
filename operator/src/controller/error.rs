//! Errors of a reconciliation (retried with backoff by [`super::error_policy`]).

/// Errors that make a reconciliation retry with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Kubernetes API failed.
    #[error("kubernetes API error: {0}")]
    Kube(#[from] kube::Error),
    /// An object could not be (de)serialised.
    #[error("serialization error: {0}")]
    Json(#[from] serde_json::Error),
    /// The resource is missing metadata it always has when it comes from the API server.
    #[error("{0}")]
    Metadata(&'static str),
}
