//! The role-process skeleton behind `ferrovus run <role>`: everything a cluster role process does
//! that is not the role itself.
//!
//! [`run`] in order: checks the metadata store is etcd; serves the HTTP port (`/healthz` at
//! once, `/readyz` false with a reason until the role says ready, `/metrics`); connects to etcd
//! and the object store; allocates a node id; lets the [`Role`] register its internal RPC
//! handlers and start ([`Role::start`]); serves the internal RPC port (with [`rpc::NODE_INFO`]);
//! registers the session `session/<role>/<node_id>`. Then it runs until `shutdown` resolves
//! (SIGTERM) or the session is lost, and stops: not ready → [`Role::drain`] (hand off work while
//! the RPC server still serves) → RPC server stopped after in-flight calls → session revoked →
//! HTTP stopped. A lost session ends the process with [`NodeError::SessionLost`] (the
//! orchestrator restarts it with a fresh node id): the rest of the cluster already considers it
//! dead.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_trait::async_trait;
use ferrovus_core::store::{MetaStore, ObjectStore};
use ferrovus_storage::EtcdMetaStore;
use thiserror::Error;
use tokio::net::TcpListener;

use crate::config::{Config, MetaKind};
use crate::http::{Health, router};
use crate::metrics::Metrics;
use crate::rpc::{self, ClusterError, NodeInfo, RpcPool, RpcServer};
use crate::session::{Coordination, EtcdCoordination, SessionError, SessionInfo, unix_time_ms};
use crate::standalone::{ServeError, etcd_config, open_object_store};

pub use crate::session::RoleKind;

#[derive(Debug, Error)]
pub enum NodeError {
    #[error("invalid configuration for `ferrovus run {role}`: {message}")]
    Config { role: RoleKind, message: String },
    #[error(
        "the {0} role is not implemented in this build of ferrovus yet; \
         `ferrovus standalone` runs every role in one process"
    )]
    RoleUnavailable(RoleKind),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error("coordination: {0}")]
    Session(#[from] SessionError),
    #[error("internal RPC: {0}")]
    Rpc(#[from] ClusterError),
    #[error("the {role} role failed: {message}")]
    Role { role: RoleKind, message: String },
    #[error(
        "the session of this {role} node ({node_id}) was lost (its etcd lease could not be \
         renewed); the cluster considers the node dead, exiting"
    )]
    SessionLost { role: RoleKind, node_id: u64 },
}

/// Why a role is asked to [`Role::drain`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// SIGTERM (or Ctrl-C): hand work off cleanly.
    Shutdown,
    /// The session expired: other nodes may already be taking the work over; stop acting.
    SessionLost,
}

/// The readiness reported on `/readyz`; a role sets it once it can serve.
#[derive(Debug, Clone)]
pub struct Readiness(Arc<Health>);

impl Readiness {
    /// Readiness reported through `health` (the process's `/readyz`).
    pub fn new(health: Arc<Health>) -> Self {
        Readiness(health)
    }

    pub fn set_ready(&self) {
        self.0.ready_note.write().clear();
        self.0.ready.store(true, Ordering::SeqCst);
    }

    /// Ready, with a note `/readyz` answers instead of `ready` (a standby coordinator is ready
    /// as `standby`).
    pub fn set_ready_as(&self, note: impl Into<String>) {
        *self.0.ready_note.write() = note.into();
        self.0.ready.store(true, Ordering::SeqCst);
    }

    /// Not ready, with the reason `/readyz` prints.
    pub fn set_not_ready(&self, reason: impl Into<String>) {
        *self.0.reason.write() = reason.into();
        self.0.ready.store(false, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.0.ready.load(Ordering::SeqCst) && !self.0.stopping.load(Ordering::SeqCst)
    }
}

/// What a role gets to start with.
pub struct RoleContext {
    pub config: Config,
    pub node_id: u64,
    /// The session that is registered once [`Role::start`] returned (addresses, version).
    pub session: SessionInfo,
    pub meta: Arc<dyn MetaStore>,
    pub objects: Arc<dyn ObjectStore>,
    pub coordination: Arc<dyn Coordination>,
    /// Clients of other nodes' internal RPC servers.
    pub clients: RpcPool,
    /// Register the role's handlers here (`<role>.<verb>`, see [`crate::rpc`]).
    pub rpc: RpcServer,
    pub readiness: Readiness,
    pub metrics: Arc<Metrics>,
}

impl std::fmt::Debug for RoleContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoleContext")
            .field("node_id", &self.node_id)
            .field("session", &self.session)
            .field("rpc", &self.rpc)
            .finish_non_exhaustive()
    }
}

/// A cluster role run by [`run`].
#[async_trait]
pub trait Role: Send + Sync + 'static {
    fn kind(&self) -> RoleKind;

    /// Registers the role's RPC handlers on `ctx.rpc` and starts its work (e.g. a coordinator
    /// campaigns in a background task). Called before the RPC server starts and the session is
    /// registered, so nobody can call the node before its handlers exist. Call
    /// `ctx.readiness.set_ready()` (now or later) once the node can serve; until then `/readyz`
    /// answers 503 with the reason set by `set_not_ready`. Keep what you need from `ctx`.
    async fn start(&self, ctx: &mut RoleContext) -> Result<(), NodeError>;

    /// Hands off work before the process stops, while the RPC server still serves (already not
    /// ready). Bounded by `cluster.shutdown_grace_ms`.
    async fn drain(&self, reason: StopReason);
}

/// The role implementation of `kind` in this build, if any. Roles are added here as they are
/// implemented; until then `ferrovus run <role>` fails fast with
/// [`NodeError::RoleUnavailable`].
pub fn available_role(kind: RoleKind) -> Option<Arc<dyn Role>> {
    Some(match kind {
        RoleKind::Streaming => Arc::new(crate::streaming::StreamingRole::new()),
        RoleKind::Data => Arc::new(crate::datanode::DataRole::new()),
        RoleKind::Query => Arc::new(crate::querynode::QueryRole::new()),
        RoleKind::Proxy => Arc::new(crate::cluster::ProxyRole::new()),
        RoleKind::Coordinator => Arc::new(crate::coord::CoordinatorRole::new()),
    })
}

async fn bind(addr: String) -> Result<TcpListener, NodeError> {
    TcpListener::bind(&addr)
        .await
        .map_err(|source| NodeError::Bind { addr, source })
}

/// Runs `role` until `shutdown` resolves or the session is lost. See the module docs.
pub async fn run(
    cfg: Config,
    role: Arc<dyn Role>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), NodeError> {
    let kind = role.kind();
    if cfg.meta.kind != MetaKind::Etcd {
        return Err(NodeError::Config {
            role: kind,
            message: "cluster roles keep their metadata in etcd: set meta.kind: etcd and \
                      meta.etcd_endpoints (FERROVUS_ETCD_ENDPOINTS); embedded metadata is only \
                      for `ferrovus standalone`"
                .into(),
        });
    }
    let health = Arc::new(Health::default());
    let readiness = Readiness(health.clone());
    readiness.set_not_ready("starting");
    let metrics = Arc::new(Metrics::new());

    // HTTP first, so liveness answers while we connect.
    let http_listener = bind(format!("{}:{}", cfg.http.listen, cfg.http.port)).await?;
    let http_port = http_listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let app = router(health.clone(), metrics.clone());
    let http_task = tokio::spawn(async move {
        let _ = axum::serve(http_listener, app)
            .with_graceful_shutdown(async move {
                let _ = http_stopped.await;
            })
            .await;
    });
    let stop_http = async move {
        let _ = stop_http.send(());
        let _ = http_task.await;
    };

    let mut shutdown = Box::pin(shutdown);
    let started = tokio::select! {
        started = start(&cfg, role.clone(), &readiness, metrics, http_port) => started,
        _ = &mut shutdown => {
            tracing::info!(role = %kind, "stopped before it started");
            stop_http.await;
            return Ok(());
        }
    };
    let (server, session, node_id) = match started {
        Ok(v) => v,
        Err(e) => {
            stop_http.await;
            return Err(e);
        }
    };
    tracing::info!(
        role = %kind,
        node_id,
        grpc = %session.info().grpc_address,
        http = %session.info().http_address,
        "node started"
    );

    let lost = session.lost_signal();
    let reason = tokio::select! {
        _ = shutdown => StopReason::Shutdown,
        _ = async move {
            let mut lost = lost;
            let _ = lost.wait_for(|l| *l).await;
        } => StopReason::SessionLost,
    };
    tracing::info!(role = %kind, node_id, ?reason, "stopping");
    health.stopping.store(true, Ordering::SeqCst);
    let grace = cfg.cluster.shutdown_grace();
    if tokio::time::timeout(grace, role.drain(reason))
        .await
        .is_err()
    {
        tracing::warn!(
            ?grace,
            "the role did not finish handing off its work in time"
        );
    }
    if let Err(e) = server.shutdown(grace).await {
        tracing::warn!(error = %e, "internal RPC server stopped with an error");
    }
    let result = match reason {
        StopReason::Shutdown => {
            if let Err(e) = session.revoke().await {
                tracing::warn!(error = %e, "revoking the session failed; it expires with its lease");
            }
            Ok(())
        }
        StopReason::SessionLost => Err(NodeError::SessionLost {
            role: kind,
            node_id,
        }),
    };
    stop_http.await;
    tracing::info!(role = %kind, node_id, "stopped");
    result
}

/// Retries `connect` until it succeeds, with a back-off from 100 ms to 5 s; `/readyz` and the
/// log say what is awaited and the last error. (SIGTERM meanwhile ends the process: see
/// [`run`].)
async fn wait_for<T, F, Fut>(readiness: &Readiness, what: &str, mut connect: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let mut delay = Duration::from_millis(100);
    let mut attempts = 0u32;
    loop {
        readiness.set_not_ready(format!("connecting to {what}"));
        match connect().await {
            Ok(v) => {
                if attempts > 0 {
                    tracing::info!(what, attempts, "connected");
                }
                return v;
            }
            Err(e) => {
                attempts += 1;
                readiness.set_not_ready(format!("waiting for {what}: {e}"));
                if attempts == 1 || attempts.is_power_of_two() {
                    tracing::warn!(what, attempts, error = %e, retry_in_ms = delay.as_millis() as u64, "cannot reach a dependency yet; waiting");
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Everything between "HTTP is up" and "session registered".
async fn start(
    cfg: &Config,
    role: Arc<dyn Role>,
    readiness: &Readiness,
    metrics: Arc<Metrics>,
    http_port: u16,
) -> Result<(rpc::RunningRpcServer, crate::session::Session, u64), NodeError> {
    let kind = role.kind();
    // Dependencies may come up after us (no start-up order): wait for them, saying so.
    let store = wait_for(readiness, "etcd", || async {
        EtcdMetaStore::connect(etcd_config(cfg))
            .await
            .map_err(|e| e.to_string())
    })
    .await;
    let objects = wait_for(readiness, "object storage", || async {
        open_object_store(cfg).await.map_err(|e| e.to_string())
    })
    .await;
    let coordination = Arc::new(EtcdCoordination::new(
        store.clone(),
        cfg.cluster.coordination(),
    ));
    let node_id = coordination.allocate_node_id().await?;

    let rpc_listener = bind(format!("{}:{}", cfg.grpc.listen, cfg.internal_port(kind))).await?;
    let rpc_port = rpc_listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let host = cfg.cluster.advertise_host();
    let info = SessionInfo {
        role: kind,
        node_id,
        grpc_address: format!("{host}:{rpc_port}"),
        http_address: format!("{host}:{http_port}"),
        version: env!("CARGO_PKG_VERSION").to_string(),
        start_time_ms: unix_time_ms(),
    };
    let mut rpc = RpcServer::new(cfg.rpc_server_config());
    let me = NodeInfo {
        node_id,
        role: kind.to_string(),
        version: info.version.clone(),
    };
    rpc.handle(rpc::NODE_INFO, move |_: ()| {
        let me = me.clone();
        async move { Ok(me) }
    });
    readiness.set_not_ready(format!("the {kind} role is starting"));
    let mut ctx = RoleContext {
        config: cfg.clone(),
        node_id,
        session: info.clone(),
        meta: Arc::new(store),
        objects,
        coordination: coordination.clone(),
        clients: RpcPool::new(cfg.rpc_client_config()),
        rpc,
        readiness: readiness.clone(),
        metrics,
    };
    role.start(&mut ctx).await?;
    let server = ctx.rpc.spawn(rpc_listener)?;
    let session = match coordination.register(info).await {
        Ok(s) => s,
        Err(e) => {
            let _ = server.shutdown(Duration::from_secs(1)).await;
            return Err(e.into());
        }
    };
    Ok((server, session, node_id))
}

#[cfg(test)]
mod tests;
