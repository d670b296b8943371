//! ANN benchmark for the side-by-side harness (`bench/hnsw_vs_hnswlib.py`).
//!
//! ```text
//! cargo run --release -p ferrovus-index --example ann_bench -- \
//!     [--base FILE.npy|.fvecs] [--queries FILE] [--gt FILE.npy] \
//!     [--gen normal|clustered --n 100000 --dim 128 --nq 1000 --seed 1] \
//!     [--metric L2|IP|COSINE] [--m 16] [--efc 200] [--threads 2] [--k 10] \
//!     [--ef 16,32,64,128] [--filter 0.01 | --allow MASK.npy] [--save FILE] [--index flat|hnsw]
//!     [--min-time 1.0]
//!     [--load FILE (skip the build; mmap)] [--load-anon FILE (copy into huge pages)] [--exact-factor F (filtered search: exact-switch cost factor, 0 = walk)]
//! ```
//! `--allow` takes an int32 .npy with one entry per base row (non-zero = the row passes the
//! filter); `--filter F` draws such a mask at random. Filtered runs score against exact filtered
//! ground truth computed here. Prints `build_s` (or the load time with `--load`), then one
//! `ef=.. qps=.. recall=..` line per ef (one query per call, one thread), and `rss_mb` at the end,
//! in a format the harness parses.

use std::io::Read;
use std::time::Instant;

use ferrovus_index::{
    Bitset, HnswIndex, HnswParams, IndexParams, Metric, SearchResult, VectorIndex, flat,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().unwrap_or_else(|_| panic!("bad value for {name}")))
        .unwrap_or(default)
}

fn arg_str(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// Reads a float32 or int32 .npy (C order, 2-D) or .fvecs file: (rows, cols, raw 4-byte words).
fn read_matrix(path: &str) -> (usize, usize, Vec<u8>) {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .read_to_end(&mut bytes)
        .unwrap();
    if path.ends_with(".npy") {
        assert_eq!(&bytes[..6], b"\x93NUMPY", "{path}: not .npy");
        let (hlen, hstart) = if bytes[6] == 1 {
            (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10)
        } else {
            (
                u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize,
                12,
            )
        };
        let header = std::str::from_utf8(&bytes[hstart..hstart + hlen]).unwrap();
        assert!(
            header.contains("'<f4'") || header.contains("'<i4'"),
            "{path}: need <f4 or <i4, got {header}"
        );
        assert!(header.contains("'fortran_order': False"));
        let shape = &header[header.find("'shape': (").unwrap() + 10..];
        let shape = &shape[..shape.find(')').unwrap()];
        let dims: Vec<usize> = shape
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.trim().parse().unwrap())
            .collect();
        let (r, c) = (dims[0], if dims.len() > 1 { dims[1] } else { 1 });
        (r, c, bytes[hstart + hlen..].to_vec())
    } else {
        let d = i32::from_le_bytes(bytes[..4].try_into().unwrap()) as usize;
        let rec = 4 + 4 * d;
        let n = bytes.len() / rec;
        let mut out = Vec::with_capacity(n * d * 4);
        for i in 0..n {
            out.extend_from_slice(&bytes[i * rec + 4..(i + 1) * rec]);
        }
        (n, d, out)
    }
}

fn as_f32(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn generate(kind: &str, n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    match kind {
        "normal" => (0..n * dim)
            .map(|_| rng.sample::<f32, _>(StandardNormal))
            .collect(),
        "clustered" => {
            let c = 100;
            let centers: Vec<f32> = (0..c * dim)
                .map(|_| rng.sample::<f32, _>(StandardNormal) * 3.0)
                .collect();
            let mut v = Vec::with_capacity(n * dim);
            for _ in 0..n {
                let ci = rng.random_range(0..c);
                for j in 0..dim {
                    v.push(centers[ci * dim + j] + rng.sample::<f32, _>(StandardNormal));
                }
            }
            v
        }
        _ => panic!("--gen normal|clustered"),
    }
}

fn recall(got: &[SearchResult], gt: &[Vec<u32>], k: usize) -> f64 {
    let mut hit = 0;
    for (g, t) in got.iter().zip(gt) {
        let t = &t[..k.min(t.len())];
        hit += g.iter().take(k).filter(|x| t.contains(&x.0)).count();
    }
    hit as f64 / (got.len() * k) as f64
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let metric = Metric::parse(&arg_str(&args, "--metric").unwrap_or("L2".into())).unwrap();
    let k: usize = arg(&args, "--k", 10);
    let m: usize = arg(&args, "--m", 16);
    let efc: usize = arg(&args, "--efc", 200);
    let threads: usize = arg(
        &args,
        "--threads",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    let efs: Vec<usize> = arg_str(&args, "--ef")
        .unwrap_or("16,32,64,128".into())
        .split(',')
        .map(|s| s.parse().unwrap())
        .collect();
    let filter_frac: f64 = arg(&args, "--filter", 1.0);
    let kind = arg_str(&args, "--index").unwrap_or("hnsw".into());
    let min_time: f64 = arg(&args, "--min-time", 0.0);

    let (dim, base, queries) = if let Some(b) = arg_str(&args, "--base") {
        let (n, d, raw) = read_matrix(&b);
        let q = arg_str(&args, "--queries").expect("--queries with --base");
        let (nq, dq, qraw) = read_matrix(&q);
        assert_eq!(d, dq);
        eprintln!("loaded {n} × {d} base, {nq} queries");
        (d, as_f32(&raw), as_f32(&qraw))
    } else {
        let g = arg_str(&args, "--gen").unwrap_or("normal".into());
        let n: usize = arg(&args, "--n", 100_000);
        let dim: usize = arg(&args, "--dim", 128);
        let nq: usize = arg(&args, "--nq", 1000);
        let seed: u64 = arg(&args, "--seed", 1);
        (
            dim,
            generate(&g, n, dim, seed),
            generate(&g, nq, dim, seed + 1000),
        )
    };
    let n = base.len() / dim;
    let nq = queries.len() / dim;

    let filter = if let Some(path) = arg_str(&args, "--allow") {
        let (rows, cols, raw) = read_matrix(&path);
        assert!(
            rows == n && cols == 1,
            "{path}: need ({n},) int32, got ({rows}, {cols})"
        );
        let mut b = Bitset::new(n);
        for (i, w) in raw.chunks_exact(4).enumerate() {
            if w != [0, 0, 0, 0] {
                b.set(i, true);
            }
        }
        Some(b)
    } else {
        (filter_frac < 1.0).then(|| {
            let mut rng = StdRng::seed_from_u64(7);
            let mut b = Bitset::new(n);
            for i in 0..n {
                if rng.random::<f64>() < filter_frac {
                    b.set(i, true);
                }
            }
            b
        })
    };

    let gt: Vec<Vec<u32>> = match (arg_str(&args, "--gt"), &filter) {
        (Some(p), None) => {
            let (r, c, raw) = read_matrix(&p);
            assert_eq!(r, nq);
            let ids: Vec<u32> = raw
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            ids.chunks(c).map(|c| c.to_vec()).collect()
        }
        _ => {
            let t = Instant::now();
            let gt = parallel_exact(metric, dim, &base, &queries, k, filter.as_ref(), threads);
            eprintln!("ground truth (exact) in {:.2}s", t.elapsed().as_secs_f64());
            gt
        }
    };

    let t = Instant::now();
    let c0 = cpu_seconds();
    let index = if let Some(path) = arg_str(&args, "--load-anon") {
        // Read the file into huge-page advised anonymous memory (instead of a file map).
        let bytes = std::fs::read(&path).unwrap();
        let mut map = memmap2::MmapMut::map_anon(bytes.len()).unwrap();
        #[cfg(target_os = "linux")]
        let _ = map.advise(memmap2::Advice::HugePage);
        map.copy_from_slice(&bytes);
        VectorIndex::load(map.make_read_only().unwrap()).unwrap()
    } else if let Some(path) = arg_str(&args, "--load") {
        VectorIndex::load_file(&path).unwrap()
    } else if kind == "flat" {
        VectorIndex::build(dim, metric, &IndexParams::Flat, &base).unwrap()
    } else {
        VectorIndex::Hnsw(
            HnswIndex::build_with(
                dim,
                metric,
                HnswParams::new(m, efc).unwrap(),
                &base,
                threads,
                100,
            )
            .unwrap(),
        )
    };
    let index = match (index, arg_str(&args, "--exact-factor")) {
        (VectorIndex::Hnsw(mut h), Some(f)) => {
            h.set_exact_filter_factor(f.parse().unwrap());
            VectorIndex::Hnsw(h)
        }
        (i, _) => i,
    };
    let build_s = t.elapsed().as_secs_f64();
    let build_cpu_s = cpu_seconds() - c0;
    println!(
        "build_s={build_s:.3} build_cpu_s={build_cpu_s:.2} n={n} dim={dim} metric={metric} m={m} efc={efc} threads={threads} memory_mb={:.1} bytes_per_vector={:.0}",
        index.memory_bytes() as f64 / 1e6,
        index.memory_bytes() as f64 / n.max(1) as f64
    );
    drop(base);

    let index = if let Some(path) = arg_str(&args, "--save") {
        let t = Instant::now();
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        index.write_to(&mut f).unwrap();
        drop(f);
        let save_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let loaded = VectorIndex::load_file(&path).unwrap();
        let load_s = t.elapsed().as_secs_f64();
        let bytes = std::fs::metadata(&path).unwrap().len();
        println!(
            "save_s={save_s:.3} load_mmap_s={load_s:.4} file_mb={:.1} file_bytes_per_vector={:.0}",
            bytes as f64 / 1e6,
            bytes as f64 / n.max(1) as f64
        );
        loaded
    } else {
        index
    };

    for &ef in &efs {
        let ef = ef.max(k);
        // warm-up
        for q in queries.chunks_exact(dim).take(50) {
            let _ = index.search(q, k, Some(ef), filter.as_ref()).unwrap();
        }
        let t = Instant::now();
        let c0 = cpu_seconds();
        let mut res = Vec::with_capacity(nq);
        for q in queries.chunks_exact(dim) {
            res.push(
                index
                    .search(q, k, Some(ef), filter.as_ref())
                    .unwrap()
                    .pop()
                    .unwrap(),
            );
        }
        // Repeat the query set until `--min-time` seconds have passed (steadier on a shared box).
        let mut done = nq;
        while t.elapsed().as_secs_f64() < min_time {
            for q in queries.chunks_exact(dim) {
                std::hint::black_box(index.search(q, k, Some(ef), filter.as_ref()).unwrap());
            }
            done += nq;
        }
        let secs = t.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - c0;
        println!(
            "ef={ef} qps={:.1} recall={:.4} cpu_qps={:.1} queries={done}",
            done as f64 / secs,
            recall(&res, &gt, k),
            done as f64 / cpu.max(1e-9)
        );
    }
    println!("rss_mb={:.1}", rss_bytes() as f64 / 1e6);
}

/// Resident set size of this process, from /proc (Linux); 0 elsewhere.
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// CPU time (user + system) of this process, from /proc (Linux); 0 elsewhere. The machine is
/// shared, so CPU-time QPS is reported beside wall-clock QPS.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let rest = &stat[stat.rfind(')').map_or(0, |i| i + 2)..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|x| x.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|x| x.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn parallel_exact(
    metric: Metric,
    dim: usize,
    base: &[f32],
    queries: &[f32],
    k: usize,
    filter: Option<&Bitset>,
    threads: usize,
) -> Vec<Vec<u32>> {
    let nq = queries.len() / dim;
    let per = nq.div_ceil(threads.max(1)).max(1);
    std::thread::scope(|s| {
        let hs: Vec<_> = queries
            .chunks(per * dim)
            .map(|qs| {
                s.spawn(move || flat::search_slice(metric, dim, base, qs, k, filter).unwrap())
            })
            .collect();
        hs.into_iter()
            .flat_map(|h| h.join().unwrap())
            .map(|r| r.into_iter().map(|x| x.0).collect())
            .collect()
    })
}
