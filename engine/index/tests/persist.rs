mod common;

use common::*;
use ferrovus_index::{IndexError, IndexParams, Metric, VectorIndex};

fn roundtrip(params: IndexParams, metric: Metric) {
    let (n, dim) = (1200, 24);
    let data = normal(n, dim, 41);
    let queries = normal(20, dim, 42);
    let idx = VectorIndex::build(dim, metric, &params, &data).unwrap();
    let before = idx.search(&queries, 10, Some(40), None).unwrap();
    let filt = random_filter(n, 0.3, 1);
    let before_f = idx.search(&queries, 10, Some(40), Some(&filt)).unwrap();

    let mut bytes = Vec::new();
    idx.write_to(&mut bytes).unwrap();
    let dir = std::env::temp_dir().join(format!(
        "ferrovus-index-test-{}-{:?}-{metric}",
        std::process::id(),
        params.index_type()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("index.bin");
    std::fs::write(&path, &bytes).unwrap();

    let from_bytes = VectorIndex::load(bytes.clone()).unwrap();
    let from_map = VectorIndex::load_file(&path).unwrap();
    for loaded in [&from_bytes, &from_map] {
        assert_eq!(loaded.len(), n);
        assert_eq!(loaded.dim(), dim);
        assert_eq!(loaded.metric(), metric);
        assert_eq!(loaded.index_type(), idx.index_type());
        assert_eq!(loaded.search(&queries, 10, Some(40), None).unwrap(), before);
        assert_eq!(
            loaded.search(&queries, 10, Some(40), Some(&filt)).unwrap(),
            before_f
        );
        for i in [0u32, 7, n as u32 - 1] {
            assert_eq!(loaded.vector(i), idx.vector(i));
            let orig = loaded.original_vector(i);
            for (a, b) in orig.iter().zip(&data[i as usize * dim..]) {
                assert!((a - b).abs() < 1e-4 * b.abs().max(1.0));
            }
        }
    }
    // Writing a loaded index reproduces the same bytes.
    let mut again = Vec::new();
    from_map.write_to(&mut again).unwrap();
    assert_eq!(again, bytes);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn roundtrip_hnsw_and_flat() {
    for metric in [Metric::L2, Metric::Ip, Metric::Cosine] {
        roundtrip(IndexParams::autoindex(), metric);
        roundtrip(IndexParams::Flat, metric);
    }
}

#[test]
fn empty_index_roundtrip() {
    for params in [IndexParams::autoindex(), IndexParams::Flat] {
        let idx = VectorIndex::build(4, Metric::L2, &params, &[]).unwrap();
        assert!(idx.search(&[0.0; 4], 3, None, None).unwrap()[0].is_empty());
        let mut b = Vec::new();
        idx.write_to(&mut b).unwrap();
        let l = VectorIndex::load(b).unwrap();
        assert_eq!(l.len(), 0);
        assert!(l.search(&[0.0; 4], 3, None, None).unwrap()[0].is_empty());
    }
}

fn expect_corrupted(bytes: Vec<u8>, what: &str) -> String {
    match VectorIndex::load(bytes) {
        Err(IndexError::Corrupted(m)) => {
            eprintln!("{what}: {m}");
            m
        }
        Err(e) => panic!("{what}: expected Corrupted, got {e}"),
        Ok(_) => panic!("{what}: corrupted file loaded"),
    }
}

#[test]
fn corruption_is_detected() {
    let (n, dim) = (300, 8);
    let data = normal(n, dim, 43);
    for params in [IndexParams::autoindex(), IndexParams::Flat] {
        let idx = VectorIndex::build(dim, Metric::L2, &params, &data).unwrap();
        let mut good = Vec::new();
        idx.write_to(&mut good).unwrap();

        let mut b = good.clone();
        b[0] ^= 0xff;
        assert!(expect_corrupted(b, "magic").contains("magic"));

        let mut b = good.clone();
        b[8] = 99;
        assert!(expect_corrupted(b, "version").contains("version"));

        for cut in [good.len() - 1, good.len() / 2, 100, 3, 0] {
            let m = expect_corrupted(good[..cut].to_vec(), "truncated");
            assert!(m.contains("truncated") || m.contains("magic"), "{m}");
        }

        // Flip one byte anywhere in the body (vectors, links) or header fields.
        for pos in [20, 300, good.len() / 2, good.len() - 12] {
            let mut b = good.clone();
            b[pos] ^= 0x01;
            let m = expect_corrupted(b, "flipped byte");
            assert!(
                m.contains("checksum") || m.contains("size") || m.contains("truncated"),
                "{m}"
            );
        }

        let mut b = good.clone();
        b.extend_from_slice(&[0; 16]);
        expect_corrupted(b, "trailing bytes");

        // Unaligned input still loads (copied once), and the good file loads.
        let mut shifted = vec![0u8; 1];
        shifted.extend_from_slice(&good);
        let unaligned: &'static [u8] = Box::leak(shifted.into_boxed_slice());
        assert_eq!(VectorIndex::load(&unaligned[1..]).unwrap().len(), n);
        assert_eq!(VectorIndex::load(good).unwrap().len(), n);
    }
}
