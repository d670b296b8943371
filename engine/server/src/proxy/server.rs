//! The Milvus gRPC server around a [`Proxy`], shared by standalone and the cluster's proxy role:
//! one listener, TCP_NODELAY on every accepted socket, the message size limit of
//! `grpc.max_message_bytes` both ways, and oversized requests answered RESOURCE_EXHAUSTED as
//! Milvus does.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use ferrovus_proto::MilvusServiceServer;
use tokio::net::TcpListener;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

use super::Proxy;
use crate::config::{GrpcConfig, SecurityConfig};
use crate::standalone::ServeError;

/// The Milvus port's TLS from `security.tls_mode` and `security.tls.*` (read now, so a missing
/// file stops the start with its key and path named); `None` for mode 0.
pub fn milvus_tls(cfg: &SecurityConfig) -> Result<Option<ServerTlsConfig>, ServeError> {
    let read = |key: &str, path: &Option<std::path::PathBuf>| {
        let path = path.as_ref().ok_or_else(|| {
            ServeError::Server(format!(
                "security.tls_mode {} needs security.tls.{key}",
                cfg.tls_mode
            ))
        })?;
        std::fs::read(path).map_err(|e| {
            ServeError::Server(format!(
                "security.tls.{key}: cannot read {}: {e}",
                path.display()
            ))
        })
    };
    match cfg.tls_mode {
        0 => Ok(None),
        mode @ (1 | 2) => {
            let cert = read("server_pem_path", &cfg.tls.server_pem_path)?;
            let key = read("server_key_path", &cfg.tls.server_key_path)?;
            let mut tls = ServerTlsConfig::new().identity(Identity::from_pem(cert, key));
            if mode == 2 {
                let ca = read("ca_pem_path", &cfg.tls.ca_pem_path)?;
                tls = tls
                    .client_ca_root(Certificate::from_pem(ca))
                    .client_auth_optional(false);
            }
            Ok(Some(tls))
        }
        other => Err(ServeError::Server(format!(
            "security.tls_mode must be 0 (off), 1 (one-way) or 2 (mutual), got {other}"
        ))),
    }
}

/// Bind the Milvus port `grpc.listen:grpc.port`.
pub async fn bind_milvus(cfg: &GrpcConfig) -> Result<TcpListener, ServeError> {
    let text = format!("{}:{}", cfg.listen, cfg.port);
    let addr: SocketAddr = text.parse().map_err(|e| ServeError::Bind {
        addr: text.clone(),
        source: std::io::Error::other(e),
    })?;
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind {
            addr: addr.to_string(),
            source,
        })
}

/// Serve the Milvus API on `listener` until `shutdown` resolves; then stop accepting, let
/// in-flight requests finish and return.
pub async fn serve_milvus(
    listener: TcpListener,
    proxy: Proxy,
    max_message_bytes: usize,
    tls: Option<ServerTlsConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let service = MilvusServiceServer::new(proxy)
        .max_decoding_message_size(max_message_bytes)
        .max_encoding_message_size(max_message_bytes);
    // serve_with_incoming ignores Server::tcp_nodelay; set it on the accepted sockets, or every
    // reply waits ~40 ms for Nagle + delayed ACK.
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        builder = builder
            .tls_config(tls)
            .map_err(|e| ServeError::Server(format!("TLS of the Milvus port: {e}")))?;
    }
    builder
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .tcp_nodelay(true)
        .layer(tower::util::MapResponseLayer::new(
            oversized_is_resource_exhausted,
        ))
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(|e| ServeError::Server(e.to_string()))
}

/// tonic answers a request over `grpc.max_message_bytes` with OUT_OF_RANGE, which pymilvus
/// retries with back-off for minutes; grpc-go (and so Milvus) answers RESOURCE_EXHAUSTED, which
/// clients report at once. Rewrite the code; the message ("decoded message length too large:
/// found N bytes, the limit is: M bytes") is kept.
fn oversized_is_resource_exhausted<B>(mut resp: http::Response<B>) -> http::Response<B> {
    let oversized = resp.headers().get("grpc-status").is_some_and(|v| v == "11")
        && resp
            .headers()
            .get("grpc-message")
            .and_then(|m| m.to_str().ok())
            .is_some_and(|m| {
                m.contains("message%20length%20too%20large")
                    || m.contains("message length too large")
            });
    if oversized {
        resp.headers_mut()
            .insert("grpc-status", http::HeaderValue::from_static("8"));
    }
    resp
}
