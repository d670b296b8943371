//! [`RpcClient`] (one peer) and [`RpcPool`] (one client per peer address).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ferrovus_proto::internal::Frame;
use ferrovus_proto::internal::node_client::NodeClient;
use parking_lot::Mutex;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

use super::{ClusterError, decode, encode};

#[derive(Debug, Clone)]
pub struct RpcClientConfig {
    /// Deadline of a call (connecting included) unless the call gives its own.
    pub timeout: Duration,
    /// Deadline of establishing a connection.
    pub connect_timeout: Duration,
    /// Largest request or response frame.
    pub max_message_bytes: usize,
    /// The cluster secret sent with every call (see [`super::SECRET_HEADER`]).
    pub secret: Option<Arc<str>>,
}

impl Default for RpcClientConfig {
    fn default() -> Self {
        RpcClientConfig {
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(3),
            max_message_bytes: 64 * 1024 * 1024,
            secret: None,
        }
    }
}

/// A client of one peer (`host:port`). Connects lazily on the first call and reconnects after the
/// peer went away; cheap to clone (clones share the connection).
#[derive(Debug, Clone)]
pub struct RpcClient {
    addr: Arc<str>,
    inner: NodeClient<Channel>,
    timeout: Duration,
    secret: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
}

impl RpcClient {
    /// A client of `addr` (`host:port`). Must be called inside a tokio runtime. Nothing is
    /// connected yet, so an unreachable peer is only reported by calls.
    pub fn new(addr: &str, config: &RpcClientConfig) -> Result<Self, ClusterError> {
        if addr.is_empty() || addr.contains('/') {
            return Err(ClusterError::invalid(
                "address",
                format!("expected host:port, got {addr:?}"),
            ));
        }
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| ClusterError::invalid("address", format!("{addr:?}: {e}")))?
            .connect_timeout(config.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5))
            .keep_alive_while_idle(true);
        let inner = NodeClient::new(endpoint.connect_lazy())
            .max_decoding_message_size(config.max_message_bytes)
            .max_encoding_message_size(config.max_message_bytes);
        let secret = match &config.secret {
            None => None,
            Some(s) => Some(s.parse().map_err(|_| {
                ClusterError::invalid(
                    "cluster.secret",
                    "the cluster secret must be printable ASCII",
                )
            })?),
        };
        Ok(RpcClient {
            addr: addr.into(),
            inner,
            timeout: config.timeout,
            secret,
        })
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Calls `method` with the default timeout. See [`Self::call_with_timeout`].
    pub async fn call<Req, Resp>(&self, method: &str, req: &Req) -> Result<Resp, ClusterError>
    where
        Req: Serialize + ?Sized,
        Resp: DeserializeOwned,
    {
        self.call_with_timeout(method, req, self.timeout).await
    }

    /// Calls `method`; the peer's handler error comes back as the same [`ClusterError`]. No
    /// answer within `timeout`, a refused connection or a peer that went away is
    /// [`ClusterError::Unavailable`] — in the timeout and went-away cases the peer may still have
    /// executed the request.
    pub async fn call_with_timeout<Req, Resp>(
        &self,
        method: &str,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, ClusterError>
    where
        Req: Serialize + ?Sized,
        Resp: DeserializeOwned,
    {
        let body = encode(req)?;
        let mut request = tonic::Request::new(Frame {
            method: method.to_string(),
            body: Bytes::from(body),
            error: false,
        });
        request.set_timeout(timeout);
        if let Some(secret) = &self.secret {
            request
                .metadata_mut()
                .insert(super::SECRET_HEADER, secret.clone());
        }
        let mut client = self.inner.clone();
        let frame = match tokio::time::timeout(timeout, client.call(request)).await {
            Err(_) => {
                return Err(ClusterError::Unavailable(format!(
                    "{method} on {}: no answer within {timeout:?}",
                    self.addr
                )));
            }
            Ok(Err(status)) => return Err(self.status_error(method, status)),
            Ok(Ok(resp)) => resp.into_inner(),
        };
        if frame.error {
            Err(decode::<ClusterError>(&frame.body).unwrap_or_else(|e| {
                ClusterError::Internal(format!(
                    "{method} on {} failed with an error this node cannot decode: {e}",
                    self.addr
                ))
            }))
        } else {
            decode(&frame.body).map_err(|e| {
                ClusterError::Internal(format!(
                    "{method} on {}: cannot decode the response: {e}",
                    self.addr
                ))
            })
        }
    }

    fn status_error(&self, method: &str, status: tonic::Status) -> ClusterError {
        let what = format!("{method} on {}: {}", self.addr, status.message());
        match status.code() {
            // Connection refused/reset, peer shut down, deadline, stream cut: the peer (or the
            // network) is unavailable; the caller backs off or goes elsewhere.
            Code::Unavailable | Code::Unknown | Code::Cancelled | Code::DeadlineExceeded => {
                ClusterError::Unavailable(what)
            }
            Code::ResourceExhausted | Code::OutOfRange => ClusterError::invalid("message", what),
            Code::Unimplemented => ClusterError::Internal(format!(
                "{} does not serve the internal RPC service ({what})",
                self.addr
            )),
            Code::Unauthenticated => {
                ClusterError::Internal(format!("{what}: set the same cluster.secret on every role"))
            }
            _ => ClusterError::Internal(format!("{what} ({:?})", status.code())),
        }
    }
}

/// One [`RpcClient`] per peer address, created on first use. Cheap to clone.
#[derive(Debug, Clone)]
pub struct RpcPool {
    config: Arc<RpcClientConfig>,
    clients: Arc<Mutex<HashMap<String, RpcClient>>>,
}

impl RpcPool {
    pub fn new(config: RpcClientConfig) -> Self {
        RpcPool {
            config: Arc::new(config),
            clients: Arc::default(),
        }
    }

    pub fn config(&self) -> &RpcClientConfig {
        &self.config
    }

    /// The client of `addr`, created (not connected) if new. Must be called inside a tokio
    /// runtime.
    pub fn get(&self, addr: &str) -> Result<RpcClient, ClusterError> {
        let mut clients = self.clients.lock();
        if let Some(c) = clients.get(addr) {
            return Ok(c.clone());
        }
        let c = RpcClient::new(addr, &self.config)?;
        clients.insert(addr.to_string(), c.clone());
        Ok(c)
    }

    /// Drops the client of `addr` (a node that left): its connection closes once no clone of it
    /// is in use.
    pub fn forget(&self, addr: &str) {
        self.clients.lock().remove(addr);
    }

    /// Addresses with a client.
    pub fn addresses(&self) -> Vec<String> {
        let mut a: Vec<String> = self.clients.lock().keys().cloned().collect();
        a.sort();
        a
    }
}
