"""Fixtures of the Ferrovus end-to-end suite.

The suite talks to a Milvus-protocol server over gRPC with the real ``pymilvus``
client.  Which server is chosen on the command line:

    --server=ferrovus     start ``target/debug/ferrovus standalone`` (or $FERROVUS_BIN)
                          on free ports with a temporary data dir (the default when
                          the binary exists)
    --server=cluster      start a multi-process cluster with ``scripts/cluster up``: real
                          etcd and S3-compatible server, 2 coordinators, 2 streaming,
                          2 query, 1 data node and 2 proxies; the suite talks to proxy 1
    --server=milvus       start the real Milvus server (PyPI ``milvus==2.3.5``, see
                          requirements-milvus.txt and tools/milvus_server.py) on free
                          ports: the reference for behaviour (and the auth tests)
    --server=milvus-lite  start ``python -m milvus_lite server`` (the pip package
                          milvus-lite, a Python reimplementation of the Milvus
                          server) on a free port: the reference the tests are
                          proven against
    --uri=http://h:p      use a server that is already running (no restart/kill
                          tests); --http-uri=http://h:p adds its HTTP port; add
                          --server=milvus-lite when it is one, so its known gaps
                          are expected (xfail) as when the suite starts it

The ``server`` fixture (session scope) is a :class:`ServerHandle` with ``.uri``,
``.restart()``, ``.kill9()``, ``.terminate()``, ``.start()`` and
``.supports(feature)``.  Tests that need a capability a server lacks call
``require(server, feature)``, which skips with the reason recorded in
``ServerHandle.UNSUPPORTED``.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Callable, Optional

import grpc
import pytest
from pymilvus import MilvusClient, connections
from pymilvus.grpc_gen import milvus_pb2, milvus_pb2_grpc

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parents[2]

SERVER_KINDS = ("ferrovus", "cluster", "milvus-lite", "milvus")


# --------------------------------------------------------------------------- options


def pytest_addoption(parser):
    g = parser.getgroup("ferrovus")
    g.addoption(
        "--server",
        choices=SERVER_KINDS,
        default=os.environ.get("FERROVUS_TEST_SERVER") or None,
        help="server to start: ferrovus (default when the binary exists), cluster or milvus-lite",
    )
    g.addoption(
        "--uri",
        default=os.environ.get("FERROVUS_TEST_URI") or None,
        help="use an already running server at this gRPC uri instead of starting one",
    )
    g.addoption(
        "--http-uri",
        default=None,
        help="with --uri: base URL of the running server's HTTP port (/healthz, /metrics)",
    )
    g.addoption(
        "--server-log-dir",
        default=None,
        help="directory for the started server's data and log (default: a temp dir)",
    )


def ferrovus_bin() -> Path:
    env = os.environ.get("FERROVUS_BIN")
    if env:
        return Path(env)
    target = os.environ.get("CARGO_TARGET_DIR")
    base = Path(target) if target else REPO_ROOT / "target"
    return base / "debug" / "ferrovus"


def _chosen_kind(config) -> str:
    if config.getoption("--uri"):
        return "external"
    kind = config.getoption("--server")
    if kind:
        return kind
    return "ferrovus" if ferrovus_bin().exists() else "milvus-lite"


def pytest_report_header(config):
    kind = _chosen_kind(config)
    lines = [f"ferrovus e2e: server={kind}"]
    if kind == "external":
        lines.append(f"ferrovus e2e: uri={config.getoption('--uri')} "
                     f"(implementation: {config.getoption('--server') or 'unspecified'})")
    elif kind == "ferrovus":
        lines.append(f"ferrovus e2e: binary={ferrovus_bin()}")
    elif not config.getoption("--server"):
        lines.append(
            f"ferrovus e2e: NOTE {ferrovus_bin()} not found, defaulting to milvus-lite "
            "(pass --server=ferrovus after `cargo build` to test Ferrovus)"
        )
    return lines


# --------------------------------------------------------------------------- helpers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def grpc_ping(target: str, timeout: float = 1.0) -> bool:
    """True when a Milvus gRPC service answers GetVersion at host:port (a server with
    authentication on answers UNAUTHENTICATED to this credential-less call: it answers)."""
    try:
        with grpc.insecure_channel(target) as ch:
            stub = milvus_pb2_grpc.MilvusServiceStub(ch)
            resp = stub.GetVersion(milvus_pb2.GetVersionRequest(), timeout=timeout)
            return resp.status.code == 0 and resp.status.error_code == 0
    except grpc.RpcError as e:
        return e.code() == grpc.StatusCode.UNAUTHENTICATED


def http_get(url: str, timeout: float = 2.0) -> tuple[int, str]:
    """(status, body) of a GET; status 0 when the connection fails."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError):
        return 0, ""


# --------------------------------------------------------------------------- server


class ServerHandle:
    """A Milvus-protocol server process the tests can restart and kill."""

    # feature -> {kind: reason it is unsupported}
    UNSUPPORTED: dict[str, dict[str, str]] = {
        # milvus-lite is started as its own process (python -m milvus_lite server),
        # so it can be killed and restarted.  An external server cannot.
        "process_control": {
            "external": "--uri points at a server this suite did not start",
        },
        # milvus-lite serves gRPC only; it has no HTTP port at all.
        "http": {
            "milvus-lite": "milvus-lite has no HTTP endpoint (/healthz, /readyz, /metrics)",
            "milvus": "Milvus' HTTP port speaks its own API (no /readyz, other metrics)",
            "external": "no --http-uri given for the external server",
        },
        "metrics": {
            "milvus-lite": "milvus-lite exports no Prometheus /metrics",
            "milvus": "Milvus' metrics are not Ferrovus' metrics",
            "external": "no --http-uri given for the external server",
        },
        # milvus-lite exits on SIGTERM through Python's default handler (no graceful
        # shutdown path: its run_server only handles KeyboardInterrupt), so a clean
        # exit status 0 is a Ferrovus-only expectation.
        "graceful_sigterm_exit": {
            "milvus-lite": "milvus-lite has no SIGTERM handler (default action kills it, status -15)",
            "milvus": "Milvus 2.3.5 ends with a Go panic on SIGTERM (status -6)",
            "external": "--uri points at a server this suite did not start",
        },
    }

    def __init__(self, kind: str, workdir: Path, uri: Optional[str] = None,
                 http_uri: Optional[str] = None, flavor: Optional[str] = None,
                 env: Optional[dict[str, str]] = None, grpc_probe: bool = True) -> None:
        self.kind = kind
        # readiness also pings the Milvus port in plaintext (not for a server serving TLS there)
        self.grpc_probe = grpc_probe
        # extra environment of the started server (e.g. FERROVUS_SECURITY__* settings)
        self.extra_env = dict(env or {})
        # which implementation answers: decides the expected failures (xfail_on)
        self.flavor = flavor or kind
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.log_path = workdir / "server.log"
        self.proc: Optional[subprocess.Popen] = None
        self.grpc_port: Optional[int] = None
        self.http_port: Optional[int] = None
        self._uri = uri
        self._http_uri = http_uri.rstrip("/") if http_uri else None
        self.starts = 0

    # -- addresses -------------------------------------------------------------

    @property
    def uri(self) -> str:
        if self._uri:
            return self._uri
        return f"http://127.0.0.1:{self.grpc_port}"

    @property
    def target(self) -> str:
        """host:port for raw gRPC channels."""
        return re.sub(r"^[a-z]+://", "", self.uri).rstrip("/")

    @property
    def http_url(self) -> Optional[str]:
        if self._http_uri:
            return self._http_uri
        if self.kind == "ferrovus" and self.http_port:
            return f"http://127.0.0.1:{self.http_port}"
        return None

    def supports(self, feature: str) -> bool:
        if feature in ("http", "metrics") and self.kind == "external" and self._http_uri:
            return True
        return self.kind not in self.UNSUPPORTED.get(feature, {})

    def unsupported_reason(self, feature: str) -> str:
        return self.UNSUPPORTED.get(feature, {}).get(self.kind, "")

    # -- process control ---------------------------------------------------------

    def _command(self) -> tuple[list[str], dict]:
        env = dict(os.environ)
        env.update(self.extra_env)
        if self.kind == "ferrovus":
            binary = ferrovus_bin()
            if not binary.exists():
                raise RuntimeError(
                    f"ferrovus binary not found at {binary}: run `cargo build -p ferrovus` "
                    "or set FERROVUS_BIN (or use --server=milvus-lite)"
                )
            env.update(
                FERROVUS_DATA_DIR=str(self.data_dir),
                FERROVUS_GRPC_PORT=str(self.grpc_port),
                FERROVUS_HTTP_PORT=str(self.http_port),
            )
            env.setdefault("RUST_BACKTRACE", "1")
            return [
                str(binary), "standalone",
                "--data-dir", str(self.data_dir),
                "--grpc-port", str(self.grpc_port),
                "--http-port", str(self.http_port),
            ], env
        if self.kind == "milvus-lite":
            return [
                sys.executable, "-m", "milvus_lite", "server",
                "--data-dir", str(self.data_dir),
                "--host", "127.0.0.1",
                "--port", str(self.grpc_port),
            ], env
        raise RuntimeError(f"cannot start a server of kind {self.kind}")

    def _log_tail(self, n: int = 40) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-n:])

    def _ready(self) -> bool:
        if self.kind == "ferrovus":
            status, _ = http_get(f"{self.http_url}/readyz", timeout=1.0)
            if status != 200:
                return False
        return not self.grpc_probe or grpc_ping(self.target, timeout=1.0)

    def start(self, deadline_s: float = 90.0) -> None:
        if self.kind == "external":
            if not grpc_ping(self.target, timeout=5.0):
                raise RuntimeError(f"no Milvus gRPC service answers at {self.uri}")
            return
        assert self.proc is None or self.proc.poll() is not None, "server already running"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        first = self.grpc_port is None
        attempts = 3 if first else 1
        for attempt in range(attempts):
            if first:
                self.grpc_port = free_port()
                self.http_port = free_port()
            cmd, env = self._command()
            with open(self.log_path, "ab") as log:
                log.write(f"\n==== start #{self.starts + 1}: {' '.join(cmd)}\n".encode())
                log.flush()
                self.proc = subprocess.Popen(
                    cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    env=env, cwd=str(self.workdir), start_new_session=True,
                )
            self.starts += 1
            end = time.monotonic() + deadline_s
            while time.monotonic() < end:
                if self.proc.poll() is not None:
                    break
                if self._ready():
                    return
                time.sleep(0.1)
            rc = self.proc.poll()
            if rc is None:
                self._kill_hard()
                raise RuntimeError(
                    f"{self.kind} did not become ready within {deadline_s:.0f}s "
                    f"(uri {self.uri}); log tail:\n{self._log_tail()}"
                )
            if attempt + 1 == attempts:
                raise RuntimeError(
                    f"{self.kind} exited with status {rc} during start-up; log tail:\n"
                    f"{self._log_tail()}"
                )
            # probably lost a race for the port: retry on fresh ports

    def _kill_hard(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def _signal_and_wait(self, sig: int, timeout: float) -> Optional[int]:
        if self.kind == "external":
            pytest.skip(self.unsupported_reason("process_control"))
        assert self.proc is not None
        if self.proc.poll() is not None:
            return self.proc.returncode
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._kill_hard()
            raise AssertionError(
                f"{self.kind} did not exit within {timeout:.0f}s of signal {sig}; "
                f"killed it. log tail:\n{self._log_tail()}"
            )

    def terminate(self, timeout: float = 30.0) -> Optional[int]:
        """SIGTERM and wait for the process to exit; returns its exit status."""
        return self._signal_and_wait(signal.SIGTERM, timeout)

    def kill9(self) -> None:
        """SIGKILL, then start again on the same data dir and ports."""
        self._signal_and_wait(signal.SIGKILL, 30.0)
        self.start()

    def restart(self) -> Optional[int]:
        """Graceful stop (SIGTERM) and start again; returns the exit status of the stop."""
        rc = self.terminate()
        self.start()
        return rc

    def ensure_running(self) -> None:
        if self.kind != "external" and (self.proc is None or self.proc.poll() is not None):
            self.start()

    def shutdown(self) -> None:
        if self.kind == "external" or self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._kill_hard()


class ClusterHandle(ServerHandle):
    """A local multi-process cluster (``scripts/cluster``); the suite talks to the first proxy.
    kill9/terminate/restart act on every Ferrovus process at once (etcd and the S3 server, the
    cluster's external dependencies, keep running)."""

    def __init__(self, workdir: Path) -> None:
        super().__init__("cluster", workdir)
        self.cluster_dir = workdir / "cluster"
        self.log_path = self.cluster_dir / "logs" / "proxy-1.log"
        self.up = False

    def _run(self, *args: str, timeout: float = 180.0) -> str:
        from cluster_support import run_cluster_script  # noqa: PLC0415
        return run_cluster_script(self.cluster_dir, *args, timeout=timeout)

    def _read_ports(self) -> None:
        import json
        state = json.loads((self.cluster_dir / "cluster.json").read_text())
        proxy = state["procs"]["proxy-1"]
        self.grpc_port, self.http_port = proxy["grpc_port"], proxy["http_port"]

    @property
    def http_url(self) -> Optional[str]:
        return f"http://127.0.0.1:{self.http_port}" if self.http_port else None

    def start(self, deadline_s: float = 120.0) -> None:
        if not self.up:
            self._run("up", "--timeout", str(deadline_s))
            self.up = True
        else:
            self._run("start", "all", "--timeout", str(deadline_s))
        self._read_ports()
        end = time.monotonic() + deadline_s
        while not grpc_ping(self.target, timeout=1.0):
            if time.monotonic() > end:
                raise RuntimeError(f"cluster proxy at {self.uri} does not answer")
            time.sleep(0.1)
        self.starts += 1

    def _running(self) -> bool:
        if not self.up:
            return False
        import json
        state = json.loads((self.cluster_dir / "cluster.json").read_text())
        p = state["procs"]["proxy-1"]
        try:
            os.kill(p["pid"], 0)
            return True
        except (OSError, TypeError):
            return False

    def terminate(self, timeout: float = 30.0) -> Optional[int]:
        self._run("kill", "all", "--signal", "TERM", timeout=timeout + 30)
        return 0

    def kill9(self) -> None:
        self._run("kill", "all", "--signal", "KILL")
        self.start()

    def ensure_running(self) -> None:
        if not self._running():
            self.start()

    def shutdown(self) -> None:
        if self.up:
            self._run("down")


class MilvusHandle(ServerHandle):
    """The real Milvus server from PyPI's ``milvus`` package (``tools/milvus_server.py``; install
    it with ``pip install -r requirements-milvus.txt``): the reference the tests encode."""

    def __init__(self, workdir: Path) -> None:
        super().__init__("milvus", workdir)
        sys.path.insert(0, str(Path(__file__).parent / "tools"))
        from milvus_server import MilvusServer  # noqa: PLC0415

        self.milvus = MilvusServer(workdir / "milvus")
        self.log_path = self.milvus.log_path
        self.running = False

    @property
    def uri(self) -> str:
        return self.milvus.uri

    def start(self, deadline_s: float = 180.0) -> None:
        self.milvus.start(deadline_s=deadline_s)
        self.running = True
        self.starts += 1

    def ensure_running(self) -> None:
        if not self.running:
            self.start()

    def kill9(self) -> None:
        self.milvus.stop()
        self.start()

    def terminate(self, timeout: float = 30.0) -> Optional[int]:
        self.milvus.stop()
        self.running = False
        return 0

    def shutdown(self) -> None:
        if self.running:
            self.milvus.stop()
            self.running = False


def start_own_standalone(request, tmp_path_factory, name: str, env: dict[str, str],
                         grpc_probe: bool = True) -> ServerHandle:
    """A Ferrovus standalone of the calling test module's own, with extra settings in ``env``
    (the session's server keeps the defaults); only with ``--server=ferrovus``, skips
    otherwise (the cluster's proxy role serves the Milvus port with the same code)."""
    if _chosen_kind(request.config) != "ferrovus":
        pytest.skip("starts a Ferrovus standalone of its own (runs with --server=ferrovus)")
    h = ServerHandle("ferrovus", tmp_path_factory.mktemp(name), env=env, grpc_probe=grpc_probe)
    h.start()
    return h


def require(server: ServerHandle, *features: str) -> None:
    """Skip the calling test when the server lacks one of the features."""
    for f in features:
        if not server.supports(f):
            pytest.skip(f"{server.kind}: {server.unsupported_reason(f)}")


@pytest.fixture(scope="session")
def server(request, tmp_path_factory) -> ServerHandle:
    config = request.config
    kind = _chosen_kind(config)
    base = config.getoption("--server-log-dir")
    if base:
        workdir = Path(base)
        workdir.mkdir(parents=True, exist_ok=True)
    else:
        workdir = tmp_path_factory.mktemp(f"{kind}-server")
    if kind == "cluster":
        handle: ServerHandle = ClusterHandle(workdir)
    elif kind == "milvus":
        handle = MilvusHandle(workdir)
    else:
        handle = ServerHandle(kind, workdir, uri=config.getoption("--uri"),
                              http_uri=config.getoption("--http-uri"),
                              flavor=config.getoption("--server") if kind == "external" else kind)
    handle.start()
    yield handle
    handle.shutdown()


@pytest.fixture
def live_server(server) -> ServerHandle:
    """The server, restarted first if an earlier test left it stopped."""
    server.ensure_running()
    return server


# --------------------------------------------------------------------------- clients


@pytest.fixture(autouse=True)
def _readme_uri_env(server, monkeypatch):
    # The README quick start reads the server address from FERROVUS_URI.
    monkeypatch.setenv("FERROVUS_URI", server.uri)


@pytest.fixture
def client(live_server) -> MilvusClient:
    c = MilvusClient(uri=live_server.uri)
    yield c
    c.close()


def _safe_name(nodeid: str) -> str:
    base = re.sub(r"[^0-9a-zA-Z_]", "_", nodeid.split("::")[-1])[:40]
    return f"t_{base}_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def make_name(request, live_server) -> Callable[[], str]:
    """Factory of unique collection names; every collection named by it is dropped
    at teardown (also the ones a test renamed, via ``names.append``)."""
    names: list[str] = []

    def make(suffix: str = "") -> str:
        n = _safe_name(request.node.nodeid) + suffix
        names.append(n)
        return n

    make.names = names  # type: ignore[attr-defined]
    yield make
    if not names:
        return
    try:
        live_server.ensure_running()
        c = MilvusClient(uri=live_server.uri)
        try:
            for n in names:
                try:
                    if c.has_collection(n):
                        c.drop_collection(n)
                except Exception:  # noqa: BLE001 - best effort cleanup
                    pass
        finally:
            c.close()
    except Exception:  # noqa: BLE001
        pass


@pytest.fixture
def collection_name(make_name) -> str:
    """A unique collection name for this test, dropped at teardown."""
    return make_name()


@pytest.fixture
def orm(live_server):
    """Alias of an ORM connection (pymilvus ``connections``) to the server."""
    alias = f"orm_{uuid.uuid4().hex[:8]}"
    connections.connect(alias=alias, uri=live_server.uri)
    yield alias
    connections.disconnect(alias)


@pytest.fixture
def raw_stub(live_server):
    """A bare gRPC MilvusService stub, for requests the client would refuse to send."""
    ch = grpc.insecure_channel(live_server.target)
    yield milvus_pb2_grpc.MilvusServiceStub(ch)
    ch.close()


def pytest_configure(config):
    # make `import helpers` work regardless of the rootdir pytest picked
    if str(TESTS_DIR) not in sys.path:
        sys.path.insert(0, str(TESTS_DIR))


@pytest.fixture
def xfail_on(request, server):
    """``xfail_on("milvus-lite", reason)``: the test encodes real Milvus behaviour that
    the named server is known to lack; it must fail there (strict) and pass elsewhere."""

    def mark(kind: str, reason: str) -> None:
        if server.flavor == kind:
            request.applymarker(pytest.mark.xfail(reason=f"{kind}: {reason}", strict=True))

    return mark


@pytest.fixture
def own_cluster(request, tmp_path):
    """``own_cluster(env, coordinators=1, query=2, ...)``: a multi-process cluster of the test's
    own (``scripts/cluster`` in a temporary directory), torn down after it. Only with
    ``--server=cluster`` (skips otherwise): the tests that use it kill and add processes."""
    if _chosen_kind(request.config) != "cluster":
        pytest.skip("needs the processes of a multi-process cluster (--server=cluster)")
    from cluster_support import OwnCluster  # noqa: PLC0415

    started: list = []

    def make(env: Optional[dict] = None, **counts: int):
        c = OwnCluster(tmp_path / f"cluster-{len(started)}", env or {}, **counts)
        started.append(c)
        return c.up()

    yield make
    for c in started:
        c.down()
