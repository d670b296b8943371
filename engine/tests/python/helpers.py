"""Shared helpers of the end-to-end suite: polling, data generation, ground truth."""

from __future__ import annotations

import time
from typing import Any, Callable, Iterable, Optional, Sequence

import numpy as np
import pytest
from pymilvus import DataType, MilvusClient, MilvusException

DEFAULT_DIM = 16


# --------------------------------------------------------------------------- polling


def wait_until(pred: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05,
               what: str = "condition") -> Any:
    """Poll ``pred`` until it returns a truthy value; fail after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    last_exc: Optional[BaseException] = None
    while True:
        try:
            v = pred()
            if v:
                return v
        except MilvusException as e:  # transient errors while a state settles
            last_exc = e
        if time.monotonic() >= end:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}"
                                 + (f" (last error: {last_exc})" if last_exc else ""))
        time.sleep(interval)


def load_state_name(client: MilvusClient, name: str, partition: str = "") -> str:
    st = client.get_load_state(name, partition_name=partition)["state"]
    return getattr(st, "name", str(st))


def load_and_wait(client: MilvusClient, name: str, timeout: float = 60.0) -> None:
    client.load_collection(name)
    wait_until(lambda: load_state_name(client, name) == "Loaded", timeout,
               what=f"collection {name} to be Loaded")


def index_finished(client: MilvusClient, name: str, index_name: str) -> bool:
    return client.describe_index(name, index_name).get("state") in ("Finished", None)


# --------------------------------------------------------------------------- data


def rand_vectors(n: int, dim: int = DEFAULT_DIM, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, dim)).astype(np.float32)


def rows(vectors: np.ndarray, start: int = 0, **extra: Callable[[int], Any]) -> list[dict]:
    """Row dicts {"id", "vector", **extra(i)} for the given vectors."""
    out = []
    for i, v in enumerate(vectors):
        pk = start + i
        r = {"id": pk, "vector": v.tolist()}
        for k, f in extra.items():
            r[k] = f(pk)
        out.append(r)
    return out


def insert_batched(client: MilvusClient, name: str, data: Sequence[dict], batch: int = 1000,
                   **kw) -> int:
    n = 0
    for i in range(0, len(data), batch):
        n += client.insert(name, list(data[i:i + batch]), **kw)["insert_count"]
    return n


def quick_collection(client: MilvusClient, name: str, dim: int = DEFAULT_DIM,
                     metric: str = "COSINE", **kw) -> None:
    """Quick-setup collection (id Int64 pk, "vector", dynamic field), Strong consistency,
    loaded and ready."""
    kw.setdefault("consistency_level", "Strong")
    client.create_collection(name, dimension=dim, metric_type=metric, **kw)
    wait_until(lambda: load_state_name(client, name) == "Loaded", 60,
               what=f"{name} Loaded after quick setup")


def indexed_collection(client: MilvusClient, name: str, dim: int, metric: str,
                       index_type: str, params: Optional[dict] = None,
                       extra_fields: Iterable[tuple[str, DataType, dict]] = (),
                       dynamic: bool = False, load: bool = True) -> None:
    """Custom-schema collection: id Int64 pk, vector FloatVector(dim), extra fields;
    an index on vector; optionally loaded."""
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=dynamic)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    for fname, ftype, fkw in extra_fields:
        schema.add_field(fname, ftype, **fkw)
    ip = client.prepare_index_params()
    ip.add_index(field_name="vector", index_type=index_type, metric_type=metric,
                 params=params or {})
    client.create_collection(name, schema=schema, index_params=ip, consistency_level="Strong")
    wait_until(lambda: index_finished(client, name, "vector"), 60, what="index build")
    if load:
        load_and_wait(client, name)
    else:
        client.release_collection(name)


# --------------------------------------------------------------------------- ground truth


def normalize(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    n[n == 0] = 1
    return x / n


def brute_force(base: np.ndarray, queries: np.ndarray, k: int, metric: str,
                ids: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k with Milvus' conventions: L2 -> squared Euclidean distance,
    ascending; IP -> inner product, descending; COSINE -> cosine similarity,
    descending.  Returns (ids[nq, k], scores[nq, k])."""
    base = base.astype(np.float64)
    queries = queries.astype(np.float64)
    if metric == "L2":
        d = ((queries[:, None, :] - base[None, :, :]) ** 2).sum(-1)
        order = np.argsort(d, axis=1, kind="stable")[:, :k]
    elif metric == "IP":
        d = queries @ base.T
        order = np.argsort(-d, axis=1, kind="stable")[:, :k]
    elif metric == "COSINE":
        d = normalize(queries) @ normalize(base).T
        order = np.argsort(-d, axis=1, kind="stable")[:, :k]
    else:
        raise ValueError(metric)
    scores = np.take_along_axis(d, order, axis=1)
    if ids is not None:
        order = ids[order]
    return order, scores


def recall(got: Sequence[Sequence[int]], truth: np.ndarray) -> float:
    hit = total = 0
    for g, t in zip(got, truth):
        hit += len(set(g) & set(int(x) for x in t))
        total += len(t)
    return hit / total if total else 1.0


def hit_ids(hits) -> list:
    return [h["id"] for h in hits]


def hit_scores(hits) -> list[float]:
    return [h["distance"] for h in hits]


def assert_sorted(scores: Sequence[float], metric: str) -> None:
    s = list(scores)
    if metric == "L2":
        assert s == sorted(s), f"L2 distances must ascend: {s}"
    else:
        assert s == sorted(s, reverse=True), f"{metric} similarities must descend: {s}"


# --------------------------------------------------------------------------- errors


def expect_error(fn: Callable[[], Any], *needles: str, any_of: Sequence[str] = ()) -> MilvusException:
    """Call fn, assert it raises MilvusException whose message contains every needle
    (case-insensitive) and, if given, at least one of ``any_of``."""
    with pytest.raises(MilvusException) as ei:
        fn()
    msg = str(ei.value.message if hasattr(ei.value, "message") else ei.value).lower()
    for n in needles:
        assert n.lower() in msg, f"error message {msg!r} lacks {n!r}"
    if any_of:
        assert any(a.lower() in msg for a in any_of), f"error message {msg!r} lacks any of {any_of}"
    return ei.value


def assert_serves(client: MilvusClient, name: str, expect_count: Optional[int] = None) -> None:
    """The server still answers a simple query on ``name`` after an error."""
    res = client.query(name, filter="", output_fields=["count(*)"], consistency_level="Strong")
    if expect_count is not None:
        assert res[0]["count(*)"] == expect_count
