//! Standalone mode: every role in one process over embedded metadata and a local object store
//! (or etcd / S3 when configured), calling each other directly — the same role code a cluster
//! runs, without the network. Serves gRPC and the HTTP side port; shuts down gracefully.

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use ferrovus_core::store::{MetaStore, ObjectStore};
use ferrovus_storage::{
    EtcdConfig, EtcdMetaStore, LocalObjectStore, RedbMetaStore, S3Config, S3ObjectStore,
};
use thiserror::Error;

use crate::api::{CoordApi, LocalNodes, NodeId, Nodes, QueryApi, StreamingApi};
use crate::backend::ServerIdentity;
use crate::cluster::{ClusterBackend, ClusterBackendConfig};
use crate::config::{Config, MetaKind, StorageKind};
use crate::coord::Coordinator;
use crate::coord::import::import_single_process_catalogue;
use crate::datanode::DataNode;
use crate::http::{Health, router};
use crate::metrics::Metrics;
use crate::proxy::{Proxy, bind_milvus, milvus_tls, serve_milvus};
use crate::querynode::QueryNode;
use crate::rpc::ClusterError;
use crate::session::{
    Coordination, LocalCoordination, RoleKind, Session, SessionError, SessionInfo, unix_time_ms,
};
use crate::streaming::StreamingNode;

#[derive(Debug, Error)]
pub enum ServeError {
    #[error("storage: {0}")]
    Storage(#[from] ferrovus_storage::StorageError),
    #[error("database: {0}")]
    Core(#[from] ferrovus_core::CoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("server: {0}")]
    Server(String),
}

pub async fn open_stores(
    cfg: &Config,
) -> Result<(Arc<dyn MetaStore>, Arc<dyn ObjectStore>), ServeError> {
    create_data_dir(cfg)?;
    let meta: Arc<dyn MetaStore> = match cfg.meta.kind {
        MetaKind::Embedded => Arc::new(RedbMetaStore::open(cfg.data_dir.join("meta.redb")).await?),
        MetaKind::Etcd => Arc::new(EtcdMetaStore::connect(etcd_config(cfg)).await?),
    };
    let objects = open_object_store(cfg).await?;
    Ok((meta, objects))
}

pub(crate) fn create_data_dir(cfg: &Config) -> Result<(), ServeError> {
    std::fs::create_dir_all(&cfg.data_dir).map_err(|source| ServeError::DataDir {
        path: cfg.data_dir.display().to_string(),
        source,
    })
}

/// The etcd connection settings of `meta.etcd_*` (the prefix gets a trailing `/`).
pub fn etcd_config(cfg: &Config) -> EtcdConfig {
    EtcdConfig::new(
        cfg.meta.etcd_endpoints.clone(),
        format!("{}/", cfg.meta.etcd_prefix.trim_end_matches('/')),
    )
}

/// The object store of `storage.*` (a local directory under `data_dir`, or S3).
pub async fn open_object_store(cfg: &Config) -> Result<Arc<dyn ObjectStore>, ServeError> {
    create_data_dir(cfg)?;
    Ok(match cfg.storage.kind {
        StorageKind::Local => Arc::new(LocalObjectStore::new(cfg.data_dir.join("objects"))?),
        StorageKind::S3 => {
            let s = &cfg.storage.s3;
            Arc::new(
                S3ObjectStore::connect(S3Config {
                    endpoint: s.endpoint.clone(),
                    region: s.region.clone(),
                    bucket: s.bucket.clone(),
                    prefix: s.prefix.clone(),
                    access_key_id: s.access_key_id.clone(),
                    secret_access_key: s.secret_access_key.clone(),
                    force_path_style: s.force_path_style,
                    create_bucket: s.create_bucket,
                })
                .await?,
            )
        }
    })
}

/// The address the in-process roles advertise (nothing dials it: [`LocalNodes`] hands out the
/// role objects themselves).
const IN_PROCESS: &str = "in-process";

/// The in-process roles as [`Nodes`]: the coordinator exists first, the streaming and query
/// nodes are set once built (they are built with this set, and call out only once started).
struct LateNodes {
    coord: Arc<dyn CoordApi>,
    nodes: OnceLock<LocalNodes>,
}

impl LateNodes {
    fn get(&self) -> Result<&LocalNodes, ClusterError> {
        self.nodes
            .get()
            .ok_or_else(|| ClusterError::Unavailable("standalone is still starting".into()))
    }
}

impl Nodes for LateNodes {
    fn coord(&self) -> Arc<dyn CoordApi> {
        self.coord.clone()
    }
    fn streaming(&self, node: NodeId, addr: &str) -> Result<Arc<dyn StreamingApi>, ClusterError> {
        self.get()?.streaming(node, addr)
    }
    fn query(&self, node: NodeId, addr: &str) -> Result<Arc<dyn QueryApi>, ClusterError> {
        self.get()?.query(node, addr)
    }
}

/// The in-process roles of standalone.
struct Roles {
    coord: Arc<Coordinator>,
    streaming: StreamingNode,
    query: QueryNode,
    data: DataNode,
    _sessions: Vec<Session>,
}

/// The standalone engine without its servers: a coordinator, a streaming node, a query node and
/// a data node in this process, calling each other directly, behind the proxy's
/// [`ClusterBackend`]. [`run`] serves it over gRPC; tests and the in-process benchmark
/// (`examples/core_bench.rs`) call its [`Engine::backend`] directly.
pub struct Engine {
    roles: Roles,
    backend: Arc<ClusterBackend>,
}

impl Engine {
    /// Start every role over one metadata store and object store (importing a data directory of
    /// the single-process engine first), and the backend in front of them. The roles serve once
    /// [`Engine::wait_ready`] returns.
    pub async fn start(
        cfg: &Config,
        meta: Arc<dyn MetaStore>,
        objects: Arc<dyn ObjectStore>,
        metrics: &Arc<Metrics>,
    ) -> Result<Self, ServeError> {
        let (roles, nodes) = start_roles(cfg, meta, objects, metrics).await?;
        let backend = Arc::new(ClusterBackend::new(
            nodes,
            ClusterBackendConfig::from(&cfg.proxy),
            ServerIdentity::standalone(),
        ));
        backend.watch_catalog();
        backend.metrics().register(metrics);
        Ok(Engine { roles, backend })
    }

    /// The Milvus API's backend over the roles.
    pub fn backend(&self) -> &Arc<ClusterBackend> {
        &self.backend
    }

    /// Why the roles cannot serve yet, if they cannot.
    pub fn status(&self) -> Result<(), String> {
        self.roles.streaming.status()?;
        self.roles.query.status()?;
        self.roles.data.status()
    }

    /// Resolves once every role serves, reporting why not in the meantime to `health`.
    pub async fn wait_ready(&self, health: Option<&Health>) {
        let mut s = self.roles.streaming.watch_changes();
        let mut q = self.roles.query.watch_changes();
        loop {
            match self.status() {
                Ok(()) => return,
                Err(reason) => {
                    if let Some(h) = health {
                        *h.reason.write() = reason;
                    }
                }
            }
            tokio::select! {
                _ = s.changed() => {}
                _ = q.changed() => {}
                // Status may also change without a notification (e.g. the data node).
                _ = tokio::time::sleep(std::time::Duration::from_millis(200)) => {}
            }
        }
    }

    /// Stop every role. With `flush`, the channels are flushed first so the next start replays
    /// little (every acknowledged write is durable in the log either way; without it, the next
    /// start recovers the tail from the log, as after a crash).
    pub async fn stop(self, flush: bool) {
        self.backend.stop_watching();
        if flush {
            self.roles.streaming.flush_all().await;
        }
        self.roles.query.stop().await;
        self.roles.data.stop().await;
        self.roles.streaming.stop().await;
        self.roles.coord.shutdown(true).await;
    }
}

/// Start every role in this process over one metadata store and object store.
async fn start_roles(
    cfg: &Config,
    meta: Arc<dyn MetaStore>,
    objects: Arc<dyn ObjectStore>,
    metrics: &Arc<Metrics>,
) -> Result<(Roles, Arc<LateNodes>), ServeError> {
    let imported = import_single_process_catalogue(meta.as_ref()).await?;
    if imported > 0 {
        tracing::info!(
            collections = imported,
            "data directory of the single-process engine imported"
        );
    }
    let session_err = |e: SessionError| ServeError::Server(format!("sessions: {e}"));
    let coordination: Arc<dyn Coordination> = Arc::new(LocalCoordination::new(meta.clone()));
    let coord = Coordinator::in_process(
        meta,
        objects.clone(),
        coordination.clone(),
        cfg.core.clone(),
        Some(metrics.clone()),
    )
    .await
    .map_err(|e| ServeError::Server(format!("coordinator: {e}")))?;
    let nodes = Arc::new(LateNodes {
        coord: coord.clone(),
        nodes: OnceLock::new(),
    });
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(coordination.allocate_node_id().await.map_err(session_err)?);
    }
    let as_nodes = || nodes.clone() as Arc<dyn Nodes>;
    let streaming = StreamingNode::new(
        as_nodes(),
        objects.clone(),
        cfg,
        ids[0],
        IN_PROCESS,
        Some(metrics),
    );
    let query = QueryNode::new(
        as_nodes(),
        objects.clone(),
        cfg,
        ids[1],
        IN_PROCESS,
        Some(metrics),
    );
    let data = DataNode::new(as_nodes(), objects, cfg, ids[2], IN_PROCESS, Some(metrics));
    let _ = nodes.nodes.set(LocalNodes {
        coord: coord.clone(),
        streaming: Arc::new(streaming.clone()),
        query: Arc::new(query.clone()),
    });
    let http_address = format!("{}:{}", cfg.http.listen, cfg.http.port);
    let mut sessions = Vec::new();
    for (role, id) in [
        (RoleKind::Streaming, ids[0]),
        (RoleKind::Query, ids[1]),
        (RoleKind::Data, ids[2]),
    ] {
        let info = SessionInfo {
            role,
            node_id: id,
            grpc_address: IN_PROCESS.into(),
            http_address: http_address.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
            start_time_ms: unix_time_ms(),
        };
        sessions.push(coordination.register(info).await.map_err(session_err)?);
    }
    streaming.start();
    query.start();
    data.start();
    Ok((
        Roles {
            coord,
            streaming,
            query,
            data,
            _sessions: sessions,
        },
        nodes,
    ))
}

/// Run standalone until `shutdown` resolves: every role in this process (a coordinator, a
/// streaming node, a query node and a data node, calling each other directly) behind the Milvus
/// API. On shutdown: stop accepting, finish in-flight requests, flush the channels (every
/// acknowledged write is already durable in the log; the flush only shortens the next start).
pub async fn run(
    cfg: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let health = Arc::new(Health::default());
    let metrics = Arc::new(Metrics::new());
    *health.reason.write() = "recovering".into();

    // HTTP first, so liveness answers while recovery runs.
    let http_addr = format!("{}:{}", cfg.http.listen, cfg.http.port);
    let http_listener = tokio::net::TcpListener::bind(&http_addr)
        .await
        .map_err(|source| ServeError::Bind {
            addr: http_addr.clone(),
            source,
        })?;
    let app = router(health.clone(), metrics.clone());
    let (stop_http_tx, stop_http_rx) = tokio::sync::oneshot::channel::<()>();
    let http_task = tokio::spawn(async move {
        let _ = axum::serve(http_listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop_http_rx.await;
            })
            .await;
    });
    tracing::info!(addr = %http_addr, "HTTP health/metrics listening");

    let tls = milvus_tls(&cfg.security)?;
    let (meta, objects) = open_stores(&cfg).await?;
    let engine = Engine::start(&cfg, meta, objects, &metrics).await?;

    let grpc_listener = bind_milvus(&cfg.grpc).await?;
    let grpc_addr = grpc_listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    engine.wait_ready(Some(&health)).await;
    let proxy = Proxy::with_limits(
        engine.backend().clone(),
        metrics.clone(),
        &cfg.security,
        &cfg.limits,
    );
    proxy
        .bootstrap_security()
        .await
        .map_err(|e| ServeError::Server(format!("creating the root user: {e}")))?;
    health.ready.store(true, Ordering::SeqCst);
    tracing::info!(
        addr = %grpc_addr,
        authorization = cfg.security.authorization_enabled,
        "Milvus gRPC listening; ready"
    );

    let health2 = health.clone();
    serve_milvus(
        grpc_listener,
        proxy,
        cfg.grpc.max_message_bytes,
        tls,
        async move {
            shutdown.await;
            health2.stopping.store(true, Ordering::SeqCst);
            tracing::info!("shutting down: finishing in-flight requests");
        },
    )
    .await?;

    // Nobody takes over in standalone: flush so the next start replays little, then stop.
    engine.stop(true).await;
    let _ = stop_http_tx.send(());
    let _ = http_task.await;
    tracing::info!("stopped");
    Ok(())
}
