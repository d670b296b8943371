//! Full mode (`FERROVUS_E2E_FULL=1`): the cluster of `KUBECONFIG` has a real node that runs the
//! pods (containerd, CNI, kube-proxy, cluster DNS, metrics for the HPA), the images are on the
//! node (no registry: `imagePullPolicy: IfNotPresent` with tags that are not `latest`), and the
//! host running the tests reaches Service ClusterIPs and pod IPs. Traffic is real pymilvus,
//! driven by `e2e/pyload.py` in the Python of `FERROVUS_E2E_PYTHON` (default: the repository's
//! `.venv`, see scripts/pyenv.sh).
//!
//! Environment (full mode only):
//! - `FERROVUS_E2E_ETCD_IMAGE`, `FERROVUS_E2E_OBJECT_STORE_IMAGE`: the in-cluster dependency
//!   images (default: the operator's defaults; `ferrovus/dev-etcd:dev` and
//!   `ferrovus/dev-s3:dev` from `scripts/build-images.sh deps` run without a registry).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Instant;

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::Api;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::{Env, flag};

/// Whether the full mode is on (prints why a full test is skipped when it is not).
pub fn full_mode(test: &str) -> bool {
    let on = flag("FERROVUS_E2E_FULL");
    if !on {
        eprintln!(
            "skipped {test}: FERROVUS_E2E_FULL is not set (needs a real node, see docs/operator.md)"
        );
    }
    on
}

/// Sets the dependency images of the full mode on a MilvusCluster object (for the in-cluster
/// dependencies only: an example with an external etcd or object store keeps it).
pub fn full_images(mc: &mut Value) {
    for (dep, var) in [
        ("etcd", "FERROVUS_E2E_ETCD_IMAGE"),
        ("storage", "FERROVUS_E2E_OBJECT_STORE_IMAGE"),
    ] {
        let spec = &mut mc["spec"]["dependencies"][dep];
        if let Ok(image) = std::env::var(var)
            && spec["external"].is_null()
        {
            spec["inCluster"]["image"] = json!(image);
        }
    }
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

fn python() -> PathBuf {
    std::env::var_os("FERROVUS_E2E_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/python"))
}

fn pyload_command(args: &[&str]) -> Command {
    let mut cmd = Command::new(python());
    cmd.arg(repo_root().join("e2e/pyload.py"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    cmd
}

async fn report_of(child: Child, what: &str) -> anyhow::Result<Value> {
    let out = child.wait_with_output().await?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("pyload {what} failed ({}):\n{text}", out.status);
    }
    let last = text.lines().last().unwrap_or_default();
    serde_json::from_str(last).with_context(|| format!("pyload {what} report: {text}"))
}

/// Runs `pyload.py ARGS` to the end; its JSON report.
pub async fn pyload(args: &[&str]) -> anyhow::Result<Value> {
    let child = pyload_command(args).spawn().context("starting python")?;
    report_of(child, args.first().copied().unwrap_or_default()).await
}

/// A `pyload.py` process running until [`Load::finish`] (its last argument is a stop file).
pub struct Load {
    child: Child,
    stop: PathBuf,
    what: String,
    /// When it started.
    pub started: Instant,
}

fn scratch_file(name: &str) -> PathBuf {
    let unique = format!(
        "ferrovus-e2e-{name}-{}-{:x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
    );
    std::env::temp_dir().join(unique)
}

impl Load {
    /// Starts `pyload.py ARGS STOPFILE`.
    pub fn start(args: &[&str]) -> anyhow::Result<Load> {
        let stop = scratch_file("stop");
        let mut all: Vec<&str> = args.to_vec();
        let stop_arg = stop.to_string_lossy().to_string();
        all.push(&stop_arg);
        let child = pyload_command(&all).spawn().context("starting python")?;
        Ok(Load {
            child,
            stop,
            what: args.first().copied().unwrap_or_default().to_string(),
            started: Instant::now(),
        })
    }

    /// Stops the load and returns its report (after its own verification).
    pub async fn finish(self) -> anyhow::Result<Value> {
        std::fs::write(&self.stop, b"stop")?;
        let r = report_of(self.child, &self.what).await;
        let _ = std::fs::remove_file(&self.stop);
        r
    }
}

/// `pyload.py ddl URI GOFILE`, connected and waiting for the go: [`Ddl::go_and_wait`] starts
/// the clock.
pub struct Ddl {
    child: Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    go: PathBuf,
}

impl Ddl {
    /// Starts the process and waits until its client is connected.
    pub async fn connect(uri: &str) -> anyhow::Result<Ddl> {
        let go = scratch_file("go");
        let go_arg = go.to_string_lossy().to_string();
        let mut child = pyload_command(&["ddl", uri, &go_arg])
            .spawn()
            .context("starting python")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next_line().await?.unwrap_or_default();
        if first.trim() != "connected" {
            bail!("pyload ddl did not connect: {first}");
        }
        Ok(Ddl { child, lines, go })
    }

    /// Starts the clock: DDL is retried from now on. Returns the seconds to the first success.
    pub async fn go_and_wait(mut self) -> anyhow::Result<f64> {
        std::fs::write(&self.go, b"go")?;
        let mut last = String::new();
        while let Some(l) = self.lines.next_line().await? {
            last = l;
        }
        let status = self.child.wait().await?;
        let _ = std::fs::remove_file(&self.go);
        if !status.success() {
            bail!("pyload ddl failed ({status}): {last}");
        }
        let report: Value = serde_json::from_str(&last).context("pyload ddl report")?;
        report["seconds"]
            .as_f64()
            .context("no seconds in the ddl report")
    }
}

impl Env {
    /// `http://<ClusterIP of <cluster>-proxy>:19530`.
    pub async fn proxy_uri(&self, cluster: &str) -> anyhow::Result<String> {
        let services: Api<Service> = Api::namespaced(self.client.clone(), &self.ns);
        let svc = services.get(&format!("{cluster}-proxy")).await?;
        let spec = svc.spec.context("proxy Service without spec")?;
        let ip = spec
            .cluster_ip
            .context("proxy Service without a ClusterIP")?;
        let port = spec
            .ports
            .unwrap_or_default()
            .first()
            .map_or(19530, |p| p.port);
        Ok(format!("http://{ip}:{port}"))
    }

    /// Every pod of the cluster, with whether all its containers are ready.
    pub async fn pod_readiness(&self, cluster: &str) -> anyhow::Result<Vec<(String, bool)>> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.ns);
        let list = pods
            .list(
                &kube::api::ListParams::default()
                    .labels(&format!("app.kubernetes.io/instance={cluster}")),
            )
            .await?;
        Ok(list
            .items
            .iter()
            .map(|p| {
                let ready = p
                    .status
                    .as_ref()
                    .and_then(|s| s.container_statuses.as_ref())
                    .is_some_and(|cs| !cs.is_empty() && cs.iter().all(|c| c.ready));
                (kube::ResourceExt::name_any(p), ready)
            })
            .collect())
    }
}

/// GET `http://<pod IP>:<port><path>` (the host reaches pod IPs on a real node); body or error.
pub async fn pod_http(pod: &Pod, port: u16, path: &str) -> anyhow::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ip = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .context("pod without an IP")?;
    let mut s = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        tokio::net::TcpStream::connect((ip.as_str(), port)),
    )
    .await
    .context("connect timed out")??;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {ip}\r\n\r\n").as_bytes())
        .await?;
    let mut buf = String::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(2),
        s.read_to_string(&mut buf),
    )
    .await
    .context("read timed out")??;
    let code = buf
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = buf.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
    Ok((code, body))
}
