//! HNSW graph index, laid out like hnswlib.
//!
//! * Level 0: ONE contiguous block, fixed stride per node: `[count u32][M0 = 2M links u32]`, zero
//!   padding up to a 64-byte boundary, then the vector (`dim` f32), padded to 64 bytes. A node's
//!   links and vector are therefore one cache-friendly, aligned region; the vector is what
//!   [`HnswIndex::vector`] returns (no second copy).
//! * Upper levels: a separate `u32` array; a node of level `L > 0` owns `L` lists of
//!   `[count][M links]`.
//! * Search: a pool of visited lists with a generation counter (no clearing, no hashing), software
//!   prefetch of the next neighbour's vector, hnswlib's neighbour-selection heuristic,
//!   `mult = 1 / ln(M)` level generation.
//! * Build: all cores, per-node link-list locks (one lock held at a time, so no deadlock).
//! * Filtered search keeps walking through non-allowed nodes until `ef` allowed results are found
//!   (hnswlib's `isIdAllowed`), and switches to exact search over the allowed rows when they are
//!   few.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::bitset::Bitset;
use crate::blob::{ALIGN, Blob};
use crate::distance::{Kernel, Metric, RawDist, normalize_in_place, prefetch, prefetch_lines};
use crate::flat::{exact_topk, pack_vectors, to_api};
use crate::format::{self, Header, KIND_HNSW};
use crate::topk::Cand;
use crate::{IndexError, SearchResult, check_dim, check_k, check_queries};

/// HNSW build parameters (Milvus names: `M`, `efConstruction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HnswParams {
    /// Max links per node on upper levels; level 0 keeps `2 * m`. Milvus range 2..=2048.
    pub m: usize,
    /// Candidate list size during construction. Milvus range 1..=2^31-1.
    pub ef_construction: usize,
}

impl HnswParams {
    /// AUTOINDEX defaults (see `DEFAULT_SEARCH_EF`).
    pub const AUTOINDEX: HnswParams = HnswParams {
        m: 24,
        ef_construction: 200,
    };

    pub fn new(m: usize, ef_construction: usize) -> Result<HnswParams, IndexError> {
        let p = HnswParams { m, ef_construction };
        p.validate()?;
        Ok(p)
    }

    /// Milvus ranges: `M` in 2..=2048, `efConstruction` in 1..=2^31-1.
    pub fn validate(&self) -> Result<(), IndexError> {
        if !(2..=2048).contains(&self.m) {
            return Err(IndexError::InvalidParam {
                param: "M".into(),
                message: format!("M must be in [2, 2048], got {}", self.m),
            });
        }
        if !(1..=i32::MAX as usize).contains(&self.ef_construction) {
            return Err(IndexError::InvalidParam {
                param: "efConstruction".into(),
                message: format!(
                    "efConstruction must be in [1, 2147483647], got {}",
                    self.ef_construction
                ),
            });
        }
        Ok(())
    }
}

impl Default for HnswParams {
    fn default() -> Self {
        HnswParams::AUTOINDEX
    }
}

/// Search `ef` used when the caller gives none: `max(k, DEFAULT_SEARCH_EF)`.
///
/// Chosen with [`HnswParams::AUTOINDEX`] (M=24, efConstruction=200) on 20k × 128 random-normal
/// vectors, a hard case (real embeddings need less): recall@10 vs exact was 0.933 at ef=128,
/// 0.969 at ef=192, 0.982 at ef=256. (M=16 needs ef≈256 for 0.95, M=32 ef≈128, at about the same
/// number of distance computations; M=24 sits between in memory.)
pub const DEFAULT_SEARCH_EF: usize = 192;

/// Filtered search goes exact (scans the allowed rows) when
/// `allowed² < factor · n · ef · M0`, i.e. when the scan (`allowed` distances) is cheaper than the
/// filtered graph walk, which costs about `ef · M0` (unfiltered visits) divided by the allowed
/// fraction. Measured on 100k × 128 (M=16, ef=64, one thread): at 10 % allowed the walk ran 800
/// QPS vs 4,900 exact, at 2 % 230 vs 30,000, at 1 % 150 vs 65,000; at 30 % the walk wins (2,600
/// vs 500). With factor 2 the switch is at ≈ 20 % there (≈ 6 % at 1M rows, higher for larger ef).
pub const DEFAULT_EXACT_FILTER_FACTOR: f64 = 2.0;

/// Cache lines prefetched per neighbour vector before its distance is computed. One line (as
/// hnswlib) measured best here; the hardware's adjacent-line prefetcher does the rest.
const PREFETCH_LINES: usize = 1;

fn round_up(x: usize, a: usize) -> usize {
    x.div_ceil(a) * a
}

/// Byte layout of one level-0 node: (stride, vector offset).
fn node_layout(dim: usize, m0: usize) -> (usize, usize) {
    let vec_off = round_up(4 + 4 * m0, ALIGN);
    (round_up(vec_off + 4 * dim, ALIGN), vec_off)
}

/// Per-search scratch: visited list with generation tag, heaps, query buffer.
struct Scratch {
    visited: Vec<u16>,
    tag: u16,
    cand: BinaryHeap<Reverse<Cand>>,
    top: BinaryHeap<Cand>,
    links: Vec<u32>,
    q: Vec<f32>,
}

impl Scratch {
    fn new(n: usize, dim: usize) -> Scratch {
        Scratch {
            visited: vec![0; n],
            tag: 0,
            cand: BinaryHeap::new(),
            top: BinaryHeap::new(),
            links: Vec::new(),
            q: vec![0.0; dim],
        }
    }

    #[inline]
    fn next_tag(&mut self) {
        self.tag = self.tag.wrapping_add(1);
        if self.tag == 0 {
            self.visited.fill(0);
            self.tag = 1;
        }
    }
}

/// An HNSW index over `n` vectors. Immutable once built or loaded; searches are `&self` and may
/// run concurrently from any number of threads.
pub struct HnswIndex {
    dim: usize,
    metric: Metric,
    m: usize,
    m0: usize,
    ef_construction: usize,
    n: usize,
    stride: usize,
    vec_off: usize,
    level0: Blob,
    /// Upper-level lists, `u32`.
    upper: Blob,
    /// Level of each node, `u8`.
    levels: Blob,
    /// Original norms (COSINE only), `f32`.
    norms: Blob,
    /// Start of each node's upper lists in `upper` (u32 index); unused for level-0 nodes.
    upper_off: Vec<u32>,
    entry: u32,
    max_level: usize,
    kernel: Kernel,
    dist: RawDist,
    exact_factor: f64,
    pool: Mutex<Vec<Scratch>>,
    /// Cache lines prefetched per neighbour vector.
    pf_lines: usize,
}

impl std::fmt::Debug for HnswIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HnswIndex")
            .field("dim", &self.dim)
            .field("metric", &self.metric)
            .field("len", &self.n)
            .field("m", &self.m)
            .field("ef_construction", &self.ef_construction)
            .field("max_level", &self.max_level)
            .finish()
    }
}

/// Shared state of a parallel build. Link lists are written only under the node's lock; vectors
/// are written before any thread starts and never change.
struct Builder<'a> {
    dim: usize,
    m: usize,
    m0: usize,
    efc: usize,
    stride: usize,
    vec_off: usize,
    base: *mut u8,
    upper: *mut u32,
    upper_off: &'a [u32],
    levels: &'a [u8],
    locks: Vec<Mutex<()>>,
    /// (entry point, max level)
    state: Mutex<(u32, usize)>,
    dist: RawDist,
    /// Cache lines to prefetch per vector.
    pf_lines: usize,
}

// SAFETY: raw pointers are only dereferenced for link lists under the owning node's lock, or for
// vectors that are immutable during the build.
unsafe impl Sync for Builder<'_> {}

impl Builder<'_> {
    #[inline]
    fn vec(&self, i: u32) -> *const f32 {
        // SAFETY: i < n (all ids come from the graph or the insertion loop).
        unsafe { self.base.add(i as usize * self.stride + self.vec_off) as *const f32 }
    }

    #[inline]
    fn d(&self, q: *const f32, i: u32) -> f32 {
        // SAFETY: q and vec(i) point at dim f32.
        unsafe { (self.dist)(q, self.vec(i), self.dim) }
    }

    /// Pointer to node `i`'s list at `level` (`[count, links...]`).
    #[inline]
    fn list(&self, i: u32, level: usize) -> *mut u32 {
        // SAFETY: level 0 lists live in the node block; upper lists exist for level <= levels[i].
        unsafe {
            if level == 0 {
                self.base.add(i as usize * self.stride) as *mut u32
            } else {
                self.upper
                    .add(self.upper_off[i as usize] as usize + (level - 1) * (self.m + 1))
            }
        }
    }

    fn read_links(&self, i: u32, level: usize, out: &mut Vec<u32>) {
        let _g = self.locks[i as usize].lock();
        let p = self.list(i, level);
        // SAFETY: under the node's lock; count <= capacity by construction.
        unsafe {
            let cnt = *p as usize;
            out.clear();
            out.extend_from_slice(std::slice::from_raw_parts(p.add(1), cnt));
        }
    }

    /// hnswlib's `searchBaseLayer` (construction): returns candidates sorted ascending.
    fn search_layer(&self, ep: u32, q: *const f32, level: usize, s: &mut Scratch) -> Vec<Cand> {
        s.next_tag();
        let Scratch {
            visited,
            tag,
            cand,
            top,
            links,
            ..
        } = s;
        let tag = *tag;
        cand.clear();
        top.clear();
        let d = self.d(q, ep);
        top.push(Cand { d, id: ep });
        cand.push(Reverse(Cand { d, id: ep }));
        visited[ep as usize] = tag;
        let mut lb = d;
        while let Some(Reverse(c)) = cand.pop() {
            if c.d > lb && top.len() >= self.efc {
                break;
            }
            self.read_links(c.id, level, links);
            // Keep the unvisited neighbours and prefetch their vectors before computing.
            links.retain(|&nb| {
                let v = &mut visited[nb as usize];
                if *v == tag {
                    return false;
                }
                *v = tag;
                prefetch_lines(self.vec(nb) as *const u8, self.pf_lines);
                true
            });
            for &nb in links.iter() {
                let d = self.d(q, nb);
                if top.len() < self.efc || d < lb {
                    cand.push(Reverse(Cand { d, id: nb }));
                    top.push(Cand { d, id: nb });
                    if top.len() > self.efc {
                        top.pop();
                    }
                    lb = top.peek().map_or(f32::INFINITY, |c| c.d);
                }
            }
        }
        std::mem::take(top).into_sorted_vec()
    }

    /// hnswlib's `getNeighborsByHeuristic2`: `sorted` ascending by distance to the base node.
    fn heuristic(&self, sorted: &[Cand], m: usize, out: &mut Vec<Cand>) {
        out.clear();
        if sorted.len() < m {
            out.extend_from_slice(sorted);
            return;
        }
        for &c in sorted {
            if out.len() >= m {
                break;
            }
            let cv = self.vec(c.id);
            if out.iter().all(|r| self.d(cv, r.id) >= c.d) {
                out.push(c);
            }
        }
    }

    /// hnswlib's `mutuallyConnectNewElement`, first half: selects `i`'s neighbours at `level`
    /// and writes its own list (nobody links to `i` yet, so nobody reads it). Returns them; the
    /// first is the next level's entry point.
    fn connect_own(&self, i: u32, top: &[Cand], level: usize) -> Vec<Cand> {
        let mut selected = Vec::with_capacity(self.m0);
        // hnswlib keeps at most M neighbours for the new node on every level; like faiss and hnsw_rs
        // we keep up to M0 = 2M on level 0. Measured on 20k × 128 random-normal data: at equal
        // distance computations per query recall@10 is 2-3 points higher (e.g. 0.878 vs 0.851).
        let sel = if level == 0 { self.m0 } else { self.m };
        self.heuristic(top, sel, &mut selected);
        {
            let _g = self.locks[i as usize].lock();
            let p = self.list(i, level);
            // SAFETY: under i's lock; selected.len() <= m <= capacity.
            unsafe {
                for (j, c) in selected.iter().enumerate() {
                    *p.add(1 + j) = c.id;
                }
                *p = selected.len() as u32;
            }
        }
        selected
    }

    /// Second half: adds `i` to its neighbours' lists at `level` (pruning full ones), which makes
    /// `i` reachable there. Called once `i`'s own lists are written on every level: a node
    /// visible before it is fully linked could be entered at a level whose list is still empty,
    /// and the back link a concurrent insertion then wrote into it was overwritten, leaving that
    /// node unreachable.
    fn connect_back(&self, i: u32, selected: &[Cand], level: usize) {
        let mmax = if level == 0 { self.m0 } else { self.m };
        let mut cands: Vec<Cand> = Vec::with_capacity(mmax + 1);
        let mut kept: Vec<Cand> = Vec::with_capacity(mmax);
        for c in selected {
            let _g = self.locks[c.id as usize].lock();
            let p = self.list(c.id, level);
            // SAFETY: under c's lock; count <= mmax by construction.
            unsafe {
                let cnt = *p as usize;
                if cnt < mmax {
                    *p.add(1 + cnt) = i;
                    *p = (cnt + 1) as u32;
                } else {
                    let cv = self.vec(c.id);
                    cands.clear();
                    cands.push(Cand { d: c.d, id: i });
                    for j in 0..cnt {
                        prefetch_lines(self.vec(*p.add(1 + j)) as *const u8, self.pf_lines);
                    }
                    for j in 0..cnt {
                        let o = *p.add(1 + j);
                        cands.push(Cand {
                            d: self.d(cv, o),
                            id: o,
                        });
                    }
                    cands.sort_unstable();
                    self.heuristic(&cands, mmax, &mut kept);
                    for (j, k) in kept.iter().enumerate() {
                        *p.add(1 + j) = k.id;
                    }
                    *p = kept.len() as u32;
                }
            }
        }
    }

    /// hnswlib's `addPoint` for a node whose vector is already in place.
    fn insert(&self, i: u32, s: &mut Scratch) {
        let cur_level = self.levels[i as usize] as usize;
        let g = self.state.lock();
        let (mut ep, max_level) = *g;
        // A node that raises the max level holds the global lock for its whole insertion (as
        // hnswlib does), so the entry point always refers to a fully linked node.
        let hold = if cur_level > max_level {
            Some(g)
        } else {
            drop(g);
            None
        };
        let q = self.vec(i);
        if cur_level < max_level {
            let mut cur_d = self.d(q, ep);
            let mut links = std::mem::take(&mut s.links);
            for level in (cur_level + 1..=max_level).rev() {
                loop {
                    let mut changed = false;
                    self.read_links(ep, level, &mut links);
                    for &nb in &links {
                        let d = self.d(q, nb);
                        if d < cur_d {
                            cur_d = d;
                            ep = nb;
                            changed = true;
                        }
                    }
                    if !changed {
                        break;
                    }
                }
            }
            s.links = links;
        }
        let mut chosen = Vec::with_capacity(cur_level.min(max_level) + 1);
        for level in (0..=cur_level.min(max_level)).rev() {
            let top = self.search_layer(ep, q, level, s);
            let selected = self.connect_own(i, &top, level);
            ep = selected.first().map_or(top[0].id, |c| c.id);
            chosen.push((level, selected));
            s.top = BinaryHeap::from(top); // keep the allocation
        }
        for (level, selected) in &chosen {
            self.connect_back(i, selected, *level);
        }
        if let Some(mut g) = hold {
            *g = (i, cur_level);
        }
    }
}

impl HnswIndex {
    /// Builds on all available cores.
    pub fn build(
        dim: usize,
        metric: Metric,
        params: HnswParams,
        vectors: &[f32],
    ) -> Result<HnswIndex, IndexError> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        HnswIndex::build_with(dim, metric, params, vectors, threads, 100)
    }

    /// Builds with an explicit thread count and level-generation seed. With one thread the build
    /// is deterministic.
    pub fn build_with(
        dim: usize,
        metric: Metric,
        params: HnswParams,
        vectors: &[f32],
        threads: usize,
        seed: u64,
    ) -> Result<HnswIndex, IndexError> {
        check_dim(dim)?;
        params.validate()?;
        if vectors.len() % dim != 0 {
            return Err(IndexError::DimMismatch {
                expected: dim,
                got: vectors.len() % dim,
            });
        }
        let n = vectors.len() / dim;
        if n >= u32::MAX as usize {
            return Err(IndexError::InvalidParam {
                param: "num_rows".into(),
                message: format!("{n} rows exceed u32"),
            });
        }
        let (m, m0) = (params.m, 2 * params.m);
        let (stride, vec_off) = node_layout(dim, m0);
        let (mut block, norms) = pack_vectors(metric, dim, vectors, stride, vec_off);

        let mult = 1.0 / (m as f64).ln();
        let mut rng = StdRng::seed_from_u64(seed);
        let levels: Vec<u8> = (0..n)
            .map(|_| {
                let u: f64 = 1.0 - rng.random::<f64>(); // (0, 1]
                ((-u.ln() * mult) as usize).min(u8::MAX as usize) as u8
            })
            .collect();
        let (upper_off, upper_len) = upper_offsets(&levels, m);
        let mut upper = vec![0u32; upper_len];

        let kernel = Kernel::detect();
        let dist = kernel.raw(metric);
        let (entry, max_level) = if n == 0 {
            (0, 0)
        } else {
            let b = Builder {
                dim,
                m,
                m0,
                efc: params.ef_construction,
                stride,
                vec_off,
                base: block.as_mut_ptr(),
                upper: upper.as_mut_ptr(),
                upper_off: &upper_off,
                levels: &levels,
                locks: (0..n).map(|_| Mutex::new(())).collect(),
                state: Mutex::new((0, levels[0] as usize)),
                dist,
                pf_lines: PREFETCH_LINES,
            };
            let next = AtomicUsize::new(1);
            let threads = threads.clamp(1, 256).min(n.div_ceil(64).max(1));
            std::thread::scope(|sc| {
                for _ in 0..threads {
                    sc.spawn(|| {
                        let mut s = Scratch::new(n, dim);
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            if i >= n {
                                break;
                            }
                            b.insert(i as u32, &mut s);
                        }
                    });
                }
            });
            *b.state.lock()
        };
        Ok(HnswIndex {
            dim,
            metric,
            m,
            m0,
            ef_construction: params.ef_construction,
            n,
            stride,
            vec_off,
            level0: Blob::from_aligned(block),
            upper: Blob::from_vec(upper),
            levels: Blob::from_vec(levels),
            norms: Blob::from_vec(norms),
            upper_off,
            entry,
            max_level,
            kernel,
            dist,
            exact_factor: DEFAULT_EXACT_FILTER_FACTOR,
            pool: Mutex::new(Vec::new()),
            pf_lines: PREFETCH_LINES,
        })
    }

    /// Replaces the distance kernel (tests compare the scalar path with SIMD).
    pub fn set_kernel(&mut self, kernel: Kernel) {
        self.kernel = kernel;
        self.dist = kernel.raw(self.metric);
    }

    /// Sets the cost factor of the exact-search switch for filtered searches (default
    /// [`DEFAULT_EXACT_FILTER_FACTOR`]); 0 disables the switch except when no more than `ef`
    /// rows are allowed, which are always scanned.
    pub fn set_exact_filter_factor(&mut self, f: f64) {
        self.exact_factor = f;
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

    pub fn params(&self) -> HnswParams {
        HnswParams {
            m: self.m,
            ef_construction: self.ef_construction,
        }
    }

    pub fn max_level(&self) -> usize {
        self.max_level
    }

    /// Stored vector of row `offset` (unit-normalised for COSINE). Panics if out of range.
    pub fn vector(&self, offset: u32) -> &[f32] {
        let i = offset as usize;
        assert!(i < self.n, "row offset {i} out of range ({} rows)", self.n);
        let b = &self.level0.bytes()
            [i * self.stride + self.vec_off..i * self.stride + self.vec_off + 4 * self.dim];
        // SAFETY: 4-aligned (checked at load / aligned allocation), dim f32.
        unsafe { std::slice::from_raw_parts(b.as_ptr() as *const f32, self.dim) }
    }

    /// Original norm of row `offset` before COSINE normalisation (1.0 for other metrics).
    pub fn norm(&self, offset: u32) -> f32 {
        self.norms
            .as_slice::<f32>()
            .get(offset as usize)
            .copied()
            .unwrap_or(1.0)
    }

    /// Level-0 neighbours of `offset` (diagnostics and tests).
    pub fn neighbors(&self, offset: u32) -> &[u32] {
        assert!((offset as usize) < self.n);
        let p = self.list0(offset);
        // SAFETY: validated list.
        unsafe { std::slice::from_raw_parts(p.add(1), *p as usize) }
    }

    /// Bytes held: the node block, upper links, levels, norms, offsets and the visited-list pool.
    pub fn memory_bytes(&self) -> usize {
        let pool: usize = self
            .pool
            .lock()
            .iter()
            .map(|s| s.visited.len() * 2 + s.q.len() * 4)
            .sum();
        self.level0.len()
            + self.upper.len()
            + self.levels.len()
            + self.norms.len()
            + self.upper_off.len() * 4
            + pool
            + std::mem::size_of::<Self>()
    }

    #[inline(always)]
    fn node(&self, i: u32) -> *const u8 {
        // SAFETY: i < n for every id read from a validated graph.
        unsafe { self.level0.as_ptr().add(i as usize * self.stride) }
    }

    #[inline(always)]
    fn vec(&self, i: u32) -> *const f32 {
        // SAFETY: as node().
        unsafe { self.node(i).add(self.vec_off) as *const f32 }
    }

    #[inline(always)]
    fn list0(&self, i: u32) -> *const u32 {
        self.node(i) as *const u32
    }

    #[inline(always)]
    fn upper_list(&self, i: u32, level: usize) -> *const u32 {
        let off = self.upper_off[i as usize] as usize + (level - 1) * (self.m + 1);
        // SAFETY: validated: i has level >= `level`.
        unsafe { (self.upper.as_ptr() as *const u32).add(off) }
    }

    fn get_scratch(&self) -> Scratch {
        self.pool
            .lock()
            .pop()
            .unwrap_or_else(|| Scratch::new(self.n, self.dim))
    }

    fn put_scratch(&self, s: Scratch) {
        let mut p = self.pool.lock();
        if p.len() < 64 {
            p.push(s);
        }
    }

    /// Top-`k` per query, best first, Milvus score convention. `ef = max(ef, k)`; `None` means
    /// `max(k, DEFAULT_SEARCH_EF)`.
    pub fn search(
        &self,
        queries: &[f32],
        k: usize,
        ef: Option<usize>,
        filter: Option<&Bitset>,
    ) -> Result<Vec<SearchResult>, IndexError> {
        check_k(k)?;
        let nq = check_queries(self.dim, queries)?;
        let ef = ef.unwrap_or(DEFAULT_SEARCH_EF).max(k);
        let mut out = Vec::with_capacity(nq);
        if self.n == 0 {
            out.resize(nq, Vec::new());
            return Ok(out);
        }
        let mode = match filter {
            // A beam as wide as the index: a scan is cheaper and exact.
            None if ef >= self.n => FilterMode::Exact(None),
            None => FilterMode::None,
            Some(f) => {
                let allowed = f.count_ones_before(self.n);
                if allowed == 0 {
                    FilterMode::Empty
                } else if ef >= self.n || self.prefer_exact(allowed, ef) {
                    FilterMode::Exact(Some(f))
                } else {
                    FilterMode::Graph(f)
                }
            }
        };
        let mut s = self.get_scratch();
        for q in queries.chunks_exact(self.dim) {
            s.q.copy_from_slice(q);
            if self.metric == Metric::Cosine {
                normalize_in_place(&mut s.q);
            }
            let res = match mode {
                FilterMode::Empty => Vec::new(),
                FilterMode::Exact(f) => {
                    // SAFETY: level0 holds n nodes of `stride` bytes, vectors at vec_off.
                    unsafe {
                        exact_topk(
                            self.dist,
                            s.q.as_ptr(),
                            self.level0.as_ptr().add(self.vec_off),
                            self.stride,
                            self.dim,
                            self.n,
                            k,
                            f,
                        )
                    }
                }
                FilterMode::None => self.search_one(&mut s, k, ef, None),
                FilterMode::Graph(f) => self.search_one(&mut s, k, ef, Some(f)),
            };
            out.push(to_api(self.metric, res));
        }
        self.put_scratch(s);
        Ok(out)
    }

    fn prefer_exact(&self, allowed: usize, ef: usize) -> bool {
        let a = allowed as f64;
        allowed <= ef || a * a < self.exact_factor * self.n as f64 * ef as f64 * self.m0 as f64
    }

    /// Greedy descent through the upper levels, then the level-0 beam search.
    fn search_one(
        &self,
        s: &mut Scratch,
        k: usize,
        ef: usize,
        filter: Option<&Bitset>,
    ) -> Vec<crate::topk::Cand> {
        let q = s.q.as_ptr();
        let mut cur = self.entry;
        // SAFETY: ids come from the validated graph; q has dim f32.
        unsafe {
            let mut cur_d = (self.dist)(q, self.vec(cur), self.dim);
            for level in (1..=self.max_level).rev() {
                loop {
                    let mut changed = false;
                    let p = self.upper_list(cur, level);
                    let cnt = *p as usize;
                    for j in 1..=cnt {
                        let nb = *p.add(j);
                        prefetch(self.vec(*p.add((j + 1).min(cnt))));
                        let d = (self.dist)(q, self.vec(nb), self.dim);
                        if d < cur_d {
                            cur_d = d;
                            cur = nb;
                            changed = true;
                        }
                    }
                    if !changed {
                        break;
                    }
                }
            }
            self.search_level0(s, cur, cur_d, ef, filter);
        }
        let mut v = std::mem::take(&mut s.top).into_sorted_vec();
        v.truncate(k);
        s.top = BinaryHeap::with_capacity(ef.min(self.n) + 1);
        v
    }

    /// hnswlib's `searchBaseLayerST`, with the `isIdAllowed` filter semantics.
    ///
    /// # Safety
    /// `ep < n`, `s.q` has `dim` elements, graph validated.
    unsafe fn search_level0(
        &self,
        s: &mut Scratch,
        ep: u32,
        ep_d: f32,
        ef: usize,
        filter: Option<&Bitset>,
    ) {
        s.next_tag();
        let Scratch {
            visited,
            tag,
            cand,
            top,
            q,
            links: batch,
            ..
        } = s;
        let tag = *tag;
        let q = q.as_ptr();
        batch.resize(self.m0, 0);
        let pf = self.pf_lines;
        let vis = visited.as_mut_ptr();
        let dim = self.dim;
        let dist = self.dist;
        cand.clear();
        top.clear();
        let allowed = |id: u32| filter.is_none_or(|f| f.get(id as usize));
        let mut lb = f32::INFINITY;
        if allowed(ep) {
            top.push(Cand { d: ep_d, id: ep });
            lb = ep_d;
        }
        cand.push(Reverse(Cand { d: ep_d, id: ep }));
        // SAFETY (whole block): every id is < n (validated graph) and `vis` has n entries.
        unsafe {
            *vis.add(ep as usize) = tag;
            while let Some(&Reverse(c)) = cand.peek() {
                if c.d > lb && (top.len() == ef || filter.is_none()) {
                    break;
                }
                cand.pop();
                let p = self.list0(c.id);
                let cnt = *p as usize;
                // Gather the unvisited neighbours and prefetch their vectors, then compute.
                let mut nb = 0usize;
                let bp = batch.as_mut_ptr();
                for j in 1..=cnt {
                    let id = *p.add(j);
                    let v = vis.add(id as usize);
                    if *v != tag {
                        *v = tag;
                        *bp.add(nb) = id;
                        nb += 1;
                        prefetch_lines(self.vec(id) as *const u8, pf);
                    }
                }
                for j in 0..nb {
                    let id = *bp.add(j);
                    let d = dist(q, self.vec(id), dim);
                    if top.len() < ef || d < lb {
                        cand.push(Reverse(Cand { d, id }));
                        if let Some(Reverse(t)) = cand.peek() {
                            prefetch(self.node(t.id));
                        }
                        if allowed(id) {
                            top.push(Cand { d, id });
                            if top.len() > ef {
                                top.pop();
                            }
                            lb = top.peek().map_or(f32::INFINITY, |c| c.d);
                        }
                    }
                }
            }
        }
    }

    /// Writes the index in the versioned, checksummed format (see [`crate::format`]).
    pub fn write_to(&self, w: &mut impl std::io::Write) -> Result<(), IndexError> {
        let h = Header {
            kind: KIND_HNSW,
            metric: self.metric.code(),
            dim: self.dim as u32,
            n: self.n as u64,
            params: [
                self.m as u32,
                self.m0 as u32,
                self.ef_construction.min(u32::MAX as usize) as u32,
                self.max_level as u32,
                self.entry,
                self.stride as u32,
                self.vec_off as u32,
                0,
            ],
        };
        format::write_file(
            w,
            &h,
            &[
                self.level0.bytes(),
                self.upper.bytes(),
                self.levels.bytes(),
                self.norms.bytes(),
            ],
        )
    }

    /// Loads from bytes (a `Vec<u8>`, a `memmap2::Mmap`, ...) and searches them in place: the
    /// node block is not copied. Verifies size, magic, version, checksum and graph sanity.
    pub fn load(bytes: impl AsRef<[u8]> + Send + Sync + 'static) -> Result<HnswIndex, IndexError> {
        let blob = format::aligned(Blob::from_shared(bytes));
        let (h, sections) = format::read_file(&blob)?;
        HnswIndex::from_file_parts(h, sections)
    }

    /// Memory-maps `path` and loads it in place.
    pub fn load_file(path: impl AsRef<Path>) -> Result<HnswIndex, IndexError> {
        HnswIndex::load(map_file(path.as_ref())?)
    }

    pub(crate) fn from_file_parts(h: Header, sections: Vec<Blob>) -> Result<HnswIndex, IndexError> {
        let bad = |m: String| IndexError::Corrupted(m);
        if h.kind != KIND_HNSW {
            return Err(bad(format!("index kind {} is not HNSW", h.kind)));
        }
        let metric = Metric::from_code(h.metric)
            .ok_or_else(|| bad(format!("unknown metric code {}", h.metric)))?;
        let dim = h.dim as usize;
        let n = usize::try_from(h.n).map_err(|_| bad("row count overflows".into()))?;
        let [m, m0, efc, max_level, entry, stride, vec_off, _] = h.params.map(|x| x as usize);
        if !(1..=crate::MAX_DIM).contains(&dim)
            || !(2..=2048).contains(&m)
            || m0 != 2 * m
            || n >= u32::MAX as usize
        {
            return Err(bad(format!(
                "invalid header: dim {dim}, M {m}, M0 {m0}, rows {n}"
            )));
        }
        if (stride, vec_off) != node_layout(dim, m0) {
            return Err(bad(format!(
                "invalid node layout: stride {stride}, vector offset {vec_off}"
            )));
        }
        if sections.len() != 4 {
            return Err(bad(format!(
                "expected 4 sections, found {}",
                sections.len()
            )));
        }
        let [level0, upper, levels, norms]: [Blob; 4] = sections.try_into().unwrap();
        if Some(level0.len()) != n.checked_mul(stride) {
            return Err(bad(format!(
                "node block is {} bytes, expected {} × {stride}",
                level0.len(),
                n
            )));
        }
        if levels.len() != n {
            return Err(bad(format!(
                "levels section has {} entries, expected {n}",
                levels.len()
            )));
        }
        let norms_len = if metric == Metric::Cosine { n * 4 } else { 0 };
        if norms.len() != norms_len {
            return Err(bad(format!(
                "norms section is {} bytes, expected {norms_len}",
                norms.len()
            )));
        }
        let lv: &[u8] = levels.as_slice();
        let (upper_off, upper_len) = upper_offsets(lv, m);
        if upper.len() != upper_len * 4 {
            return Err(bad(format!(
                "upper-level section is {} bytes, expected {}",
                upper.len(),
                upper_len * 4
            )));
        }
        if n > 0 {
            let real_max = lv.iter().copied().max().unwrap_or(0) as usize;
            if entry >= n || lv[entry] as usize != max_level || real_max != max_level {
                return Err(bad(format!(
                    "invalid entry point {entry} / max level {max_level}"
                )));
            }
        }
        // Graph sanity, so that search can index without bounds checks.
        let l0 = level0.bytes();
        for i in 0..n {
            let rec = &l0[i * stride..i * stride + 4 * (1 + m0)];
            let cnt = u32::from_le_bytes(rec[0..4].try_into().unwrap()) as usize;
            if cnt > m0 {
                return Err(bad(format!("node {i}: {cnt} level-0 links (max {m0})")));
            }
            for j in 0..cnt {
                let id = u32::from_le_bytes(rec[4 + 4 * j..8 + 4 * j].try_into().unwrap()) as usize;
                if id >= n {
                    return Err(bad(format!("node {i}: link to {id} out of range")));
                }
            }
        }
        let up: &[u32] = upper.as_slice();
        for i in 0..n {
            for level in 1..=lv[i] as usize {
                let o = upper_off[i] as usize + (level - 1) * (m + 1);
                let cnt = up[o] as usize;
                if cnt > m {
                    return Err(bad(format!(
                        "node {i}: {cnt} links on level {level} (max {m})"
                    )));
                }
                for &id in &up[o + 1..o + 1 + cnt] {
                    if id as usize >= n || (lv[id as usize] as usize) < level {
                        return Err(bad(format!(
                            "node {i}: invalid link to {id} on level {level}"
                        )));
                    }
                }
            }
        }
        let kernel = Kernel::detect();
        Ok(HnswIndex {
            dim,
            metric,
            m,
            m0,
            ef_construction: efc,
            n,
            stride,
            vec_off,
            level0,
            upper,
            levels,
            norms,
            upper_off,
            entry: entry as u32,
            max_level,
            kernel,
            dist: kernel.raw(metric),
            exact_factor: DEFAULT_EXACT_FILTER_FACTOR,
            pool: Mutex::new(Vec::new()),
            pf_lines: PREFETCH_LINES,
        })
    }
}

#[derive(Clone, Copy)]
enum FilterMode<'a> {
    None,
    Empty,
    Exact(Option<&'a Bitset>),
    Graph(&'a Bitset),
}

/// Start offsets (in u32) of each node's upper-level lists, and the total length.
fn upper_offsets(levels: &[u8], m: usize) -> (Vec<u32>, usize) {
    let mut off = Vec::with_capacity(levels.len());
    let mut total = 0usize;
    for &l in levels {
        off.push(if l == 0 { u32::MAX } else { total as u32 });
        total += l as usize * (m + 1);
    }
    (off, total)
}

pub(crate) fn map_file(path: &Path) -> Result<memmap2::Mmap, IndexError> {
    let f = std::fs::File::open(path)?;
    // SAFETY: index files are written once and never modified in place; the map is read-only.
    let map = unsafe { memmap2::Mmap::map(&f)? };
    // Best effort: huge pages for the randomly accessed node block, where the kernel and file
    // system support them for file mappings.
    #[cfg(target_os = "linux")]
    let _ = map.advise(memmap2::Advice::HugePage);
    Ok(map)
}
