"""Start and stop a real Milvus standalone server (the PyPI ``milvus`` package).

A reference aid, not part of the suite: the ``milvus`` wheel ("embedded
Milvus", e.g. ``milvus==2.3.5``) ships the standalone binary and its shared
libraries as ``.lzma`` files plus a ``config.yaml.template``.  This module
unpacks them with the package's own md5-cached unpacker, renders the template
itself with a free port for every listener, and runs ``milvus run standalone``
in its own process group.  Nothing is shared with other servers: every port
(gRPC, internal, coordinators, nodes, metrics/healthz, embedded etcd client
and peer) is picked free, and data, logs and the configs live under ``workdir``
(outside it only the binary cache ~/.cache/ferrovus-milvus/<version>/, the pid
file /run/milvus/standalone-p<grpc port>.pid and /tmp/milvus/server_id_<pid>,
both removed by stop()).

    from milvus_server import MilvusServer
    srv = MilvusServer(Path("/tmp/m"), auth=True)
    srv.start()            # blocks until gRPC answers and /healthz says OK
    ...                    # MilvusClient(uri=srv.uri, token=srv.token)
    srv.stop()

Manual use:  python milvus_server.py [--auth] [--workdir DIR]   (Ctrl+C stops)

Only the standard library is needed, run from a Python that has ``milvus``
installed.  Milvus 2.3.5 has no ``common.security.defaultRootPassword``
(root starts as ``Milvus``); the key is written anyway for later versions, and
a different ``root_password`` is set after start with pymilvus (imported
lazily, only then).
"""

from __future__ import annotations

import argparse
import fcntl
import importlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

DEFAULT_ROOT_PASSWORD = "Milvus"
# Template placeholders that name a listening port (milvus/data/config.yaml.template).
_PORT_KEYS = ("proxy_port", "proxy_internal_port", "root_coord_port", "query_coord_port",
              "query_node_port", "index_coord_port", "index_node_port", "data_coord_port",
              "data_node_port", "etcd_port")
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # ignore *_proxy env
_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*(?:\(\w+\))?\s*(?::\s*([^}]*?))?\s*\}\}")


def _milvus_package():
    try:
        return importlib.import_module("milvus")
    except ImportError as exc:
        raise RuntimeError("the PyPI package 'milvus' (embedded Milvus, e.g. milvus==2.3.5) is not "
                           "installed in this Python; pip install milvus==2.3.5") from exc


def _bind_all(ports: list[int]) -> list[int] | None:
    """Bind every port (0 = any free one) on all interfaces at once; the bound ports, or None."""
    socks = []
    try:
        for port in ports:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(s)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Go's listeners do
            s.bind(("0.0.0.0", port))
        return [s.getsockname()[1] for s in socks]
    except OSError:
        return None
    finally:
        for s in socks:
            s.close()


def _poll(pred, deadline: float, proc: subprocess.Popen, what: str, log: Path) -> None:
    while not pred():
        if proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
            continue
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        why = "no " + what if proc.returncode is None else f"exit {proc.returncode} before {what}"
        raise (TimeoutError if proc.returncode is None else RuntimeError)(
            f"milvus: {why}; log {log}:\n{tail}")


class MilvusServer:
    """One Milvus standalone process rooted at ``workdir``."""

    def __init__(self, workdir: Path, auth: bool = False, root_password: str | None = None):
        self.workdir = Path(workdir).resolve()
        self.auth = auth
        self.root_password = root_password or DEFAULT_ROOT_PASSWORD
        self.ports: dict[str, int] = {}
        self.proc: subprocess.Popen | None = None
        self.log_path = self.workdir / "milvus.log"
        self.config_path = self.workdir / "configs" / "milvus.yaml"

    @property
    def _alias(self) -> str:
        return f"p{self.ports['proxy_port']}"

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.ports['proxy_port']}"

    @property
    def token(self) -> str:
        """``user:password`` of root, for MilvusClient(token=...)."""
        return f"root:{self.root_password}"

    # ---- setup ------------------------------------------------------------------------
    def _binary(self, pkg) -> Path:
        cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        base = cache / "ferrovus-milvus" / getattr(pkg, "__version__", "unknown")
        base.mkdir(parents=True, exist_ok=True)
        unpack = getattr(pkg, "_initialize_data_files", None)  # md5-cached: a no-op once done
        if unpack is None:
            raise RuntimeError(f"the 'milvus' package {pkg.__file__} has no _initialize_data_files")
        with open(base / ".lock", "w") as lock:  # two starts must not unpack at once
            fcntl.flock(lock, fcntl.LOCK_EX)
            unpack(str(base))
        exe = base / "bin" / "milvus"
        if not exe.is_file():
            raise RuntimeError(f"the 'milvus' package did not unpack a binary at {exe}")
        return exe

    def _pick_ports(self) -> dict[str, int]:
        """Free ports; a restart on the same workdir reuses the previous ones if still free,
        since etcd keeps the old components' sessions (30 s TTL) and new ports would make
        the server wait for them to expire (about a minute instead of seconds)."""
        names = _PORT_KEYS + ("etcd_peer_port", "metrics_port")
        saved = self.workdir / "ports.json"
        if saved.is_file():
            old = json.loads(saved.read_text())
            if sorted(old) == sorted(names) and _bind_all(list(old.values())):
                return old
        ports = dict(zip(names, _bind_all([0] * len(names))))
        self.workdir.mkdir(parents=True, exist_ok=True)
        saved.write_text(json.dumps(ports))
        return ports

    def _write_config(self, pkg) -> None:
        data, logs = self.workdir / "data", self.workdir / "logs"
        etcd_cfg = self.workdir / "configs" / "etcd.yaml"
        for d in (data, logs, etcd_cfg.parent):
            d.mkdir(parents=True, exist_ok=True)
        cp, pp = self.ports["etcd_port"], self.ports["etcd_peer_port"]
        # The embedded etcd reads its listeners only from etcd.config.path (else 2379/2380).
        etcd_cfg.write_text(
            "name: milvus-embed\n"
            f"listen-client-urls: http://127.0.0.1:{cp}\nadvertise-client-urls: http://127.0.0.1:{cp}\n"
            f"listen-peer-urls: http://127.0.0.1:{pp}\ninitial-advertise-peer-urls: http://127.0.0.1:{pp}\n"
            f"initial-cluster: milvus-embed=http://127.0.0.1:{pp}\n"
            "initial-cluster-state: new\ninitial-cluster-token: milvus-embed\n")
        values = dict(self.ports, etcd_log_path=str(logs / "etcd.log"),
                      etcd_data_dir=str(data / "etcd.data"), local_storage_dir=str(data),
                      rocksmq_data_dir=str(data / "rocksmq"), system_log_path="",  # "" = stdout
                      authorization_enabled="true" if self.auth else "false")
        template = Path(pkg.__file__).with_name("data") / "config.yaml.template"

        def fill(m: re.Match) -> str:
            val = values.get(m.group(1), m.group(2))
            if val is None:
                raise RuntimeError(f"milvus config template: no value for {m.group(1)}")
            return str(val)

        out = []
        for line in _PLACEHOLDER.sub(fill, template.read_text()).splitlines():
            if re.fullmatch(r"  ip:.*", line):  # every component registers as loopback
                line = "  ip: 127.0.0.1"
            out.append(line)
            if line == "etcd:":
                out += ["  config:", f"    path: {etcd_cfg}"]
            elif line == "  security:":
                out.append(f"    defaultRootPassword: {self.root_password}")
            elif line.startswith("  gracefulStopTimeout:"):  # 1800 s by default; with a
                out[-1] = "  gracefulStopTimeout: 3"  # loaded collection SIGTERM waits it out
        self.config_path.write_text("\n".join(out) + "\n")
        shutil.copy(template.with_name("glog.conf"), self.config_path.with_name("glog.conf"))

    # ---- lifecycle --------------------------------------------------------------------
    def start(self, deadline_s: float = 180) -> "MilvusServer":
        if self.proc is not None:
            raise RuntimeError("already started")
        pkg = _milvus_package()
        deadline = time.monotonic() + deadline_s
        exe = self._binary(pkg)
        self.ports = self._pick_ports()
        self._write_config(pkg)
        env = dict(os.environ, DEPLOY_MODE="STANDALONE",
                   METRICS_PORT=str(self.ports["metrics_port"]),
                   MILVUSCONF=str(self.config_path.parent),
                   LD_LIBRARY_PATH=f"{exe.parent}:{os.environ.get('LD_LIBRARY_PATH', '')}")
        with open(self.log_path, "wb") as log:
            # The pid file is always under /run/milvus (2.3.5 ignores MILVUS_RUN_DIR) and is
            # flock'ed: --alias names it standalone-<alias>.pid, so servers can run side by side.
            cmd = [str(exe), "run", "standalone", "--alias", self._alias]
            self.proc = subprocess.Popen(cmd, cwd=self.workdir, env=env,
                                         stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        try:
            _poll(self._grpc_open, deadline, self.proc, "gRPC port", self.log_path)
            _poll(self._healthy, deadline, self.proc, "healthz OK", self.log_path)
            if self.auth and self.root_password != DEFAULT_ROOT_PASSWORD:
                self._set_root_password()
        except BaseException:
            self.stop()
            raise
        return self

    def _grpc_open(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.ports["proxy_port"]), timeout=1).close()
            return True
        except OSError:
            return False

    def _healthy(self) -> bool:
        url = f"http://127.0.0.1:{self.ports['metrics_port']}/healthz"
        try:
            with _DIRECT.open(url, timeout=2) as resp:
                return resp.status == 200 and b"OK" in resp.read()
        except OSError:
            return False

    def _set_root_password(self) -> None:
        try:
            from pymilvus import MilvusClient
            from pymilvus.exceptions import MilvusException
        except ImportError as exc:
            raise RuntimeError("root_password other than 'Milvus' needs pymilvus "
                               "(Milvus 2.3.5 has no defaultRootPassword)") from exc
        try:
            client = MilvusClient(uri=self.uri, token=f"root:{DEFAULT_ROOT_PASSWORD}", dedicated=True)
        except MilvusException:  # a restart on the same workdir: check the password set before
            MilvusClient(uri=self.uri, token=self.token, dedicated=True).close()
            return
        client.update_password("root", DEFAULT_ROOT_PASSWORD, self.root_password)
        client.close()

    def stop(self, grace_s: float = 15) -> None:
        """SIGTERM the process group, SIGKILL it after grace_s; remove pid/server-id files."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        try:  # children outlive the leader only if they left its group; make sure none stay
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        # A killed server leaves these behind; a clean exit may already have removed them.
        Path("/run/milvus", f"standalone-{self._alias}.pid").unlink(missing_ok=True)
        Path("/tmp/milvus", f"server_id_{proc.pid}").unlink(missing_ok=True)

    def __enter__(self) -> "MilvusServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workdir", type=Path, default=None, help="default: a new temp dir")
    ap.add_argument("--auth", action="store_true", help="common.security.authorizationEnabled")
    ap.add_argument("--root-password", default=None)
    args = ap.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="milvus-"))
    srv = MilvusServer(workdir, auth=args.auth, root_password=args.root_password)
    t0 = time.monotonic()
    srv.start()
    print(f"uri={srv.uri} token={srv.token if args.auth else ''} "
          f"started_in={time.monotonic() - t0:.1f}s log={srv.log_path} ports={srv.ports}", flush=True)
    signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        signal.sigwait(signals)
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
