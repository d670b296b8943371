"""Partitions of the docker compose cluster (run by scripts/test-compose.sh): a container cut off
from the cluster's private network with `docker network disconnect` while it keeps running, under
the mixed load of the fault tests (insert, upsert, delete, Strong search and query through both
proxies).

1. The active coordinator: the standby takes over (first DDL timed), the cut-off one comes back
   as a standby once reconnected, and etcd's revision history shows every metadata write made by
   the leader of its moment (no write of the old term after the new election).
2. A streaming node that owns a channel: its channels move, writes resume (longest stall
   reported), it serves again once reconnected.
After both: every acknowledged write is present exactly once with its last value, no deleted row
is back, Strong searches match brute force.

    python compose_partitions.py CONFIG_JSON
CONFIG_JSON: {"network": NAME, "containers": {service: id}, "proxies": [uri, ...], "etcd": url,
              "etcd_prefix": "ferrovus/"}
Roles' HTTP ports are read at their container address on the network (published ports do not
survive a disconnect).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pymilvus import MilvusClient  # noqa: E402

from cluster_support import (MixedLoad, audit_leader_writes, first_success,  # noqa: E402
                             http_body, make_collection)
from helpers import wait_until  # noqa: E402

cfg = json.loads(sys.argv[1])


def say(msg: str) -> None:
    print(f"  partitions: {msg}", flush=True)


def docker_network(action: str, service: str) -> None:
    args = ["docker", "network", action]
    if action == "connect":
        args += ["--alias", service]  # the service name the other roles resolve
    subprocess.run([*args, cfg["network"], cfg["containers"][service]], check=True,
                   capture_output=True, text=True)


def http(service: str, path: str) -> tuple[int, str]:
    """GET http://<container address>:9091<path> ((0, "") while it has no address)."""
    ip = subprocess.run(
        ["docker", "inspect", "-f",
         "{{(index .NetworkSettings.Networks \"%s\").IPAddress}}" % cfg["network"],
         cfg["containers"][service]], capture_output=True, text=True).stdout.strip()
    if not ip or ip == "<no value>":
        return 0, ""
    return http_body(9091, path, host=ip)


def ready(service: str) -> tuple[int, str]:
    return http(service, "/readyz")


def leader() -> str | None:
    for s in ("coordinator-1", "coordinator-2"):
        code, body = ready(s)
        if code == 200 and "standby" not in body:
            return s
    return None


def channels(service: str) -> int:
    code, body = http(service, "/metrics")
    owned = 0
    for line in body.splitlines() if code == 200 else []:
        if line.startswith("ferrovus_streaming_channels{") and 'state="ready"' in line:
            owned += int(float(line.split()[-1]))
    return owned


client = MilvusClient(uri=cfg["proxies"][0])
make_collection(client, "partitions", shards=2)
load = MixedLoad(cfg["proxies"], "partitions", writers=2, readers=2).start()
try:
    wait_until(lambda: load.write_ok >= 10 and load.read_ok >= 10, 90, what="load")

    # 1. the active coordinator cut off
    old = wait_until(leader, 60, what="a leading coordinator")
    new = "coordinator-2" if old == "coordinator-1" else "coordinator-1"
    t0 = time.monotonic()
    docker_network("disconnect", old)
    wait_until(lambda: leader() == new, 60, what=f"{new} leading")
    ddl = first_success(lambda: client.create_collection("during_partition", dimension=4), 60)
    takeover = time.monotonic() - t0
    # The target is 5 s (leader lease 3 s + election); the bound leaves room for a loaded machine.
    assert takeover < 10, f"the first DDL after the cut took {takeover:.2f}s"
    say(f"{old} cut off: {new} leads, first DDL {takeover:.2f}s after the cut "
        f"(DDL retried for {ddl:.2f}s)")
    writes, reads = load.write_ok, load.read_ok
    wait_until(lambda: load.write_ok > writes + 10 and load.read_ok > reads + 10, 90,
               what="load progressing during the partition")
    docker_network("connect", old)
    wait_until(lambda: (lambda r: r[0] == 200 and "standby" in r[1])(ready(old)), 90,
               what=f"{old} back as a standby")
    assert leader() == new, "the reconnected coordinator must not lead"
    say(f"{old} reconnected: a standby; {new} still leads")

    # 2. a streaming node that owns a channel cut off
    victim = wait_until(lambda: next((s for s in ("streaming-1", "streaming-2")
                                      if channels(s) > 0), None), 60,
                        what="a streaming node owning a channel")
    owned = channels(victim)
    writes = load.write_ok
    t0 = time.monotonic()
    docker_network("disconnect", victim)
    wait_until(lambda: load.write_ok >= writes + 30, 120, what="writes after the channels moved")
    stall = load.write_stall(t0)
    docker_network("connect", victim)
    wait_until(lambda: ready(victim)[0] == 200, 120, what=f"{victim} ready again")
    say(f"{victim} (owning {owned} channel(s)) cut off: longest write stall {stall:.2f}s; "
        f"ready again after reconnecting")
finally:
    load.finish()

load.verify(client)
say(f"verified: {len(load.rows)} acknowledged rows exactly once, deletes stay deleted, Strong "
    f"searches match brute force ({load.write_ok} writes, {load.read_ok} reads ok, "
    f"{len(load.read_failed)} reads failed)")
terms = audit_leader_writes(cfg["etcd"], cfg["etcd_prefix"])
assert len(terms) >= 2 and all(terms.values()), terms
say(f"etcd audit: every metadata write came from the leader of its moment; writes per term "
    f"(election revision: writes) {terms}")
