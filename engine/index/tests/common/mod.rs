#![allow(dead_code)]

use ferrovus_index::{Bitset, Metric, SearchResult, flat};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

pub fn normal(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n * dim)
        .map(|_| rng.sample::<f32, _>(StandardNormal))
        .collect()
}

/// Gaussian clusters (easier, more realistic than isotropic noise).
pub fn clustered(n: usize, dim: usize, clusters: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let centers: Vec<f32> = (0..clusters * dim)
        .map(|_| rng.sample::<f32, _>(StandardNormal) * 3.0)
        .collect();
    let mut out = Vec::with_capacity(n * dim);
    for _ in 0..n {
        let c = rng.random_range(0..clusters);
        for j in 0..dim {
            out.push(centers[c * dim + j] + rng.sample::<f32, _>(StandardNormal));
        }
    }
    out
}

pub fn exact(
    metric: Metric,
    dim: usize,
    data: &[f32],
    queries: &[f32],
    k: usize,
    filter: Option<&Bitset>,
) -> Vec<SearchResult> {
    flat::search_slice(metric, dim, data, queries, k, filter).unwrap()
}

/// Mean recall@k of `got` against `truth` (by id).
pub fn recall(got: &[SearchResult], truth: &[SearchResult], k: usize) -> f64 {
    let mut hit = 0usize;
    let mut total = 0usize;
    for (g, t) in got.iter().zip(truth) {
        let t: std::collections::HashSet<u32> = t.iter().take(k).map(|x| x.0).collect();
        hit += g.iter().take(k).filter(|x| t.contains(&x.0)).count();
        total += t.len();
    }
    hit as f64 / total.max(1) as f64
}

/// Random bitset allowing roughly `frac` of `n` rows.
pub fn random_filter(n: usize, frac: f64, seed: u64) -> Bitset {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut b = Bitset::new(n);
    for i in 0..n {
        if rng.random::<f64>() < frac {
            b.set(i, true);
        }
    }
    b
}
