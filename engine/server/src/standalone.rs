//! Standalone mode: every role in one process over embedded metadata and a local object store
//! (or etcd / S3 when configured). Serves gRPC and the HTTP side port; shuts down gracefully.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use ferrovus_core::Database;
use ferrovus_core::store::{MetaStore, ObjectStore};
use ferrovus_storage::{
    EtcdConfig, EtcdMetaStore, LocalObjectStore, RedbMetaStore, S3Config, S3ObjectStore,
};
use thiserror::Error;

use crate::backend::LocalBackend;
use crate::config::{Config, MetaKind, StorageKind};
use crate::http::{Health, router};
use crate::metrics::Metrics;
use crate::proxy::{Proxy, bind_milvus, serve_milvus};

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

/// Run standalone until `shutdown` resolves; then stop accepting, finish in-flight requests and
/// return. Every acknowledged write is already durable in the log, so no flush is needed to be
/// safe; a flush is still attempted to shorten the next start-up.
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

    let (meta, objects) = open_stores(&cfg).await?;
    let db = Database::open(meta, objects, cfg.core.clone()).await?;
    *health.db.write() = Some(db.clone());

    let grpc_listener = bind_milvus(&cfg.grpc).await?;
    let grpc_addr = grpc_listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let backend = Arc::new(LocalBackend::new(db.clone()));
    let proxy = Proxy::new(backend, metrics.clone());
    health.ready.store(true, Ordering::SeqCst);
    tracing::info!(addr = %grpc_addr, "Milvus gRPC listening; ready");

    let health2 = health.clone();
    serve_milvus(
        grpc_listener,
        proxy,
        cfg.grpc.max_message_bytes,
        async move {
            shutdown.await;
            health2.stopping.store(true, Ordering::SeqCst);
            tracing::info!("shutting down: finishing in-flight requests");
        },
    )
    .await?;

    if let Err(e) = db.flush_all().await {
        tracing::warn!(error = %e, "flush at shutdown failed; the log still holds every acknowledged write");
    }
    let _ = stop_http_tx.send(());
    let _ = http_task.await;
    tracing::info!("stopped");
    Ok(())
}
