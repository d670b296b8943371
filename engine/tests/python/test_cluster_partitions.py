"""Partitions on a real multi-process cluster (``--server=cluster``; skipped otherwise): one
process cut off from etcd while it keeps running and keeps talking to the other processes. The
cut is a black-hole relay on loopback in front of etcd for that process alone
(``cluster_support.Relay``): its etcd requests go unanswered, nothing is refused.

Each runs the mixed load of the fault tests through the partition and checks after healing that
every acknowledged write is present exactly once with its last value and no deleted row is back.
"""

from __future__ import annotations

import time

from pymilvus import MilvusClient

from cluster_support import (MixedLoad, active_coordinator, audit_leader_writes, cluster_etcd,
                             http_body, log_lines, log_times, make_collection, reroute_etcd)
from helpers import wait_until


def test_a_coordinator_cut_off_from_etcd_stops_leading_before_the_standby_takes_over(own_cluster):
    cluster = own_cluster({}, coordinators=2, streaming=1, query=1, data=1, proxies=1)
    # coordinator-1 talks to etcd through a relay; make it the leader.
    relay = reroute_etcd(cluster, "coordinator-1")
    try:
        if wait_until(lambda: active_coordinator(cluster), 30, what="a leader") != "coordinator-1":
            cluster.kill("coordinator-2", "KILL")
            wait_until(lambda: active_coordinator(cluster) == "coordinator-1", 30,
                       what="coordinator-1 leading")
            cluster.start("coordinator-2")
        client = MilvusClient(uri=cluster.uri())
        make_collection(client, "cut")
        load = MixedLoad(cluster.uri(), "cut").start()
        try:
            wait_until(lambda: load.write_ok >= 10 and load.read_ok >= 10, 60, what="load")
            t0 = time.monotonic()
            relay.cut()
            wait_until(lambda: active_coordinator(cluster) == "coordinator-2", 30,
                       what="the standby leading")
            # DDL is served by the new leader while the old one still runs, cut off.
            client.create_collection("during_cut", dimension=4)
            takeover = time.monotonic() - t0
            writes, reads = load.write_ok, load.read_ok
            wait_until(lambda: load.write_ok > writes + 10 and load.read_ok > reads + 10, 60,
                       what="load progressing during the partition")
            # The old leader is not leading: it answers as a standby or not ready.
            port = cluster.state()["procs"]["coordinator-1"]["http_port"]
            code, body = http_body(port, "/readyz")
            assert code != 200 or "standby" in body, (code, body)
            relay.heal()
            wait_until(lambda: "standby" in http_body(port, "/readyz")[1], 60,
                       what="the old leader back as a standby")
        finally:
            load.finish()
        print(f"coordinator cut off from etcd: DDL served by the standby {takeover:.2f}s later")
        # The audit: the old leader stopped acting before the new one took over (one clock: the
        # processes share the machine's), and it never took over again.
        stopped = log_times(cluster, "coordinator-1", "leadership lost: stopped acting")
        took = log_times(cluster, "coordinator-2", "took over the catalogue")
        assert stopped and took, (stopped, took, cluster.logs())
        assert stopped[-1] < took[-1], f"old leader stopped at {stopped[-1]}, new took over at {took[-1]}"
        # The etcd audit: every metadata write in the revision history came from the leader of
        # its moment; the cut-off leader's term wrote nothing after the new one was elected.
        terms = audit_leader_writes(*cluster_etcd(cluster))
        assert len(terms) >= 2 and all(terms.values()), terms
        print(f"metadata writes per leadership term (election revision: writes): {terms}")
        assert client.has_collection("during_cut")
        load.verify(client)
    finally:
        relay.close()


def test_a_streaming_node_cut_off_from_etcd_loses_its_channel_and_no_acknowledged_write(own_cluster):
    cluster = own_cluster({}, coordinators=1, streaming=2, query=1, data=1, proxies=1)
    relay = reroute_etcd(cluster, "streaming-1")
    try:
        # Its second start (through the relay) logs its new node id.
        started = wait_until(lambda: log_lines(
            cluster, "streaming-1", "node started role=streaming node_id=")[1:], 30,
            what="the restarted node's id")
        nid = started[-1].split("node_id=")[1].split()[0]
        client = MilvusClient(uri=cluster.uri())
        make_collection(client, "cut", shards=2)
        wait_until(lambda: any(f"to={nid} " in line for line in log_lines(
            cluster, "coordinator-1", "channel assigned")), 60,
            what=f"a channel on the node to cut off ({nid})")
        load = MixedLoad(cluster.uri(), "cut", writers=3, readers=1).start()
        try:
            wait_until(lambda: load.write_ok >= 20, 60, what="writes")
            t0 = time.monotonic()
            relay.cut()
            # Its session expires; its channel moves (new term, fenced log); the proxies' stale
            # routes are refused and refreshed.
            wait_until(lambda: log_lines(cluster, "coordinator-1", f"from=Some({nid})"), 60,
                       what="the channel moved off the cut node")
            moved = time.monotonic() - t0
            writes = load.write_ok
            wait_until(lambda: load.write_ok >= writes + 30, 90, what="writes after the move")
            stall = load.write_stall(t0)
            relay.heal()
            # The cut-off process did not exit: it started its role afresh and, etcd reachable
            # again, registered a new session and serves as a new node.
            proc = cluster.state()["procs"]["streaming-1"]
            wait_until(lambda: http_body(proc["http_port"], "/readyz")[0] == 200, 60,
                       what="the cut-off node ready again after healing")
            assert log_lines(cluster, "streaming-1", "starting the role afresh")
            wait_until(lambda: len(log_lines(
                cluster, "streaming-1", "node started role=streaming")) >= 3, 30,
                what="the cut-off node registered again with a new session")
        finally:
            load.finish()
        print(f"streaming node cut off from etcd: channel moved after {moved:.2f}s, "
              f"longest write stall {stall:.2f}s")
        load.verify(client)
    finally:
        relay.close()
