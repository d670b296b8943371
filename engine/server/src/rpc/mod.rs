//! Internal RPC between cluster roles: one tonic service, `ferrovus.internal.Node/Call(Frame)`,
//! carrying typed requests dispatched by method name.
//!
//! * **Methods** are named `<role>.<verb>` in lower snake case, the role being the *server's*
//!   role: `coord.commit_checkpoint`, `streaming.write`, `query.search_segments`,
//!   `data.build_index`; `node.*` is reserved for methods every process serves (the
//!   role-process skeleton registers [`NODE_INFO`]). Requests and responses are plain Rust
//!   structs named after the method (`WriteReq` / `WriteResp`).
//! * **Bodies** are serde values encoded by [`encode`] as MessagePack *with field names*
//!   (`rmp_serde::to_vec_named`): self-describing, so a node decodes a struct that gained fields
//!   (unknown fields are ignored; give new fields `#[serde(default)]` so older senders still
//!   decode). Large numeric vectors should be raw bytes (`#[serde(with = "serde_bytes")]` on a
//!   `Vec<u8>` / [`bytes::Bytes`] of little-endian values) rather than a MessagePack array of
//!   numbers.
//! * **Errors** are [`ClusterError`], returned by handlers and carried in the response frame
//!   (`Frame.error`), so the caller gets the handler's error value back; transport failures and
//!   timeouts are [`ClusterError::Unavailable`] (retriable).
//!
//! [`RpcServer`] serves registered handlers; [`RpcClient`] calls one peer; [`RpcPool`] keeps one
//! client per peer address.

mod client;
mod error;
mod server;

pub use client::{RpcClient, RpcClientConfig, RpcPool};
pub use error::{ClusterError, ExprFault};
pub use server::{RpcServer, RpcServerConfig, RunningRpcServer};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Built-in method every role process serves: answers the process's [`NodeInfo`].
pub const NODE_INFO: &str = "node.info";

/// The metadata key of the cluster secret on internal calls (`cluster.secret`).
pub const SECRET_HEADER: &str = "x-ferrovus-cluster-secret";

/// Answer of [`NODE_INFO`]: who is listening at this address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct NodeInfo {
    pub node_id: u64,
    pub role: String,
    pub version: String,
}

/// Encodes an RPC body: MessagePack with field names.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, ClusterError> {
    rmp_serde::to_vec_named(value)
        .map_err(|e| ClusterError::Internal(format!("cannot encode an RPC body: {e}")))
}

/// Decodes an RPC body written by [`encode`] (possibly by a newer node with more fields).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ClusterError> {
    rmp_serde::from_slice(bytes).map_err(|e| ClusterError::invalid("body", e.to_string()))
}

#[cfg(test)]
mod tests;
