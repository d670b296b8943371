//! Test support (feature `testing`): start real `moto_server` and `etcd` processes on free
//! loopback ports, and the backend conformance suite ([`conformance`]).
//!
//! Missing binaries: when `FERROVUS_REQUIRE_EXTERNAL=1` (CI) the start functions panic with a
//! clear message; otherwise they print a `SKIPPED` line and return `None`, and the test returns.
//! Binaries are found on `PATH`, or at `FERROVUS_MOTO_SERVER` / `FERROVUS_ETCD` if set.
//!
//! Every process is killed when its guard drops (including on a test's panic).

pub mod conformance;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::etcd::EtcdConfig;
use crate::s3::S3Config;

/// Set to `1` to make a missing external binary a test failure instead of a skip.
pub const REQUIRE_EXTERNAL_ENV: &str = "FERROVUS_REQUIRE_EXTERNAL";

/// Whether missing external binaries must fail tests (`FERROVUS_REQUIRE_EXTERNAL=1`).
pub fn external_required() -> bool {
    std::env::var(REQUIRE_EXTERNAL_ENV).is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// Reports an unavailable external dependency: panics when required, else prints a skip line.
pub fn skip_or_fail(what: &str, why: &str) {
    if external_required() {
        panic!(
            "{what} is required because {REQUIRE_EXTERNAL_ENV}=1, but {why}. \
             Install it (see engine/storage/README.md) or unset {REQUIRE_EXTERNAL_ENV}."
        );
    }
    // Written to the stderr handle, not with `eprintln!`, so libtest's capture does not hide it.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: {what} not available ({why}); set {REQUIRE_EXTERNAL_ENV}=1 to make this an error"
    );
}

/// `$override_env` if set, else the first executable `name` on `PATH`.
pub fn find_binary(name: &str, override_env: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(override_env).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A loopback TCP port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

/// Kills (SIGKILL) and reaps the child when dropped.
#[derive(Debug)]
pub struct ChildGuard {
    child: Child,
}

impl ChildGuard {
    pub fn new(child: Child) -> Self {
        Self { child }
    }
    pub fn id(&self) -> u32 {
        self.child.id()
    }
    /// `Some(status)` if the process has exited.
    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Sends a bare HTTP/1.0 GET and returns the whole response, or `None` if nothing answered.
async fn http_get(port: u16, path: &str) -> Option<String> {
    let fut = async {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes())
            .await
            .ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        Some(String::from_utf8_lossy(&buf).into_owned())
    };
    tokio::time::timeout(Duration::from_secs(2), fut)
        .await
        .ok()
        .flatten()
}

enum Started {
    Ready(ChildGuard),
    /// Exited before answering; the bool says whether it looked like "command not found".
    Exited(bool, String),
}

async fn spawn_and_wait(
    mut cmd: Command,
    log: &Path,
    timeout: Duration,
    mut ready: impl AsyncFnMut() -> bool,
) -> Started {
    let out = File::create(log).expect("create log file");
    let err = out.try_clone().expect("clone log file");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err));
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Started::Exited(e.kind() == std::io::ErrorKind::NotFound, e.to_string()),
    };
    let mut guard = ChildGuard::new(child);
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = guard.try_wait() {
            let log = tail(log, 30);
            return Started::Exited(
                status.code() == Some(127),
                format!("exited with {status}:\n{log}"),
            );
        }
        if ready().await {
            return Started::Ready(guard);
        }
        if Instant::now() >= deadline {
            let log = tail(log, 30);
            return Started::Exited(
                false,
                format!("did not become ready within {timeout:?}:\n{log}"),
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A `moto_server` (S3 mock) on a free loopback port.
#[derive(Debug)]
pub struct MotoServer {
    _child: ChildGuard,
    port: u16,
    scheme: &'static str,
    _dir: TempDir,
}

impl MotoServer {
    /// Starts moto (plain http), or returns `None` after [`skip_or_fail`] when it is not installed.
    pub async fn start() -> Option<Self> {
        Self::start_inner(None).await
    }

    /// Starts moto serving https with the given PEM certificate and key files.
    pub async fn start_tls(cert: &Path, key: &Path) -> Option<Self> {
        Self::start_inner(Some((cert, key))).await
    }

    async fn start_inner(tls: Option<(&Path, &Path)>) -> Option<Self> {
        let Some(bin) = find_binary("moto_server", "FERROVUS_MOTO_SERVER") else {
            skip_or_fail(
                "moto_server",
                "it is not on PATH (pip install \"moto[server]\")",
            );
            return None;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let mut last = String::new();
        for _ in 0..3 {
            let port = free_port();
            let log = dir.path().join("moto.log");
            let mut cmd = Command::new(&bin);
            cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
            if let Some((cert, key)) = tls {
                cmd.arg("-s").arg("-c").arg(cert).arg("-k").arg(key);
            }
            // Over TLS our plain request gets no HTTP answer, but the port accepting is enough.
            let ready = async || match tls {
                None => http_get(port, "/").await.is_some(),
                Some(_) => TcpStream::connect(("127.0.0.1", port)).await.is_ok(),
            };
            match spawn_and_wait(cmd, &log, Duration::from_secs(60), ready).await {
                Started::Ready(child) => {
                    let scheme = if tls.is_some() { "https" } else { "http" };
                    return Some(Self {
                        _child: child,
                        port,
                        scheme,
                        _dir: dir,
                    });
                }
                Started::Exited(true, why) => {
                    skip_or_fail(
                        "moto_server",
                        &format!("{} cannot run: {why}", bin.display()),
                    );
                    return None;
                }
                Started::Exited(false, why) => last = why, // maybe the port was taken: retry
            }
        }
        panic!("moto_server ({}) failed to start: {last}", bin.display());
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn endpoint(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme, self.port)
    }

    /// A config for this server: path-style, static dummy credentials, bucket created on connect.
    pub fn s3_config(&self, bucket: &str, prefix: &str) -> S3Config {
        S3Config {
            endpoint: Some(self.endpoint()),
            region: "us-east-1".into(),
            bucket: bucket.into(),
            prefix: prefix.into(),
            access_key_id: Some("testing".into()),
            secret_access_key: Some("testing".into()),
            force_path_style: true,
            create_bucket: true,
        }
    }
}

/// A single-member `etcd` on free loopback ports with a temporary data directory.
#[derive(Debug)]
pub struct EtcdServer {
    child: Option<ChildGuard>,
    bin: PathBuf,
    dir: TempDir,
    client_port: u16,
    peer_port: u16,
}

impl EtcdServer {
    /// Starts etcd, or returns `None` after [`skip_or_fail`] when it is not installed.
    pub async fn start() -> Option<Self> {
        let Some(bin) = find_binary("etcd", "FERROVUS_ETCD") else {
            skip_or_fail("etcd", "it is not on PATH (apt-get install etcd-server)");
            return None;
        };
        let mut last = String::new();
        for _ in 0..3 {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut server = Self {
                child: None,
                bin: bin.clone(),
                dir,
                client_port: free_port(),
                peer_port: free_port(),
            };
            match server.spawn().await {
                Ok(()) => return Some(server),
                Err((true, why)) => {
                    skip_or_fail("etcd", &format!("{} cannot run: {why}", bin.display()));
                    return None;
                }
                Err((false, why)) => last = why, // maybe a port was taken: retry
            }
        }
        panic!("etcd ({}) failed to start: {last}", bin.display());
    }

    async fn spawn(&mut self) -> Result<(), (bool, String)> {
        let client = format!("http://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--name=ferrovus-test")
            .arg(format!(
                "--data-dir={}",
                self.dir.path().join("data").display()
            ))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=ferrovus-test={peer}"))
            .arg("--logger=zap")
            .arg("--log-outputs=stderr");
        let log = self.dir.path().join("etcd.log");
        let port = self.client_port;
        let ready = async || {
            http_get(port, "/health")
                .await
                .is_some_and(|r| r.contains("\"health\":\"true\""))
        };
        match spawn_and_wait(cmd, &log, Duration::from_secs(30), ready).await {
            Started::Ready(child) => {
                self.child = Some(child);
                Ok(())
            }
            Started::Exited(missing, why) => Err((missing, why)),
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// A store config for this server with the given key namespace.
    pub fn config(&self, key_prefix: &str) -> EtcdConfig {
        EtcdConfig::new([self.endpoint()], key_prefix)
    }

    /// Kills etcd (SIGKILL). Its data directory is kept for [`Self::restart`].
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill();
        }
    }

    /// Kills etcd if running and starts it again on the same ports and data.
    pub async fn restart(&mut self) {
        self.kill();
        if let Err((_, why)) = self.spawn().await {
            panic!("etcd failed to restart: {why}");
        }
    }
}
