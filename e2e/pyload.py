"""pymilvus traffic for the full-mode end-to-end tests (e2e/tests/full.rs) against a
MilvusCluster's proxy Service. The last line of stdout is a JSON report.

    pyload.py quickstart URI
        the README quick start, as-is, with FERROVUS_URI=URI
    pyload.py mixed URI NAME STOPFILE
        the fault tests' mixed load (insert, upsert, delete through several clients; Strong
        search and query) on a new collection NAME until STOPFILE exists; then every
        acknowledged write is checked (present exactly once with its last value, no deleted row,
        Strong searches match brute force). Report: requests sent / failed (a failed attempt
        that was retried counts as failed), rows verified.
    pyload.py searches URI NAME STOPFILE
        Strong searches of a collection of NAME (created and loaded here) until STOPFILE exists,
        each checked against the rows written; report: searches sent / failed.
    pyload.py ddl URI GOFILE
        connects, prints "connected", waits for GOFILE (the test creates it when it deletes the
        coordinator's pod), then retries create_collection at once until it succeeds; report:
        seconds from GOFILE to the first success.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "engine" / "tests" / "python"))

import numpy as np  # noqa: E402
from pymilvus import MilvusClient  # noqa: E402

from cluster_support import DIM, MixedLoad, first_success, make_collection  # noqa: E402


def report(**fields) -> None:
    print(json.dumps(fields), flush=True)


def client(uri: str) -> MilvusClient:
    """A client once the proxy answers (the Service may route to a pod that just got ready)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            c = MilvusClient(uri=uri, timeout=10)
            c.list_collections()
            return c
        except Exception:  # noqa: BLE001 - retried until the deadline
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def quickstart(uri: str) -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    m = re.search(r"^```python[ \t]*\n(.*?)^```", text, flags=re.S | re.M)
    assert m, "README.md has no ```python block"
    client(uri)
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-c", m.group(1)], capture_output=True, text=True,
                       env={**os.environ, "FERROVUS_URI": uri}, timeout=300)
    if r.returncode != 0:
        sys.exit(f"the quick start failed:\n{r.stdout}\n{r.stderr}")
    report(ok=True, seconds=round(time.monotonic() - t0, 2), output=r.stdout.strip()[-300:])


def wait_stop(stopfile: str) -> None:
    while not os.path.exists(stopfile):
        time.sleep(0.2)


def mixed(uri: str, name: str, stopfile: str) -> None:
    c = client(uri)
    make_collection(c, name, shards=2)
    load = MixedLoad(uri, name, writers=2, readers=2).start()
    t0 = time.monotonic()
    wait_stop(stopfile)
    load.finish()
    load.verify(c)
    sent = load.write_ok + len(load.write_retries) + load.read_ok + len(load.read_failed)
    failed = len(load.write_retries) + len(load.read_failed)
    report(seconds=round(time.monotonic() - t0, 1), sent=sent, failed=failed,
           writes_ok=load.write_ok, write_retries=len(load.write_retries),
           reads_ok=load.read_ok, reads_failed=len(load.read_failed), rows_verified=len(load.rows),
           failures=[*load.write_retries[:5], *(m for _, m in load.read_failed[:5])])


def searches(uri: str, name: str, stopfile: str) -> None:
    c = client(uri)
    make_collection(c, name, shards=2)
    rng = np.random.default_rng(5)
    vecs = rng.standard_normal((2000, DIM)).astype(np.float32)
    c.insert(name, [{"id": i, "vector": v.tolist()} for i, v in enumerate(vecs)])
    c.flush(name)
    ok, failed, errors = 0, 0, []
    t0 = time.monotonic()
    while not os.path.exists(stopfile):
        target = int(rng.integers(0, len(vecs)))
        try:
            hits = c.search(name, data=[vecs[target].tolist()], limit=3,
                            consistency_level="Strong", search_params={"params": {"ef": 64}})
            assert target in [h["id"] for h in hits[0]], hits
            ok += 1
        except Exception as e:  # noqa: BLE001 - counted and reported
            failed += 1
            errors.append(f"{time.monotonic() - t0:.1f}s: {type(e).__name__}: {str(e)[:160]}")
            time.sleep(0.1)
    report(seconds=round(time.monotonic() - t0, 1), sent=ok + failed, failed=failed,
           failures=errors[:10])


def ddl(uri: str, gofile: str) -> None:
    c = client(uri)
    print("connected", flush=True)
    while not os.path.exists(gofile):
        time.sleep(0.01)
    name = f"after_takeover_{int(time.time())}"
    seconds = first_success(lambda: c.create_collection(name, dimension=4), 120)
    report(seconds=round(seconds, 2))


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    {"quickstart": quickstart, "mixed": mixed, "searches": searches, "ddl": ddl}[cmd](*args)
