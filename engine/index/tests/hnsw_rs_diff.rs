//! Differential test against hnsw_rs: same data, same M / efConstruction, same ef; our recall must
//! not be lower (tolerance 0.01 for ef >= 32).
//!
//! At ef = 16 hnsw_rs is 1-2.5 points ahead: its reverse-link update keeps the *closest* 2M
//! neighbours instead of re-running the selection heuristic (hnswlib's), which gives fuller
//! level-0 lists (more distance computations per hop). Keeping closest-only was measured here:
//! better at tiny ef, worse at ef >= 64 and on clustered data, so we keep hnswlib's heuristic and
//! allow 0.03 at ef = 16. From ef = 64 on our recall is higher (e.g. 10k × 64: 0.853 vs 0.846 at
//! ef 64, 0.948 vs 0.939 at ef 128).
mod common;

use common::*;
use ferrovus_index::{HnswIndex, HnswParams, Metric, SearchResult};
use hnsw_rs::prelude::{DistL2, Hnsw};

#[test]
fn recall_not_below_hnsw_rs() {
    let (n, dim, nq, k) = if cfg!(debug_assertions) {
        (2000, 32, 100, 10)
    } else {
        (10_000, 64, 300, 10)
    };
    let (m, efc) = (12, 100);
    let data = normal(n, dim, 61);
    let queries = normal(nq, dim, 62);
    let truth = exact(Metric::L2, dim, &data, &queries, k, None);

    // Both built single-threaded, so the comparison is deterministic.
    let ours = HnswIndex::build_with(
        dim,
        Metric::L2,
        HnswParams::new(m, efc).unwrap(),
        &data,
        1,
        100,
    )
    .unwrap();
    let theirs: Hnsw<'_, f32, DistL2> = Hnsw::new(m, n, 16, efc, DistL2 {});
    for (i, r) in data.chunks(dim).enumerate() {
        theirs.insert_slice((r, i));
    }

    let mut rows = Vec::new();
    for ef in [16usize, 32, 64, 128] {
        let got = ours.search(&queries, k, Some(ef), None).unwrap();
        let their: Vec<SearchResult> = queries
            .chunks(dim)
            .map(|q| {
                theirs
                    .search(q, k, ef)
                    .into_iter()
                    .map(|nb| (nb.d_id as u32, nb.distance))
                    .collect()
            })
            .collect();
        let (ro, rt) = (recall(&got, &truth, k), recall(&their, &truth, k));
        eprintln!("ef {ef}: ferrovus {ro:.4}, hnsw_rs {rt:.4}");
        rows.push((ef, ro, rt));
    }
    for (ef, ro, rt) in rows {
        let tol = if ef < 32 { 0.03 } else { 0.01 };
        assert!(ro >= rt - tol, "ef {ef}: ours {ro} < hnsw_rs {rt} - {tol}");
    }
}
