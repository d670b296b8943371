//! `ferrovus run proxy`: the Milvus gRPC port (`grpc.port`) over a [`ClusterBackend`] that
//! reaches the other roles through the internal RPC. Ready once the coordinator answered;
//! draining stops accepting connections and lets in-flight requests finish.

use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::Mutex;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use super::{ClusterBackend, ClusterBackendConfig};
use crate::api::RemoteNodes;
use crate::backend::ServerIdentity;
use crate::node::{NodeError, Role, RoleContext, RoleKind, StopReason};
use crate::proxy::{Proxy, bind_milvus, milvus_tls, serve_milvus};
use crate::standalone::ServeError;

/// The proxy role process; see the module docs.
pub struct ProxyRole {
    running: Mutex<Option<Running>>,
    /// The Milvus address, once bound.
    serving: watch::Sender<Option<SocketAddr>>,
}

impl Default for ProxyRole {
    fn default() -> Self {
        ProxyRole {
            running: Mutex::new(None),
            serving: watch::Sender::new(None),
        }
    }
}

struct Running {
    backend: Arc<ClusterBackend>,
    readiness: crate::node::Readiness,
    drain_delay: std::time::Duration,
    stop_serving: oneshot::Sender<()>,
    server: JoinHandle<Result<(), ServeError>>,
    ready: JoinHandle<()>,
}

impl ProxyRole {
    pub fn new() -> Self {
        ProxyRole::default()
    }

    /// The address the Milvus API listens on, once the role started (e.g. with `grpc.port` 0).
    pub async fn milvus_address(&self) -> SocketAddr {
        let mut rx = self.serving.subscribe();
        let addr = rx.wait_for(Option::is_some).await.ok().and_then(|a| *a);
        // The sender lives as long as `self`: the wait ends with an address.
        addr.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// The backend, while the role runs.
    pub fn backend(&self) -> Option<Arc<ClusterBackend>> {
        self.running.lock().as_ref().map(|r| r.backend.clone())
    }
}

#[async_trait]
impl Role for ProxyRole {
    fn kind(&self) -> RoleKind {
        RoleKind::Proxy
    }

    async fn start(&self, ctx: &mut RoleContext) -> Result<(), NodeError> {
        let cfg = &ctx.config;
        let backend_cfg = ClusterBackendConfig::from(&cfg.proxy);
        let nodes = Arc::new(RemoteNodes::new(
            ctx.clients.clone(),
            ctx.coordination.clone(),
            backend_cfg.retry_deadline,
        ));
        let identity = ServerIdentity {
            node_id: i64::try_from(ctx.node_id).unwrap_or(i64::MAX),
            role: RoleKind::Proxy.to_string(),
            deploy_mode: "CLUSTER".into(),
        };
        let backend = Arc::new(ClusterBackend::new(nodes, backend_cfg, identity));
        backend.metrics().register(&ctx.metrics);
        backend.watch_catalog();

        let tls = milvus_tls(&cfg.security)?;
        let listener = bind_milvus(&cfg.grpc).await?;
        let addr = listener.local_addr().map_err(|source| ServeError::Bind {
            addr: format!("{}:{}", cfg.grpc.listen, cfg.grpc.port),
            source,
        })?;
        let proxy = Proxy::with_limits(
            backend.clone(),
            ctx.metrics.clone(),
            &cfg.security,
            &cfg.limits,
        );
        let bootstrap = proxy.clone();
        let (stop_serving, stopped) = oneshot::channel::<()>();
        let max_message_bytes = cfg.grpc.max_message_bytes;
        let server = tokio::spawn(async move {
            let r = serve_milvus(listener, proxy, max_message_bytes, tls, async move {
                let _ = stopped.await;
            })
            .await;
            if let Err(e) = &r {
                tracing::error!(error = %e, "the Milvus gRPC server failed");
            }
            r
        });
        tracing::info!(%addr, "Milvus gRPC listening");

        ctx.readiness
            .set_not_ready("waiting for the coordinator to answer");
        let readiness = ctx.readiness.clone();
        let b = backend.clone();
        let ready = tokio::spawn(async move {
            b.coordinator_reached().await;
            // The root user must exist before anyone can log in (idempotent: every proxy tries).
            let mut delay = std::time::Duration::from_millis(100);
            while let Err(e) = bootstrap.bootstrap_security().await {
                tracing::warn!(error = %e, "could not make sure the root user exists; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(2));
            }
            readiness.set_ready();
            tracing::info!("proxy ready: the coordinator answered");
        });
        *self.running.lock() = Some(Running {
            backend,
            readiness: ctx.readiness.clone(),
            drain_delay: std::time::Duration::from_millis(cfg.proxy.drain_delay_ms),
            stop_serving,
            server,
            ready,
        });
        self.serving.send_replace(Some(addr));
        Ok(())
    }

    async fn drain(&self, reason: StopReason) {
        let Some(r) = self.running.lock().take() else {
            return;
        };
        r.ready.abort();
        if reason == StopReason::Shutdown && !r.drain_delay.is_zero() {
            // Unready first, still serving: load balancers stop sending new connections.
            r.readiness.set_not_ready("stopping: draining");
            tracing::info!(
                delay_ms = r.drain_delay.as_millis() as u64,
                "proxy stopping: not ready, still serving until the delay ends"
            );
            tokio::time::sleep(r.drain_delay).await;
        }
        tracing::info!(
            ?reason,
            "proxy draining: no new connections, finishing in-flight requests"
        );
        let _ = r.stop_serving.send(());
        match r.server.await {
            Ok(Ok(())) => tracing::info!("Milvus gRPC server stopped"),
            Ok(Err(e)) => tracing::warn!(error = %e, "Milvus gRPC server stopped with an error"),
            Err(e) => tracing::warn!(error = %e, "Milvus gRPC server task failed"),
        }
        r.backend.stop_watching();
    }
}
