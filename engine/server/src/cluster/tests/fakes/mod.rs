//! Fakes of the other roles for the proxy's tests: an in-memory coordinator, channel owners
//! that keep rows per channel and check terms, and delegators that read those rows (exact
//! scores, real filters), with failures injected per channel or per (replica, shard).

mod coord;
mod query;
mod streaming;

pub use coord::FakeCoord;
pub use query::FakeQuery;
pub use streaming::{FakeStreaming, StoredRow};

use crate::rpc::ClusterError;

type Result<T> = std::result::Result<T, ClusterError>;

fn unknown<T>(method: &str) -> Result<T> {
    Err(ClusterError::UnknownMethod {
        method: method.into(),
    })
}
