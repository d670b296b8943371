"""The systems under test and how each is measured.

Servers (ferrovus standalone, milvus-lite) are driven by the same pymilvus code; hnswlib and
faiss run in this process; the Ferrovus core runs in-process inside the Rust example
`core_bench` (engine/server/examples/core_bench.rs), which reads the same .npy files.

Every `run()` returns a dict with the same keys (see `empty_result`); a failure raises.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .data import Dataset, recall_at

K = 10


@dataclass
class Settings:
    efs: list[int]
    m: int = 16
    ef_construction: int = 200
    batch: int = 1000  # rows per insert request
    threads: int = 8  # concurrent client threads
    conc_ef: int = 64  # ef for the concurrent / batched / filtered runs
    budget_s: float = 10.0  # time budget of one QPS measurement
    nq_per_request: int = 100  # batched requests
    build_threads: int = os.cpu_count() or 2
    min_queries: int = 100  # a timed loop runs at least this many queries
    index_sweep: bool = True  # core_bench: also sweep the segment index alone
    insert_procs: int = 4  # servers: a second insert from this many client processes (1 = skip)
    # `cluster`: role instances started by scripts/cluster
    cluster: dict = field(default_factory=lambda: {"coordinator": 1, "streaming": 1, "query": 1,
                                                   "data": 1, "proxy": 1})


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def empty_result(system: str) -> dict:
    return {
        "system": system, "ok": False, "error": None,
        "insert_s": None, "insert_rows_per_s": None,
        "index_s": None, "build_cpu_s": None,
        "sweep": [], "concurrent": None, "batched": None, "filtered": [],
        "rss_bytes": None, "rss_peak_bytes": None, "rss_idle_bytes": None,
        "disk_bytes": None, "notes": [],
    }


def percentiles(lat_ms: list[float]) -> tuple[float, float]:
    if not lat_ms:
        return float("nan"), float("nan")
    a = np.sort(np.asarray(lat_ms))
    return float(a[int(round((len(a) - 1) * 0.5))]), float(a[int(round((len(a) - 1) * 0.99))])


def timed_loop(fn, queries: np.ndarray, budget_s: float, min_queries: int = 100):
    """One call per query, in order, until every query ran or the budget ran out.
    Returns (results, qps, latencies in ms)."""
    for q in queries[:min(20, len(queries))]:
        fn(q)  # warm-up
    out, lat = [], []
    t0 = time.perf_counter()
    for q in queries:
        t = time.perf_counter()
        out.append(fn(q))
        lat.append((time.perf_counter() - t) * 1e3)
        if time.perf_counter() - t0 > budget_s and len(out) >= min_queries:
            break
    return out, len(out) / (time.perf_counter() - t0), lat


def concurrent_loop(fn, queries: np.ndarray, threads: int, duration_s: float) -> float:
    """Aggregate calls/s of `threads` threads each calling fn(query) until duration_s."""
    stop = time.perf_counter() + duration_s
    counts = [0] * threads
    errors: list[BaseException] = []

    def worker(t: int) -> None:
        i = t
        try:
            while time.perf_counter() < stop:
                fn(queries[i % len(queries)])
                counts[t] += 1
                i += threads
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    t0 = time.perf_counter()
    ths = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    if errors:
        raise errors[0]
    return sum(counts) / (time.perf_counter() - t0)


# ----------------------------------------------------------------------------- process facts


def proc_tree(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def rss(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in bytes, summed over the process and its descendants."""
    cur = peak = 0
    for p in proc_tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    cur += int(line.split()[1]) * 1024
                elif line.startswith("VmHWM:"):
                    peak += int(line.split()[1]) * 1024
        except OSError:
            pass
    return cur, peak


def cpu_seconds(pid: int) -> float:
    total = 0.0
    for p in proc_tree(pid):
        try:
            f = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            pass
    return total


def wait_idle(cpu, window_s: float = 1.5, max_cores: float = 0.1, timeout_s: float = 4 * 3600) -> float:
    """Wait until the processes measured by `cpu()` (CPU seconds so far; or a pid: its process
    tree) used < max_cores over window_s; return when they were last busy."""
    if isinstance(cpu, int):
        pid = cpu
        cpu = lambda: cpu_seconds(pid)  # noqa: E731
    step = 0.25
    samples = [(time.perf_counter(), cpu())]
    last_busy = samples[0][0]
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        time.sleep(step)
        now = (time.perf_counter(), cpu())
        if now[1] - samples[-1][1] > max_cores * (now[0] - samples[-1][0]) + 0.011:
            last_busy = now[0]
        samples.append(now)
        if now[0] - last_busy >= window_s:
            return last_busy
    raise RuntimeError(f"server processes still busy after {timeout_s:.0f}s")


def disk_usage(path: Path) -> int:
    """Bytes allocated on disk under `path` (what `du` reports)."""
    total = 0
    for dp, _, fns in os.walk(path):
        for fn in fns:
            try:
                total += os.lstat(os.path.join(dp, fn)).st_blocks * 512
            except OSError:
                pass
    return total


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------------------- servers


class Server:
    """A Milvus-protocol server process (ferrovus standalone or milvus-lite)."""

    def __init__(self, kind: str, workdir: Path, binary: Path | None = None):
        self.kind = kind
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.binary = binary
        self.proc: subprocess.Popen | None = None
        self.grpc_port = self.http_port = None
        self.log_path = workdir / "server.log"

    def start(self, timeout_s: float = 120) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.grpc_port, self.http_port = free_port(), free_port()
        if self.kind == "ferrovus":
            cmd = [str(self.binary), "standalone", "--data-dir", str(self.data_dir),
                   "--grpc-port", str(self.grpc_port), "--http-port", str(self.http_port)]
        else:
            cmd = [sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(self.data_dir),
                   "--host", "127.0.0.1", "--port", str(self.grpc_port)]
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "warn")
        env.setdefault("FERROVUS_LOG_LEVEL", "warn")
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env, cwd=self.workdir,
                                     start_new_session=True)
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited with {self.proc.returncode} at start-up; "
                                   f"log tail:\n{self.log_tail()}")
            if self._ready():
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.kind} not ready after {timeout_s:.0f}s; log tail:\n{self.log_tail()}")

    def _ready(self) -> bool:
        if self.kind == "ferrovus":
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/readyz", timeout=1) as r:
                    if r.status != 200:
                        return False
            except OSError:
                return False
        try:
            with socket.create_connection(("127.0.0.1", self.grpc_port), timeout=1):
                return True
        except OSError:
            return False

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.grpc_port}"

    # What the harness measures: the system's processes (CPU, RSS), and auxiliary ones it
    # depends on (the cluster's etcd and S3 server), reported apart.
    def procs(self) -> dict[str, int]:
        return {"server": self.proc.pid}

    def aux_procs(self) -> dict[str, int]:
        return {}

    def cpu(self) -> float:
        return sum(cpu_seconds(p) for p in self.procs().values())

    def cpu_split(self) -> dict[str, float]:
        """CPU seconds so far of each process (system and auxiliary), by name."""
        return {n: cpu_seconds(p) for n, p in {**self.procs(), **self.aux_procs()}.items()}

    def rss(self) -> tuple[int, int]:
        cur = peak = 0
        for p in self.procs().values():
            c, k = rss(p)
            cur, peak = cur + c, peak + k
        return cur, peak

    def wait_loaded(self, client, coll: str, n: int, deadline: float) -> None:
        """Until every row is indexed and the collection reports Loaded."""
        while True:
            d = client.describe_index(coll, "vec")
            state = client.get_load_state(coll).get("state")
            if int(d.get("indexed_rows", 0)) >= n and str(state).endswith("Loaded"):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"index not ready: {d}, load state {state}")
            time.sleep(0.05)

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def metrics(self) -> dict[str, float]:
        return _metrics(self.http_port) if self.kind == "ferrovus" else {}

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        if getattr(self, "_log", None):
            self._log.close()


ROOT = Path(__file__).resolve().parents[2]


class ClusterServer(Server):
    """A multi-process Ferrovus cluster started by `scripts/cluster up`: a real etcd and S3
    server (moto) plus one process per role instance; clients talk to the first proxy."""

    def __init__(self, workdir: Path, binary: Path, counts: dict[str, int]):
        super().__init__("cluster", workdir, binary)
        self.counts = counts
        self.cluster_dir = workdir / "cluster"
        self.data_dir = self.cluster_dir
        self.state: dict = {}

    def _script(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        env = dict(os.environ)
        env["FERROVUS_BIN"] = str(self.binary)
        env.setdefault("RUST_LOG", "warn")
        env.setdefault("FERROVUS_LOG_LEVEL", "warn")
        # moto_server lives next to this interpreter (the project venv)
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        return subprocess.run([sys.executable, str(ROOT / "scripts" / "cluster"), *args,
                               "--dir", str(self.cluster_dir)],
                              capture_output=True, text=True, env=env, timeout=timeout)

    def start(self, timeout_s: float = 120) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        c = self.counts
        p = self._script("up", "--coordinators", str(c["coordinator"]), "--streaming", str(c["streaming"]),
                         "--query", str(c["query"]), "--data", str(c["data"]), "--proxies", str(c["proxy"]),
                         "--timeout", str(timeout_s), "--json", timeout=timeout_s + 60)
        if p.returncode != 0:
            self.stop()
            raise RuntimeError(f"scripts/cluster up failed ({p.returncode}):\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}")
        self.state = json.loads(p.stdout)
        self.grpc_port = int(self.state["proxies"][0].rsplit(":", 1)[1])

    def _by_role(self, engine: bool) -> dict[str, int]:
        return {n: s["pid"] for n, s in self.state.get("processes", {}).items()
                if s.get("pid") and (s["role"] not in ("etcd", "s3")) == engine}

    def procs(self) -> dict[str, int]:
        return self._by_role(True)

    def aux_procs(self) -> dict[str, int]:
        return self._by_role(False)

    def role_metrics(self, role: str) -> list[dict[str, float]]:
        out = []
        for s in self.state.get("processes", {}).values():
            if s["role"] == role:
                out.append(_metrics(s["http_port"]))
        return out

    def metrics(self) -> dict[str, float]:
        """Every role's metrics, summed by name."""
        out: dict[str, float] = {}
        for role in ("proxy", "query", "streaming", "data", "coordinator"):
            for m in self.role_metrics(role):
                for k, v in m.items():
                    out[k] = out.get(k, 0.0) + v
        return out

    def wait_loaded(self, client, coll: str, n: int, deadline: float) -> None:
        """Every row indexed, the collection Loaded (every segment served by a delegator), and
        every query node done loading segments and their indexes (the coordinator's Loaded
        does not wait for a query node to attach an index built after the segment was
        served)."""
        while True:
            super().wait_loaded(client, coll, n, deadline)
            qn = self.role_metrics("query")
            loading = sum(m.get("ferrovus_querynode_segments_loading", 0) for m in qn)
            loaded = sum(m.get("ferrovus_querynode_segments_loaded", 0) for m in qn)
            indexes = sum(v for m in qn for k, v in m.items()
                          if k.startswith("ferrovus_querynode_index_loads_total") and 'outcome="ok"' in k)
            if qn and loading == 0 and loaded > 0 and indexes >= loaded:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"query nodes not done: loading {loading}, loaded {loaded}, indexes {indexes}")
            time.sleep(0.1)

    def log_tail(self, n: int = 30) -> str:
        logs = sorted((self.cluster_dir / "logs").glob("*.log"))
        parts = []
        for f in logs:
            try:
                lines = f.read_text(errors="replace").splitlines()[-n:]
            except OSError:
                continue
            parts.append(f"--- {f.name}\n" + "\n".join(lines))
        return "\n".join(parts) or "(no logs)"

    def stop(self) -> None:
        if self.cluster_dir.exists():
            self._script("down", timeout=120)


def _metrics(http_port) -> dict[str, float]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        if line.startswith("ferrovus_") and " " in line:
            k, v = line.rsplit(" ", 1)
            try:
                out[k] = float(v)
            except ValueError:
                pass
    return out


def client_encode_rate(base, tags, dim: int, seconds: float = 2.0) -> float | None:
    """Rows/s pymilvus itself can turn into serialized InsertRequests (batches of 1000 row dicts,
    the same code path as MilvusClient.insert, nothing sent): the client's ceiling."""
    try:
        from pymilvus import DataType, MilvusClient  # noqa: PLC0415
        from pymilvus.client.prepare import Prepare  # noqa: PLC0415

        sch = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        sch.add_field("id", DataType.INT64, is_primary=True)
        sch.add_field("vec", DataType.FLOAT_VECTOR, dim=dim)
        sch.add_field("tag", DataType.INT64)
        fields = sch.to_dict()["fields"]
        n = min(1000, len(base))
        vec = np.asarray(base[:n])
        tg = np.asarray(tags[:n]).tolist()
        t = time.perf_counter()
        rows_done = 0
        while time.perf_counter() - t < seconds:
            rows = [{"id": i, "vec": vec[i], "tag": tg[i]} for i in range(n)]
            Prepare.row_insert_param("c", rows, "", fields).SerializeToString()
            rows_done += n
        return rows_done / (time.perf_counter() - t)
    except Exception as e:  # noqa: BLE001 - informative only
        log(f"client encode measurement skipped: {e}")
        return None


def _insert_part(args) -> tuple[int, float, float]:
    uri, path, name, kind, metric, batch, part, parts, coll = args
    from pymilvus import MilvusClient  # noqa: PLC0415

    from .data import _open  # noqa: PLC0415

    ds = _open(Path(path), name, kind, metric)
    base, tags = ds.load("base"), ds.load("tags")
    client = MilvusClient(uri)
    starts = list(range(0, ds.n, batch))[part::parts]
    rows_done = 0
    t0 = time.perf_counter()  # CLOCK_MONOTONIC: comparable across processes
    for s in starts:
        e = min(ds.n, s + batch)
        vec = np.asarray(base[s:e])
        tg = tags[s:e].tolist()
        client.insert(coll, [{"id": i, "vec": vec[i - s], "tag": tg[i - s]} for i in range(s, e)])
        rows_done += e - s
    client.close()
    return rows_done, t0, time.perf_counter()


def parallel_insert(uri: str, ds: Dataset, st: Settings) -> dict:
    """Insert the data set again, into a second collection, from st.insert_procs client
    processes at once (batches of st.batch): what the server takes when the client is not the
    bottleneck."""
    import multiprocessing as mp  # noqa: PLC0415

    from pymilvus import DataType, MilvusClient  # noqa: PLC0415

    client = MilvusClient(uri)
    coll = "bench_parallel"
    if client.has_collection(coll):
        client.drop_collection(coll)
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=ds.dim)
    schema.add_field("tag", DataType.INT64)
    client.create_collection(coll, schema=schema, consistency_level="Bounded", shards_num=1)
    parts = st.insert_procs
    ctx = mp.get_context("spawn")
    with ctx.Pool(parts) as pool:
        out = pool.map(_insert_part, [(uri, str(ds.path), ds.name, ds.kind, ds.metric, st.batch, p, parts, coll)
                                      for p in range(parts)])
    rows = sum(r for r, _, _ in out)
    elapsed = max(e for _, _, e in out) - min(s for _, s, _ in out)
    client.drop_collection(coll)
    client.close()
    return {"processes": parts, "rows": rows, "rows_per_s": rows / elapsed,
            "note": "second collection without an index; client start-up excluded"}


def run_server(kind: str, ds: Dataset, st: Settings, workdir: Path, binary: Path | None = None) -> dict:
    from pymilvus import DataType, MilvusClient  # noqa: PLC0415

    res = empty_result(kind)
    if kind == "cluster":
        srv = ClusterServer(workdir / kind, binary, st.cluster)
        res["notes"].append("scripts/cluster: " + ", ".join(f"{v} {k}" for k, v in st.cluster.items())
                            + " process(es), real etcd + moto S3 server; CPU and RSS are the ferrovus "
                            "role processes' (etcd + moto apart); disk = etcd + local data dirs "
                            "(moto keeps the objects in memory)")
    else:
        srv = Server(kind, workdir / kind, binary)
    srv.start()
    try:
        client = MilvusClient(srv.uri)
        coll = "bench"
        if client.has_collection(coll):
            client.drop_collection(coll)
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vec", DataType.FLOAT_VECTOR, dim=ds.dim)
        schema.add_field("tag", DataType.INT64)
        ip = client.prepare_index_params()
        ip.add_index("vec", index_name="vec", index_type="HNSW", metric_type=ds.metric,
                     params={"M": st.m, "efConstruction": st.ef_construction})
        client.create_collection(coll, schema=schema, index_params=ip,
                                 consistency_level="Bounded", shards_num=1)
        res["rss_idle_bytes"] = srv.rss()[0]
        res["processes"] = {"system": sorted(srv.procs()), "aux": sorted(srv.aux_procs())}

        base = ds.load("base")
        tags = ds.load("tags")
        res["client_encode_rows_per_s"] = client_encode_rate(base, tags, ds.dim)
        t0 = time.perf_counter()
        c_client, c_server = time.process_time(), srv.cpu()
        split0 = srv.cpu_split()
        for s in range(0, ds.n, st.batch):
            e = min(ds.n, s + st.batch)
            vec = np.asarray(base[s:e])
            tg = tags[s:e].tolist()
            rows = [{"id": i, "vec": vec[i - s], "tag": tg[i - s]} for i in range(s, e)]
            r = client.insert(coll, rows)
            if r["insert_count"] != e - s:
                raise RuntimeError(f"insert returned {r}")
        res["insert_s"] = time.perf_counter() - t0
        res["insert_rows_per_s"] = ds.n / res["insert_s"]
        res["insert_client_cpu_s"] = time.process_time() - c_client
        res["insert_server_cpu_s"] = srv.cpu() - c_server
        res["insert_cpu_split_s"] = _split_delta(split0, srv.cpu_split())

        t1 = time.perf_counter()
        cpu0 = srv.cpu()
        client.flush(coll)
        srv.wait_loaded(client, coll, ds.n, time.monotonic() + 4 * 3600)
        res["index_reported_s"] = time.perf_counter() - t1
        # A server may report the index as done and keep building in the background (milvus-lite
        # does: it reports indexed_rows = row count and builds per-segment faiss indexes in a
        # worker thread, answering by brute force meanwhile). So the index time ends when the
        # server process goes idle (< 0.1 core over 1.5 s), measured back to its last busy moment.
        last_busy = wait_idle(srv.cpu)
        res["index_s"] = max(res["index_reported_s"], last_busy - t1)
        res["build_cpu_s"] = srv.cpu() - cpu0
        # background CPU with no requests (sessions, leases, long polls): part of every
        # per-query CPU figure below, so report it
        idle_s = min(3.0, max(1.0, st.budget_s / 2))
        s0, t_idle = srv.cpu_split(), time.perf_counter()
        time.sleep(idle_s)
        idle = _split_delta(s0, srv.cpu_split())
        res["idle_cores_by_process"] = {n: v / (time.perf_counter() - t_idle) for n, v in idle.items()}
        cnt = client.query(coll, filter="", output_fields=["count(*)"], consistency_level="Strong")
        if int(cnt[0]["count(*)"]) != ds.n:
            raise RuntimeError(f"count(*) = {cnt[0]['count(*)']}, expected {ds.n}")

        queries = np.asarray(ds.load("queries"))
        gt = ds.load("gt")

        def params(ef: int) -> dict:
            return {"metric_type": ds.metric, "params": {"ef": max(ef, K)}}

        def one(ef: int, flt: str = ""):
            sp = params(ef)

            def call(q):
                r = client.search(coll, data=[q], limit=K, search_params=sp, anns_field="vec",
                                  output_fields=["id"], filter=flt)
                return [h["id"] for h in r[0]]
            return call

        def batched_all(ef: int) -> tuple[list, float]:
            sp = params(ef)
            out = []
            t = time.perf_counter()
            for s in range(0, len(queries), st.nq_per_request):
                r = client.search(coll, data=queries[s:s + st.nq_per_request], limit=K,
                                  search_params=sp, anns_field="vec", output_fields=["id"])
                out.extend([h["id"] for h in hits] for hits in r)
            return out, len(queries) / (time.perf_counter() - t)

        for ef in st.efs:
            found_all, bqps = batched_all(ef)
            m0 = srv.metrics() if kind == "cluster" else {}
            c_client, c_server = time.process_time(), srv.cpu()
            split0 = srv.cpu_split()
            found, qps, lat = timed_loop(one(ef), queries, st.budget_s, st.min_queries)
            nq_run = len(found) + min(20, len(queries))  # + warm-up
            split = _split_delta(split0, srv.cpu_split())
            # cluster: internal calls per query (RPCs by method, delete pulls, retries)
            calls = {k: (v - m0.get(k, 0.0)) / nq_run for k, v in srv.metrics().items()
                     if k in m0 or v} if m0 else {}
            calls = {k: round(v, 3) for k, v in calls.items()
                     if abs(v) >= 0.001 and k.split("{")[0].endswith("_total")}
            c_server = srv.cpu() - c_server
            aux = sum(v for n, v in split.items() if n in srv.aux_procs())
            p50, p99 = percentiles(lat)
            res["sweep"].append({
                "ef": max(ef, K), "qps": qps, "recall": recall_at(found_all, gt, K),
                "recall_timed": recall_at(found, gt[:len(found)], K), "queries": len(found),
                "p50_ms": p50, "p99_ms": p99, "batched_qps": bqps,
                # where a single-query call spends CPU: the Python client vs the server process
                "client_cpu_ms_per_query": (time.process_time() - c_client) * 1e3 / nq_run,
                "server_cpu_ms_per_query": c_server * 1e3 / nq_run,
                # per process (cluster: each role instance, and etcd/s3 apart)
                "cpu_ms_per_query_by_process": {n: v * 1e3 / nq_run for n, v in split.items()},
                "aux_cpu_ms_per_query": aux * 1e3 / nq_run if srv.aux_procs() else None,
                "counters_per_query": calls or None})
        _, bqps = batched_all(st.conc_ef)
        res["batched"] = {"ef": st.conc_ef, "nq_per_request": st.nq_per_request, "qps": bqps}
        res["concurrent"] = {"ef": st.conc_ef, "threads": st.threads,
                             "qps": concurrent_loop(one(st.conc_ef), queries, st.threads, st.budget_s)}
        for pct, expr, path in ds.filters:
            fgt = np.load(path)
            found, qps, lat = timed_loop(one(st.conc_ef, expr), queries, st.budget_s, st.min_queries)
            p50, p99 = percentiles(lat)
            res["filtered"].append({"selectivity_pct": pct, "filter": expr, "ef": st.conc_ef, "qps": qps,
                                    "recall": recall_at(found, fgt[:len(found)], K),
                                    "queries": len(found), "p50_ms": p50, "p99_ms": p99})
        res["rss_bytes"], res["rss_peak_bytes"] = srv.rss()
        if srv.aux_procs():
            res["aux_rss_bytes"] = sum(rss(p)[0] for p in srv.aux_procs().values())
        res["disk_bytes"] = disk_usage(srv.data_dir)
        if st.insert_procs > 1:
            res["parallel_insert"] = parallel_insert(srv.uri, ds, st)
        m = srv.metrics()
        if m:
            res["server_metrics"] = {k: v for k, v in m.items() if "memory" in k or "rows" in k or "segments" in k}
        client.close()
        res["ok"] = True
        return res
    except BaseException:
        log(f"{kind} failed; server log tail:\n{srv.log_tail()}")
        raise
    finally:
        srv.stop()


def _split_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {n: after[n] - before.get(n, 0.0) for n in after}


# ----------------------------------------------------------------------------- libraries


def _self_rss() -> int:
    return rss(os.getpid())[0]


def run_hnswlib(ds: Dataset, st: Settings, workdir: Path) -> dict:
    import hnswlib  # noqa: PLC0415

    res = empty_result("hnswlib")
    base = np.ascontiguousarray(ds.load("base"))
    queries = np.ascontiguousarray(ds.load("queries"))
    gt = ds.load("gt")
    tags = np.asarray(ds.load("tags"))
    space = "l2" if ds.metric == "L2" else "cosine"
    rss0 = _self_rss()
    idx = hnswlib.Index(space=space, dim=ds.dim)
    t, c = time.perf_counter(), time.process_time()
    idx.init_index(max_elements=ds.n, ef_construction=st.ef_construction, M=st.m, random_seed=100)
    idx.add_items(base, np.arange(ds.n), num_threads=st.build_threads)
    res["index_s"] = time.perf_counter() - t
    res["build_cpu_s"] = time.process_time() - c
    res["rss_bytes"] = _self_rss() - rss0
    res["notes"].append(f"built with {st.build_threads} threads; rss_bytes is this process' RSS growth")
    idx.set_num_threads(1)
    for ef in st.efs:
        idx.set_ef(max(ef, K))
        found, qps, lat = timed_loop(lambda q: idx.knn_query(q, k=K)[0][0], queries, st.budget_s, st.min_queries)
        p50, p99 = percentiles(lat)
        res["sweep"].append({"ef": max(ef, K), "qps": qps, "recall": recall_at(found, gt, K),
                             "queries": len(found), "p50_ms": p50, "p99_ms": p99})
    idx.set_ef(st.conc_ef)
    idx.set_num_threads(st.build_threads)
    t = time.perf_counter()
    idx.knn_query(queries, k=K)
    res["batched"] = {"ef": st.conc_ef, "nq_per_request": len(queries), "threads": st.build_threads,
                      "qps": len(queries) / (time.perf_counter() - t)}
    idx.set_num_threads(1)
    def filtered(q, allowed):
        # hnswlib raises when the filtered walk finds fewer than k rows: ask for fewer then
        for k in range(K, 0, -1):
            try:
                return idx.knn_query(q, k=k, filter=lambda i: bool(allowed[i]))[0][0]
            except RuntimeError:
                continue
        return []

    for pct, expr, path in ds.filters:
        fgt = np.load(path)
        allowed = tags < pct
        found, qps, lat = timed_loop(lambda q: filtered(q, allowed), queries, st.budget_s, st.min_queries)
        p50, p99 = percentiles(lat)
        res["filtered"].append({"selectivity_pct": pct, "filter": expr, "ef": st.conc_ef, "qps": qps,
                                "recall": recall_at(found, fgt[:len(found)], K), "queries": len(found),
                                "p50_ms": p50, "p99_ms": p99, "note": "Python filter callback"})
    f = workdir / "hnswlib.bin"
    workdir.mkdir(parents=True, exist_ok=True)
    idx.save_index(str(f))
    res["disk_bytes"] = f.stat().st_size
    f.unlink()
    res["ok"] = True
    return res


def run_faiss(ds: Dataset, st: Settings, workdir: Path) -> dict:
    import faiss  # noqa: PLC0415

    res = empty_result("faiss")
    base = np.ascontiguousarray(ds.load("base"), dtype=np.float32)
    queries = np.ascontiguousarray(ds.load("queries"), dtype=np.float32)
    gt = ds.load("gt")
    tags = np.asarray(ds.load("tags"))
    metric = faiss.METRIC_L2 if ds.metric == "L2" else faiss.METRIC_INNER_PRODUCT
    if ds.metric == "COSINE":
        res["notes"].append("COSINE as inner product over the (unit-norm) vectors")
    rss0 = _self_rss()
    idx = faiss.IndexHNSWFlat(ds.dim, st.m, metric)
    idx.hnsw.efConstruction = st.ef_construction
    faiss.omp_set_num_threads(st.build_threads)
    t, c = time.perf_counter(), time.process_time()
    idx.add(base)
    res["index_s"] = time.perf_counter() - t
    res["build_cpu_s"] = time.process_time() - c
    res["rss_bytes"] = _self_rss() - rss0
    faiss.omp_set_num_threads(1)
    for ef in st.efs:
        idx.hnsw.efSearch = max(ef, K)
        found, qps, lat = timed_loop(lambda q: idx.search(q[None, :], K)[1][0], queries, st.budget_s, st.min_queries)
        p50, p99 = percentiles(lat)
        res["sweep"].append({"ef": max(ef, K), "qps": qps, "recall": recall_at(found, gt, K),
                             "queries": len(found), "p50_ms": p50, "p99_ms": p99})
    idx.hnsw.efSearch = st.conc_ef
    faiss.omp_set_num_threads(st.build_threads)
    t = time.perf_counter()
    idx.search(queries, K)
    res["batched"] = {"ef": st.conc_ef, "nq_per_request": len(queries), "threads": st.build_threads,
                      "qps": len(queries) / (time.perf_counter() - t)}
    faiss.omp_set_num_threads(1)
    for pct, expr, path in ds.filters:
        fgt = np.load(path)
        sel = faiss.IDSelectorBatch(np.flatnonzero(tags < pct).astype(np.int64))
        sp = faiss.SearchParametersHNSW(sel=sel, efSearch=st.conc_ef)
        found, qps, lat = timed_loop(lambda q: idx.search(q[None, :], K, params=sp)[1][0], queries, st.budget_s,
                                      st.min_queries)
        found = [[int(x) for x in f if x >= 0] for f in found]
        p50, p99 = percentiles(lat)
        res["filtered"].append({"selectivity_pct": pct, "filter": expr, "ef": st.conc_ef, "qps": qps,
                                "recall": recall_at(found, fgt[:len(found)], K), "queries": len(found),
                                "p50_ms": p50, "p99_ms": p99})
    workdir.mkdir(parents=True, exist_ok=True)
    f = workdir / "faiss.bin"
    faiss.write_index(idx, str(f))
    res["disk_bytes"] = f.stat().st_size
    f.unlink()
    res["ok"] = True
    return res


# ----------------------------------------------------------------------------- Rust core


def run_core(ds: Dataset, st: Settings, workdir: Path, binary: Path, timeout_s: float) -> dict:
    res = empty_result("core")
    cmd = [str(binary), "--base", str(ds.file("base")), "--queries", str(ds.file("queries")),
           "--gt", str(ds.file("gt")), "--tags", str(ds.file("tags")), "--metric", ds.metric,
           "--m", str(st.m), "--efc", str(st.ef_construction), "--ef", ",".join(map(str, st.efs)),
           "--k", str(K), "--batch", str(st.batch), "--threads", str(st.threads),
           "--conc-ef", str(st.conc_ef), "--max-seconds", str(st.budget_s)]
    if st.index_sweep:
        cmd.append("--index-sweep")
    for _, expr, path in ds.filters:
        cmd += ["--filter", f"{expr}={path}"]
    workdir.mkdir(parents=True, exist_ok=True)
    errf = workdir / "core_bench.stderr"
    with open(errf, "wb") as err:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=err, timeout=timeout_s,
                           env={**os.environ, "RUST_LOG": "warn"})
    if p.returncode != 0:
        tail = errf.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"core_bench exited with {p.returncode}:\n{tail}")
    out = json.loads(p.stdout.decode().strip().splitlines()[-1])
    res.update({
        "insert_s": out["insert_s"], "insert_rows_per_s": out["insert_rows_per_s"],
        "index_s": out["index_s"], "build_cpu_s": out["index_cpu_s"],
        "sweep": out["sweep"], "concurrent": out["concurrent"], "filtered": [],
        "rss_bytes": out["rss_end_bytes"], "rss_peak_bytes": out["rss_peak_bytes"],
        "rss_idle_bytes": out["rss_start_bytes"], "core_memory_bytes": out["core_memory_bytes"],
        "segments": out["segments"], "disk_bytes": out.get("disk_bytes"),
    })
    for f, (pct, _, _) in zip(out["filtered"], ds.filters):
        f["selectivity_pct"] = pct
        res["filtered"].append(f)
    res["notes"].append(f"in-memory stores, {out['segments']} sealed segment(s); "
                        "index_s = flush + HNSW build, build_cpu_s = process CPU in that time; "
                        "RSS includes the benchmark's own copy of the base vectors")
    io = out.get("index_only")
    if io:
        sub = empty_result("core-index")
        sub.update({"ok": True, "index_s": io["build_s"], "build_cpu_s": io["build_cpu_s"],
                    "sweep": io["sweep"], "index_memory_bytes": io["memory_bytes"],
                    "notes": ["ferrovus_core::vindex::build + VectorIndex::search on the same vectors "
                              "(no database layer); index_s = build wall time"]})
        res["index_only"] = sub
    res["ok"] = True
    return res


SYSTEMS = ("ferrovus", "cluster", "milvus-lite", "hnswlib", "faiss", "core")


def run_system(name: str, ds: Dataset, st: Settings, workdir: Path, bins: dict, timeout_s: float) -> dict:
    wd = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=workdir))
    try:
        if name in ("ferrovus", "cluster"):
            return run_server(name, ds, st, wd, bins["ferrovus"])
        if name == "milvus-lite":
            return run_server("milvus-lite", ds, st, wd)
        if name == "hnswlib":
            return run_hnswlib(ds, st, wd)
        if name == "faiss":
            return run_faiss(ds, st, wd)
        if name == "core":
            return run_core(ds, st, wd, bins["core"], timeout_s)
        raise ValueError(name)
    finally:
        shutil.rmtree(wd, ignore_errors=True)
