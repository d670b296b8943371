"""Cluster-only tests: behaviour that exists only when every role is its own process.

They run with ``--server=cluster`` (skipped otherwise) and each starts its own cluster with
``scripts/cluster`` (real etcd and S3-compatible server, one process per role), configured for
what it exercises (tiny segments so that sealing, compaction and index builds happen on a few
thousand rows), so that killing or adding processes does not disturb the rest of the suite.

* the hand-off test moves data across every hand-off (growing on a streaming node → sealed →
  compacted and indexed on a data node → loaded by two replica groups of query nodes) while
  checking, after every step and while the background work runs, that a Strong read sees every
  acknowledged row exactly once and that searches agree with brute force;
* the scale test adds a query node under search load (the coordinator balances segments onto
  it) and stops the old one with SIGTERM (it hands its segments off first): no search fails;
* the not-ready test asks a proxy for work while no coordinator runs: a retriable Milvus error
  within the proxy's retry deadline, never a hang; and an unknown role name is a CLI error.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time

import grpc
import numpy as np
import pytest
from pymilvus import MilvusClient
from pymilvus.grpc_gen import milvus_pb2, milvus_pb2_grpc

from cluster_support import DIM, Model, check_reads, ferrovus_bin, make_collection, sealed_segments
from helpers import wait_until

def test_rows_cross_every_hand_off_with_two_replicas(own_cluster):
    # Segments seal at 300 rows; every sealed segment is below compaction's small-segment
    # threshold (default 10,000), so the data node merges them as they settle.
    cluster = own_cluster({"FERROVUS_CORE__SEAL_ROWS": "300"},
                          coordinators=1, streaming=2, query=2, data=1, proxies=1)
    client = MilvusClient(uri=cluster.uri())
    name = "handoff"
    make_collection(client, name)
    client.release_collection(name)
    client.load_collection(name, replica_number=2)
    wait_until(lambda: str(client.get_load_state(name)["state"]).endswith("Loaded"), 120,
               what="load with two replicas")
    model = Model()
    recalls = []
    try:
        for step in range(12):
            client.insert(name, model.new_rows(250))
            if step % 3 == 2:
                victims = [k for k in list(model.rows)[: 20 * step] if k % 7 == step % 7][:15]
                client.delete(name, ids=victims)
                for v in victims:
                    model.rows.pop(v)
            if step == 6:
                client.flush(name)
            recalls.append(check_reads(client, name, model, f"after write step {step}"))
        client.flush(name)

        seen = {"compacted": False, "indexed": False, "two_replicas": False}

        def settled() -> bool:
            recalls.append(check_reads(client, name, model, f"while settling {seen}"))
            segs = sealed_segments(cluster.uri(), name)
            seen["compacted"] |= any(s.num_rows > 300 for s in segs)
            desc = client.describe_index(name, "vector")
            seen["indexed"] = (desc.get("state") == "Finished"
                               and int(desc.get("pending_index_rows", 0)) == 0)
            seen["two_replicas"] = bool(segs) and all(len(set(s.nodeIds)) == 2 for s in segs)
            return all(seen.values())

        wait_until(settled, 240, interval=0.5,
                   what="compaction, index builds and placement on both replicas")
        # After the hand-offs, reads are still exact.
        recalls.append(check_reads(client, name, model, "settled"))
    except AssertionError:
        print(cluster.logs())
        raise
    assert min(recalls) >= 0.9, f"recall@10 against brute force fell to {min(recalls)}"


def test_query_node_added_under_load_gets_segments_and_a_terminated_one_hands_off(own_cluster):
    # Many small sealed segments (no merging) so that there is something to balance.
    cluster = own_cluster({"FERROVUS_CORE__SEAL_ROWS": "200",
                           "FERROVUS_CORE__COMPACTION_SMALL_ROWS": "0"},
                          coordinators=1, streaming=1, query=1, data=1, proxies=1)
    client = MilvusClient(uri=cluster.uri())
    name = "scale"
    make_collection(client, name)
    model = Model(seed=11)
    for _ in range(8):
        client.insert(name, model.new_rows(250))
    client.flush(name)
    wait_until(lambda: len(sealed_segments(cluster.uri(), name)) >= 8 and all(
        s.nodeIds for s in sealed_segments(cluster.uri(), name)), 120,
        what="sealed segments placed on the query node")
    (first_node,) = {n for s in sealed_segments(cluster.uri(), name) for n in s.nodeIds}

    stop = threading.Event()
    stats = {"ok": 0, "failed": []}
    keys = list(model.rows)

    def load() -> None:
        c = MilvusClient(uri=cluster.uri())
        rng = np.random.default_rng(3)
        while not stop.is_set():
            pk = keys[int(rng.integers(0, len(keys)))]
            try:
                hits = c.search(name, data=[model.rows[pk].tolist()], limit=5,
                                search_params={"metric_type": "L2", "params": {"ef": 64}})
                n = c.query(name, filter="", output_fields=["count(*)"],
                            consistency_level="Strong")[0]["count(*)"]
                if not hits[0] or hits[0][0]["id"] != pk or n != len(keys):
                    stats["failed"].append(f"wrong answer for {pk}: {hits[0][:2]}, count {n}")
                else:
                    stats["ok"] += 1
            except Exception as e:  # noqa: BLE001 - every failure is reported
                stats["failed"].append(f"{type(e).__name__}: {e}")
        c.close()

    t = threading.Thread(target=load, daemon=True)
    t.start()
    try:
        wait_until(lambda: stats["ok"] >= 5, 60, what="searches under load")
        cluster.add("query")
        wait_until(lambda: len({n for s in sealed_segments(cluster.uri(), name)
                                for n in s.nodeIds}) == 2, 120,
                   what="segments balanced onto the added query node")
        ok_before_stop = stats["ok"]
        cluster.kill("query-1", "TERM")
        wait_until(lambda: {n for s in sealed_segments(cluster.uri(), name)
                            for n in s.nodeIds} - {first_node}
                   == {n for s in sealed_segments(cluster.uri(), name) for n in s.nodeIds}
                   and all(s.nodeIds for s in sealed_segments(cluster.uri(), name)), 120,
                   what="the terminated node's segments on the remaining node")
        wait_until(lambda: stats["ok"] >= ok_before_stop + 10, 60,
                   what="searches after the hand-off")
    finally:
        stop.set()
        t.join(timeout=60)
    if stats["failed"]:
        print(cluster.logs())
    assert not stats["failed"], f"{len(stats['failed'])} failed searches: {stats['failed'][:5]}"


def test_a_request_without_a_coordinator_gets_a_retriable_error_not_a_hang(own_cluster):
    cluster = own_cluster({"FERROVUS_PROXY__RETRY_DEADLINE_MS": "3000"},
                          coordinators=1, streaming=1, query=1, data=1, proxies=1)
    client = MilvusClient(uri=cluster.uri())
    client.create_collection("before", dimension=DIM)
    cluster.kill("coordinator-1", "KILL")

    ch = grpc.insecure_channel(cluster.uri().removeprefix("http://"))
    stub = milvus_pb2_grpc.MilvusServiceStub(ch)
    t0 = time.monotonic()
    r = stub.DescribeCollection(milvus_pb2.DescribeCollectionRequest(collection_name="before"),
                                timeout=60)
    elapsed = time.monotonic() - t0
    # 1 = ServiceNotReady, 2 = ServiceUnavailable: both retriable in Milvus' error table.
    assert r.status.code in (1, 2), r.status
    assert r.status.retriable, r.status
    assert elapsed < 20, f"answered after {elapsed:.1f}s"
    ch.close()

    cluster.start("coordinator-1")
    wait_until(lambda: client.describe_collection("before")["collection_name"] == "before", 60,
               what="DDL served again after the coordinator restarted")


def test_an_unknown_role_is_a_clear_cli_error():
    r = subprocess.run([str(ferrovus_bin()), "run", "gateway"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "gateway" in r.stderr and "coordinator" in r.stderr, r.stderr


def test_a_role_started_before_etcd_waits_for_it_and_says_so(request, tmp_path):
    from conftest import _chosen_kind  # noqa: PLC0415
    if _chosen_kind(request.config) != "cluster":
        pytest.skip("a cluster role against a real etcd (--server=cluster)")
    import shutil  # noqa: PLC0415
    import socket  # noqa: PLC0415

    from cluster_support import http_body  # noqa: PLC0415

    def free_port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    def readyz(port: int) -> tuple[int, str]:
        return http_body(port, "/readyz")

    etcd_port, peer_port, http_port = free_port(), free_port(), free_port()
    env = dict(os.environ, FERROVUS_META__KIND="etcd",
               FERROVUS_ETCD_ENDPOINTS=f"http://127.0.0.1:{etcd_port}",
               FERROVUS_META__ETCD_PREFIX=f"ferrovus/order-{os.getpid()}",
               FERROVUS_STORAGE__KIND="local", FERROVUS_DATA_DIR=str(tmp_path / "data"),
               FERROVUS_GRPC_PORT=str(free_port()), FERROVUS_HTTP_PORT=str(http_port),
               FERROVUS_LOG_FORMAT="text")
    log = open(tmp_path / "coordinator.log", "wb")
    coord = subprocess.Popen([str(ferrovus_bin()), "run", "coordinator"], env=env, stdout=log,
                             stderr=subprocess.STDOUT)
    etcd = None
    try:
        wait_until(lambda: readyz(http_port)[0] == 503 and "waiting for etcd" in readyz(http_port)[1],
                   60, what="/readyz saying the coordinator waits for etcd")
        time.sleep(1.0)  # it keeps waiting (does not exit) while etcd is absent
        assert coord.poll() is None, "the coordinator exited while etcd was absent"
        etcd = subprocess.Popen(
            [shutil.which("etcd") or "etcd", "--data-dir", str(tmp_path / "etcd"),
             "--name", "order", "--listen-client-urls", f"http://127.0.0.1:{etcd_port}",
             "--advertise-client-urls", f"http://127.0.0.1:{etcd_port}",
             "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
             "--initial-cluster", f"order=http://127.0.0.1:{peer_port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: readyz(http_port)[0] == 200, 60,
                   what="the coordinator ready once etcd is up")
        coord.terminate()
        assert coord.wait(timeout=30) == 0
    finally:
        for p in (coord, etcd):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
        log.close()
