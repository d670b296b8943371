//! Vector indexes for Ferrovus: exact FLAT search and an hnswlib-style HNSW graph, over SIMD f32
//! distance kernels chosen at run time.
//!
//! The core uses [`VectorIndex`]: build it from row-major vectors, search it (optionally with a
//! [`Bitset`] of allowed row offsets), read vectors back from it ([`VectorIndex::vector`], so the
//! core keeps no second copy), persist it ([`VectorIndex::write_to`]) and load it back from bytes
//! or a memory map without copying ([`VectorIndex::load`], [`VectorIndex::load_file`]).
//!
//! Scores follow Milvus: L2 returns the squared distance (ascending, smaller is better); IP and
//! COSINE return the similarity (descending). Row ids are `u32` offsets in insertion order.

// `is_multiple_of` needs Rust 1.87; the workspace MSRV is 1.85.
#![allow(clippy::manual_is_multiple_of)]

use std::path::Path;

use thiserror::Error;

pub mod bitset;
mod blob;
pub mod distance;
pub mod flat;
pub mod format;
pub mod fuzzing;
pub mod hnsw;
mod topk;

pub use bitset::Bitset;
pub use distance::{Kernel, Metric, SimdLevel};
pub use flat::FlatIndex;
pub use hnsw::{DEFAULT_EXACT_FILTER_FACTOR, DEFAULT_SEARCH_EF, HnswIndex, HnswParams};

#[derive(Debug, Error)]
pub enum IndexError {
    #[error("invalid index parameter {param}: {message}")]
    InvalidParam { param: String, message: String },
    #[error("vector dimension mismatch: expected a multiple of {expected} values, got {got}")]
    DimMismatch { expected: usize, got: usize },
    #[error("corrupted index file: {0}")]
    Corrupted(String),
    #[error("io error: {0}")]
    Io(#[from] std::io::Error),
}

/// One query's results: `(row offset, score)`, best first, Milvus score convention.
pub type SearchResult = Vec<(u32, f32)>;

/// Largest vector dimension accepted (Milvus' limit).
pub const MAX_DIM: usize = 32768;

pub(crate) fn check_dim(dim: usize) -> Result<(), IndexError> {
    if !(1..=MAX_DIM).contains(&dim) {
        return Err(IndexError::InvalidParam {
            param: "dim".into(),
            message: format!("dim must be in [1, {MAX_DIM}], got {dim}"),
        });
    }
    Ok(())
}

pub(crate) fn check_k(k: usize) -> Result<(), IndexError> {
    if k == 0 {
        return Err(IndexError::InvalidParam {
            param: "topk".into(),
            message: "topk must be at least 1".into(),
        });
    }
    Ok(())
}

/// Number of queries in `queries`, or a dimension error.
pub(crate) fn check_queries(dim: usize, queries: &[f32]) -> Result<usize, IndexError> {
    if queries.len() % dim != 0 {
        return Err(IndexError::DimMismatch {
            expected: dim,
            got: queries.len(),
        });
    }
    Ok(queries.len() / dim)
}

/// Index type, as Milvus names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IndexType {
    Flat,
    Hnsw,
}

impl IndexType {
    pub fn as_str(self) -> &'static str {
        match self {
            IndexType::Flat => "FLAT",
            IndexType::Hnsw => "HNSW",
        }
    }
}

/// What to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IndexParams {
    Flat,
    Hnsw(HnswParams),
}

impl IndexParams {
    /// What Milvus' AUTOINDEX maps to here: HNSW with [`HnswParams::AUTOINDEX`]; search with
    /// `ef = max(k, DEFAULT_SEARCH_EF)` when the request gives none.
    pub fn autoindex() -> IndexParams {
        IndexParams::Hnsw(HnswParams::AUTOINDEX)
    }

    pub fn index_type(&self) -> IndexType {
        match self {
            IndexParams::Flat => IndexType::Flat,
            IndexParams::Hnsw(_) => IndexType::Hnsw,
        }
    }

    pub fn validate(&self) -> Result<(), IndexError> {
        match self {
            IndexParams::Flat => Ok(()),
            IndexParams::Hnsw(p) => p.validate(),
        }
    }
}

/// The index the core stores per sealed segment (and FLAT for small/growing data).
#[derive(Debug)]
pub enum VectorIndex {
    Flat(FlatIndex),
    Hnsw(HnswIndex),
}

impl VectorIndex {
    /// Builds from `vectors` (row-major, `n * dim` values). The vectors are copied once into the
    /// index, which then serves them back through [`VectorIndex::vector`].
    pub fn build(
        dim: usize,
        metric: Metric,
        params: &IndexParams,
        vectors: &[f32],
    ) -> Result<VectorIndex, IndexError> {
        params.validate()?;
        Ok(match params {
            IndexParams::Flat => VectorIndex::Flat(FlatIndex::build(dim, metric, vectors)?),
            IndexParams::Hnsw(p) => VectorIndex::Hnsw(HnswIndex::build(dim, metric, *p, vectors)?),
        })
    }

    /// Top-`k` for each query (`queries` is row-major, a multiple of `dim` values), best first, in
    /// the Milvus score convention. `ef` is the HNSW search list size: `None` means
    /// `max(k, DEFAULT_SEARCH_EF)`; an explicit `ef < k` is rejected as Milvus does. FLAT ignores
    /// `ef`. `filter` restricts results to the set bits (rows beyond its length are excluded).
    pub fn search(
        &self,
        queries: &[f32],
        k: usize,
        ef: Option<usize>,
        filter: Option<&Bitset>,
    ) -> Result<Vec<SearchResult>, IndexError> {
        check_k(k)?;
        match self {
            VectorIndex::Flat(f) => f.search(queries, k, filter),
            VectorIndex::Hnsw(h) => {
                if let Some(ef) = ef.filter(|&ef| ef < k) {
                    return Err(IndexError::InvalidParam {
                        param: "ef".into(),
                        message: format!("ef ({ef}) should be larger than or equal to topk ({k})"),
                    });
                }
                h.search(queries, k, ef, filter)
            }
        }
    }

    pub fn index_type(&self) -> IndexType {
        match self {
            VectorIndex::Flat(_) => IndexType::Flat,
            VectorIndex::Hnsw(_) => IndexType::Hnsw,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            VectorIndex::Flat(f) => f.len(),
            VectorIndex::Hnsw(h) => h.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn dim(&self) -> usize {
        match self {
            VectorIndex::Flat(f) => f.dim(),
            VectorIndex::Hnsw(h) => h.dim(),
        }
    }

    pub fn metric(&self) -> Metric {
        match self {
            VectorIndex::Flat(f) => f.metric(),
            VectorIndex::Hnsw(h) => h.metric(),
        }
    }

    /// The stored vector of row `offset`. For COSINE it is unit-normalised; multiply by
    /// [`VectorIndex::norm`] to recover the inserted vector (up to rounding). Panics if
    /// `offset >= len()`.
    pub fn vector(&self, offset: u32) -> &[f32] {
        match self {
            VectorIndex::Flat(f) => f.vector(offset),
            VectorIndex::Hnsw(h) => h.vector(offset),
        }
    }

    /// The inserted vector's norm for COSINE (1.0 for L2/IP).
    pub fn norm(&self, offset: u32) -> f32 {
        match self {
            VectorIndex::Flat(f) => f.norm(offset),
            VectorIndex::Hnsw(h) => h.norm(offset),
        }
    }

    /// The inserted vector of row `offset` (for COSINE: the stored unit vector times its norm).
    pub fn original_vector(&self, offset: u32) -> Vec<f32> {
        let v = self.vector(offset);
        if self.metric() == Metric::Cosine {
            let n = self.norm(offset);
            v.iter().map(|x| x * n).collect()
        } else {
            v.to_vec()
        }
    }

    /// Approximate heap (or mapped) bytes held by the index.
    pub fn memory_bytes(&self) -> usize {
        match self {
            VectorIndex::Flat(f) => f.memory_bytes(),
            VectorIndex::Hnsw(h) => h.memory_bytes(),
        }
    }

    /// Writes the index file (versioned, CRC-32 checksummed, little-endian; see [`format`]).
    pub fn write_to(&self, w: &mut impl std::io::Write) -> Result<(), IndexError> {
        match self {
            VectorIndex::Flat(f) => f.write_to(w),
            VectorIndex::Hnsw(h) => h.write_to(w),
        }
    }

    /// Loads an index of either kind from bytes (`Vec<u8>`, `memmap2::Mmap`, `bytes::Bytes`...)
    /// and searches them in place (no copy of the vectors / graph, provided the bytes are 4-byte
    /// aligned, which heap buffers and maps are).
    pub fn load(
        bytes: impl AsRef<[u8]> + Send + Sync + 'static,
    ) -> Result<VectorIndex, IndexError> {
        let blob = format::aligned(blob::Blob::from_shared(bytes));
        let (h, sections) = format::read_file(&blob)?;
        match h.kind {
            format::KIND_FLAT => Ok(VectorIndex::Flat(FlatIndex::from_file_parts(h, sections)?)),
            format::KIND_HNSW => Ok(VectorIndex::Hnsw(HnswIndex::from_file_parts(h, sections)?)),
            k => Err(IndexError::Corrupted(format!("unknown index kind {k}"))),
        }
    }

    /// Memory-maps `path` and loads it in place.
    pub fn load_file(path: impl AsRef<Path>) -> Result<VectorIndex, IndexError> {
        VectorIndex::load(hnsw::map_file(path.as_ref())?)
    }
}
