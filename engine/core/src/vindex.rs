//! The core's view of the vector index crate: one place that maps core types (metric, index
//! spec) onto `ferrovus-index`.

use std::collections::BTreeMap;

use bytes::Bytes;
pub use ferrovus_index::{Bitset, IndexError};
use ferrovus_index::{HnswIndex, HnswParams, Metric};

use crate::error::{CoreError, Result};
use crate::request::{IndexSpec, IndexType, MetricType};

/// Search `ef` when the request gives none (≥ k always).
pub const DEFAULT_SEARCH_EF: usize = ferrovus_index::DEFAULT_SEARCH_EF;

fn metric(m: MetricType) -> Metric {
    match m {
        MetricType::L2 => Metric::L2,
        MetricType::Ip => Metric::Ip,
        MetricType::Cosine => Metric::Cosine,
    }
}

fn metric_back(m: Metric) -> MetricType {
    match m {
        Metric::L2 => MetricType::L2,
        Metric::Ip => MetricType::Ip,
        Metric::Cosine => MetricType::Cosine,
    }
}

/// A built vector index of one sealed segment.
#[derive(Debug)]
pub struct VectorIndex {
    inner: HnswIndex,
}

impl VectorIndex {
    pub fn load(bytes: Bytes) -> Result<Self> {
        Ok(VectorIndex {
            inner: HnswIndex::load(bytes)?,
        })
    }
    /// Memory-map an index file (an object of a local store, see `ObjectStore::local_path`)
    /// and search it in place. Index files are written once and never modified.
    pub fn load_file(path: &std::path::Path) -> Result<Self> {
        Ok(VectorIndex {
            inner: HnswIndex::load_file(path)?,
        })
    }
    pub fn metric(&self) -> MetricType {
        metric_back(self.inner.metric())
    }
    pub fn memory_bytes(&self) -> usize {
        self.inner.memory_bytes()
    }
    pub fn write_to(&self, w: &mut impl std::io::Write) -> Result<()> {
        Ok(self.inner.write_to(w)?)
    }
    pub fn search(
        &self,
        queries: &[f32],
        k: usize,
        ef: usize,
        filter: Option<&Bitset>,
    ) -> Result<Vec<Vec<(u32, f32)>>> {
        Ok(self.inner.search(queries, k, Some(ef), filter)?)
    }
    pub fn len(&self) -> usize {
        self.inner.len()
    }
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
    pub fn dim(&self) -> usize {
        self.inner.dim()
    }
    /// Whether the index holds every inserted vector bit for bit, so a sealed segment can drop
    /// its own copy and read vectors from here. L2 and IP store the vectors unchanged; COSINE
    /// stores them unit-normalised, so (as Milvus' HNSW for COSINE) the segment keeps its column.
    pub fn has_raw_vectors(&self) -> bool {
        self.inner.metric() != Metric::Cosine
    }
    /// The stored vector of row `offset` (< `len()`); the inserted one when `has_raw_vectors`.
    pub fn vector(&self, offset: u32) -> &[f32] {
        self.inner.vector(offset)
    }
}

/// Build the index a spec describes over row-major `vectors`.
pub fn build(spec: &IndexSpec, dim: usize, vectors: &[f32], threads: usize) -> Result<VectorIndex> {
    let params = HnswParams::new(spec.m, spec.ef_construction)?;
    let threads = if threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        threads
    };
    let inner = HnswIndex::build_with(dim, metric(spec.metric), params, vectors, threads, 100)?;
    Ok(VectorIndex { inner })
}

/// Exact search over a contiguous block (growing segments, unindexed sealed segments).
pub fn flat_search(
    data: &[f32],
    dim: usize,
    m: MetricType,
    queries: &[f32],
    k: usize,
    filter: Option<&Bitset>,
) -> Result<Vec<Vec<(u32, f32)>>> {
    Ok(ferrovus_index::flat::search_slice(
        metric(m),
        dim,
        data,
        queries,
        k,
        filter,
    )?)
}

/// HNSW parameters from user index params (`M`, `efConstruction`), validated; AUTOINDEX uses the
/// defaults chosen so recall@10 ≥ 0.95 holds on the reference data set.
pub fn hnsw_params(
    index_type: IndexType,
    params: &BTreeMap<String, String>,
) -> Result<(usize, usize)> {
    let d = HnswParams::AUTOINDEX;
    if index_type != IndexType::Hnsw {
        return Ok((d.m, d.ef_construction));
    }
    let get = |name: &str, default: usize| -> Result<usize> {
        match params.get(name) {
            None => Ok(default),
            Some(v) => v.trim().parse::<usize>().map_err(|_| {
                CoreError::invalid(
                    name,
                    format!("{name} must be a positive integer, got {v:?}"),
                )
            }),
        }
    };
    let m = get("M", d.m)?;
    let efc = get("efConstruction", d.ef_construction)?;
    HnswParams::new(m, efc)?;
    Ok((m, efc))
}
