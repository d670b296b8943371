mod common;

use std::sync::Arc;

use common::*;
use ferrovus_index::{IndexParams, Metric, VectorIndex};

#[test]
fn concurrent_searches_match_sequential() {
    let (n, dim, nq) = (2000, 32, 64);
    let data = normal(n, dim, 51);
    let queries = normal(nq, dim, 52);
    let idx = Arc::new(
        VectorIndex::build(dim, Metric::Cosine, &IndexParams::autoindex(), &data).unwrap(),
    );
    let filt = random_filter(n, 0.2, 3);
    let seq: Vec<_> = queries
        .chunks(dim)
        .map(|q| idx.search(q, 10, Some(50), None).unwrap().remove(0))
        .collect();
    let seq_f: Vec<_> = queries
        .chunks(dim)
        .map(|q| idx.search(q, 10, Some(50), Some(&filt)).unwrap().remove(0))
        .collect();
    std::thread::scope(|s| {
        for t in 0..4 {
            let (idx, queries, seq, seq_f, filt) = (&idx, &queries, &seq, &seq_f, &filt);
            s.spawn(move || {
                for round in 0..3 {
                    for (i, q) in queries.chunks(dim).enumerate().skip((t + round) % 5) {
                        assert_eq!(idx.search(q, 10, Some(50), None).unwrap()[0], seq[i]);
                        assert_eq!(
                            idx.search(q, 10, Some(50), Some(filt)).unwrap()[0],
                            seq_f[i]
                        );
                    }
                }
            });
        }
    });
    // Batch search equals per-query search.
    assert_eq!(idx.search(&queries, 10, Some(50), None).unwrap(), seq);
}

#[test]
fn single_thread_build_is_deterministic() {
    let (n, dim) = (800, 16);
    let data = normal(n, dim, 53);
    let p = ferrovus_index::HnswParams::AUTOINDEX;
    let a = ferrovus_index::HnswIndex::build_with(dim, Metric::L2, p, &data, 1, 7).unwrap();
    let b = ferrovus_index::HnswIndex::build_with(dim, Metric::L2, p, &data, 1, 7).unwrap();
    let (mut x, mut y) = (Vec::new(), Vec::new());
    a.write_to(&mut x).unwrap();
    b.write_to(&mut y).unwrap();
    assert_eq!(x, y);
}
