//! `ferrovus-operator`: runs the MilvusCluster controller with leader election
//! and serves `/healthz`, `/readyz` and `/metrics`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{ArgAction, Parser, ValueEnum};
use ferrovus_operator::controller::{self, Context};
use ferrovus_operator::crd::MilvusCluster;
use ferrovus_operator::telemetry::{self, Health, Metrics};
use kube::Client;
use kube::api::{Api, ListParams};
use kube_lease_manager::LeaseManagerBuilder;
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tracing::{error, info, warn};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Kubernetes operator for Ferrovus `MilvusCluster` resources.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Namespaces to watch (comma-separated or repeated); every namespace when empty.
    #[arg(long, env = "WATCH_NAMESPACES", value_delimiter = ',')]
    watch_namespaces: Vec<String>,

    /// Address of the HTTP server (`/healthz`, `/readyz`, `/metrics`).
    #[arg(long, env = "HTTP_ADDR", default_value = "0.0.0.0:8080")]
    http_addr: SocketAddr,

    /// Run only while holding the leader Lease (required with more than one replica).
    #[arg(long, env = "LEADER_ELECTION", default_value_t = true, action = ArgAction::Set)]
    leader_election: bool,

    /// Name of the `coordination.k8s.io` Lease.
    #[arg(long, env = "LEASE_NAME", default_value = "ferrovus-operator")]
    lease_name: String,

    /// Namespace of the Lease (default: the operator's own namespace).
    #[arg(long, env = "LEASE_NAMESPACE")]
    lease_namespace: Option<String>,

    /// Lease duration, in seconds.
    #[arg(long, env = "LEASE_DURATION_SECONDS", default_value_t = 15)]
    lease_duration: u64,

    /// Grace period before the lease may be taken over, in seconds.
    #[arg(long, env = "LEASE_GRACE_SECONDS", default_value_t = 5)]
    lease_grace: u64,

    /// Identity in the Lease (default: the pod name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,

    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "json")]
    log_format: LogFormat,
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// The namespace this pod runs in.
fn own_namespace() -> Option<String> {
    std::env::var("POD_NAMESPACE").ok().or_else(|| {
        std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
            .ok()
            .map(|s| s.trim().to_string())
    })
}

/// Resolves on SIGINT or SIGTERM.
async fn termination() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_tracing(args.log_format);
    ferrovus_operator::install_crypto_provider();

    let metrics = Arc::new(Metrics::default());
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    let health = Arc::new(Health {
        registry,
        ready: Default::default(),
    });
    let listener = tokio::net::TcpListener::bind(args.http_addr)
        .await
        .with_context(|| format!("binding {}", args.http_addr))?;
    info!(addr = %args.http_addr, "serving /healthz /readyz /metrics");
    let router = telemetry::router(health.clone());
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            error!(error = %e, "HTTP server stopped");
        }
    });

    let client = Client::try_default()
        .await
        .context("building a Kubernetes client (in-cluster config or KUBECONFIG)")?;
    check_crd(&client, &args.watch_namespaces).await?;
    health.ready.store(true, Ordering::Relaxed);

    // stop: SIGTERM/SIGINT, or loss of the lease
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut lost_lease = None;
    if args.leader_election {
        let namespace = args
            .lease_namespace
            .clone()
            .or_else(own_namespace)
            .unwrap_or_else(|| "default".into());
        let identity = args
            .identity
            .clone()
            .unwrap_or_else(|| format!("ferrovus-operator-{}", std::process::id()));
        let manager = LeaseManagerBuilder::new(client.clone(), &args.lease_name)
            .with_namespace(&namespace)
            .with_identity(&identity)
            .with_duration(args.lease_duration)
            .with_grace(args.lease_grace)
            .with_field_manager("ferrovus-operator-lease")
            .build()
            .await
            .context("creating the lease manager")?;
        let (mut leader_rx, lease_task) = manager.watch().await;
        info!(lease = %args.lease_name, %namespace, %identity, "waiting for leadership");
        let became_leader = tokio::select! {
            r = leader_rx.wait_for(|l| *l) => { r.context("lease watcher stopped")?; true }
            _ = termination() => false,
        };
        if !became_leader {
            info!("terminated while standby");
            drop(leader_rx);
            let _ = lease_task.await;
            return Ok(());
        }
        info!(%identity, "acquired leadership");
        metrics.leader.set(1);
        let stop = stop_tx.clone();
        let mut stopping = stop_rx.clone();
        lost_lease = Some(tokio::spawn(async move {
            let lost = tokio::select! {
                r = leader_rx.wait_for(|l| !*l) => r.is_ok(),
                _ = stopping.wait_for(|s| *s) => false,
            };
            if lost {
                warn!("lost leadership: stopping controllers");
            }
            let _ = stop.send(true);
            // closing the channel makes the lease manager release the lock
            drop(leader_rx);
            let _ = lease_task.await;
            lost
        }));
    }
    {
        let stop = stop_tx.clone();
        tokio::spawn(async move {
            termination().await;
            info!("terminating");
            let _ = stop.send(true);
        });
    }

    let ctx = Context::new(client.clone(), metrics.clone());
    let scopes: Vec<Option<String>> = if args.watch_namespaces.is_empty() {
        vec![None]
    } else {
        args.watch_namespaces.iter().cloned().map(Some).collect()
    };
    let mut controllers = vec![];
    for ns in scopes {
        let mut rx = stop_rx.clone();
        let shutdown = async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        controllers.push(tokio::spawn(controller::run(
            client.clone(),
            ns,
            ctx.clone(),
            shutdown,
        )));
    }
    for c in controllers {
        let _ = c.await;
    }
    metrics.leader.set(0);
    drop(stop_tx);
    if let Some(task) = lost_lease {
        // give the lease task a moment to release the lock
        if let Ok(Ok(true)) = tokio::time::timeout(Duration::from_secs(5), task).await {
            bail!("lost the leader lease; exiting so that a fresh replica can stand by");
        }
    }
    info!("stopped");
    Ok(())
}

/// Fails with a clear message when the CRD is not installed or not readable.
async fn check_crd(client: &Client, namespaces: &[String]) -> anyhow::Result<()> {
    let api: Api<MilvusCluster> = match namespaces.first() {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    api.list(&ListParams::default().limit(1)).await.context(
        "cannot list milvusclusters.ferrovus.io: is the CRD installed (crds/milvusclusters.ferrovus.io.yaml) and does the operator's RBAC allow it?",
    )?;
    Ok(())
}
