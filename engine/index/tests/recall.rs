mod common;

use common::*;
use ferrovus_index::{HnswParams, IndexParams, Metric, VectorIndex};

fn check_metric(metric: Metric) {
    // Debug builds of this crate are unoptimised: keep the data small there.
    let (n, dim, nq, k) = if cfg!(debug_assertions) {
        (2000, 48, 50, 10)
    } else {
        (5000, 64, 200, 10)
    };
    let data = normal(n, dim, 1);
    let queries = normal(nq, dim, 2);
    let t = std::time::Instant::now();
    let idx = VectorIndex::build(dim, metric, &IndexParams::autoindex(), &data).unwrap();
    let build = t.elapsed();
    let t = std::time::Instant::now();
    let got = idx.search(&queries, k, None, None).unwrap();
    let search = t.elapsed();
    let truth = exact(metric, dim, &data, &queries, k, None);
    let r = recall(&got, &truth, k);
    eprintln!("{metric}: build {build:?}, search {search:?}, recall@10 {r:.4}");
    assert!(r >= 0.95, "{metric} recall {r}");
    // Scores agree with the exact ones for the ids we return, and are ordered.
    for (g, tr) in got.iter().zip(&truth) {
        assert_eq!(g.len(), k);
        for w in g.windows(2) {
            if metric.higher_is_better() {
                assert!(w[0].1 >= w[1].1);
            } else {
                assert!(w[0].1 <= w[1].1);
            }
        }
        assert!((g[0].1 - tr[0].1).abs() <= 1e-3 * tr[0].1.abs().max(1.0) || g[0].0 != tr[0].0);
    }
}

#[test]
fn recall_l2() {
    check_metric(Metric::L2);
}

#[test]
fn recall_ip() {
    check_metric(Metric::Ip);
}

#[test]
fn recall_cosine() {
    check_metric(Metric::Cosine);
}

/// AUTOINDEX defaults reach recall@10 >= 0.95 vs exact on 20k × 128 random-normal data. Full size
/// in every build: the dev profile compiles this crate with opt-level 3 (root Cargo.toml).
#[test]
fn autoindex_defaults_recall() {
    let (n, dim, nq, k) = (20_000, 128, 300, 10);
    let data = normal(n, dim, 11);
    let queries = normal(nq, dim, 12);
    let idx = VectorIndex::build(dim, Metric::L2, &IndexParams::autoindex(), &data).unwrap();
    let got = idx.search(&queries, k, None, None).unwrap();
    let truth = exact(Metric::L2, dim, &data, &queries, k, None);
    let r = recall(&got, &truth, k);
    eprintln!("AUTOINDEX {n}x{dim}: recall@10 {r:.4}");
    assert!(r >= 0.95, "AUTOINDEX recall {r}");
}

#[test]
fn flat_is_exact() {
    let (n, dim) = (2000, 17);
    let data = normal(n, dim, 3);
    let queries = normal(20, dim, 4);
    for metric in [Metric::L2, Metric::Ip, Metric::Cosine] {
        let idx = VectorIndex::build(dim, metric, &IndexParams::Flat, &data).unwrap();
        let got = idx.search(&queries, 10, None, None).unwrap();
        let truth = exact(metric, dim, &data, &queries, 10, None);
        assert_eq!(recall(&got, &truth, 10), 1.0);
        for (g, t) in got.iter().zip(&truth) {
            for (a, b) in g.iter().zip(t) {
                assert!((a.1 - b.1).abs() < 1e-3, "{metric}: {a:?} vs {b:?}");
            }
        }
    }
    let _ = HnswParams::AUTOINDEX;
}
