"""Durability across process death: SIGKILL in the middle of a stream of inserts loses
no acknowledged row and duplicates none; SIGTERM + restart keeps everything.

These tests stop and restart the session's server process (same data dir, same
ports).  They run against milvus-lite too, which is started as its own process by
the suite and flushes every WAL write to the OS before acknowledging it, so it
survives SIGKILL of the process (not power loss)."""

import threading

from pymilvus import MilvusClient

from conftest import require
from helpers import hit_ids, load_and_wait, quick_collection, rand_vectors, rows, wait_until

DIM = 8
BATCH = 25


def reconnect(server) -> MilvusClient:
    c = MilvusClient(uri=server.uri)
    assert c.get_server_version()
    return c


def ensure_loaded(client, name):
    # A restarted server must know the collection; whether it reloads it by itself or
    # needs a LoadCollection, loading it again is always allowed.
    assert client.has_collection(name)
    load_and_wait(client, name)


def query_ids(client, name, ids, fields=("val",)):
    out = []
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        out += client.query(name, filter=f"id in {chunk}", output_fields=list(fields),
                            consistency_level="Strong")
    return out


def count(client, name):
    return client.query(name, filter="", output_fields=["count(*)"],
                        consistency_level="Strong")[0]["count(*)"]


class Writer(threading.Thread):
    """Inserts batches of BATCH rows with consecutive ids until stopped or until a call
    fails; records every acknowledged batch and the one in flight when it failed."""

    def __init__(self, uri, name):
        super().__init__(daemon=True)
        self.client = MilvusClient(uri=uri)
        self.name = name
        self.acked: list[list[int]] = []
        self.failed_batch: list[int] | None = None
        self.error: BaseException | None = None
        self.stop = threading.Event()

    def run(self):
        next_id = 0
        try:
            while not self.stop.is_set():
                ids = list(range(next_id, next_id + BATCH))
                data = [{"id": i, "vector": [float(i % 97)] * DIM, "val": i * 3} for i in ids]
                try:
                    # retry_times=0: a call interrupted by the kill must not be replayed
                    # by pymilvus against the restarted server.
                    res = self.client.insert(self.name, data, timeout=10, retry_times=0)
                except BaseException as e:  # noqa: BLE001
                    self.failed_batch, self.error = ids, e
                    return
                assert list(res["ids"]) == ids
                self.acked.append(ids)
                next_id += BATCH
        finally:
            try:
                self.client.close()
            except Exception:  # noqa: BLE001
                pass

    def acked_rows(self):
        return sum(len(b) for b in self.acked)


def test_sigkill_during_insert_stream_loses_no_acknowledged_row(live_server, collection_name):
    require(live_server, "process_control")
    c = reconnect(live_server)
    quick_collection(c, collection_name, dim=DIM, metric="L2")
    c.close()

    w = Writer(live_server.uri, collection_name)
    w.start()
    wait_until(lambda: w.acked_rows() >= 400 or not w.is_alive(), timeout=60,
               what="400 acknowledged rows")
    assert w.is_alive(), f"writer stopped before the kill: {w.error!r}"
    live_server.kill9()          # SIGKILL mid-stream, then start on the same data dir
    w.stop.set()
    w.join(timeout=60)
    assert not w.is_alive()

    acked = [i for b in w.acked for i in b]
    assert len(acked) >= 400
    c = reconnect(live_server)
    try:
        ensure_loaded(c, collection_name)
        got = query_ids(c, collection_name, acked)
        ids = [r["id"] for r in got]
        missing = sorted(set(acked) - set(ids))
        assert not missing, f"{len(missing)} acknowledged rows lost, e.g. {missing[:10]}"
        assert len(ids) == len(set(ids)), "an acknowledged row came back twice"
        assert all(r["val"] == r["id"] * 3 for r in got), "row contents changed"

        # the batch in flight at the kill is all there or not there at all
        total = count(c, collection_name)
        inflight = w.failed_batch or []
        if inflight:
            present = query_ids(c, collection_name, inflight)
            assert len(present) in (0, len(inflight)), \
                f"torn batch: {len(present)} of {len(inflight)} rows of the unacknowledged insert"
            assert total == len(acked) + len(present)
        else:
            assert total == len(acked)

        # the server keeps working: writes after recovery and searches
        c.insert(collection_name, [{"id": 10_000_000, "vector": [1.0] * DIM, "val": 1}])
        assert count(c, collection_name) == total + 1
        hits = c.search(collection_name, [[5.0] * DIM], limit=3, consistency_level="Strong")[0]
        assert len(hits) == 3
    finally:
        c.close()


def test_sigkill_right_after_acknowledged_writes_and_deletes(live_server, collection_name):
    require(live_server, "process_control")
    c = reconnect(live_server)
    quick_collection(c, collection_name, dim=DIM, metric="L2")
    vecs = rand_vectors(300, DIM, 77)
    c.insert(collection_name, rows(vecs[:200], val=lambda i: i))
    c.flush(collection_name)                                   # some data sealed
    c.insert(collection_name, rows(vecs[200:], 200, val=lambda i: i))  # some only logged
    c.delete(collection_name, ids=list(range(0, 300, 10)))      # deletes in both parts
    c.upsert(collection_name, [{"id": 5, "vector": vecs[5].tolist(), "val": -5}])
    c.close()

    live_server.kill9()

    c = reconnect(live_server)
    try:
        ensure_loaded(c, collection_name)
        assert count(c, collection_name) == 270
        assert query_ids(c, collection_name, list(range(0, 300, 10))) == []
        got = {r["id"]: r["val"] for r in query_ids(c, collection_name, list(range(300)))}
        assert len(got) == 270
        assert got[5] == -5 and got[7] == 7 and got[299] == 299
        hits = c.search(collection_name, [vecs[123].tolist()], limit=1,
                        consistency_level="Strong")[0]
        assert hit_ids(hits) == [123]
    finally:
        c.close()


def test_sigterm_then_restart_keeps_everything(live_server, make_name):
    require(live_server, "process_control")
    name = make_name()
    c = reconnect(live_server)
    quick_collection(c, name, dim=DIM, metric="COSINE")
    c.create_partition(name, "p1")
    load_and_wait(c, name)
    vecs = rand_vectors(500, DIM, 5)
    c.insert(name, rows(vecs[:400], val=lambda i: i))
    c.insert(name, rows(vecs[400:], 400, val=lambda i: i), partition_name="p1")
    c.delete(name, filter="id < 50")
    c.close()

    rc = live_server.terminate()
    if live_server.supports("graceful_sigterm_exit"):
        assert rc == 0, f"graceful shutdown should exit 0, got {rc}"
    live_server.start()

    c = reconnect(live_server)
    try:
        assert name in c.list_collections()
        assert sorted(c.list_partitions(name)) == ["_default", "p1"]
        assert c.describe_index(name, "vector")["metric_type"] == "COSINE"
        ensure_loaded(c, name)
        assert count(c, name) == 450
        cnt = c.query(name, filter="id >= 0", output_fields=["count(*)"], partition_names=["p1"])
        assert cnt[0]["count(*)"] == 100
        hits = c.search(name, [vecs[420].tolist()], limit=1, consistency_level="Strong")[0]
        assert hit_ids(hits) == [420]
        assert [dict(r) for r in c.get(name, ids=[10, 60], output_fields=["val"])] == \
            [{"id": 60, "val": 60}]
    finally:
        c.close()


def test_restart_twice_in_a_row(live_server, collection_name):
    require(live_server, "process_control")
    c = reconnect(live_server)
    quick_collection(c, collection_name, dim=DIM)
    c.insert(collection_name, rows(rand_vectors(10, DIM)))
    c.close()
    live_server.restart()
    live_server.kill9()
    c = reconnect(live_server)
    try:
        ensure_loaded(c, collection_name)
        assert count(c, collection_name) == 10
    finally:
        c.close()
