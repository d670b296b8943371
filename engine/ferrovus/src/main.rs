//! `ferrovus`: a Milvus-compatible vector database.
//!
//! `ferrovus standalone` runs everything in one process with no external services;
//! `ferrovus run <role>` runs one cluster role (coordinator, proxy, streaming, query, data).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use ferrovus_server::config::Config;
use ferrovus_server::node::{self, NodeError, RoleKind};

#[derive(Debug, Parser)]
#[command(
    name = "ferrovus",
    version,
    about = "Ferrovus: a Milvus-compatible vector database",
    long_about = "Ferrovus speaks the Milvus gRPC protocol: point pymilvus (or any Milvus SDK) at port 19530.\n\n\
Configuration: defaults, then the YAML file given by --config (or /etc/ferrovus/ferrovus.yaml if it exists), \
then FERROVUS_* environment variables (FERROVUS_GRPC__PORT=19540 sets grpc.port; short forms: FERROVUS_DATA_DIR, \
FERROVUS_GRPC_PORT, FERROVUS_HTTP_PORT, FERROVUS_LOG_LEVEL, FERROVUS_ETCD_ENDPOINTS, FERROVUS_S3_*), then the flags."
)]
struct Cli {
    /// YAML configuration file.
    #[arg(long, global = true, env = "FERROVUS_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run every role in one process: embedded metadata, local-disk object store and log.
    Standalone {
        /// Data directory (metadata, write-ahead log, segments, indexes).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Milvus gRPC port.
        #[arg(long)]
        grpc_port: Option<u16>,
        /// HTTP port for /healthz, /readyz and /metrics.
        #[arg(long)]
        http_port: Option<u16>,
        /// Address to listen on (gRPC and HTTP).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Run one cluster role: metadata in etcd, objects in S3 (see docs/operator.md, "Engine process
    /// contract"). Serves the internal RPC port (19531) and HTTP /healthz, /readyz, /metrics; a
    /// proxy also serves the Milvus port.
    Run {
        /// The role this process plays.
        #[arg(value_enum)]
        role: RoleArg,
    },
    /// Print the effective configuration (secrets redacted) and exit.
    PrintConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum RoleArg {
    /// Catalogue, TSO, placement; active–standby through an etcd lease.
    Coordinator,
    /// The Milvus API: validation, routing, merging.
    Proxy,
    /// Owns channels: write-ahead log, growing segments.
    Streaming,
    /// Serves sealed segments; delegators of (shard, replica).
    Query,
    /// Index builds and compactions.
    Data,
}

impl From<RoleArg> for RoleKind {
    fn from(r: RoleArg) -> Self {
        match r {
            RoleArg::Coordinator => RoleKind::Coordinator,
            RoleArg::Proxy => RoleKind::Proxy,
            RoleArg::Streaming => RoleKind::Streaming,
            RoleArg::Query => RoleKind::Query,
            RoleArg::Data => RoleKind::Data,
        }
    }
}

fn init_tracing(cfg: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(cfg.log.level.clone()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if cfg.log.format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// Where Kubernetes reads a container's termination message (`kubectl describe pod`, and the
/// operator's `ComponentCrashing` condition).
const TERMINATION_LOG: &str = "/dev/termination-log";

fn main() -> anyhow::Result<()> {
    let result = run();
    if let Err(e) = &result {
        // Only where the file exists (in a Kubernetes container): the fatal error, in full.
        if std::path::Path::new(TERMINATION_LOG).exists() {
            let _ = std::fs::write(TERMINATION_LOG, format!("{e:#}\n"));
        }
    }
    result
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // A role this build does not have fails before anything else: no half-started process that
    // looks alive.
    if let Command::Run { role } = cli.command {
        let kind = RoleKind::from(role);
        if node::available_role(kind).is_none() {
            return Err(NodeError::RoleUnavailable(kind))
                .with_context(|| format!("ferrovus run {kind}"));
        }
    }
    let default_file = PathBuf::from("/etc/ferrovus/ferrovus.yaml");
    let file = cli
        .config
        .clone()
        .or_else(|| default_file.exists().then_some(default_file));
    let mut cfg =
        Config::load(file.as_deref(), std::env::vars()).context("loading configuration")?;
    match cli.command {
        Command::Run { role } => {
            let kind = RoleKind::from(role);
            cfg.validate().context("invalid configuration")?;
            init_tracing(&cfg);
            tracing::info!(
                version = env!("CARGO_PKG_VERSION"),
                role = %kind,
                "starting ferrovus run {kind}\n{}",
                cfg.redacted_yaml()
            );
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(node::run_restarting(cfg, kind, shutdown_signal()))
                .with_context(|| format!("ferrovus run {kind}"))?;
            Ok(())
        }
        Command::PrintConfig => {
            let mut out = std::io::stdout().lock();
            std::io::Write::write_all(&mut out, cfg.redacted_yaml().as_bytes())?;
            Ok(())
        }
        Command::Standalone {
            data_dir,
            grpc_port,
            http_port,
            listen,
        } => {
            if let Some(d) = data_dir {
                cfg.data_dir = d;
            }
            if let Some(p) = grpc_port {
                cfg.grpc.port = p;
            }
            if let Some(p) = http_port {
                cfg.http.port = p;
            }
            if let Some(l) = listen {
                cfg.grpc.listen = l.clone();
                cfg.http.listen = l;
            }
            cfg.validate().context("invalid configuration")?;
            init_tracing(&cfg);
            tracing::info!(
                version = env!("CARGO_PKG_VERSION"),
                "starting ferrovus standalone\n{}",
                cfg.redacted_yaml()
            );
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(ferrovus_server::standalone::run(cfg, shutdown_signal()))
                .context("standalone server")?;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_and_unknown_roles_list_the_valid_ones() {
        for (name, kind) in [
            ("coordinator", RoleKind::Coordinator),
            ("proxy", RoleKind::Proxy),
            ("streaming", RoleKind::Streaming),
            ("query", RoleKind::Query),
            ("data", RoleKind::Data),
        ] {
            let cli = Cli::try_parse_from(["ferrovus", "run", name]).unwrap();
            match cli.command {
                Command::Run { role } => assert_eq!(RoleKind::from(role), kind),
                other => panic!("{other:?}"),
            }
            assert_eq!(kind.as_str(), name);
        }
        let e = Cli::try_parse_from(["ferrovus", "run", "indexer"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::InvalidValue);
        let text = e.to_string();
        assert!(text.contains("indexer"), "{text}");
        assert!(
            text.contains("coordinator, proxy, streaming, query, data"),
            "{text}"
        );
        let e = Cli::try_parse_from(["ferrovus", "run"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::MissingRequiredArgument);
    }
}
