//! Criterion benchmarks: distance kernels, HNSW build, HNSW search at several ef, filtered search.
//!
//! `cargo bench -p ferrovus-index --bench hnsw` (set FERROVUS_BENCH_N to change the index size).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ferrovus_index::{Bitset, HnswIndex, HnswParams, Kernel, Metric, SimdLevel, flat};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

fn normal(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n * dim)
        .map(|_| rng.sample::<f32, _>(StandardNormal))
        .collect()
}

fn index_size() -> usize {
    std::env::var("FERROVUS_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

fn kernels(c: &mut Criterion) {
    let mut g = c.benchmark_group("distance");
    for dim in [128usize, 384, 768] {
        let a = normal(1, dim, 1);
        let b = normal(1, dim, 2);
        g.throughput(Throughput::Elements(dim as u64));
        for level in [SimdLevel::Scalar, SimdLevel::Avx2Fma, SimdLevel::Avx512] {
            let Some(k) = Kernel::with_level(level) else {
                continue;
            };
            g.bench_with_input(
                BenchmarkId::new(format!("l2/{level:?}"), dim),
                &dim,
                |bch, _| bch.iter(|| k.l2_sq(black_box(&a), black_box(&b))),
            );
            g.bench_with_input(
                BenchmarkId::new(format!("ip/{level:?}"), dim),
                &dim,
                |bch, _| bch.iter(|| k.dot(black_box(&a), black_box(&b))),
            );
        }
    }
    g.finish();
}

fn build(c: &mut Criterion) {
    let (n, dim) = (5_000, 128);
    let data = normal(n, dim, 3);
    let mut g = c.benchmark_group("hnsw_build");
    g.sample_size(10);
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function(BenchmarkId::new("5k_x_128_m16_efc200", n), |b| {
        b.iter(|| {
            HnswIndex::build(
                dim,
                Metric::L2,
                HnswParams::new(16, 200).unwrap(),
                black_box(&data),
            )
            .unwrap()
        })
    });
    g.finish();
}

fn search(c: &mut Criterion) {
    let (n, dim) = (index_size(), 128);
    let data = normal(n, dim, 4);
    let queries = normal(200, dim, 5);
    let idx = HnswIndex::build(dim, Metric::L2, HnswParams::AUTOINDEX, &data).unwrap();
    let mut g = c.benchmark_group("hnsw_search");
    g.throughput(Throughput::Elements(200));
    for ef in [16usize, 64, 128, 256] {
        g.bench_with_input(BenchmarkId::new("ef", ef), &ef, |b, &ef| {
            b.iter(|| {
                for q in queries.chunks(dim) {
                    black_box(idx.search(q, 10, Some(ef), None).unwrap());
                }
            })
        });
    }
    let mut rng = StdRng::seed_from_u64(6);
    for frac in [0.5f64, 0.1, 0.02, 0.01] {
        let mut f = Bitset::new(n);
        for i in 0..n {
            if rng.random::<f64>() < frac {
                f.set(i, true);
            }
        }
        g.bench_with_input(
            BenchmarkId::new("filtered_ef64", format!("{frac}")),
            &f,
            |b, f| {
                b.iter(|| {
                    for q in queries.chunks(dim) {
                        black_box(idx.search(q, 10, Some(64), Some(f)).unwrap());
                    }
                })
            },
        );
    }
    g.bench_function("flat_exact", |b| {
        b.iter(|| {
            black_box(
                flat::search_slice(Metric::L2, dim, &data, &queries[..dim * 20], 10, None).unwrap(),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, kernels, build, search);
criterion_main!(benches);
