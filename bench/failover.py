#!/usr/bin/env python3
"""Failover benchmark: repeated kills of real processes of a local cluster (scripts/cluster: real
etcd, real S3-compatible server, every role its own process) under a mixed pymilvus load.

    python3 bench/failover.py                      # everything (~10 min with debug binaries)
    python3 bench/failover.py --kills 3 --chaos-s 30   # shorter
    python3 bench/failover.py --only coordinator,streaming,query,chaos

Measures
* coordinator takeover: SIGKILL the leading coordinator N times (restarting it as the standby
  each time); seconds from the kill to the first successful DDL and to the first successful
  Strong search;
* streaming-node takeover: SIGKILL a streaming node N times under writes (restarting it);
  the longest time without any acknowledged write after the kill;
* query-node loss with replica_number=2: success rate of Strong searches and queries while a
  query node is SIGKILLed (N times, restarted in between);
* chaos: a random role process (coordinator, streaming, query, data or proxy) SIGKILLed every
  `--chaos-every` seconds for `--chaos-s` seconds and restarted, clients spread over both
  proxies: read success rate, write attempts that needed a retry, recovery time (from the
  last kill to a successful Strong search), and that every acknowledged write survived.
Every scenario ends by checking the data (every acknowledged write exactly once with its last
value, no deleted row, searches match brute force). Results: bench/results/failover-<date>.json
and .md. Takeover figures are dominated by timeouts (leader lease, probes), not by CPU, so the
debug binary gives the same figures as the release one.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "engine" / "tests" / "python"


def reexec_in_venv() -> None:
    if os.environ.get("FERROVUS_BENCH_VENV") == "1":
        return
    py = subprocess.run([str(ROOT / "scripts" / "pyenv.sh")], capture_output=True, text=True,
                        check=True).stdout.strip().splitlines()[-1]
    env = dict(os.environ, FERROVUS_BENCH_VENV="1")
    os.execve(py, [py, __file__, *sys.argv[1:]], env)


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = min(len(xs) - 1, max(0, round(p / 100 * (len(xs) - 1))))
    return xs[k]


def main() -> None:
    reexec_in_venv()
    sys.path.insert(0, str(TESTS))
    import numpy as np  # noqa: PLC0415
    from pymilvus import MilvusClient  # noqa: PLC0415

    from cluster_support import (  # noqa: PLC0415
        MixedLoad, OwnCluster, active_coordinator, first_success, make_collection)
    from helpers import wait_until  # noqa: PLC0415

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=10, help="kills per targeted scenario")
    ap.add_argument("--chaos-s", type=float, default=120.0)
    ap.add_argument("--chaos-every", type=float, default=5.0)
    ap.add_argument("--only", default="coordinator,streaming,query,chaos")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = ap.parse_args()
    only = set(args.only.split(","))
    work = Path(tempfile.mkdtemp(prefix="ferrovus-failover-"))
    results: dict = {"date": dt.date.today().isoformat(), "kills": args.kills,
                     "binary": os.environ.get("FERROVUS_BIN", "target/debug/ferrovus"),
                     "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                              capture_output=True, text=True).stdout.strip()}

    def cluster(name: str, **counts) -> OwnCluster:
        print(f"== {name}: starting a cluster", flush=True)
        return OwnCluster(work / name, {}, **counts).up()

    if "coordinator" in only:
        c = cluster("coordinator", coordinators=2, streaming=1, query=1, data=1, proxies=1)
        try:
            client = MilvusClient(uri=c.uri())
            make_collection(client, "fo")
            load = MixedLoad(c.uri(), "fo").start()
            wait_until(lambda: load.read_ok >= 10, 60)
            ddl, search = [], []
            for i in range(args.kills):
                leader = wait_until(lambda: active_coordinator(c), 60, what="a leader")
                t0 = time.monotonic()
                c.kill(leader, "KILL")
                # Both measured from the kill, concurrently.
                searcher = MilvusClient(uri=c.uri())
                with ThreadPoolExecutor(2) as pool:
                    f_ddl = pool.submit(first_success, lambda: client.create_collection(
                        f"ddl_{i}", dimension=4))
                    f_search = pool.submit(first_success, lambda: searcher.search(
                        "fo", data=[[0.1] * 8], limit=3, consistency_level="Strong"))
                    ddl.append(f_ddl.result())
                    search.append(f_search.result())
                searcher.close()
                print(f"  kill {i + 1}: DDL after {ddl[-1]:.2f}s, Strong search after "
                      f"{search[-1]:.2f}s", flush=True)
                c.start(leader)
            load.finish()
            load.verify(client)
            results["coordinator"] = {
                "ddl_s": ddl, "ddl_p50_s": pct(ddl, 50), "ddl_p99_s": pct(ddl, 99),
                "strong_search_s": search, "strong_search_p50_s": pct(search, 50),
                "strong_search_p99_s": pct(search, 99),
                "reads_ok": load.read_ok, "reads_failed": len(load.read_failed),
                "writes_retried": len(load.write_retries), "verified": True}
        finally:
            c.down()

    if "streaming" in only:
        c = cluster("streaming", coordinators=1, streaming=2, query=1, data=1, proxies=1)
        try:
            client = MilvusClient(uri=c.uri())
            make_collection(client, "fo", shards=2)
            load = MixedLoad(c.uri(), "fo", writers=3, readers=1).start()
            wait_until(lambda: load.write_ok >= 20, 60)
            stalls = []
            for i in range(args.kills):
                victim = f"streaming-{1 + i % 2}"
                t0 = time.monotonic()
                c.kill(victim, "KILL")
                n = load.write_ok
                wait_until(lambda: load.write_ok >= n + 30, 120, what="writes after the kill")
                stalls.append(load.write_stall(t0))
                print(f"  kill {i + 1} ({victim}): longest write stall {stalls[-1]:.2f}s", flush=True)
                c.start(victim)
            load.finish()
            load.verify(client)
            results["streaming"] = {
                "write_stall_s": stalls, "p50_s": pct(stalls, 50), "p99_s": pct(stalls, 99),
                "writes_retried_by_client": len(load.write_retries), "verified": True}
        finally:
            c.down()

    if "query" in only:
        c = cluster("query", coordinators=1, streaming=1, query=3, data=1, proxies=1)
        try:
            client = MilvusClient(uri=c.uri())
            make_collection(client, "fo")
            client.release_collection("fo")
            load = MixedLoad(c.uri(), "fo", writers=1, readers=3)
            vecs = np.random.default_rng(5).standard_normal((3000, 8)).astype(np.float32)
            client.insert("fo", [{"id": i, "vector": v.tolist()} for i, v in enumerate(vecs)])
            load.rows.update(dict(enumerate(vecs)))
            client.flush("fo")
            client.load_collection("fo", replica_number=2)
            load.start()
            wait_until(lambda: load.read_ok >= 30, 60)
            for i in range(args.kills):
                victim = f"query-{1 + i % 3}"
                c.kill(victim, "KILL")
                n = load.read_ok
                wait_until(lambda: load.read_ok >= n + 50, 120, what="reads after the kill")
                c.start(victim)
                print(f"  kill {i + 1} ({victim}): reads ok {load.read_ok}, "
                      f"failed {len(load.read_failed)}", flush=True)
            load.finish()
            load.verify(client)
            total = load.read_ok + len(load.read_failed)
            results["query"] = {"reads": total, "failed": len(load.read_failed),
                                "success_rate": load.read_ok / total,
                                "failures": [f for _, f in load.read_failed[:10]], "verified": True}
        finally:
            c.down()

    if "chaos" in only:
        c = cluster("chaos", coordinators=2, streaming=2, query=2, data=1, proxies=2)
        try:
            client = MilvusClient(uri=c.uri("proxy-1"))
            make_collection(client, "fo", shards=2)
            client.release_collection("fo")
            client.load_collection("fo", replica_number=2)
            load = MixedLoad([c.uri("proxy-1"), c.uri("proxy-2")], "fo", writers=2,
                             readers=4).start()
            wait_until(lambda: load.read_ok >= 20, 60)
            rng = random.Random(42)
            names = [n for n, p in c.state()["procs"].items() if p["role"] not in ("etcd", "s3")]
            kills = []
            end = time.monotonic() + args.chaos_s
            while time.monotonic() < end:
                victim = rng.choice(names)
                c.kill(victim, "KILL")
                kills.append(victim)
                c.start(victim)
                print(f"  chaos: killed and restarted {victim}", flush=True)
                time.sleep(max(0.0, args.chaos_every - 0.5))
            t_last = time.monotonic()
            recovery = first_success(lambda: client.search(
                "fo", data=[[0.1] * 8], limit=3, consistency_level="Strong"))
            load.finish()
            load.verify(client)
            total = load.read_ok + len(load.read_failed)
            results["chaos"] = {"seconds": args.chaos_s, "kills": kills,
                                "reads": total, "read_success_rate": load.read_ok / total,
                                "writes_acknowledged": load.write_ok,
                                "write_attempts_retried": len(load.write_retries),
                                "recovery_after_last_kill_s": recovery,
                                "since_last_kill_s": time.monotonic() - t_last,
                                "failures": [f for _, f in load.read_failed[:10]],
                                "verified": True}
        finally:
            c.down()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"failover-{results['date']}"
    stem.with_suffix(".json").write_text(json.dumps(results, indent=2))
    lines = [f"# Failover benchmark {results['date']} (commit {results['commit']})", "",
             "Real processes on one 2-core machine (scripts/cluster: real etcd and S3-compatible "
             "server); SIGKILL; mixed pymilvus load (insert, upsert, delete, Strong search and "
             "query); after each scenario every acknowledged write was checked present exactly "
             "once and searches against brute force.", "",
             "| scenario | figure | value |", "|---|---|---|"]
    if "coordinator" in results:
        r = results["coordinator"]
        lines += [f"| coordinator SIGKILL ×{len(r['ddl_s'])} | takeover to first DDL p50 / p99 | "
                  f"{r['ddl_p50_s']:.2f} s / {r['ddl_p99_s']:.2f} s |",
                  f"| | to first Strong search p50 / p99 | {r['strong_search_p50_s']:.2f} s / "
                  f"{r['strong_search_p99_s']:.2f} s |",
                  f"| | reads failed during the takeovers | {r['reads_failed']} of "
                  f"{r['reads_ok'] + r['reads_failed']} |"]
    if "streaming" in results:
        r = results["streaming"]
        lines += [f"| streaming node SIGKILL ×{len(r['write_stall_s'])} | longest write stall "
                  f"p50 / p99 | {r['p50_s']:.2f} s / {r['p99_s']:.2f} s |"]
    if "query" in results:
        r = results["query"]
        lines += [f"| query node SIGKILL ×{args.kills}, 2 replicas | read success | "
                  f"{r['success_rate']:.4%} of {r['reads']} |"]
    if "chaos" in results:
        r = results["chaos"]
        lines += [f"| chaos: a random role SIGKILLed every {args.chaos_every:.0f} s for "
                  f"{r['seconds']:.0f} s ({len(r['kills'])} kills) | read success | "
                  f"{r['read_success_rate']:.4%} of {r['reads']} |",
                  f"| | recovery after the last kill | {r['recovery_after_last_kill_s']:.2f} s |",
                  f"| | acknowledged writes lost | 0 (verified) |"]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
