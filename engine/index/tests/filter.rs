mod common;

use common::*;
use ferrovus_index::{Bitset, HnswIndex, HnswParams, IndexParams, Metric, VectorIndex};

fn filtered_recall(
    idx: &VectorIndex,
    data: &[f32],
    queries: &[f32],
    dim: usize,
    frac: f64,
    seed: u64,
) -> f64 {
    let n = idx.len();
    let k = 10;
    let f = random_filter(n, frac, seed);
    let got = idx.search(queries, k, None, Some(&f)).unwrap();
    for r in &got {
        assert_eq!(r.len(), k.min(f.count_ones()));
        for (id, _) in r {
            assert!(f.get(*id as usize), "row {id} returned but not allowed");
        }
    }
    let truth = exact(idx.metric(), dim, data, queries, k, Some(&f));
    recall(&got, &truth, k)
}

#[test]
fn filtered_search_respects_bitset_and_recall() {
    let (n, dim, nq) = if cfg!(debug_assertions) {
        (3000, 32, 40)
    } else {
        (10_000, 64, 200)
    };
    let data = normal(n, dim, 21);
    let queries = normal(nq, dim, 22);
    let idx = VectorIndex::build(dim, Metric::L2, &IndexParams::autoindex(), &data).unwrap();
    for (frac, seed) in [(0.5, 1), (0.1, 2), (0.01, 3)] {
        let r = filtered_recall(&idx, &data, &queries, dim, frac, seed);
        eprintln!("selectivity {frac}: recall@10 {r:.4}");
        assert!(r >= 0.95, "selectivity {frac}: recall {r}");
    }
}

#[test]
fn filtered_graph_walk_without_exact_fallback() {
    // Force the in-graph filtered walk (no exact switch) at 50 % and 10 % selectivity.
    let (n, dim, nq) = if cfg!(debug_assertions) {
        (3000, 32, 40)
    } else {
        (10_000, 64, 200)
    };
    let data = normal(n, dim, 23);
    let queries = normal(nq, dim, 24);
    let mut h = HnswIndex::build(dim, Metric::Ip, HnswParams::AUTOINDEX, &data).unwrap();
    h.set_exact_filter_factor(0.0);
    let idx = VectorIndex::Hnsw(h);
    for (frac, seed) in [(0.5, 4), (0.1, 5)] {
        let r = filtered_recall(&idx, &data, &queries, dim, frac, seed);
        eprintln!("graph walk at {frac}: recall@10 {r:.4}");
        assert!(r >= 0.95, "selectivity {frac}: recall {r}");
    }
}

#[test]
fn filter_edge_cases() {
    let (n, dim) = (500, 8);
    let data = normal(n, dim, 25);
    let q = normal(1, dim, 26);
    for params in [IndexParams::Flat, IndexParams::autoindex()] {
        let idx = VectorIndex::build(dim, Metric::L2, &params, &data).unwrap();
        // Nothing allowed.
        let none = Bitset::new(n);
        assert!(idx.search(&q, 10, None, Some(&none)).unwrap()[0].is_empty());
        // Fewer allowed than k.
        let three = Bitset::from_offsets(n, [3, 77, 499]);
        let r = &idx.search(&q, 10, None, Some(&three)).unwrap()[0];
        let mut ids: Vec<u32> = r.iter().map(|x| x.0).collect();
        ids.sort();
        assert_eq!(ids, vec![3, 77, 499]);
        // A shorter bitset excludes the rows beyond it; a longer one is fine.
        let short = Bitset::all(100);
        assert!(
            idx.search(&q, 10, None, Some(&short)).unwrap()[0]
                .iter()
                .all(|x| x.0 < 100)
        );
        let long = Bitset::all(n + 1000);
        assert_eq!(idx.search(&q, 10, None, Some(&long)).unwrap()[0].len(), 10);
    }
}
