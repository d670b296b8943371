//! Exact (brute-force) search over a contiguous row-major block of f32 vectors.

use crate::bitset::Bitset;
use crate::blob::{AlignedBuf, Blob};
use crate::distance::{Kernel, Metric, RawDist, normalize_in_place};
use crate::topk::{Cand, TopK};
use crate::{IndexError, SearchResult, check_dim, check_k, check_queries};

/// Exact search: scans every (allowed) row. Used for growing segments and as the exact fallback.
pub struct FlatIndex {
    pub(crate) dim: usize,
    pub(crate) metric: Metric,
    pub(crate) n: usize,
    /// n × dim f32, normalised for COSINE.
    pub(crate) data: Blob,
    /// Original norms (COSINE only; empty otherwise).
    pub(crate) norms: Blob,
    kernel: Kernel,
}

impl std::fmt::Debug for FlatIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlatIndex")
            .field("dim", &self.dim)
            .field("metric", &self.metric)
            .field("len", &self.n)
            .finish()
    }
}

/// Copies `vectors` into a 64-byte aligned buffer with row stride `stride` bytes at byte offset
/// `vec_off` of each row, normalising for COSINE. Returns the buffer and the original norms.
pub(crate) fn pack_vectors(
    metric: Metric,
    dim: usize,
    vectors: &[f32],
    stride: usize,
    vec_off: usize,
) -> (AlignedBuf, Vec<f32>) {
    let n = vectors.len() / dim;
    let mut buf = AlignedBuf::zeroed(n * stride);
    let mut norms = Vec::new();
    if metric == Metric::Cosine {
        norms.reserve_exact(n);
    }
    let bytes = buf.as_mut_slice();
    for (i, row) in vectors.chunks_exact(dim).enumerate() {
        let dst = &mut bytes[i * stride + vec_off..i * stride + vec_off + dim * 4];
        // SAFETY: dst is 4-byte aligned (stride and vec_off are multiples of 4, the buffer is
        // 64-aligned) and holds exactly dim f32.
        let dst: &mut [f32] =
            unsafe { std::slice::from_raw_parts_mut(dst.as_mut_ptr() as *mut f32, dim) };
        dst.copy_from_slice(row);
        if metric == Metric::Cosine {
            norms.push(normalize_in_place(dst));
        }
    }
    (buf, norms)
}

impl FlatIndex {
    /// Builds from `vectors` (row-major, `len = n * dim`). The vectors are copied once.
    pub fn build(dim: usize, metric: Metric, vectors: &[f32]) -> Result<FlatIndex, IndexError> {
        check_dim(dim)?;
        if vectors.len() % dim != 0 {
            return Err(IndexError::DimMismatch {
                expected: dim,
                got: vectors.len() % dim,
            });
        }
        let n = vectors.len() / dim;
        if n > u32::MAX as usize - 1 {
            return Err(IndexError::InvalidParam {
                param: "num_rows".into(),
                message: format!("{n} rows exceed u32"),
            });
        }
        let (buf, norms) = pack_vectors(metric, dim, vectors, dim * 4, 0);
        Ok(FlatIndex::from_parts(
            dim,
            metric,
            n,
            Blob::from_aligned(buf),
            Blob::from_vec(norms),
        ))
    }

    pub(crate) fn from_parts(
        dim: usize,
        metric: Metric,
        n: usize,
        data: Blob,
        norms: Blob,
    ) -> FlatIndex {
        debug_assert_eq!(data.len(), n * dim * 4);
        FlatIndex {
            dim,
            metric,
            n,
            data,
            norms,
            kernel: Kernel::detect(),
        }
    }

    /// Replaces the distance kernel (tests compare the scalar path with SIMD).
    pub fn set_kernel(&mut self, kernel: Kernel) {
        self.kernel = kernel;
    }

    pub fn len(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// Stored vector of row `offset` (unit-normalised for COSINE). Panics if out of range.
    pub fn vector(&self, offset: u32) -> &[f32] {
        let i = offset as usize;
        assert!(i < self.n, "row offset {i} out of range ({} rows)", self.n);
        &self.data.as_slice::<f32>()[i * self.dim..(i + 1) * self.dim]
    }

    /// Original norm of row `offset` before COSINE normalisation (1.0 for other metrics).
    pub fn norm(&self, offset: u32) -> f32 {
        self.norms
            .as_slice::<f32>()
            .get(offset as usize)
            .copied()
            .unwrap_or(1.0)
    }

    pub fn memory_bytes(&self) -> usize {
        self.data.len() + self.norms.len() + std::mem::size_of::<Self>()
    }

    /// Exact top-`k` per query; results best first in the Milvus score convention.
    pub fn search(
        &self,
        queries: &[f32],
        k: usize,
        filter: Option<&Bitset>,
    ) -> Result<Vec<SearchResult>, IndexError> {
        check_k(k)?;
        let nq = check_queries(self.dim, queries)?;
        let dist = self.kernel.raw(self.metric);
        let mut qbuf = vec![0.0f32; self.dim];
        let mut out = Vec::with_capacity(nq);
        for q in queries.chunks_exact(self.dim) {
            qbuf.copy_from_slice(q);
            if self.metric == Metric::Cosine {
                normalize_in_place(&mut qbuf);
            }
            // SAFETY: data holds n rows of dim f32 with stride dim*4 bytes.
            let c = unsafe {
                exact_topk(
                    dist,
                    qbuf.as_ptr(),
                    self.data.as_ptr(),
                    self.dim * 4,
                    self.dim,
                    self.n,
                    k,
                    filter,
                )
            };
            out.push(to_api(self.metric, c));
        }
        Ok(out)
    }
}

pub(crate) fn to_api(metric: Metric, c: Vec<Cand>) -> SearchResult {
    c.into_iter()
        .map(|c| (c.id, metric.to_score(c.d)))
        .collect()
}

/// Top-k over `n` rows at `base + i*stride` (bytes), each `dim` f32, restricted to `filter`.
///
/// # Safety
/// `base` must be valid for `n * stride` bytes with each row's `dim` f32 at its start, 4-aligned.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn exact_topk(
    dist: RawDist,
    q: *const f32,
    base: *const u8,
    stride: usize,
    dim: usize,
    n: usize,
    k: usize,
    filter: Option<&Bitset>,
) -> Vec<Cand> {
    let mut top = TopK::new(k, n);
    match filter {
        None => {
            for i in 0..n {
                // SAFETY: i < n, caller's contract.
                let d = unsafe { dist(q, base.add(i * stride) as *const f32, dim) };
                if d < top.threshold() {
                    top.push(d, i as u32);
                }
            }
        }
        Some(bits) => {
            for i in bits.iter_ones() {
                if i >= n {
                    break;
                }
                // SAFETY: i < n.
                let d = unsafe { dist(q, base.add(i * stride) as *const f32, dim) };
                if d < top.threshold() {
                    top.push(d, i as u32);
                }
            }
        }
    }
    top.into_sorted()
}

/// Exact search directly over a caller-owned row-major block (e.g. a growing segment), without
/// building an index. For COSINE the rows need not be normalised (norms are computed on the fly).
pub fn search_slice(
    metric: Metric,
    dim: usize,
    data: &[f32],
    queries: &[f32],
    k: usize,
    filter: Option<&Bitset>,
) -> Result<Vec<SearchResult>, IndexError> {
    check_dim(dim)?;
    check_k(k)?;
    if data.len() % dim != 0 {
        return Err(IndexError::DimMismatch {
            expected: dim,
            got: data.len() % dim,
        });
    }
    let nq = check_queries(dim, queries)?;
    let kernel = Kernel::detect();
    let n = data.len() / dim;
    let mut out = Vec::with_capacity(nq);
    let mut qbuf = vec![0.0f32; dim];
    let inv_norms: Vec<f32> = if metric == Metric::Cosine {
        data.chunks_exact(dim)
            .map(|r| {
                let n = kernel.dot(r, r).sqrt();
                if n > 0.0 && n.is_finite() {
                    1.0 / n
                } else {
                    1.0
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    for q in queries.chunks_exact(dim) {
        qbuf.copy_from_slice(q);
        let c = if metric == Metric::Cosine {
            normalize_in_place(&mut qbuf);
            let mut top = TopK::new(k, n);
            let mut visit = |i: usize| {
                let d = -kernel.dot(&qbuf, &data[i * dim..(i + 1) * dim]) * inv_norms[i];
                if d < top.threshold() {
                    top.push(d, i as u32);
                }
            };
            match filter {
                None => (0..n).for_each(&mut visit),
                Some(b) => b.iter_ones().take_while(|&i| i < n).for_each(&mut visit),
            }
            top.into_sorted()
        } else {
            // SAFETY: data holds n rows of dim f32, stride dim*4 bytes, 4-aligned.
            unsafe {
                exact_topk(
                    kernel.raw(metric),
                    qbuf.as_ptr(),
                    data.as_ptr() as *const u8,
                    dim * 4,
                    dim,
                    n,
                    k,
                    filter,
                )
            }
        };
        out.push(to_api(metric, c));
    }
    Ok(out)
}

impl FlatIndex {
    /// Writes the index in the versioned, checksummed format (see [`crate::format`]).
    pub fn write_to(&self, w: &mut impl std::io::Write) -> Result<(), IndexError> {
        let h = crate::format::Header {
            kind: crate::format::KIND_FLAT,
            metric: self.metric.code(),
            dim: self.dim as u32,
            n: self.n as u64,
            params: [0; 8],
        };
        crate::format::write_file(w, &h, &[self.data.bytes(), self.norms.bytes()])
    }

    /// Loads from bytes (a `Vec<u8>`, a `memmap2::Mmap`, ...) without copying the vectors.
    pub fn load(bytes: impl AsRef<[u8]> + Send + Sync + 'static) -> Result<FlatIndex, IndexError> {
        let blob = crate::format::aligned(Blob::from_shared(bytes));
        let (h, sections) = crate::format::read_file(&blob)?;
        FlatIndex::from_file_parts(h, sections)
    }

    /// Memory-maps `path` and loads it in place.
    pub fn load_file(path: impl AsRef<std::path::Path>) -> Result<FlatIndex, IndexError> {
        FlatIndex::load(crate::hnsw::map_file(path.as_ref())?)
    }

    pub(crate) fn from_file_parts(
        h: crate::format::Header,
        sections: Vec<Blob>,
    ) -> Result<FlatIndex, IndexError> {
        let bad = |m: String| IndexError::Corrupted(m);
        if h.kind != crate::format::KIND_FLAT {
            return Err(bad(format!("index kind {} is not FLAT", h.kind)));
        }
        let metric = Metric::from_code(h.metric)
            .ok_or_else(|| bad(format!("unknown metric code {}", h.metric)))?;
        let dim = h.dim as usize;
        let n = usize::try_from(h.n).map_err(|_| bad("row count overflows".into()))?;
        if !(1..=crate::MAX_DIM).contains(&dim) || n >= u32::MAX as usize {
            return Err(bad(format!("invalid header: dim {dim}, rows {n}")));
        }
        if sections.len() != 2 {
            return Err(bad(format!(
                "expected 2 sections, found {}",
                sections.len()
            )));
        }
        let [data, norms]: [Blob; 2] = sections.try_into().unwrap();
        if Some(data.len()) != n.checked_mul(dim * 4) {
            return Err(bad(format!(
                "vector section is {} bytes, expected {n} × {dim} × 4",
                data.len()
            )));
        }
        let norms_len = if metric == Metric::Cosine { n * 4 } else { 0 };
        if norms.len() != norms_len {
            return Err(bad(format!(
                "norms section is {} bytes, expected {norms_len}",
                norms.len()
            )));
        }
        Ok(FlatIndex::from_parts(dim, metric, n, data, norms))
    }
}
