"""Helpers of the cluster-only tests: a cluster of a test's own (``scripts/cluster``), the
model of what it must hold, and the reads that check it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import grpc
import numpy as np
from pymilvus import DataType, MilvusClient
from pymilvus.grpc_gen import milvus_pb2, milvus_pb2_grpc

REPO_ROOT = Path(__file__).resolve().parents[3]
DIM = 8


def ferrovus_bin() -> Path:
    from conftest import ferrovus_bin as find  # noqa: PLC0415
    return find()


def run_cluster_script(workdir: Path, *args: str, timeout: float = 180.0) -> str:
    """`scripts/cluster <args> --dir <workdir>` with this suite's binary; its stdout, or an error
    carrying its output."""
    env = dict(os.environ)
    env.setdefault("FERROVUS_BIN", str(ferrovus_bin()))
    script = REPO_ROOT / "scripts" / "cluster"
    r = subprocess.run([sys.executable, str(script), *args, "--dir", str(workdir)],
                       capture_output=True, text=True, timeout=timeout, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"scripts/cluster {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}")
    return r.stdout


class OwnCluster:
    """A cluster of this test's own (``scripts/cluster`` in a temporary directory)."""

    def __init__(self, workdir: Path, env: dict[str, str], **counts: int) -> None:
        self.dir = workdir
        self.env = env
        self.counts = counts

    def run(self, *args: str, timeout: float = 180.0) -> str:
        return run_cluster_script(self.dir, *args, timeout=timeout)

    def up(self) -> "OwnCluster":
        args = ["up", "--timeout", "150"]
        for k, v in self.counts.items():
            args += [f"--{k}", str(v)]
        for k, v in self.env.items():
            args += ["--env", f"{k}={v}"]
        self.run(*args, timeout=240)
        return self

    def state(self) -> dict:
        return json.loads((self.dir / "cluster.json").read_text())

    def uri(self, name: str = "proxy-1") -> str:
        return f"http://127.0.0.1:{self.state()['procs'][name]['grpc_port']}"

    def add(self, role: str) -> str:
        before = set(self.state()["procs"])
        self.run("add", role, "--timeout", "150", timeout=240)
        (name,) = set(self.state()["procs"]) - before
        return name

    def kill(self, name: str, sig: str = "KILL") -> None:
        self.run("kill", name, "--signal", sig, timeout=90)

    def start(self, name: str) -> None:
        self.run("start", name, "--timeout", "150", timeout=240)

    def logs(self) -> str:
        out = []
        for p in sorted((self.dir / "logs").glob("*.log")):
            lines = p.read_text(errors="replace").splitlines()[-15:]
            out.append(f"--- {p.name}\n" + "\n".join(lines))
        return "\n".join(out)

    def down(self) -> None:
        try:
            self.run("down", timeout=120)
        except Exception:  # noqa: BLE001 - teardown is best effort
            pass


def sealed_segments(uri: str, name: str) -> list:
    ch = grpc.insecure_channel(uri.removeprefix("http://"))
    try:
        stub = milvus_pb2_grpc.MilvusServiceStub(ch)
        r = stub.GetQuerySegmentInfo(milvus_pb2.GetQuerySegmentInfoRequest(collectionName=name),
                                     timeout=30)
        assert r.status.code == 0, r.status
        # 3 = common.SegmentState.Sealed
        return [s for s in r.infos if s.state == 3]
    finally:
        ch.close()


def make_collection(client: MilvusClient, name: str, shards: int = 2) -> None:
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
    idx = client.prepare_index_params()
    idx.add_index("vector", index_type="HNSW", metric_type="L2",
                  params={"M": 16, "efConstruction": 200})
    client.create_collection(name, schema=schema, index_params=idx, num_shards=shards)


class Model:
    """What the database must hold: every acknowledged row, none deleted."""

    def __init__(self, seed: int = 7) -> None:
        self.rng = np.random.default_rng(seed)
        self.rows: dict[int, np.ndarray] = {}
        self.next_id = 0

    def new_rows(self, n: int) -> list[dict]:
        vecs = self.rng.standard_normal((n, DIM)).astype(np.float32)
        out = []
        for v in vecs:
            out.append({"id": self.next_id, "vector": v.tolist()})
            self.rows[self.next_id] = v
            self.next_id += 1
        return out

    def brute_force(self, q: np.ndarray, k: int) -> list[int]:
        ids = np.fromiter(self.rows.keys(), dtype=np.int64)
        mat = np.stack([self.rows[int(i)] for i in ids])
        d = ((mat - q) ** 2).sum(axis=1)
        return [int(ids[j]) for j in np.argsort(d, kind="stable")[:k]]


def read_all(client: MilvusClient, name: str, keys, fields: list[str],
             span: int = 8000) -> list[dict]:
    """Every row whose id lies in the ranges the model's keys cover, with Strong consistency,
    one id range at a time (a query returns at most 16,384 rows)."""
    out: list[dict] = []
    starts = sorted({k - k % span for k in keys}) or [0]
    for lo in starts:
        out += client.query(name, filter=f"id >= {lo} and id < {lo + span}",
                            output_fields=fields, limit=16384, consistency_level="Strong")
    return out


def assert_exactly_once(ids: list[int], expected, step: str) -> None:
    """`ids` (what a read returned) hold every expected key once and nothing else."""
    dup = len(ids) - len(set(ids))
    missing = set(expected) - set(ids)
    extra = set(ids) - set(expected)
    assert dup == 0 and not missing and not extra, (
        f"{step}: {dup} duplicated, {len(missing)} acknowledged rows missing "
        f"(e.g. {sorted(missing)[:5]}), {len(extra)} deleted/unknown rows present "
        f"(e.g. {sorted(extra)[:5]})")


def check_reads(client: MilvusClient, name: str, model: Model, step: str) -> float:
    """Strong reads see exactly the model; returns the search recall@10 against brute force."""
    got = read_all(client, name, model.rows, ["id"])
    assert_exactly_once([r["id"] for r in got], model.rows, step)
    count = client.query(name, filter="", output_fields=["count(*)"],
                         consistency_level="Strong")[0]["count(*)"]
    assert count == len(model.rows), f"{step}: count(*) {count} != {len(model.rows)}"

    keys = list(model.rows)
    picks = [keys[int(i)] for i in model.rng.integers(0, len(keys), 4)]
    queries = [model.rows[p] for p in picks]
    res = client.search(name, data=[q.tolist() for q in queries], limit=10,
                        search_params={"metric_type": "L2", "params": {"ef": 200}},
                        consistency_level="Strong")
    found = total = 0
    for pk, q, hits in zip(picks, queries, res):
        hit_ids = [h["id"] for h in hits]
        assert len(hit_ids) == len(set(hit_ids)), f"{step}: duplicated hits {hit_ids}"
        assert hit_ids and hit_ids[0] == pk, f"{step}: row {pk} is not its own nearest: {hit_ids}"
        for h in hits:
            assert h["id"] in model.rows, f"{step}: search returned deleted/unknown {h['id']}"
            true = float(((model.rows[h["id"]] - q) ** 2).sum())
            assert abs(h["distance"] - true) <= 1e-3 * max(1.0, true), (
                f"{step}: distance of {h['id']} is {h['distance']}, expected {true}")
        exact = model.brute_force(q, 10)
        found += len(set(hit_ids) & set(exact))
        total += len(exact)
        if len(set(hit_ids) & set(exact)) < 9:
            print(f"{step}: low recall for row {pk}: got {hit_ids}, exact {exact}")
    return found / total




def http_body(port: int, path: str, host: str = "127.0.0.1") -> tuple[int, str]:
    """GET http://host:port/path: (status, body), or (0, "") when nothing answers."""
    import urllib.error  # noqa: PLC0415
    import urllib.request  # noqa: PLC0415
    try:
        with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=2) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return 0, ""


def active_coordinator(cluster: OwnCluster) -> str | None:
    """The coordinator process that leads (ready and not reporting `standby`)."""
    for n, p in cluster.state()["procs"].items():
        if p["role"] != "coordinator" or not p.get("pid"):
            continue
        code, body = http_body(p["http_port"], "/readyz")
        if code == 200 and "standby" not in body:
            return n
    return None


class MixedLoad:
    """Writers (insert, upsert, delete; each on its own key range, a failed write retried until
    acknowledged, with upsert so that a retry cannot duplicate) and readers (Strong search and
    query) from several pymilvus clients, each thread with its own client. `model` holds every
    acknowledged write; reader outcomes are counted."""

    def __init__(self, uri: str | list[str], name: str, writers: int = 2, readers: int = 2) -> None:
        import threading  # noqa: PLC0415
        self.uris = [uri] if isinstance(uri, str) else list(uri)
        self.name = name
        self.rows: dict[int, np.ndarray] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.write_ok = 0
        self.write_acks: list[float] = []  # monotonic times of acknowledged writes
        self.write_retries: list[str] = []
        self.read_ok = 0
        self.read_failed: list[tuple[float, str]] = []
        self.threads = [threading.Thread(target=self._writer, args=(w,), daemon=True)
                        for w in range(writers)]
        self.threads += [threading.Thread(target=self._reader, args=(r,), daemon=True)
                         for r in range(readers)]

    def start(self) -> "MixedLoad":
        for t in self.threads:
            t.start()
        return self

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=120)
        assert not any(t.is_alive() for t in self.threads), "load threads did not stop"

    def _client(self, i: int) -> MilvusClient:
        return MilvusClient(uri=self.uris[i % len(self.uris)])

    def _retry(self, what: str, fn) -> bool:
        import time  # noqa: PLC0415
        deadline = time.monotonic() + 120
        while True:
            try:
                fn()
                return True
            except Exception as e:  # noqa: BLE001 - retried, reported
                self.write_retries.append(f"{what}: {type(e).__name__}: {str(e)[:160]}")
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def _writer(self, w: int) -> None:
        import time  # noqa: PLC0415
        c = self._client(w)
        rng = np.random.default_rng(100 + w)
        base = (w + 1) * 1_000_000
        mine: list[int] = []
        step = 0
        while not self.stop.is_set():
            step += 1
            op = step % 4
            if op in (0, 1) or len(mine) < 50:  # insert new rows
                ids = list(range(base + len(mine) + 0, base + len(mine) + 50))
                vecs = rng.standard_normal((len(ids), DIM)).astype(np.float32)
                data = [{"id": i, "vector": v.tolist()} for i, v in zip(ids, vecs)]
                first = [True]

                def ins():
                    # The first attempt inserts; a retry upserts (the first may have applied).
                    if first[0]:
                        first[0] = False
                        c.insert(self.name, data)
                    else:
                        c.upsert(self.name, data)
                self._retry("insert", ins)
                with self.lock:
                    for i, v in zip(ids, vecs):
                        self.rows[i] = v
                mine.extend(ids)
            elif op == 2:  # upsert existing rows with new vectors
                with self.lock:
                    live = [i for i in mine[-200:] if i in self.rows]
                ids = [live[int(j)] for j in rng.choice(len(live), min(20, len(live)), replace=False)]
                vecs = rng.standard_normal((len(ids), DIM)).astype(np.float32)
                data = [{"id": i, "vector": v.tolist()} for i, v in zip(ids, vecs)]
                self._retry("upsert", lambda: c.upsert(self.name, data))
                with self.lock:
                    for i, v in zip(ids, vecs):
                        self.rows[i] = v
            else:  # delete a few
                with self.lock:
                    live = [i for i in mine if i in self.rows]
                ids = [live[int(j)] for j in rng.choice(len(live), min(5, len(live)), replace=False)]
                self._retry("delete", lambda: c.delete(self.name, ids=ids))
                with self.lock:
                    for i in ids:
                        self.rows.pop(i, None)
            self.write_ok += 1
            self.write_acks.append(time.monotonic())
            time.sleep(0.02)
        c.close()

    def _reader(self, r: int) -> None:
        import time  # noqa: PLC0415
        c = self._client(r + 1)
        rng = np.random.default_rng(200 + r)
        while not self.stop.is_set():
            q = rng.standard_normal(DIM).astype(np.float32).tolist()
            try:
                if rng.integers(0, 2):
                    c.search(self.name, data=[q], limit=5, consistency_level="Strong")
                else:
                    c.query(self.name, filter="id < 2000000", output_fields=["count(*)"],
                            consistency_level="Strong")
                self.read_ok += 1
            except Exception as e:  # noqa: BLE001 - counted
                self.read_failed.append((time.monotonic(), f"{type(e).__name__}: {str(e)[:160]}"))
                time.sleep(0.05)
        c.close()

    def write_stall(self, since: float) -> float:
        """The longest time without any acknowledged write, from `since` to the last ack."""
        acks = sorted(t for t in self.write_acks if t >= since)
        points = [since] + acks
        return max((b - a for a, b in zip(points, points[1:])), default=float("inf"))

    def verify(self, client: MilvusClient) -> None:
        """Every acknowledged write present exactly once with its last vector, no deleted row,
        searches match brute force."""
        m = Model()
        m.rows = dict(self.rows)
        got = read_all(client, self.name, m.rows, ["id", "vector"])
        assert_exactly_once([g["id"] for g in got], m.rows, "after recovery")
        stale = [g["id"] for g in got
                 if not np.allclose(np.asarray(g["vector"], dtype=np.float32), m.rows[g["id"]])]
        assert not stale, f"{len(stale)} rows hold an older vector than the last upsert: {stale[:5]}"
        check_reads(client, self.name, m, "after recovery")


class Relay:
    """A TCP relay on loopback in front of one address, to cut a process off from it (a
    network partition between two processes of one machine): `cut()` stops forwarding in both
    directions and holds new connections without connecting them (a black hole, like a dropped
    link: nothing is refused, requests just go unanswered); `heal()` closes every connection
    made so far (clients reconnect) and forwards again."""

    def __init__(self, target_port: int) -> None:
        import socket  # noqa: PLC0415
        import threading  # noqa: PLC0415
        self.target = ("127.0.0.1", target_port)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.cut_off = threading.Event()
        self.lock = threading.Lock()
        self.conns: list = []
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket  # noqa: PLC0415
        import threading  # noqa: PLC0415
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.conns.append(client)
            if self.cut_off.is_set():
                continue  # held, never connected: a black hole
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.conns.append(upstream)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src, dst) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if self.cut_off.is_set():
                    continue  # dropped on the floor
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.close()
            except OSError:
                pass

    def cut(self) -> None:
        self.cut_off.set()

    def heal(self) -> None:
        import socket  # noqa: PLC0415
        with self.lock:
            conns, self.conns = self.conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        self.cut_off.clear()

    def close(self) -> None:
        self.closed = True
        self.heal()
        self.listener.close()


def reroute_etcd(cluster: OwnCluster, name: str) -> Relay:
    """Restarts process `name` with its etcd traffic through a new relay (so that it alone can
    be cut off from etcd). The process is SIGKILLed first: call before the load starts."""
    state = cluster.state()
    etcd_port = state["procs"]["etcd"]["port"]
    relay = Relay(etcd_port)
    cluster.kill(name, "KILL")
    state = cluster.state()
    state["procs"][name]["env"]["FERROVUS_ETCD_ENDPOINTS"] = f"http://127.0.0.1:{relay.port}"
    tmp = cluster.dir / "cluster.json.tmp"
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(cluster.dir / "cluster.json")
    cluster.start(name)
    return relay


def log_lines(cluster: OwnCluster, name: str, needle: str) -> list[str]:
    """The log lines of `name` (colour codes removed) that contain `needle`."""
    import re  # noqa: PLC0415
    text = (cluster.dir / "logs" / f"{name}.log").read_text(errors="replace")
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    return [line for line in text.splitlines() if needle in line and line[:4].isdigit()]


def log_times(cluster: OwnCluster, name: str, needle: str) -> list[str]:
    """The ISO timestamps of the log lines of `name` that contain `needle`."""
    return [line.split()[0] for line in log_lines(cluster, name, needle)]


def first_success(fn, timeout: float = 60.0) -> float:
    """Seconds until `fn` first succeeds (retried at once on any error, up to `timeout`)."""
    import time  # noqa: PLC0415
    t0 = time.monotonic()
    while True:
        try:
            fn()
            return time.monotonic() - t0
        except Exception:  # noqa: BLE001 - retried until the deadline
            if time.monotonic() - t0 > timeout:
                raise
            time.sleep(0.02)


def cluster_etcd(cluster: OwnCluster) -> tuple[str, str]:
    """The URL of the cluster's (first) etcd member and the cluster's key prefix there."""
    state = cluster.state()
    port = (state["procs"].get("etcd") or state["procs"]["etcd-1"])["port"]
    env = next(p["env"] for p in state["procs"].values() if p["role"] == "coordinator")
    return f"http://127.0.0.1:{port}", env["FERROVUS_META__ETCD_PREFIX"].rstrip("/") + "/"


def etcd_history(etcd_url: str, prefix: str, key: str) -> list[dict]:
    """Every put of the metadata key `prefix + key` in etcd's revision history, oldest first:
    ``{"rev", "create", "value"}``. Read through etcd's HTTP gateway: a watch from revision 1,
    read until the key's current revision."""
    import base64  # noqa: PLC0415
    import urllib.request  # noqa: PLC0415
    full = base64.b64encode((prefix + key).encode()).decode()

    def post(path: str, body: dict, timeout: float = 10.0):
        req = urllib.request.Request(f"{etcd_url}{path}", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
        return urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 - a test's own etcd

    with post("/v3/kv/range", {"key": full}) as r:
        kvs = json.loads(r.read()).get("kvs", [])
    if not kvs:
        return []
    last = int(kvs[0]["mod_revision"])
    out: list[dict] = []
    with post("/v3/watch", {"create_request": {"key": full, "start_revision": 1}}) as r:
        for line in r:
            result = json.loads(line).get("result", {})
            for ev in result.get("events", []):
                if ev.get("type", "PUT") != "PUT":
                    continue
                kv = ev["kv"]
                out.append({"rev": int(kv["mod_revision"]), "create": int(kv["create_revision"]),
                            "value": base64.b64decode(kv.get("value", "")).decode()})
            if out and out[-1]["rev"] >= last:
                return out
    raise RuntimeError(f"the watch of {key} ended before revision {last}")


def audit_leader_writes(etcd_url: str, prefix: str) -> dict[int, int]:
    """Replays the metadata's revision history: every fenced write (`coord/writer`, the writer's
    fence revision) must come from the leader elected last before it (`coord/leader` creations).
    Returns the number of writes per leadership term (by its election revision)."""
    elections = sorted(p["create"] for p in etcd_history(etcd_url, prefix, "coord/leader")
                       if p["rev"] == p["create"])
    writes: dict[int, int] = {}
    for w in etcd_history(etcd_url, prefix, "coord/writer"):
        term = int(w["value"])
        current = max((e for e in elections if e <= w["rev"]), default=None)
        assert term == current, (
            f"a metadata write at revision {w['rev']} came from the term elected at {term}, "
            f"but the leader elected at {current} led then (elections {elections})")
        writes[term] = writes.get(term, 0) + 1
    return writes
