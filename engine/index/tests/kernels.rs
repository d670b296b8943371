mod common;

use common::*;
use ferrovus_index::{HnswIndex, HnswParams, Kernel, Metric, SimdLevel};

fn close(a: f32, b: f32, scale: f32) -> bool {
    (a - b).abs() <= 1e-4 * scale.max(1.0)
}

#[test]
fn simd_matches_scalar_on_odd_dims() {
    let scalar = Kernel::scalar();
    let mut kernels = vec![Kernel::best()];
    for l in [SimdLevel::Avx2Fma, SimdLevel::Avx512] {
        if let Some(k) = Kernel::with_level(l) {
            kernels.push(k);
        }
    }
    eprintln!(
        "testing {:?} against scalar",
        kernels.iter().map(|k| k.level()).collect::<Vec<_>>()
    );
    for dim in [1usize, 3, 7, 8, 15, 16, 17, 31, 33, 128, 383, 384, 768] {
        let a = normal(20, dim, dim as u64);
        let b = normal(20, dim, dim as u64 + 1);
        for (x, y) in a.chunks(dim).zip(b.chunks(dim)) {
            let l2 = scalar.l2_sq(x, y);
            let ip = scalar.dot(x, y);
            let naive_l2: f64 = x.iter().zip(y).map(|(p, q)| ((p - q) as f64).powi(2)).sum();
            let naive_ip: f64 = x.iter().zip(y).map(|(p, q)| (p * q) as f64).sum();
            assert!(
                close(l2, naive_l2 as f32, naive_l2 as f32),
                "scalar l2 dim {dim}"
            );
            assert!(
                close(ip, naive_ip as f32, dim as f32),
                "scalar ip dim {dim}"
            );
            for k in &kernels {
                assert!(
                    close(k.l2_sq(x, y), l2, l2),
                    "{:?} l2 dim {dim}: {} vs {l2}",
                    k.level(),
                    k.l2_sq(x, y)
                );
                assert!(
                    close(k.dot(x, y), ip, dim as f32),
                    "{:?} ip dim {dim}: {} vs {ip}",
                    k.level(),
                    k.dot(x, y)
                );
                assert!(close(k.distance(Metric::Ip, x, y), -ip, dim as f32));
            }
        }
    }
}

#[test]
fn env_var_forces_scalar() {
    // Kernel::detect() honours FERROVUS_SIMD=scalar; run in a child process so the cached
    // detection of this process is not affected.
    if std::env::var("FERROVUS_SIMD_CHILD").is_ok() {
        assert_eq!(Kernel::detect().level(), SimdLevel::Scalar);
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args(["env_var_forces_scalar", "--exact", "--nocapture"])
        .env("FERROVUS_SIMD", "scalar")
        .env("FERROVUS_SIMD_CHILD", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
}

#[test]
fn hnsw_search_with_scalar_kernel_matches_simd() {
    let (n, dim) = (1500, 17);
    let data = normal(n, dim, 31);
    let queries = normal(30, dim, 32);
    let mut idx = HnswIndex::build(dim, Metric::L2, HnswParams::AUTOINDEX, &data).unwrap();
    let simd = idx.search(&queries, 10, Some(64), None).unwrap();
    idx.set_kernel(Kernel::scalar());
    let scalar = idx.search(&queries, 10, Some(64), None).unwrap();
    let truth = exact(Metric::L2, dim, &data, &queries, 10, None);
    let (rs, rc) = (recall(&simd, &truth, 10), recall(&scalar, &truth, 10));
    assert!((rs - rc).abs() < 0.02, "simd {rs} scalar {rc}");
    for (a, b) in simd.iter().zip(&scalar) {
        for (x, y) in a.iter().zip(b) {
            if x.0 == y.0 {
                assert!(close(x.1, y.1, x.1));
            }
        }
    }
}
