"""Fault tests on a real multi-process cluster (``--server=cluster``; skipped otherwise): real
etcd, a real S3-compatible server, the real binary, processes killed with SIGKILL.

Each runs a mixed load (insert, upsert, delete, Strong search and query from several pymilvus
clients; see ``cluster_support.MixedLoad``) through the fault and asserts after recovery that
every acknowledged write is present exactly once with its last value, no deleted row came back,
and searches match brute force. The fast part runs here (a few kills); the repeated kills and
the chaos run belong to the failover benchmark.
"""

from __future__ import annotations

import os
import time

import numpy as np
from pymilvus import MilvusClient

from cluster_support import MixedLoad, active_coordinator, first_success, make_collection
from helpers import wait_until


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_coordinator_sigkill_takeover_under_load(own_cluster):
    cluster = own_cluster({}, coordinators=2, streaming=2, query=1, data=1, proxies=1)
    client = MilvusClient(uri=cluster.uri())
    make_collection(client, "coordkill")
    load = MixedLoad(cluster.uri(), "coordkill").start()
    takeovers = []
    try:
        wait_until(lambda: load.write_ok >= 10 and load.read_ok >= 10, 60, what="load running")
        for round_ in range(3):
            leader = wait_until(lambda: active_coordinator(cluster), 30, what="a leader")
            writes_before, reads_before = load.write_ok, load.read_ok
            t0 = time.monotonic()
            cluster.kill(leader, "KILL")
            ddl = first_success(lambda: client.create_collection(f"ddl_{round_}", dimension=4))
            search = first_success(lambda: client.search(
                "coordkill", data=[[0.1] * 8], limit=3, consistency_level="Strong"))
            takeovers.append((round(ddl, 2), round(time.monotonic() - t0, 2)))
            # DML and search went on meanwhile (they do not need the coordinator).
            wait_until(lambda: load.write_ok > writes_before + 5 and load.read_ok > reads_before + 5,
                       60, what="load progressing after the takeover")
            cluster.start(leader)  # back as the standby
    finally:
        load.finish()
    print(f"coordinator takeovers (s to first DDL, to first Strong search): {takeovers}")
    assert all(d <= 10 for d, _ in takeovers), f"slow takeover: {takeovers}"
    load.verify(client)


def test_streaming_node_sigkill_moves_its_channels_and_loses_nothing(own_cluster):
    cluster = own_cluster({}, coordinators=1, streaming=2, query=1, data=1, proxies=1)
    client = MilvusClient(uri=cluster.uri())
    make_collection(client, "streamkill", shards=2)
    load = MixedLoad(cluster.uri(), "streamkill", writers=3, readers=1).start()
    try:
        wait_until(lambda: load.write_ok >= 20, 60, what="writes running")
        t0 = time.monotonic()
        cluster.kill("streaming-1", "KILL")
        writes = load.write_ok
        wait_until(lambda: load.write_ok >= writes + 30, 60, what="writes after the kill")
    finally:
        load.finish()
    # Every insert spans both shards, so writes stall until the channel has a new owner.
    stall = load.write_stall(t0)
    print(f"streaming node SIGKILL: longest write stall {stall:.2f}s; "
          f"{len(load.write_retries)} write attempts retried")
    assert stall <= 5.0, f"writes stalled {stall:.2f}s after the streaming node's kill"
    load.verify(client)


def test_query_node_sigkill_with_two_replicas_keeps_searches_succeeding(own_cluster):
    cluster = own_cluster({}, coordinators=1, streaming=1, query=2, data=1, proxies=1)
    client = MilvusClient(uri=cluster.uri())
    make_collection(client, "querykill")
    client.release_collection("querykill")
    vecs = np.random.default_rng(5).standard_normal((2000, 8)).astype(np.float32)
    rows = [{"id": i, "vector": v.tolist()} for i, v in enumerate(vecs)]
    client.insert("querykill", rows)
    client.flush("querykill")
    client.load_collection("querykill", replica_number=2)
    load = MixedLoad(cluster.uri(), "querykill", writers=1, readers=3)
    load.rows.update({r["id"]: np.asarray(r["vector"], dtype=np.float32) for r in rows})
    load.start()
    try:
        wait_until(lambda: load.read_ok >= 30, 60, what="searches running")
        reads = load.read_ok
        cluster.kill("query-1", "KILL")
        wait_until(lambda: load.read_ok >= reads + 100, 120, what="searches after the kill")
    finally:
        load.finish()
    total = load.read_ok + len(load.read_failed)
    rate = load.read_ok / total
    print(f"search/query success during the query-node loss: {rate:.4%} of {total}")
    assert not load.read_failed, f"{len(load.read_failed)} failed reads: {load.read_failed[:5]}"
    load.verify(client)


def test_proxy_and_data_node_sigkill(own_cluster):
    cluster = own_cluster({"FERROVUS_CORE__SEAL_ROWS": "500"},
                          coordinators=1, streaming=1, query=1, data=2, proxies=2)
    client2 = MilvusClient(uri=cluster.uri("proxy-2"))
    make_collection(client2, "proxykill")
    load = MixedLoad(cluster.uri("proxy-2"), "proxykill").start()
    try:
        wait_until(lambda: load.write_ok >= 10, 60, what="load on proxy-2")
        cluster.kill("proxy-1", "KILL")  # clients of the other proxy do not notice
        cluster.kill("data-1", "KILL")   # its index builds / compactions are re-queued
        writes = load.write_ok
        wait_until(lambda: load.write_ok >= writes + 30, 60, what="load after the kills")
    finally:
        load.finish()
    assert not load.read_failed, load.read_failed[:5]
    client2.flush("proxykill")
    wait_until(lambda: int(client2.describe_index("proxykill", "vector")
                           .get("pending_index_rows", 1)) == 0, 120,
               what="index builds finished on the surviving data node")
    load.verify(client2)


def test_etcd_restart_under_load_is_survived(own_cluster):
    cluster = own_cluster({}, coordinators=2, streaming=1, query=1, data=1, proxies=1)
    client = MilvusClient(uri=cluster.uri())
    make_collection(client, "etcdrestart")
    load = MixedLoad(cluster.uri(), "etcdrestart").start()
    try:
        wait_until(lambda: load.write_ok >= 10 and load.read_ok >= 10, 60, what="load running")
        roles = {n: p["pid"] for n, p in cluster.state()["procs"].items()
                 if p["role"] not in ("etcd", "s3")}
        cluster.kill("etcd", "KILL")
        cluster.start("etcd")
        writes, reads = load.write_ok, load.read_ok
        wait_until(lambda: load.write_ok >= writes + 20 and load.read_ok >= reads + 20, 90,
                   what="load progressing after the etcd restart")
        # No role process exited: sessions were re-established, not lost.
        gone = [n for n, pid in roles.items() if not pid_alive(pid)]
        assert not gone, f"exited during the etcd restart: {gone}\n{cluster.logs()}"
        wait_until(lambda: active_coordinator(cluster), 30, what="a leading coordinator")
    finally:
        load.finish()
    load.verify(client)


def test_each_member_of_a_three_member_etcd_restarted_in_turn_under_load(own_cluster):
    cluster = own_cluster({}, etcd=3, coordinators=2, streaming=1, query=1, data=1, proxies=1)
    client = MilvusClient(uri=cluster.uri())
    make_collection(client, "etcd3")
    load = MixedLoad(cluster.uri(), "etcd3").start()
    roles = {n: p["pid"] for n, p in cluster.state()["procs"].items()
             if p["role"] not in ("etcd", "s3")}
    try:
        wait_until(lambda: load.write_ok >= 10 and load.read_ok >= 10, 60, what="load running")
        for member in ("etcd-1", "etcd-2", "etcd-3"):  # one of them leads etcd: all are hit
            cluster.kill(member, "KILL")
            writes, reads = load.write_ok, load.read_ok
            wait_until(lambda: load.write_ok >= writes + 10 and load.read_ok >= reads + 10, 60,
                       what=f"load progressing with {member} down")
            cluster.start(member)
        gone = [n for n, pid in roles.items() if not pid_alive(pid)]
        assert not gone, f"exited during the etcd member restarts: {gone}\n{cluster.logs()}"
        client.create_collection("after_etcd_restarts", dimension=4)
    finally:
        load.finish()
    load.verify(client)
