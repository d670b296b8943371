//! `ferrovus-dev-s3`: a development S3-compatible server (the `s3s-fs` file-system store) that
//! also speaks MinIO's command line and health endpoints, so that the operator's in-cluster
//! object store (`server /data --address :9000`, credentials in `MINIO_ROOT_USER` /
//! `MINIO_ROOT_PASSWORD`, probes on `/minio/health/live` and `/minio/health/ready`) and the
//! docker compose cluster run without a registry. Not for production: no TLS, one directory.
//!
//! ```text
//! ferrovus-dev-s3 server /data --address :9000           (MinIO form)
//! ferrovus-dev-s3 --host 0.0.0.0 --port 8014 \
//!     --access-key AK --secret-key SK /data               (s3s-fs form)
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Parser;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;
use tracing::info;

#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// `server DIR` (MinIO form) or just `DIR`.
    #[arg(num_args = 1..=2, required = true)]
    args: Vec<String>,
    /// MinIO form: `[HOST]:PORT` to listen on (default `:9000`).
    #[arg(long)]
    address: Option<String>,
    /// s3s-fs form: host to listen on.
    #[arg(long)]
    host: Option<String>,
    /// s3s-fs form: port to listen on.
    #[arg(long)]
    port: Option<u16>,
    /// Access key (default: `MINIO_ROOT_USER`).
    #[arg(long, env = "MINIO_ROOT_USER", hide_env_values = true)]
    access_key: Option<String>,
    /// Secret key (default: `MINIO_ROOT_PASSWORD`).
    #[arg(long, env = "MINIO_ROOT_PASSWORD", hide_env_values = true)]
    secret_key: Option<String>,
}

/// What the command line asks for.
#[derive(Debug, PartialEq)]
struct Plan {
    root: PathBuf,
    listen: SocketAddr,
}

fn plan(cli: &Cli) -> anyhow::Result<Plan> {
    let root = match cli.args.as_slice() {
        [dir] => dir,
        [cmd, dir] if cmd == "server" => dir,
        other => bail!("expected `server DIR` or `DIR`, got {other:?}"),
    };
    let listen = match (&cli.address, &cli.host, cli.port) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            bail!("--address and --host/--port are alternatives")
        }
        (Some(a), None, None) => {
            let a = if a.starts_with(':') {
                format!("0.0.0.0{a}")
            } else {
                a.clone()
            };
            a.parse()
                .with_context(|| format!("--address {a:?} is not HOST:PORT"))?
        }
        (None, host, port) => {
            let host = host.as_deref().unwrap_or("0.0.0.0");
            format!("{host}:{}", port.unwrap_or(9000))
                .parse()
                .with_context(|| format!("--host {host:?} is not an IP address"))?
        }
    };
    if cli.access_key.is_some() != cli.secret_key.is_some() {
        bail!("the access key and the secret key go together");
    }
    Ok(Plan {
        root: PathBuf::from(root),
        listen,
    })
}

fn is_health(req: &http::Request<hyper::body::Incoming>) -> bool {
    matches!(*req.method(), http::Method::GET | http::Method::HEAD)
        && matches!(
            req.uri().path(),
            "/minio/health/live" | "/minio/health/ready"
        )
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    let plan = plan(&cli)?;
    std::fs::create_dir_all(&plan.root)
        .with_context(|| format!("creating {}", plan.root.display()))?;
    let fs = s3s_fs::FileSystem::new(&plan.root)
        .map_err(|e| anyhow::anyhow!("opening {}: {e:?}", plan.root.display()))?;
    let mut builder = S3ServiceBuilder::new(fs);
    if let (Some(ak), Some(sk)) = (cli.access_key, cli.secret_key) {
        builder.set_auth(SimpleAuth::from_single(ak, sk));
    }
    let s3 = builder.build();
    let listener = TcpListener::bind(plan.listen)
        .await
        .with_context(|| format!("listening on {}", plan.listen))?;
    info!(addr = %listener.local_addr()?, root = %plan.root.display(), "dev S3 server ready");

    let server = ConnBuilder::new(TokioExecutor::new());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut stop = std::pin::pin!(shutdown_signal());
    loop {
        let socket = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            () = stop.as_mut() => break,
        };
        let s3 = s3.clone();
        let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
            let s3 = s3.clone();
            async move {
                if is_health(&req) {
                    return Ok(http::Response::new(s3s::Body::empty()));
                }
                hyper::service::Service::call(&s3, req).await
            }
        });
        let conn = graceful.watch(
            server
                .serve_connection(TokioIo::new(socket), svc)
                .into_owned(),
        );
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(std::time::Duration::from_secs(10)) => {}
    }
    info!("dev S3 server stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> anyhow::Result<Plan> {
        let mut v = vec!["ferrovus-dev-s3"];
        v.extend(args);
        plan(&Cli::try_parse_from(v)?)
    }

    #[test]
    fn both_command_lines_are_understood() {
        assert_eq!(
            parse(&["server", "/data", "--address", ":9000"]).unwrap(),
            Plan {
                root: "/data".into(),
                listen: "0.0.0.0:9000".parse().unwrap()
            }
        );
        let p = parse(&[
            "--host",
            "127.0.0.1",
            "--port",
            "8014",
            "--access-key",
            "a",
            "--secret-key",
            "b",
            "/d",
        ])
        .unwrap();
        assert_eq!(p.listen, "127.0.0.1:8014".parse().unwrap());
        assert_eq!(p.root, PathBuf::from("/d"));
        for bad in [
            &["serve", "/data"][..],
            &["server", "/data", "--address", "nope"],
            &["--address", ":1", "--port", "2", "/d"],
            &["--access-key", "a", "/d"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
