use ferrovus_index::{Bitset, HnswParams, IndexError, IndexParams, Metric, VectorIndex};

fn param_of(e: IndexError) -> String {
    match e {
        IndexError::InvalidParam { param, .. } => param,
        other => panic!("expected InvalidParam, got {other}"),
    }
}

#[test]
fn bad_params_are_rejected() {
    assert_eq!(param_of(HnswParams::new(1, 100).unwrap_err()), "M");
    assert_eq!(param_of(HnswParams::new(2049, 100).unwrap_err()), "M");
    assert_eq!(
        param_of(HnswParams::new(16, 0).unwrap_err()),
        "efConstruction"
    );
    assert_eq!(
        param_of(HnswParams::new(16, 1 << 31).unwrap_err()),
        "efConstruction"
    );
    assert!(HnswParams::new(2, 1).is_ok() && HnswParams::new(2048, (1 << 31) - 1).is_ok());
    let data = vec![0.5f32; 40];
    let bad = IndexParams::Hnsw(HnswParams {
        m: 0,
        ef_construction: 10,
    });
    assert_eq!(
        param_of(VectorIndex::build(4, Metric::L2, &bad, &data).unwrap_err()),
        "M"
    );
    assert_eq!(
        param_of(VectorIndex::build(0, Metric::L2, &IndexParams::Flat, &data).unwrap_err()),
        "dim"
    );
    assert!(matches!(
        VectorIndex::build(3, Metric::L2, &IndexParams::autoindex(), &data),
        Err(IndexError::DimMismatch {
            expected: 3,
            got: 1
        })
    ));
    assert_eq!(
        param_of(Metric::parse("JACCARD").unwrap_err()),
        "metric_type"
    );
}

#[test]
fn bad_queries_are_rejected() {
    let data: Vec<f32> = (0..400).map(|i| (i % 17) as f32).collect();
    for params in [IndexParams::Flat, IndexParams::autoindex()] {
        let idx = VectorIndex::build(4, Metric::Ip, &params, &data).unwrap();
        assert!(matches!(
            idx.search(&[1.0; 3], 5, None, None),
            Err(IndexError::DimMismatch {
                expected: 4,
                got: 3
            })
        ));
        assert!(matches!(
            idx.search(&[1.0; 9], 5, None, None),
            Err(IndexError::DimMismatch { .. })
        ));
        assert_eq!(
            param_of(idx.search(&[1.0; 4], 0, None, None).unwrap_err()),
            "topk"
        );
        assert!(idx.search(&[], 5, None, None).unwrap().is_empty());
        // Huge k / ef never panic: results are capped by the row count.
        assert_eq!(
            idx.search(&[1.0; 4], usize::MAX / 2, None, None).unwrap()[0].len(),
            100
        );
        assert_eq!(
            idx.search(
                &[1.0; 4],
                200,
                Some(usize::MAX / 2),
                Some(&Bitset::all(100))
            )
            .unwrap()[0]
                .len(),
            100
        );
    }
    let h = VectorIndex::build(4, Metric::Ip, &IndexParams::autoindex(), &data).unwrap();
    assert_eq!(
        param_of(h.search(&[1.0; 4], 10, Some(5), None).unwrap_err()),
        "ef"
    );
    // NaN input does not panic.
    let r = h.search(&[f32::NAN; 4], 3, None, None).unwrap();
    assert!(r[0].len() <= 3);
}
