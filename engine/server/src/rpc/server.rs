//! [`RpcServer`]: typed handlers by method name, served over tonic.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ferrovus_proto::internal::Frame;
use ferrovus_proto::internal::node_server::{Node, NodeServer};
use futures::FutureExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{ClusterError, decode, encode};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
type Handler = Arc<dyn Fn(Bytes) -> BoxFuture<Result<Vec<u8>, ClusterError>> + Send + Sync>;

#[derive(Debug, Clone)]
pub struct RpcServerConfig {
    /// Largest request or response frame.
    pub max_message_bytes: usize,
    /// HTTP/2 pings on idle connections, so a vanished client's connection is dropped.
    pub http2_keepalive_interval: Duration,
    /// The cluster secret callers must present (see [`super::SECRET_HEADER`]); `None` accepts
    /// every caller.
    pub secret: Option<Arc<str>>,
}

impl Default for RpcServerConfig {
    fn default() -> Self {
        RpcServerConfig {
            max_message_bytes: 64 * 1024 * 1024,
            http2_keepalive_interval: Duration::from_secs(30),
            secret: None,
        }
    }
}

/// Handlers by method name. Register with [`Self::handle`], then [`Self::serve`] or
/// [`Self::spawn`].
pub struct RpcServer {
    config: RpcServerConfig,
    handlers: HashMap<String, Handler>,
    duplicates: Vec<String>,
}

impl std::fmt::Debug for RpcServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcServer")
            .field("config", &self.config)
            .field("methods", &self.methods())
            .finish()
    }
}

impl RpcServer {
    pub fn new(config: RpcServerConfig) -> Self {
        RpcServer {
            config,
            handlers: HashMap::new(),
            duplicates: Vec::new(),
        }
    }

    /// Registers `handler` for `method` (`<role>.<verb>`, see the module docs). The request body
    /// is decoded into `Req` (a body that does not decode answers
    /// [`ClusterError::InvalidArgument`] with field `body`), the handler's `Ok` is encoded back,
    /// its `Err` reaches the caller as the same [`ClusterError`]. A handler that panics answers
    /// [`ClusterError::Internal`]. Registering a method twice is a programming error reported by
    /// [`Self::serve`] / [`Self::spawn`].
    pub fn handle<Req, Resp, F, Fut>(&mut self, method: impl Into<String>, handler: F) -> &mut Self
    where
        Req: DeserializeOwned + Send + 'static,
        Resp: Serialize + Send + 'static,
        F: Fn(Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp, ClusterError>> + Send + 'static,
    {
        let method = method.into();
        let handler = Arc::new(handler);
        let name = method.clone();
        let erased: Handler = Arc::new(move |body: Bytes| {
            let handler = handler.clone();
            let name = name.clone();
            Box::pin(async move {
                let req: Req = decode(&body)?;
                match AssertUnwindSafe(handler(req)).catch_unwind().await {
                    Ok(Ok(resp)) => encode(&resp),
                    Ok(Err(e)) => Err(e),
                    Err(panic) => {
                        let what = panic
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_default();
                        tracing::error!(method = %name, panic = %what, "RPC handler panicked");
                        Err(ClusterError::Internal(format!(
                            "the handler of {name} panicked: {what}"
                        )))
                    }
                }
            })
        });
        if self.handlers.insert(method.clone(), erased).is_some() {
            self.duplicates.push(method);
        }
        self
    }

    /// Registered method names, sorted.
    pub fn methods(&self) -> Vec<String> {
        let mut m: Vec<String> = self.handlers.keys().cloned().collect();
        m.sort();
        m
    }

    fn check(&self) -> Result<(), ClusterError> {
        if self.duplicates.is_empty() {
            Ok(())
        } else {
            Err(ClusterError::Conflict(format!(
                "RPC methods registered more than once: {}",
                self.duplicates.join(", ")
            )))
        }
    }

    /// Serves on `listener` until `shutdown` resolves, then stops accepting, lets in-flight calls
    /// finish and returns. Accepted sockets get `TCP_NODELAY` (without it every small reply
    /// waits ~40 ms for Nagle + delayed ACK).
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ClusterError> {
        self.check()?;
        let service = NodeServer::new(NodeService {
            handlers: Arc::new(self.handlers),
            secret: self.config.secret.clone(),
        })
        .max_decoding_message_size(self.config.max_message_bytes)
        .max_encoding_message_size(self.config.max_message_bytes);
        // serve_with_incoming ignores Server::tcp_nodelay: set it on the accepted sockets.
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(self.config.http2_keepalive_interval))
            .tcp_nodelay(true)
            .add_service(service)
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await
            .map_err(|e| ClusterError::Internal(format!("internal RPC server: {e}")))
    }

    /// [`Self::serve`] in a background task; the handle stops it.
    pub fn spawn(self, listener: TcpListener) -> Result<RunningRpcServer, ClusterError> {
        self.check()?;
        let local_addr = listener
            .local_addr()
            .map_err(|e| ClusterError::Internal(format!("listener address: {e}")))?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(self.serve(listener, async move {
            let _ = stopped.await;
        }));
        Ok(RunningRpcServer {
            local_addr,
            stop: Some(stop),
            task,
        })
    }
}

/// A server started by [`RpcServer::spawn`]. Dropping it stops the server abruptly; prefer
/// [`Self::shutdown`].
#[derive(Debug)]
pub struct RunningRpcServer {
    local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), ClusterError>>,
}

impl RunningRpcServer {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting and waits for in-flight calls, at most `grace`; calls still running then
    /// are cut off (their callers see [`ClusterError::Unavailable`]).
    pub async fn shutdown(mut self, grace: Duration) -> Result<(), ClusterError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match tokio::time::timeout(grace, &mut self.task).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(ClusterError::Internal(format!(
                "internal RPC server task: {join}"
            ))),
            Err(_) => {
                self.task.abort();
                tracing::warn!(?grace, "in-flight internal RPCs did not finish in time");
                Ok(())
            }
        }
    }
}

impl Drop for RunningRpcServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct NodeService {
    handlers: Arc<HashMap<String, Handler>>,
    secret: Option<Arc<str>>,
}

/// Whether `presented` is `secret`, in time independent of where they differ.
fn same_secret(secret: &str, presented: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    let (a, b) = (Sha256::digest(secret.as_bytes()), Sha256::digest(presented));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

#[tonic::async_trait]
impl Node for NodeService {
    async fn call(
        &self,
        request: tonic::Request<Frame>,
    ) -> Result<tonic::Response<Frame>, tonic::Status> {
        if let Some(secret) = &self.secret {
            let presented = request.metadata().get(super::SECRET_HEADER);
            if !presented.is_some_and(|p| same_secret(secret, p.as_bytes())) {
                let from = request
                    .remote_addr()
                    .map(|a| a.to_string())
                    .unwrap_or_default();
                let method = &request.get_ref().method;
                tracing::warn!(%from, %method, "refused an internal call without the cluster secret");
                return Err(tonic::Status::unauthenticated(format!(
                    "internal call {method} refused: it does not carry this cluster's secret"
                )));
            }
        }
        let Frame { method, body, .. } = request.into_inner();
        let result = match self.handlers.get(&method) {
            Some(handler) => handler(body).await,
            None => Err(ClusterError::UnknownMethod {
                method: method.clone(),
            }),
        };
        let frame = match result {
            Ok(body) => Frame {
                method,
                body: Bytes::from(body),
                error: false,
            },
            Err(e) => {
                let body = encode(&e).unwrap_or_else(|_| {
                    // A `ClusterError` always encodes; keep a decodable fallback regardless.
                    encode(&ClusterError::Internal(e.to_string())).unwrap_or_default()
                });
                Frame {
                    method,
                    body: Bytes::from(body),
                    error: true,
                }
            }
        };
        Ok(tonic::Response::new(frame))
    }
}
