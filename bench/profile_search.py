#!/usr/bin/env python3
"""Where a one-query search spends CPU: `perf record` on the server processes of `ferrovus`
(standalone) or `cluster` during a single-client search loop, then the top symbols of each
process. Used for the cluster section of results/ANALYSIS.md.

    bench/profile_search.py --system cluster --dataset gmm128-100k --ef 16 --seconds 15

Needs `perf` (root or perf_event_paranoid <= 1) and release binaries with line tables (the
workspace's release profile); binaries as bench/run.py finds them ($CARGO_TARGET_DIR or
target/, FERROVUS_BIN). Prints a text report; writes nothing under bench/results.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))


CATEGORIES = [  # first match wins; on the symbol name (demangled) or the DSO
    ("HNSW / distance", ("ferrovus_index::",)),
    ("core read path", ("ferrovus_core::",)),
    ("msgpack (rmp/serde)", ("rmp::", "rmp_serde", "serde::", "serde_bytes", "<serde")),
    ("protobuf (prost)", ("prost::", "ferrovus_proto::")),
    ("h2 / hyper / tonic / tower", ("h2::", "hyper", "tonic::", "tower", "http::", "bytes::")),
    ("tokio runtime", ("tokio::", "mio::", "parking_lot", "std::sys::sync", "std::thread")),
    ("ferrovus server", ("ferrovus_server::", "ferrovus::")),
    ("malloc / free / memcpy", ("malloc", "free", "memmove", "memcpy", "memset", "realloc", "_int_", "alloc::")),
    ("kernel", ("[kernel.kallsyms]",)),
    ("libc other", ("libc.so",)),
]


def switches(pid: int) -> tuple[int, int]:
    """(voluntary, involuntary) context switches of every thread of `pid`."""
    vol = inv = 0
    for t in Path(f"/proc/{pid}/task").iterdir():
        try:
            for ln in (t / "status").read_text().splitlines():
                if ln.startswith("voluntary_ctxt_switches"):
                    vol += int(ln.split()[1])
                elif ln.startswith("nonvoluntary_ctxt_switches"):
                    inv += int(ln.split()[1])
        except OSError:
            pass
    return vol, inv


def category(key: str) -> str:
    for name, needles in CATEGORIES:
        if any(n in key for n in needles):
            return name
    return "other"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--system", choices=["ferrovus", "cluster"], default="cluster")
    ap.add_argument("--dataset", default="gmm128-100k", help="gmm<dim>-<n>k")
    ap.add_argument("--ef", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--no-perf", action="store_true", help="only CPU and context switches per query")
    ap.add_argument("--cluster", default="coordinator=1,streaming=1,query=1,data=1,proxy=1")
    args = ap.parse_args()

    import numpy as np  # noqa: PLC0415
    from pymilvus import DataType, MilvusClient  # noqa: PLC0415

    import run  # noqa: PLC0415
    from benchlib import data, systems  # noqa: PLC0415

    dim, n = args.dataset[3:].split("-")
    n = int(n[:-1]) * (1000 if n.endswith("k") else 1_000_000)
    ds = data.gmm(run.DATA, n, int(dim), 1000)
    binary = run.bins(True)["ferrovus"]
    wd = Path(tempfile.mkdtemp(prefix="profile-", dir=run.DATA))
    srv = (systems.ClusterServer(wd, binary, run.cluster_counts(args.cluster)) if args.system == "cluster"
           else systems.Server("ferrovus", wd, binary))
    srv.start()
    try:
        client = MilvusClient(srv.uri)
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vec", DataType.FLOAT_VECTOR, dim=ds.dim)
        ip = client.prepare_index_params()
        ip.add_index("vec", index_name="vec", index_type="HNSW", metric_type=ds.metric,
                     params={"M": 16, "efConstruction": 200})
        client.create_collection("bench", schema=schema, index_params=ip, consistency_level="Bounded", shards_num=1)
        base = ds.load("base")
        for s in range(0, ds.n, 1000):
            vec = np.asarray(base[s:s + 1000])
            client.insert("bench", [{"id": s + i, "vec": v} for i, v in enumerate(vec)])
        client.flush("bench")
        srv.wait_loaded(client, "bench", ds.n, time.monotonic() + 3600)
        systems.wait_idle(srv.cpu)
        queries = np.asarray(ds.load("queries"))
        sp = {"metric_type": ds.metric, "params": {"ef": args.ef}}

        def one(i):
            client.search("bench", data=[queries[i % len(queries)]], limit=10, search_params=sp,
                          anns_field="vec", output_fields=["id"])
        for i in range(50):
            one(i)
        pids = srv.procs()
        out = wd / "perf.data"
        perf = None if args.no_perf else subprocess.Popen(
            ["perf", "record", "-F", "999", "-o", str(out), "-p", ",".join(map(str, pids.values()))],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if perf:
            time.sleep(1.0)
        x0 = {n: switches(p) for n, p in pids.items()}
        c0, t0, done = srv.cpu_split(), time.perf_counter(), 0
        while time.perf_counter() - t0 < args.seconds:
            one(done)
            done += 1
        split = systems._split_delta(c0, srv.cpu_split())
        elapsed = time.perf_counter() - t0
        ctx = {n: (switches(p)[0] - x0[n][0], switches(p)[1] - x0[n][1]) for n, p in pids.items()}
        if perf:
            perf.send_signal(2)
            perf.wait(timeout=120)
        print(f"{args.system}, {args.dataset}, ef={args.ef}: {done} queries in {elapsed:.1f}s "
              f"({done / elapsed:,.0f} QPS, 1 client)")
        for name, v in sorted(split.items(), key=lambda x: -x[1]):
            cs = ctx.get(name)
            print(f"  {name:14} {v * 1e3 / done:.3f} ms CPU/query"
                  + (f", {cs[0] / done:.1f} voluntary + {cs[1] / done:.1f} involuntary context switches/query"
                     if cs else ""))
        if not perf:
            client.close()
            return 0
        script = subprocess.run(["perf", "script", "-i", str(out), "-F", "pid,ip,sym,dso"],
                                capture_output=True, text=True).stdout
        samples: dict[int, dict[str, int]] = {}
        for ln in script.splitlines():
            parts = ln.split(None, 2)
            if len(parts) < 3 or not parts[0].isdigit():
                continue
            body = parts[2].strip()
            sym, _, dso = body.rpartition(" (")
            sym = sym.split("+0x")[0].strip()
            samples.setdefault(int(parts[0]), {}).setdefault(f"{sym} ({dso}", 0)
            samples[int(parts[0])][f"{sym} ({dso}"] += 1
        for name, pid in pids.items():
            per = samples.get(pid, {})
            total = sum(per.values())
            if not total:
                continue
            ms = split.get(name, 0) * 1e3 / done
            print(f"\n== {name} (pid {pid}): {total} samples, {ms:.3f} ms CPU/query")
            cats: dict[str, int] = {}
            for k, v in per.items():
                cats[category(k)] = cats.get(category(k), 0) + v
            print("  by component: " + ", ".join(f"{c} {v * 100 / total:.0f}%"
                                                   for c, v in sorted(cats.items(), key=lambda x: -x[1])))
            for k, v in sorted(per.items(), key=lambda x: -x[1])[:args.top]:
                print(f"  {v * 100 / total:5.1f}%  {k[:150]}")
        client.close()
    finally:
        srv.stop()
        subprocess.run(["rm", "-rf", str(wd)])
    return 0


if __name__ == "__main__":
    if sys.prefix == sys.base_prefix:
        py = subprocess.run([str(BENCH.parent / "scripts" / "pyenv.sh")], check=True, capture_output=True,
                            text=True).stdout.strip().splitlines()[-1]
        os.execv(py, [py, str(Path(__file__).resolve()), *sys.argv[1:]])
    sys.exit(main())
