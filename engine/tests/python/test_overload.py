"""Limits that refuse instead of crashing, pushed past each one on loopback with bounded loops.

Each part starts a standalone of its own with small limits (the session's server keeps the
defaults): an oversized request, more concurrent searches than ``limits.max_concurrent_requests``
(TOO_MANY_REQUESTS, code 4), more searched vectors and inserted bytes per second than the
per-collection rates (RATE_LIMIT, code 8, which pymilvus backs off and retries), loading more
than the query node's memory budget (MEMORY_LIMIT_EXCEEDED, code 3). Every time the
server answers the documented error, stays up, counts the refusals in /metrics, and keeps every
acknowledged write.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import grpc
import numpy as np
import pytest
from pymilvus import MilvusClient, MilvusException

from conftest import ServerHandle, http_get, start_own_standalone

DIM = 64


@pytest.fixture(scope="module")
def narrow(request, tmp_path_factory):
    """4 concurrent requests at most, 1 MiB messages."""
    h = start_own_standalone(request, tmp_path_factory, "narrow", {
        "FERROVUS_LIMITS__MAX_CONCURRENT_REQUESTS": "4",
        "FERROVUS_GRPC__MAX_MESSAGE_BYTES": str(1 << 20),
    })
    yield h
    h.shutdown()


@pytest.fixture(scope="module")
def metered(request, tmp_path_factory):
    """20 searched vectors and 0.25 MiB inserted per second per collection."""
    h = start_own_standalone(request, tmp_path_factory, "metered", {
        "FERROVUS_LIMITS__SEARCH_QUERIES_PER_SECOND": "20",
        "FERROVUS_LIMITS__INSERT_MB_PER_SECOND": "0.25",
    })
    yield h
    h.shutdown()


def _collection(c: MilvusClient, name: str, rows: int) -> None:
    c.create_collection(name, dimension=DIM, consistency_level="Strong")
    rng = np.random.default_rng(3)
    for start in range(0, rows, 2000):
        n = min(2000, rows - start)
        vecs = rng.random((n, DIM), dtype=np.float32)
        c.insert(name, [{"id": start + i, "vector": vecs[i].tolist()} for i in range(n)])


def _code(e: MilvusException) -> int:
    return int(e.code)


def _metric(h: ServerHandle, method: str, code: int) -> float:
    _, text = http_get(f"{h.http_url}/metrics")
    total = 0.0
    for line in text.splitlines():
        if line.startswith("ferrovus_rpc_requests_total{") and f'method="{method}"' in line \
                and f'code="{code}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_an_oversized_request_is_refused_and_the_server_stays_up(narrow):
    c = MilvusClient(uri=narrow.uri)
    try:
        c.create_collection("big", dimension=DIM)
        rows = [{"id": i, "vector": [0.5] * DIM} for i in range(6000)]  # ~1.6 MiB
        t0 = time.monotonic()
        with pytest.raises(grpc.RpcError) as info:
            c.insert("big", rows)
        assert time.monotonic() - t0 < 10, "refused at once, not retried"
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, info.value
        assert "too large" in info.value.details(), info.value.details()
        assert c.insert("big", rows[:100])["insert_count"] == 100
        assert c.query("big", filter="id >= 0", output_fields=["count(*)"],
                       consistency_level="Strong")[0]["count(*)"] == 100
    finally:
        c.close()


def test_too_many_concurrent_searches_answer_too_many_requests(narrow):
    setup = MilvusClient(uri=narrow.uri)
    _collection(setup, "busy", 20000)
    setup.close()
    q = np.random.default_rng(5).random((32, DIM), dtype=np.float32).tolist()
    codes: Counter = Counter()
    lock = threading.Lock()

    def worker() -> None:
        c = MilvusClient(uri=narrow.uri)
        try:
            for _ in range(15):
                try:
                    c.search("busy", q, limit=10)
                    got = 0
                except MilvusException as e:
                    got = _code(e)
                with lock:
                    codes[got] += 1
        finally:
            c.close()

    threads = [threading.Thread(target=worker) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert sum(codes.values()) == 12 * 15, codes
    assert set(codes) <= {0, 4}, f"only successes and TOO_MANY_REQUESTS: {codes}"
    assert codes[4] > 0 and codes[0] > 0, codes
    assert _metric(narrow, "Search", 4) == codes[4]
    # Nothing is stuck: once the burst is over every slot is free again.
    c = MilvusClient(uri=narrow.uri)
    try:
        for _ in range(8):
            assert len(c.search("busy", q[:1], limit=3)[0]) == 3
    finally:
        c.close()


def test_search_rate_per_collection_is_enforced(metered):
    c = MilvusClient(uri=metered.uri)
    try:
        _collection(c, "hot", 500)
        _collection(c, "cold", 500)
        q = [[0.1] * DIM]
        ok = refused = 0
        t0 = time.monotonic()
        for _ in range(80):
            try:
                c.search("hot", q, limit=1, retry_on_rate_limit=False)
                ok += 1
            except MilvusException as e:
                assert _code(e) == 8, e
                assert "rate limit" in e.message and "hot" in e.message, e.message
                refused += 1
        elapsed = time.monotonic() - t0
        assert refused > 0, (ok, refused, elapsed)
        assert ok <= 20 + 20 * elapsed + 2, (ok, elapsed)
        # another collection has its own budget
        c.search("cold", q, limit=1, retry_on_rate_limit=False)
        assert _metric(metered, "Search", 8) == refused
        # pymilvus' default: back off and retry — the refusals only slow the client down
        for _ in range(30):
            assert len(c.search("hot", q, limit=1)[0]) == 1
    finally:
        c.close()


def test_insert_rate_refuses_but_loses_nothing_acknowledged(metered):
    c = MilvusClient(uri=metered.uri)
    try:
        c.create_collection("ingest", dimension=DIM, consistency_level="Strong")
        acked: list[int] = []
        refused = 0
        for b in range(25):
            rows = [{"id": b * 300 + i, "vector": [float(i % 7)] * DIM} for i in range(300)]
            try:
                res = c.insert("ingest", rows, retry_on_rate_limit=False)
                assert res["insert_count"] == 300
                acked.extend(r["id"] for r in rows)
            except MilvusException as e:
                assert _code(e) == 8, e
                refused += 1
        assert refused > 0 and acked, (refused, len(acked))
        got = c.query("ingest", filter="id >= 0", output_fields=["id"], limit=16384)
        assert sorted(r["id"] for r in got) == sorted(acked), "exactly the acknowledged rows"
    finally:
        c.close()


@pytest.fixture(scope="module")
def small_memory(request, tmp_path_factory):
    """A query node that may hold 2 MiB of segments."""
    h = start_own_standalone(request, tmp_path_factory, "small-memory", {
        "FERROVUS_QUERY__MEMORY_BUDGET_MB": "2",
    })
    yield h
    h.shutdown()


def test_loading_beyond_the_memory_budget_is_refused_not_an_oom(small_memory):
    c = MilvusClient(uri=small_memory.uri)
    try:
        # ~20k x 64-d floats: ~5 MiB of sealed segments, more than the budget
        c.create_collection("large", dimension=DIM, consistency_level="Strong")
        c.release_collection("large")
        rng = np.random.default_rng(9)
        for start in range(0, 20000, 4000):
            vecs = rng.random((4000, DIM), dtype=np.float32)
            c.insert("large", [{"id": start + i, "vector": vecs[i].tolist()} for i in range(4000)])
        c.flush("large")
        t0 = time.monotonic()
        with pytest.raises(MilvusException) as info:
            c.load_collection("large", timeout=120)
        assert time.monotonic() - t0 < 60, "answered, not waited out"
        assert _code(info.value) == 3, info.value
        assert "memory limit exceeded" in info.value.message, info.value.message
        assert "query.memory_budget_mb" in info.value.message, info.value.message
        # the server is up and serves what fits
        c.create_collection("small", dimension=DIM, consistency_level="Strong")
        c.insert("small", [{"id": i, "vector": [0.5] * DIM} for i in range(100)])
        c.flush("small")
        c.release_collection("small")
        c.load_collection("small")
        assert c.query("small", filter="id >= 0", output_fields=["count(*)"])[0]["count(*)"] == 100
        # releasing the refused collection works
        c.release_collection("large")
        _, text = http_get(f"{small_memory.http_url}/metrics")
        assert "ferrovus_querynode_loads_refused_total" in text
    finally:
        c.close()
