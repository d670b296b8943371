#!/usr/bin/env python3
"""Side-by-side: Ferrovus HNSW (engine/index example `ann_bench`) vs hnswlib, same data, same run.

    pip install hnswlib numpy
    cargo build --release -p ferrovus-index --example ann_bench
    python3 bench/hnsw_vs_hnswlib.py [--n 100000] [--dim 128] [--data normal|clustered] \
        [--metric l2|ip|cosine] [--ef 16,32,64,128,256] [--repeat 2]

hnswlib: M=16, efConstruction=200, built with 2 threads, searched with 1 thread, one query per
knn_query call. Ours: the same parameters through the example binary (one query per search call,
one thread). Both are scored against the same exact ground truth (numpy, float64).
"""

import argparse
import os
import re
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "examples", "ann_bench")


def make_data(kind, n, nq, dim, seed):
    rng = np.random.default_rng(seed)
    if kind == "normal":
        base = rng.standard_normal((n, dim), dtype=np.float32)
        queries = rng.standard_normal((nq, dim), dtype=np.float32)
    else:
        centers = rng.standard_normal((100, dim), dtype=np.float32) * 3.0
        base = centers[rng.integers(0, 100, n)] + rng.standard_normal((n, dim), dtype=np.float32)
        queries = centers[rng.integers(0, 100, nq)] + rng.standard_normal((nq, dim), dtype=np.float32)
    return np.ascontiguousarray(base), np.ascontiguousarray(queries)


def ground_truth(base, queries, metric, k):
    b = base.astype(np.float64)
    q = queries.astype(np.float64)
    if metric == "cosine":
        b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-30)
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-30)
    out = np.empty((len(q), k), dtype=np.int32)
    bn = (b * b).sum(axis=1)
    for s in range(0, len(q), 200):
        ip = q[s:s + 200] @ b.T
        score = bn[None, :] - 2 * ip if metric == "l2" else -ip
        idx = np.argpartition(score, k, axis=1)[:, :k]
        order = np.take_along_axis(score, idx, axis=1).argsort(axis=1)
        out[s:s + 200] = np.take_along_axis(idx, order, axis=1)
    return out


def recall(labels, gt, k):
    hit = 0
    for a, b in zip(labels, gt):
        hit += len(set(a[:k].tolist()) & set(b[:k].tolist()))
    return hit / (len(gt) * k)


def run_hnswlib(base, queries, gt, metric, m, efc, efs, k, repeat):
    import hnswlib
    space = {"l2": "l2", "ip": "ip", "cosine": "cosine"}[metric]
    p = hnswlib.Index(space=space, dim=base.shape[1])
    t = time.perf_counter()
    p.init_index(max_elements=len(base), ef_construction=efc, M=m, random_seed=100)
    p.add_items(base, np.arange(len(base)), num_threads=2)
    build = time.perf_counter() - t
    p.set_num_threads(1)
    res = {}
    for ef in efs:
        p.set_ef(max(ef, k))
        for q in queries[:50]:
            p.knn_query(q, k=k)
        best, best_cpu = 0.0, 0.0
        for _ in range(repeat):
            labels = []
            t = time.perf_counter()
            c = time.process_time()
            for q in queries:
                lab, _ = p.knn_query(q, k=k)
                labels.append(lab[0])
            qps = len(queries) / (time.perf_counter() - t)
            cpu_qps = len(queries) / max(time.process_time() - c, 1e-9)
            best, best_cpu = max(best, qps), max(best_cpu, cpu_qps)
        res[ef] = (best, recall(labels, gt, k), best_cpu)
    return build, res


def run_ours(paths, metric, m, efc, efs, k, repeat):
    if not os.path.exists(BIN):
        sys.exit(f"missing {BIN}: cargo build --release -p ferrovus-index --example ann_bench")
    res, build, extra = {}, None, ""
    for _ in range(repeat):
        cmd = [BIN, "--base", paths["base"], "--queries", paths["queries"], "--gt", paths["gt"],
               "--metric", metric.upper(), "--m", str(m), "--efc", str(efc), "--threads", "2",
               "--k", str(k), "--ef", ",".join(map(str, efs))]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        for line in out.splitlines():
            mb = re.match(r"build_s=([\d.]+)", line)
            if mb:
                build = min(build or 1e9, float(mb.group(1)))
                extra = line
            me = re.match(r"ef=(\d+) qps=([\d.]+) recall=([\d.]+) cpu_qps=([\d.]+)", line)
            if me:
                ef, qps, rec, cq = int(me.group(1)), float(me.group(2)), float(me.group(3)), float(me.group(4))
                old = res.get(ef, (0.0, rec, 0.0))
                res[ef] = (max(qps, old[0]), rec, max(cq, old[2]))
    return build, res, extra


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--nq", type=int, default=1000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--data", default="normal", choices=["normal", "clustered"])
    ap.add_argument("--metric", default="l2", choices=["l2", "ip", "cosine"])
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--efc", type=int, default=200)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--ef", default="16,32,64,128,256")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--only", choices=["ours", "hnswlib"], default=None)
    ap.add_argument("--npy", default=None, help="a float32 (n, d) .npy of real vectors: the last --nq rows are the queries")
    a = ap.parse_args()
    efs = [int(x) for x in a.ef.split(",")]

    d = os.path.join(ROOT, "bench", "data")
    os.makedirs(d, exist_ok=True)
    tag = f"{a.data}_{a.n}x{a.dim}_{a.nq}_{a.metric}_s{a.seed}"
    if a.npy:
        tag = f"{os.path.splitext(os.path.basename(a.npy))[0]}_{a.nq}_{a.metric}"
    paths = {x: os.path.join(d, f"{tag}_{x}.npy") for x in ("base", "queries", "gt")}
    if not all(os.path.exists(p) for p in paths.values()):
        if a.npy:
            allv = np.load(a.npy).astype(np.float32)
            base, queries = np.ascontiguousarray(allv[:-a.nq]), np.ascontiguousarray(allv[-a.nq:])
        else:
            base, queries = make_data(a.data, a.n, a.nq, a.dim, a.seed)
        t = time.perf_counter()
        gt = ground_truth(base, queries, a.metric, max(a.k, 100))
        print(f"ground truth in {time.perf_counter() - t:.1f}s", file=sys.stderr)
        np.save(paths["base"], base)
        np.save(paths["queries"], queries)
        np.save(paths["gt"], gt)
    base = np.load(paths["base"])
    queries = np.load(paths["queries"])
    gt = np.load(paths["gt"])

    print(f"dataset: {a.npy or a.data} {base.shape[0]} x {base.shape[1]}, {a.nq} queries, metric {a.metric}, "
          f"M={a.m} efC={a.efc}, k={a.k}; build 2 threads, search 1 thread, 1 query/call")
    hb, hres = (None, {}) if a.only == "ours" else run_hnswlib(base, queries, gt, a.metric, a.m, a.efc, efs, a.k, a.repeat)
    ob, ores, extra = (None, {}, "") if a.only == "hnswlib" else run_ours(paths, a.metric, a.m, a.efc, efs, a.k, a.repeat)
    if extra:
        print("ours:", extra)
    fmt = lambda x: "-" if x is None else f"{x:.1f}"
    print(f"build s: hnswlib {fmt(hb)}  ferrovus {fmt(ob)}" + (f"  ratio (hnswlib/ours) {hb / ob:.2f}x" if hb and ob else ""))
    print("QPS = wall clock; cpuQPS = queries per CPU-second of the searching process (steadier on a shared machine)")
    print(f"{'ef':>5} | {'hnswlib QPS':>11} {'cpuQPS':>7} {'recall':>7} | {'ferrovus QPS':>12} {'cpuQPS':>7} {'recall':>7} | {'ratio':>6} {'cpu':>6}")
    for ef in efs:
        e = max(ef, a.k)
        h = hres.get(e)
        o = ores.get(e)
        ratio = f"{o[0] / h[0]:.2f}x" if h and o else "-"
        cratio = f"{o[2] / h[2]:.2f}x" if h and o else "-"
        hs = f"{h[0]:>11.0f} {h[2]:>7.0f} {h[1]:>7.4f}" if h else f"{'-':>11} {'-':>7} {'-':>7}"
        os_ = f"{o[0]:>12.0f} {o[2]:>7.0f} {o[1]:>7.4f}" if o else f"{'-':>12} {'-':>7} {'-':>7}"
        print(f"{e:>5} | {hs} | {os_} | {ratio:>6} {cratio:>6}")
    # Per-ef ratios compare different recalls when the graphs differ; also compare at equal recall:
    # our QPS interpolated (log-linear) on our recall curve at each hnswlib recall.
    if hres and ores:
        pts = sorted((r, q) for q, r, _ in ores.values())
        print("at equal recall (ferrovus QPS interpolated at hnswlib's recall):")
        for ef in efs:
            h = hres.get(max(ef, a.k))
            if not h:
                continue
            q = interp(pts, h[1])
            print(f"  recall {h[1]:.4f}: hnswlib {h[0]:.0f} QPS, ferrovus {q:.0f} QPS, ratio {q / h[0]:.2f}x"
                  if q else f"  recall {h[1]:.4f}: outside our measured range")


def interp(pts, r):
    import math
    for (r0, q0), (r1, q1) in zip(pts, pts[1:]):
        if r0 <= r <= r1 and r1 > r0:
            t = (r - r0) / (r1 - r0)
            return math.exp(math.log(q0) + t * (math.log(q1) - math.log(q0)))
    return None


if __name__ == "__main__":
    main()
