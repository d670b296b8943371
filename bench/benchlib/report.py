"""Ratios, the Markdown report and the plots of one run."""

from __future__ import annotations

import math
from pathlib import Path

ORDER = ["core", "core-index", "ferrovus", "cluster", "hnswlib", "faiss", "milvus-lite"]
LABEL = {
    "core": "Ferrovus core (in-process, Rust)",
    "core-index": "Ferrovus segment index alone (Rust)",
    "ferrovus": "Ferrovus standalone (gRPC)",
    "cluster": "Ferrovus cluster (gRPC, one process per role)",
    "hnswlib": "hnswlib 0.8.0",
    "faiss": "faiss-cpu IndexHNSWFlat",
    "milvus-lite": "milvus-lite (gRPC)",
}
COLOR = {"core": "tab:blue", "core-index": "tab:cyan", "ferrovus": "tab:green", "cluster": "tab:olive",
         "hnswlib": "tab:red", "faiss": "tab:purple", "milvus-lite": "tab:brown"}


def _ok(ds: dict, name: str) -> dict | None:
    r = ds["systems"].get(name)
    return r if r and r.get("ok") else None


def sweep_at(r: dict | None, ef: int) -> dict | None:
    if not r:
        return None
    return next((p for p in r["sweep"] if p["ef"] == ef), None)


def qps_at_recall(r: dict | None, target: float) -> float | None:
    """Single-thread QPS at recall@10 = target, interpolated (log QPS, linear in recall) between
    the two sweep points around it; None if the sweep never reaches the target."""
    if not r or not r["sweep"]:
        return None
    pts = sorted(((p["recall"], p["qps"]) for p in r["sweep"]), key=lambda x: x[0])
    for i, (rec, qps) in enumerate(pts):
        if rec >= target:
            if i == 0:
                return qps
            r0, q0 = pts[i - 1]
            if rec == r0:
                return qps
            w = (target - r0) / (rec - r0)
            return math.exp(math.log(q0) + w * (math.log(qps) - math.log(q0)))
    return None


def raw_bytes(n: int, dim: int, m: int) -> int:
    """Raw vector bytes plus level-0 graph links (2M neighbours of 4 bytes per node)."""
    return n * (4 * dim + 4 * 2 * m)


def _div(a, b):
    if a is None or b is None or b == 0 or (isinstance(b, float) and math.isnan(b)):
        return None
    return a / b


def ratios(ds: dict, settings: dict) -> dict:
    core, srv, hl, lite = (_ok(ds, s) for s in ("core", "ferrovus", "hnswlib", "milvus-lite"))
    cidx = _ok(ds, "core-index")
    ef = settings["conc_ef"]
    out: dict = {"reference_ef": ef}
    out["core_vs_hnswlib_qps_at_recall_0.95"] = _div(qps_at_recall(core, 0.95), qps_at_recall(hl, 0.95))
    out["core_index_vs_hnswlib_qps_at_recall_0.95"] = _div(qps_at_recall(cidx, 0.95), qps_at_recall(hl, 0.95))
    out["core_index_vs_hnswlib_build_cpu"] = _div((cidx or {}).get("build_cpu_s"), (hl or {}).get("build_cpu_s"))
    out["core_vs_hnswlib_qps_same_ef"] = {
        p["ef"]: _div(p["qps"], (sweep_at(hl, p["ef"]) or {}).get("qps")) for p in (core or {}).get("sweep", [])}
    out["core_vs_hnswlib_build_cpu"] = _div((core or {}).get("build_cpu_s"), (hl or {}).get("build_cpu_s"))
    out["core_vs_hnswlib_build_wall"] = _div((core or {}).get("index_s"), (hl or {}).get("index_s"))
    core_single = (sweep_at(core, ef) or {}).get("qps")
    srv_conc = ((srv or {}).get("concurrent") or {}).get("qps")
    srv_batch = ((srv or {}).get("batched") or {}).get("qps")
    srv_best = max([x for x in (srv_conc, srv_batch) if x is not None], default=None)
    out["server_best_vs_core_single"] = _div(srv_best, core_single)
    out["server_8threads_vs_core_8threads"] = _div(srv_conc, ((core or {}).get("concurrent") or {}).get("qps"))
    out["server_single_vs_core_single"] = _div((sweep_at(srv, ef) or {}).get("qps"), core_single)
    lite_conc = ((lite or {}).get("concurrent") or {}).get("qps")
    lite_batch = ((lite or {}).get("batched") or {}).get("qps")
    out["server_vs_milvus_lite_8threads"] = _div(srv_conc, lite_conc)
    out["server_vs_milvus_lite_batched"] = _div(srv_batch, lite_batch)
    out["server_vs_milvus_lite_single"] = _div((sweep_at(srv, ef) or {}).get("qps"), (sweep_at(lite, ef) or {}).get("qps"))
    out["insert_vs_milvus_lite"] = _div((srv or {}).get("insert_rows_per_s"), (lite or {}).get("insert_rows_per_s"))
    out["server_insert_rows_per_s"] = (srv or {}).get("insert_rows_per_s")
    par = ((srv or {}).get("parallel_insert") or {}).get("rows_per_s")
    out["server_parallel_insert_rows_per_s"] = par
    out["parallel_insert_vs_milvus_lite"] = _div(par, ((lite or {}).get("parallel_insert") or {}).get("rows_per_s"))
    raw = raw_bytes(ds["n"], ds["dim"], settings["m"])
    out["raw_bytes"] = raw
    out["server_rss_vs_raw"] = _div((srv or {}).get("rss_bytes"), raw)
    idle = (srv or {}).get("rss_idle_bytes")
    out["server_rss_growth_vs_raw"] = _div(((srv or {}).get("rss_bytes") or 0) - (idle or 0), raw) if srv and idle else None
    for name in ("ferrovus", "core"):
        f1 = next((f for f in (_ok(ds, name) or {}).get("filtered", []) if f["selectivity_pct"] == 1), None)
        out[f"{name}_filtered_1pct_recall"] = f1["recall"] if f1 else None
    out.update(cluster_ratios(ds))
    return out


def recall_ef(r: dict | None, target: float = 0.95, also: dict | None = None) -> int | None:
    """The smallest swept ef at which `r` (and `also`, when given) reach recall@10 >= target."""
    if not r:
        return None
    for p in sorted(r["sweep"], key=lambda x: x["ef"]):
        q = sweep_at(also, p["ef"]) if also else p
        if p["recall"] >= target and q and q["recall"] >= target:
            return p["ef"]
    return None


def cluster_ratios(ds: dict) -> dict:
    """The cluster against standalone, same run: insert, QPS, latency and CPU per query at the
    smallest ef where both reach recall@10 >= 0.95 (single-client loop)."""
    srv, cl = _ok(ds, "ferrovus"), _ok(ds, "cluster")
    if not srv or not cl:
        return {}
    ef = recall_ef(srv, 0.95, cl)
    a, b = sweep_at(cl, ef) or {}, sweep_at(srv, ef) or {}
    return {
        "cluster_ef_at_recall_0.95": ef,
        "cluster_vs_standalone_insert": _div(cl.get("insert_rows_per_s"), srv.get("insert_rows_per_s")),
        "cluster_vs_standalone_parallel_insert": _div((cl.get("parallel_insert") or {}).get("rows_per_s"),
                                                      (srv.get("parallel_insert") or {}).get("rows_per_s")),
        "cluster_vs_standalone_qps_at_recall_0.95": _div(qps_at_recall(cl, 0.95), qps_at_recall(srv, 0.95)),
        "cluster_vs_standalone_qps": _div(a.get("qps"), b.get("qps")),
        "cluster_vs_standalone_cpu_per_query": _div(a.get("server_cpu_ms_per_query"), b.get("server_cpu_ms_per_query")),
        "cluster_vs_standalone_p50": _div(a.get("p50_ms"), b.get("p50_ms")),
        "cluster_vs_standalone_p99": _div(a.get("p99_ms"), b.get("p99_ms")),
        "cluster_vs_standalone_8threads": _div((cl.get("concurrent") or {}).get("qps"),
                                               (srv.get("concurrent") or {}).get("qps")),
        "cluster_vs_standalone_batched": _div((cl.get("batched") or {}).get("qps"), (srv.get("batched") or {}).get("qps")),
    }


def targets(run: dict) -> list[dict]:
    """Issue 6's targets, checked on each data set where they apply."""
    rows = []
    for name, ds in run["datasets"].items():
        r = ds.get("ratios") or {}

        def add(what, value, goal, ok, fmt="{:.2f}x"):
            rows.append({"dataset": name, "target": what, "goal": goal,
                         "value": None if value is None else fmt.format(value),
                         "met": None if value is None else bool(ok(value))})
        add("core QPS at recall 0.95 vs hnswlib (1 thread)", r.get("core_vs_hnswlib_qps_at_recall_0.95"), "≥ 1.0x", lambda v: v >= 1.0)
        add("segment index alone: QPS at recall 0.95 vs hnswlib", r.get("core_index_vs_hnswlib_qps_at_recall_0.95"), "(≥ 1.0x)", lambda v: v >= 1.0)
        add("core build CPU vs hnswlib", r.get("core_vs_hnswlib_build_cpu"), "≤ 1.0x", lambda v: v <= 1.0)
        add(f"server (8 clients or batched) vs core 1 thread, ef={r.get('reference_ef')}", r.get("server_best_vs_core_single"), "≥ 0.7x", lambda v: v >= 0.7)
        add("server vs milvus-lite (8 clients)", r.get("server_vs_milvus_lite_8threads"), "≥ 20x", lambda v: v >= 20)
        add("insert vs milvus-lite (1 client)", r.get("insert_vs_milvus_lite"), "≥ 5x", lambda v: v >= 5)
        if r.get("parallel_insert_vs_milvus_lite") is not None:
            add("insert vs milvus-lite (4 client processes)", r.get("parallel_insert_vs_milvus_lite"), "≥ 5x", lambda v: v >= 5)
        if ds["dim"] == 128:
            add("insert rows/s through the client (128-d, 1 client)", r.get("server_insert_rows_per_s"), "≥ 50,000", lambda v: v >= 50000, "{:,.0f}")
            if r.get("server_parallel_insert_rows_per_s") is not None:
                add("insert rows/s through the client (128-d, 4 client processes)", r.get("server_parallel_insert_rows_per_s"), "≥ 50,000", lambda v: v >= 50000, "{:,.0f}")
        add("server filtered 1 % recall@10", r.get("ferrovus_filtered_1pct_recall"), "≥ 0.95", lambda v: v >= 0.95, "{:.3f}")
        add("server RSS vs raw vectors + links", r.get("server_rss_vs_raw"), "≤ 1.5x", lambda v: v <= 1.5)
        if r.get("cluster_vs_standalone_cpu_per_query") is not None:
            add(f"cluster search CPU per query vs standalone (1 client, ef={r.get('cluster_ef_at_recall_0.95')})",
                r.get("cluster_vs_standalone_cpu_per_query"), "≤ 1.3x", lambda v: v <= 1.3)
    return rows


# ----------------------------------------------------------------------------- Markdown


def _f(v, fmt="{:,.0f}", none="–"):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return none
    return fmt.format(v)


def _mb(v):
    return _f(None if v is None else v / 2**20, "{:,.0f}")


def cpu_cell(p: dict) -> str:
    c, v = p.get("client_cpu_ms_per_query"), p.get("server_cpu_ms_per_query")
    return "–" if c is None or v is None else f"{c:.2f} + {v:.2f}"


def markdown(run: dict) -> str:
    m = run["machine"]
    st = run["settings"]
    out = [f"# Ferrovus side-by-side benchmark — {run['date']} ({run['mode']} mode)", ""]
    out.append(f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']:.0f} GiB RAM, {m['os']}; "
               f"load average at start {m['loadavg_start']}. Commit `{run['commit']}`. "
               f"Binaries: {run['build']}. All systems ran in this one run, one after the other."
               + (" Server environment: " + ", ".join(f"`{k}={v}`" for k, v in sorted(run["env"].items())) + "."
                  if run.get("env") else ""))
    out.append("")
    out.append(f"HNSW M={st['m']}, efConstruction={st['ef_construction']} everywhere; k=10; "
               f"inserts in batches of {st['batch']}; one query per call unless noted; "
               f"concurrent = {st['threads']} client threads; batched = {st['nq_per_request']} queries per request "
               f"(libraries: all queries in one call on {st['build_threads']} threads); "
               f"filtered runs and the concurrent/batched columns use ef={st['conc_ef']}; "
               f"each timed loop stops after {st['budget_s']:.0f} s.")
    out.append("")
    tg = targets(run)
    if tg:
        out += ["## Targets (issue 6)", "", "| data set | target | goal | measured | met |", "|---|---|---|---|---|"]
        for t in tg:
            met = "–" if t["met"] is None else ("yes" if t["met"] else "**no**")
            out.append(f"| {t['dataset']} | {t['target']} | {t['goal']} | {t['value'] or '–'} | {met} |")
        out.append("")
    for name, ds in run["datasets"].items():
        out += [f"## {name}: {ds['n']:,} × {ds['dim']} ({ds['metric']}), {ds['nq']:,} queries", ""]
        if ds.get("description"):
            out += [ds["description"], ""]
        systems = [s for s in ORDER if s in ds["systems"]]
        efs = sorted({p["ef"] for s in systems for p in (ds["systems"][s].get("sweep") or [])})
        out += ["| system | insert rows/s: 1 client [N client processes] (pymilvus encode ceiling) | index+load s | build CPU s | RSS MiB | disk MiB | RSS bytes/vector |",
                "|---|---|---|---|---|---|---|"]
        for s in systems:
            r = ds["systems"][s]
            if not r.get("ok"):
                out.append(f"| {LABEL[s]} | failed: {str(r.get('error'))[:80]} | | | | | |")
                continue
            bpv = None if r.get("rss_bytes") is None else r["rss_bytes"] / ds["n"]
            ins = _f(r.get('insert_rows_per_s'))
            if r.get("parallel_insert"):
                pi = r["parallel_insert"]
                ins += f" [{pi['processes']}: {_f(pi['rows_per_s'])}]"
            if r.get("client_encode_rows_per_s"):
                ins += f" ({_f(r['client_encode_rows_per_s'])})"
            out.append(f"| {LABEL[s]} | {ins} | {_f(r.get('index_s'), '{:.1f}')} | "
                       f"{_f(r.get('build_cpu_s'), '{:.1f}')} | {_mb(r.get('rss_bytes'))} | {_mb(r.get('disk_bytes'))} | {_f(bpv)} |")
        out += ["", "QPS / recall@10 per ef (single thread, one query per call):", "",
                "| system | " + " | ".join(f"ef={e}" for e in efs) + " | QPS at recall 0.95 |",
                "|---|" + "---|" * (len(efs) + 1)]
        for s in systems:
            r = ds["systems"][s]
            if not r.get("ok"):
                continue
            cells = []
            for e in efs:
                p = sweep_at(r, e)
                cells.append("–" if not p else f"{p['qps']:,.0f} / {p['recall']:.3f}")
            out.append(f"| {LABEL[s]} | " + " | ".join(cells) + f" | {_f(qps_at_recall(r, 0.95))} |")
        out += ["", f"Throughput, latency and filtered search (ef={st['conc_ef']}):", "",
                "| system | QPS 1 thread | QPS concurrent | QPS batched | p50 ms | p99 ms | CPU ms/query client + server | 10 % filter recall / QPS | 1 % filter recall / QPS |",
                "|---|---|---|---|---|---|---|---|---|"]
        for s in systems:
            r = ds["systems"][s]
            if not r.get("ok"):
                continue
            p = sweep_at(r, st["conc_ef"]) or {}
            fl = {f["selectivity_pct"]: f for f in r.get("filtered", [])}
            fcell = lambda f: "–" if not f else f"{f['recall']:.3f} / {f['qps']:,.0f}"  # noqa: E731
            out.append(f"| {LABEL[s]} | {_f(p.get('qps'))} | {_f((r.get('concurrent') or {}).get('qps'))} | "
                       f"{_f((r.get('batched') or {}).get('qps'))} | {_f(p.get('p50_ms'), '{:.2f}')} | "
                       f"{_f(p.get('p99_ms'), '{:.2f}')} | {cpu_cell(p)} | {fcell(fl.get(10))} | {fcell(fl.get(1))} |")
        out += cluster_section(ds)
        rt = ds.get("ratios") or {}
        out += ["", "Ratios (same run): " + "; ".join(
            f"{k} = {_f(v, '{:.2f}')}" for k, v in rt.items()
            if isinstance(v, (int, float)) and k not in ("raw_bytes", "reference_ef", "server_insert_rows_per_s",
                                                         "server_parallel_insert_rows_per_s")), ""]
        for s in systems:
            r = ds["systems"][s]
            if r.get("notes"):
                out.append(f"- {LABEL[s]}: " + "; ".join(r["notes"]))
        out.append("")
    if run.get("plots"):
        out += ["## Plots", ""]
        for p in run["plots"]:
            out.append(f"![{p}]({p})")
        out.append("")
    if run.get("failures"):
        out += ["## Failures", ""] + [f"- {f}" for f in run["failures"]] + [""]
    return "\n".join(out)


def cluster_section(ds: dict) -> list[str]:
    """Cluster vs standalone: the figures of the distributed-roles comparison, and where the
    cluster's CPU goes, per process."""
    srv, cl = _ok(ds, "ferrovus"), _ok(ds, "cluster")
    if not srv or not cl:
        return []
    ef = recall_ef(srv, 0.95, cl)
    out = ["", f"Cluster vs standalone (single client; search at ef={ef}, the smallest swept ef where both "
               "reach recall@10 ≥ 0.95; CPU = every ferrovus process of the system, etcd + moto apart):", "",
           "| system | insert rows/s 1 client [N procs] | index+load s | recall | QPS | QPS at recall 0.95 | p50 ms | p99 ms "
           "| CPU ms/query server | etcd+moto ms/query | client ms/query | RSS MiB (+ etcd/moto) |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in (("ferrovus", srv), ("cluster", cl)):
        p = sweep_at(r, ef) or {}
        pi = r.get("parallel_insert") or {}
        ins = _f(r.get("insert_rows_per_s")) + (f" [{pi['processes']}: {_f(pi['rows_per_s'])}]" if pi else "")
        mem = _mb(r.get("rss_bytes")) + (f" (+{_mb(r['aux_rss_bytes'])})" if r.get("aux_rss_bytes") else "")
        out.append(f"| {LABEL[name]} | {ins} | {_f(r.get('index_s'), '{:.1f}')} | {_f(p.get('recall'), '{:.3f}')} | "
                   f"{_f(p.get('qps'))} | {_f(qps_at_recall(r, 0.95))} | {_f(p.get('p50_ms'), '{:.2f}')} | "
                   f"{_f(p.get('p99_ms'), '{:.2f}')} | {_f(p.get('server_cpu_ms_per_query'), '{:.3f}')} | "
                   f"{_f(p.get('aux_cpu_ms_per_query'), '{:.3f}')} | {_f(p.get('client_cpu_ms_per_query'), '{:.3f}')} | {mem} |")
    by_ef = []
    for p in cl["sweep"]:
        q = sweep_at(srv, p["ef"]) or {}
        split = p.get("cpu_ms_per_query_by_process") or {}
        by_ef.append((p["ef"], q.get("server_cpu_ms_per_query"), p.get("server_cpu_ms_per_query"), split))
    names = sorted({n for *_, sp in by_ef for n in sp},
                   key=lambda n: (["proxy", "query", "streaming", "coordinator", "data", "etcd", "s3"]
                                  .index(n.split("-")[0]) if n.split("-")[0] in
                                  ("proxy", "query", "streaming", "coordinator", "data", "etcd", "s3") else 9, n))
    out += ["", "CPU ms per query by process, single-client loop at each ef (standalone: its one process):", "",
            "| ef | standalone | cluster total | ratio | " + " | ".join(names) + " |",
            "|---|---|---|---|" + "---|" * len(names)]
    for ef_, a, b, split in by_ef:
        out.append(f"| {ef_} | {_f(a, '{:.3f}')} | {_f(b, '{:.3f}')} | {_f(_div(b, a), '{:.2f}x')} | "
                   + " | ".join(_f(split.get(n), '{:.3f}') for n in names) + " |")
    idle = {n: r.get("idle_cores_by_process") or {} for n, r in (("standalone", srv), ("cluster", cl))}
    if any(idle.values()):
        out += ["", "Background CPU with no requests (cores, measured after the index was built): standalone "
                + _f(sum(idle["standalone"].values()), "{:.4f}") + "; cluster "
                + ", ".join(f"{n} {v:.4f}" for n, v in sorted(idle["cluster"].items(), key=lambda x: -x[1])) + "."]
    calls = (sweep_at(cl, ef) or {}).get("counters_per_query") or {}
    if calls:
        out += ["", f"Cluster counters per query at ef={ef} (summed over processes): "
                + "; ".join(f"`{k}` {v:g}" for k, v in sorted(calls.items())) + "."]
    ins = cl.get("insert_cpu_split_s") or {}
    if ins:
        out += ["", "CPU seconds during the single-client insert: standalone "
                f"{_f(srv.get('insert_server_cpu_s'), '{:.2f}')}; cluster "
                + ", ".join(f"{n} {v:.2f}" for n, v in sorted(ins.items(), key=lambda x: -x[1]))
                + f" (client: standalone {_f(srv.get('insert_client_cpu_s'), '{:.2f}')}, cluster "
                f"{_f(cl.get('insert_client_cpu_s'), '{:.2f}')})."]
    return out


def short_table(run: dict) -> str:
    """A compact console table (quick mode)."""
    lines = []
    ef = run["settings"]["conc_ef"]
    for name, ds in run["datasets"].items():
        lines.append(f"{name} ({ds['n']} x {ds['dim']}, {ds['metric']})")
        lines.append(f"  {'system':<12} {'ins rows/s':>10} {'index s':>8} {'QPS@ef' + str(ef):>9} {'recall':>7} "
                     f"{'conc QPS':>9} {'1% rec':>7} {'RSS MiB':>8}")
        for s in [x for x in ORDER if x in ds["systems"]]:
            r = ds["systems"][s]
            if not r.get("ok"):
                lines.append(f"  {s:<12} FAILED: {str(r.get('error'))[:100]}")
                continue
            p = sweep_at(r, ef) or {}
            f1 = next((f for f in r.get("filtered", []) if f["selectivity_pct"] == 1), {})
            conc = (r.get("concurrent") or r.get("batched") or {}).get("qps")
            lines.append(f"  {s:<12} {_f(r.get('insert_rows_per_s')):>10} {_f(r.get('index_s'), '{:.1f}'):>8} "
                         f"{_f(p.get('qps')):>9} {_f(p.get('recall'), '{:.3f}'):>7} {_f(conc):>9} "
                         f"{_f(f1.get('recall'), '{:.3f}'):>7} {_mb(r.get('rss_bytes')):>8}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- plots


def plots(run: dict, outdir: Path, stem: str) -> list[str]:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    files = []
    dsets = list(run["datasets"].items())
    cols = min(3, len(dsets))
    rows = math.ceil(len(dsets) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 4.5 * rows), squeeze=False)
    for ax, (name, ds) in zip(axes.flat, dsets):
        for s in ORDER:
            r = ds["systems"].get(s)
            if not r or not r.get("ok") or not r["sweep"]:
                continue
            pts = sorted((p["recall"], p["qps"], p["ef"]) for p in r["sweep"])
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=LABEL[s], color=COLOR[s])
        ax.set_yscale("log")
        ax.set_xlabel("recall@10")
        ax.set_ylabel("queries/s (1 thread, 1 query per call)")
        ax.set_title(f"{name}: {ds['n']:,} × {ds['dim']} {ds['metric']}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(dsets):]:
        ax.axis("off")
    fig.suptitle(f"Recall vs QPS — {run['date']} ({run['mode']})")
    fig.tight_layout()
    f = f"{stem}-recall-qps.png"
    fig.savefig(outdir / f, dpi=110)
    plt.close(fig)
    files.append(f)

    # Scaling: data sets of one kind and dim at several sizes.
    groups: dict[tuple, list] = {}
    for name, ds in dsets:
        groups.setdefault((ds["kind"], ds["dim"]), []).append(ds)
    groups = {k: sorted(v, key=lambda d: d["n"]) for k, v in groups.items() if len({d["n"] for d in v}) > 1}
    if groups:
        ef = run["settings"]["conc_ef"]
        metrics = [
            ("QPS at ef=%d (1 thread)" % ef, lambda r: (sweep_at(r, ef) or {}).get("qps")),
            ("recall@10 at ef=%d" % ef, lambda r: (sweep_at(r, ef) or {}).get("recall")),
            ("index build + load, s", lambda r: r.get("index_s")),
            ("RSS, MiB", lambda r: None if r.get("rss_bytes") is None else r["rss_bytes"] / 2**20),
        ]
        fig, axes = plt.subplots(len(groups), len(metrics), figsize=(4.5 * len(metrics), 3.8 * len(groups)), squeeze=False)
        for row, ((kind, dim), dss) in zip(axes, groups.items()):
            for ax, (title, fn) in zip(row, metrics):
                for s in ORDER:
                    xs, ys = [], []
                    for d in dss:
                        r = d["systems"].get(s)
                        v = fn(r) if r and r.get("ok") else None
                        if v is not None:
                            xs.append(d["n"])
                            ys.append(v)
                    if xs:
                        ax.plot(xs, ys, marker="o", label=LABEL[s], color=COLOR[s])
                ax.set_xscale("log")
                if "recall" not in title:
                    ax.set_yscale("log")
                ax.set_xlabel("vectors")
                ax.set_title(f"{kind} {dim}-d: {title}", fontsize=9)
                ax.grid(True, which="both", alpha=0.3)
            row[0].legend(fontsize=7)
        fig.tight_layout()
        f = f"{stem}-scaling.png"
        fig.savefig(outdir / f, dpi=110)
        plt.close(fig)
        files.append(f)
    return files
