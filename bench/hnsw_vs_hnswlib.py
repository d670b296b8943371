#!/usr/bin/env python3
"""Side-by-side: Ferrovus HNSW (engine/index example `ann_bench`) vs hnswlib, same data, same run.

    pip install hnswlib numpy                       (or use the venv of bench/run.py)
    cargo build --release -p ferrovus-index --example ann_bench
    python3 bench/hnsw_vs_hnswlib.py --dataset minilm|gmm128-1m|gmm128-100k|...   (bench/data sets)
    python3 bench/hnsw_vs_hnswlib.py [--n 100000] [--dim 128] [--data normal|clustered] \
        [--metric l2|ip|cosine] [--ef 16,32,64,128,256] [--repeat 2] [--builds 1] [--min-time 2]

hnswlib: M=16, efConstruction=200, built with 2 threads, searched with 1 thread, one query per
knn_query call. Ours: the same parameters through the example binary (one query per search call,
one thread). Both are scored against the same exact ground truth (numpy, float64).

With --dataset (the data sets of bench/run.py, with their `tag` column) it also measures filtered
search at 10 % and 1 % selectivity (ours: a bitset over row offsets inside the walk; hnswlib: its
filter callback), the size of the saved index per vector, and the time to load the saved index in
a fresh process (ours: memory map; hnswlib: load_index). Results go to
bench/results/hnsw-<date>-<dataset>.{md,json} (--out-tag to change the name).
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


def hnswlib_sweep(p, queries, gt, k, ef, repeat, allowed=None, min_time=0.0):
    """(best QPS, recall, best CPU QPS) of one-query-per-call searches at `ef`, 1 thread: the
    best of at least `repeat` passes over the queries, repeated for at least `min_time` s."""
    p.set_ef(max(ef, k))

    def one(q):
        if allowed is None:
            return p.knn_query(q, k=k)[0][0]
        # hnswlib raises when the filtered walk finds fewer than k rows: ask for fewer then.
        for kk in (k, k // 2, 1):
            try:
                return p.knn_query(q, k=kk, filter=lambda i: bool(allowed[i]))[0][0]
            except RuntimeError:
                continue
        return np.empty(0, dtype=np.int64)

    for q in queries[:50]:
        one(q)
    best, best_cpu, labels = 0.0, 0.0, []
    start, passes = time.perf_counter(), 0
    while passes < repeat or time.perf_counter() - start < min_time:
        passes += 1
        labels = []
        t = time.perf_counter()
        c = time.process_time()
        for q in queries:
            labels.append(one(q))
        best = max(best, len(queries) / (time.perf_counter() - t))
        best_cpu = max(best_cpu, len(queries) / max(time.process_time() - c, 1e-9))
    return best, recall(labels, gt, k), best_cpu


def run_hnswlib(base, queries, gt, metric, m, efc, efs, k, repeat, filters=(), save=None, filter_ef=64,
                min_time=0.0):
    import hnswlib
    space = {"l2": "l2", "ip": "ip", "cosine": "cosine"}[metric]
    p = hnswlib.Index(space=space, dim=base.shape[1])
    t = time.perf_counter()
    c = time.process_time()
    p.init_index(max_elements=len(base), ef_construction=efc, M=m, random_seed=100)
    p.add_items(base, np.arange(len(base)), num_threads=2)
    build = time.perf_counter() - t
    extra = {"build_cpu_s": time.process_time() - c}
    p.set_num_threads(1)
    res = {ef: hnswlib_sweep(p, queries, gt, k, ef, repeat, min_time=min_time) for ef in efs}
    extra["filtered"] = {pct: hnswlib_sweep(p, queries, fgt, k, filter_ef, 1, allowed)
                         for pct, allowed, fgt in filters}
    if save:
        p.save_index(save)
        extra["file_bytes_per_vector"] = os.path.getsize(save) / len(base)
        del p
        t = time.perf_counter()
        p = hnswlib.Index(space=space, dim=base.shape[1])
        p.load_index(save, max_elements=len(base))
        extra["load_s"] = time.perf_counter() - t
        p.set_num_threads(1)
        os.remove(save)
    return build, res, extra, p


def parse_ours(out):
    """ann_bench's output: ({key: value} of the build/save lines, {ef: (qps, recall, cpu_qps)})."""
    kv, res = {}, {}
    for line in out.splitlines():
        me = re.match(r"ef=(\d+) qps=([\d.]+) recall=([\d.]+) cpu_qps=([\d.]+)", line)
        if me:
            res[int(me.group(1))] = (float(me.group(2)), float(me.group(3)), float(me.group(4)))
        elif re.match(r"(build_s|save_s|rss_mb)=", line):
            for tok in line.split():
                key, _, val = tok.partition("=")
                try:
                    kv[key] = float(val)
                except ValueError:
                    kv[key] = val
    return kv, res


def ours_sweep(paths, metric, efs, k, save, min_time):
    """One more single-thread sweep of our saved index, mapped in a fresh process."""
    cmd = [BIN, "--base", paths["base"], "--queries", paths["queries"], "--gt", paths["gt"],
           "--metric", metric.upper(), "--k", str(k), "--min-time", str(min_time), "--load", save,
           "--ef", ",".join(map(str, efs))]
    return parse_ours(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)[1]


def run_ours(paths, metric, m, efc, efs, k, repeat, save=None, filters=(), filter_ef=64, min_time=0.0):
    if not os.path.exists(BIN):
        sys.exit(f"missing {BIN}: cargo build --release -p ferrovus-index --example ann_bench")
    common = ["--queries", paths["queries"], "--gt", paths["gt"], "--metric", metric.upper(),
              "--k", str(k), "--min-time", str(min_time)]
    res, build, kv = {}, None, {}
    for r in range(repeat):
        cmd = [BIN, "--base", paths["base"], *common, "--m", str(m), "--efc", str(efc),
               "--threads", "2", "--ef", ",".join(map(str, efs))]
        if save and r == 0:
            cmd += ["--save", save]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        run_kv, run_res = parse_ours(out)
        if build is None or run_kv["build_s"] < build:
            build = run_kv["build_s"]
            kv.update({x: v for x, v in run_kv.items() if x != "rss_mb"})
        kv.setdefault("rss_mb", run_kv.get("rss_mb"))
        for ef, (qps, rec, cq) in run_res.items():
            old = res.get(ef, (0.0, rec, 0.0))
            res[ef] = (max(qps, old[0]), rec, max(cq, old[2]))
    if save:
        # A fresh process: map the saved file and search it (load time, and the same recall).
        load_kv, load_res = parse_ours(subprocess.run(
            [BIN, "--base", paths["base"], *common, "--load", save, "--ef", str(filter_ef)],
            check=True, capture_output=True, text=True).stdout)
        kv["load_s"] = load_kv["build_s"]
        kv["loaded_recall"] = load_res[max(filter_ef, k)][1]
        kv["filtered"] = {}
        for pct, mask_path in filters:
            _, fres = parse_ours(subprocess.run(
                [BIN, "--base", paths["base"], *common, "--load", save, "--allow", mask_path,
                 "--ef", str(filter_ef)], check=True, capture_output=True, text=True).stdout)
            kv["filtered"][pct] = fres[max(filter_ef, k)]
    return build, res, kv


def interp(pts, r):
    import math
    for (r0, q0), (r1, q1) in zip(pts, pts[1:]):
        if r0 <= r <= r1 and r1 > r0:
            t = (r - r0) / (r1 - r0)
            return math.exp(math.log(q0) + t * (math.log(q1) - math.log(q0)))
    return None


def qps_at(res, target):
    """QPS at `target` recall, interpolated log-linearly on the (recall, QPS) curve."""
    pts = sorted((r, q) for q, r, _ in res.values())
    if not pts or pts[-1][0] < target:
        return None
    if pts[0][0] >= target:
        return max(q for r, q in pts if r >= target)
    return interp(pts, target)


def load_dataset(name):
    """A data set of bench/run.py (generated and cached under bench/data on first use)."""
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    from pathlib import Path
    from benchlib import data
    root = Path(os.environ.get("FERROVUS_BENCH_DATA", os.path.join(ROOT, "bench", "data")))
    if name == "minilm":
        return data.minilm(root, 100_000, 1000)
    mm = re.fullmatch(r"gmm(\d+)-(\d+)([km])", name)
    if not mm:
        sys.exit(f"--dataset: minilm or gmm<dim>-<n>k|m (e.g. gmm128-1m), not {name!r}")
    n = int(mm.group(2)) * (1000 if mm.group(3) == "k" else 1_000_000)
    return data.gmm(root, n, int(mm.group(1)), 1000)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default=None, help="a bench/run.py data set: minilm, gmm128-1m, ...")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--nq", type=int, default=1000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--data", default="normal", choices=["normal", "clustered"])
    ap.add_argument("--metric", default="l2", choices=["l2", "ip", "cosine"])
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--efc", type=int, default=200)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--ef", default="16,32,64,128,256")
    ap.add_argument("--filter-ef", type=int, default=64, help="ef of the filtered runs")
    ap.add_argument("--repeat", type=int, default=2, help="hnswlib: at least this many passes per ef (best kept)")
    ap.add_argument("--builds", type=int, default=1, help="ours: builds (best kept)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="--dataset: alternating search sweeps of both indexes (best QPS kept, ratio per round)")
    ap.add_argument("--min-time", type=float, default=2.0, help="repeat the query set for at least this long per ef")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--only", choices=["ours", "hnswlib"], default=None)
    ap.add_argument("--npy", default=None, help="a float32 (n, d) .npy of real vectors: the last --nq rows are the queries")
    ap.add_argument("--out-tag", default=None, help="name of the result files (default: the data set)")
    a = ap.parse_args()
    efs = [int(x) for x in a.ef.split(",")]

    filters, lib_filters = [], []
    if a.dataset:
        ds = load_dataset(a.dataset)
        metric = {"L2": "l2", "COSINE": "cosine", "IP": "ip"}[ds.metric]
        paths = {x: str(ds.file(x)) for x in ("base", "queries", "gt")}
        tags = ds.load("tags", mmap=False)
        for pct, _expr, gt_path in ds.filters:
            mask_path = str(ds.file(f"allow_tag_lt_{pct}"))
            allowed = (tags < pct).astype(np.int32)
            np.save(mask_path, allowed)
            filters.append((pct, mask_path))
            lib_filters.append((pct, allowed, np.load(gt_path)))
        label = f"{a.dataset} ({ds.n} x {ds.dim}, {ds.metric})"
    else:
        metric = a.metric
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
        label = a.npy or a.data
    base = np.load(paths["base"])
    queries = np.load(paths["queries"])
    gt = np.load(paths["gt"])
    save_dir = os.path.join(os.path.dirname(paths["base"]), "hnsw-tmp")
    os.makedirs(save_dir, exist_ok=True)
    ours_file = os.path.join(save_dir, "ours.fvx") if a.dataset else None
    lib_file = os.path.join(save_dir, "hnswlib.bin") if a.dataset else None

    head = (f"dataset: {label} {base.shape[0]} x {base.shape[1]}, {len(queries)} queries, metric {metric}, "
            f"M={a.m} efC={a.efc}, k={a.k}; build 2 threads, search 1 thread, 1 query/call")
    print(head, flush=True)
    t0 = time.perf_counter()
    hb, hres, hx, lib_index = ((None, {}, {}, None) if a.only == "ours" else
                               run_hnswlib(base, queries, gt, metric, a.m, a.efc, efs, a.k, a.repeat,
                                           lib_filters, lib_file, a.filter_ef, a.min_time))
    del base
    ob, ores, ox = ((None, {}, {}) if a.only == "hnswlib" else
                    run_ours(paths, metric, a.m, a.efc, efs, a.k, a.builds, ours_file, filters,
                             a.filter_ef, a.min_time))
    # The machine is shared: more rounds of the two sweeps, alternating, on the same two indexes.
    # Per ef the best QPS of each side is kept; the ratio at recall 0.95 is also given per round.
    def ratio_at_095(o, h):
        oq, hq = qps_at(o, 0.95), qps_at(h, 0.95)
        return oq / hq if oq and hq else None

    round_ratios = []
    if hres and ores:
        round_ratios.append(ratio_at_095(ores, hres))
        for _ in range(1, a.rounds if ours_file else 1):
            h2 = {ef: hnswlib_sweep(lib_index, queries, gt, a.k, ef, a.repeat, min_time=a.min_time) for ef in efs}
            o2 = ours_sweep(paths, metric, efs, a.k, ours_file, a.min_time)
            round_ratios.append(ratio_at_095(o2, h2))
            for res, new in ((hres, h2), (ores, o2)):
                for ef, v in new.items():
                    old = res.get(ef, v)
                    res[ef] = (max(old[0], v[0]), old[1], max(old[2], v[2]))
    if ours_file and os.path.exists(ours_file):
        os.remove(ours_file)
    lines = [f"# HNSW: Ferrovus index vs hnswlib — {time.strftime('%Y-%m-%d %H:%M')}", "",
             head + f"; load average at start {os.getloadavg()[0]:.1f}; total {time.perf_counter() - t0:.0f}s.", "",
             "QPS = wall clock; cpuQPS = queries per CPU-second of the searching process (steadier on a shared machine).", ""]
    fmt = lambda x, f="{:.1f}": "-" if x is None else f.format(x)
    lines += ["| | hnswlib 0.8.0 | Ferrovus | ratio (Ferrovus / hnswlib) |", "|---|---|---|---|"]

    def row(name, h, o, better_low=False, f="{:.1f}"):
        ratio = f"{o / h:.2f}x" if h and o else "-"
        lines.append(f"| {name} | {fmt(h, f)} | {fmt(o, f)} | {ratio}{' (lower is better)' if better_low else ''} |")

    row("build s (2 threads, wall)", hb, ob, True)
    row("build CPU s", hx.get("build_cpu_s"), ox.get("build_cpu_s"), True)
    hq, oq = qps_at(hres, 0.95), qps_at(ores, 0.95)
    row(f"QPS at recall@10 0.95 (1 thread, best of {len(round_ratios) or 1} rounds)", hq, oq, f="{:.0f}")
    if len(round_ratios) > 1:
        rr = sorted(r for r in round_ratios if r)
        lines.append(f"| QPS ratio at recall@10 0.95, per round | | | {', '.join(f'{r:.2f}x' for r in round_ratios if r)}"
                     f" (median {rr[len(rr) // 2]:.2f}x) |")
    row("index bytes per vector (saved file)", hx.get("file_bytes_per_vector"), ox.get("file_bytes_per_vector"), True, "{:.0f}")
    row("index bytes per vector (in memory)", None, ox.get("bytes_per_vector"), True, "{:.0f}")
    row("load saved index, fresh process, s", hx.get("load_s"), ox.get("load_s"), True, "{:.3f}")
    lines += ["", f"| ef | hnswlib QPS | cpuQPS | recall | Ferrovus QPS | cpuQPS | recall | ratio | cpu ratio |",
              "|---|---|---|---|---|---|---|---|---|"]
    for ef in efs:
        e = max(ef, a.k)
        h, o = hres.get(e), ores.get(e)
        hs = f"{h[0]:.0f} | {h[2]:.0f} | {h[1]:.4f}" if h else "- | - | -"
        os_ = f"{o[0]:.0f} | {o[2]:.0f} | {o[1]:.4f}" if o else "- | - | -"
        ratio = f"{o[0] / h[0]:.2f}x | {o[2] / h[2]:.2f}x" if h and o else "- | -"
        lines.append(f"| {e} | {hs} | {os_} | {ratio} |")
    if hres and ores:
        lines += ["", "At equal recall (Ferrovus QPS interpolated on its curve at hnswlib's recall):", ""]
        for ef in efs:
            h = hres.get(max(ef, a.k))
            q = interp(sorted((r, qq) for qq, r, _ in ores.values()), h[1]) if h else None
            if h:
                lines.append(f"- recall {h[1]:.4f}: hnswlib {h[0]:.0f} QPS, Ferrovus "
                             + (f"{q:.0f} QPS, ratio {q / h[0]:.2f}x" if q else "outside its measured range"))
    if filters:
        lines += ["", f"Filtered search (`tag < 10` keeps 10 %, `tag < 1` keeps 1 %), ef={a.filter_ef}, "
                  "recall against exact filtered top-10:", "",
                  "| selectivity | hnswlib QPS / recall | Ferrovus QPS / recall | ratio |", "|---|---|---|---|"]
        for pct, _ in filters:
            h = hx.get("filtered", {}).get(pct)
            o = ox.get("filtered", {}).get(pct)
            hs = f"{h[0]:.0f} / {h[1]:.3f}" if h else "-"
            os_ = f"{o[0]:.0f} / {o[1]:.3f}" if o else "-"
            lines.append(f"| {pct} % | {hs} | {os_} | {f'{o[0] / h[0]:.2f}x' if h and o else '-'} |")
        if ox.get("loaded_recall") is not None:
            lines += ["", f"The saved index, mapped in a fresh process, answers ef={a.filter_ef} with recall "
                      f"{ox['loaded_recall']:.4f} (built in memory: {ores.get(max(a.filter_ef, a.k), (0, 0))[1]:.4f})."]
    text = "\n".join(lines) + "\n"
    print(text)
    if a.dataset:
        out = os.path.join(ROOT, "bench", "results", f"hnsw-{time.strftime('%Y-%m-%d')}-{a.out_tag or a.dataset}")
        with open(out + ".md", "w") as f:
            f.write(text)
        import json
        with open(out + ".json", "w") as f:
            json.dump({"dataset": label, "round_ratios_at_0.95": round_ratios,
                       "hnswlib": {"build_s": hb, "sweep": hres, **hx},
                       "ferrovus": {"build_s": ob, "sweep": ores, **ox}}, f, indent=1,
                      default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
        print(f"wrote {out}.md / .json", file=sys.stderr)


if __name__ == "__main__":
    main()
