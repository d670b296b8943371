//! `ferrovus`: a Milvus-compatible vector database.
//!
//! `ferrovus standalone` runs everything in one process with no external services.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use ferrovus_server::config::Config;

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
    /// Print the effective configuration (secrets redacted) and exit.
    PrintConfig,
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

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let default_file = PathBuf::from("/etc/ferrovus/ferrovus.yaml");
    let file = cli
        .config
        .clone()
        .or_else(|| default_file.exists().then_some(default_file));
    let mut cfg =
        Config::load(file.as_deref(), std::env::vars()).context("loading configuration")?;
    match cli.command {
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
