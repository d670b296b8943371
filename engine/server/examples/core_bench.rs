//! In-process benchmark of the Ferrovus engine without the Milvus gRPC layer: starts the roles of
//! `ferrovus standalone` in this process ([`Engine`]: coordinator, streaming, query and data
//! node calling each other directly), drives the backend the gRPC handlers call, and prints one
//! JSON object on stdout. `bench/run.py` runs it on the same
//! `.npy` files it gives the other systems.
//!
//! ```text
//! cargo build --release -p ferrovus-server --example core_bench
//! target/release/examples/core_bench --base B.npy --queries Q.npy --gt GT.npy --metric L2 \
//!     [--tags T.npy --filter 'tag < 10=GT10.npy' --filter 'tag < 1=GT1.npy'] \
//!     [--m 16] [--efc 200] [--ef 16,32,64,128,256] [--k 10] [--batch 1000] \
//!     [--threads 8] [--conc-ef 64] [--store memory|disk] [--data-dir D] [--seal-rows N] \
//!     [--index-sweep]
//! ```
//!
//! Measured: insert throughput (batches of `--batch` rows through `Backend::insert`), time and
//! process CPU time from the end of the inserts until every row is indexed (flush + HNSW build),
//! single-thread QPS / latency / recall@k per `ef` (one query per call), aggregate QPS with
//! `--threads` concurrent clients, filtered search (recall against the exact filtered ground truth, QPS),
//! and the process RSS. With `--index-sweep` it also builds the segment index alone
//! (`ferrovus_core::vindex::build`, the layer under the engine) on the same vectors and sweeps
//! `ef` on it directly: the difference to the engine's sweep is what the layers above cost.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrovus_core::request::{Consistency, IndexSpec, IndexType, MetricType, SearchRequest};
use ferrovus_core::schema::{CollectionSchema, DataType, FieldSchema};
use ferrovus_core::store::memory::{MemoryMetaStore, MemoryObjectStore};
use ferrovus_core::store::{MetaStore, ObjectStore};
use ferrovus_core::value::{Column, PrimaryKey, RowBatch};
use ferrovus_core::vindex;
use ferrovus_server::backend::{Backend, LoadState};
use ferrovus_server::cluster::ClusterBackend;
use ferrovus_server::config::Config;
use ferrovus_server::metrics::Metrics;
use ferrovus_server::standalone::Engine;
use serde_json::{Value, json};

const COLLECTION: &str = "bench";

type Result<T, E = Box<dyn std::error::Error + Send + Sync>> = std::result::Result<T, E>;

macro_rules! err {
    ($($t:tt)*) => { Box::<dyn std::error::Error + Send + Sync>::from(format!($($t)*)) };
}

macro_rules! bail {
    ($($t:tt)*) => { return Err(err!($($t)*)) };
}

/// A 1-D or 2-D little-endian `.npy` array, as f32 or i64.
struct Npy {
    shape: Vec<usize>,
    f32s: Vec<f32>,
    i64s: Vec<i64>,
}

fn read_npy(path: &Path) -> Result<Npy> {
    let mut raw = Vec::new();
    std::fs::File::open(path)
        .map_err(|e| err!("opening {}: {e}", path.display()))?
        .read_to_end(&mut raw)?;
    if raw.len() < 10 || &raw[..6] != b"\x93NUMPY" {
        bail!("{} is not a .npy file", path.display());
    }
    let (hlen, hstart) = match raw[6] {
        1 => (u16::from_le_bytes([raw[8], raw[9]]) as usize, 10),
        _ => (
            u32::from_le_bytes([raw[8], raw[9], raw[10], raw[11]]) as usize,
            12,
        ),
    };
    let header = std::str::from_utf8(&raw[hstart..hstart + hlen])?;
    let field = |key: &str| -> Result<&str> {
        let at = header
            .find(key)
            .ok_or_else(|| err!("{}: no {key} in header", path.display()))?;
        Ok(header[at + key.len()..].trim_start_matches([':', ' ', '\'']))
    };
    if field("'fortran_order'")?.starts_with("True") {
        bail!("{}: Fortran order is not supported", path.display());
    }
    let descr: String = field("'descr'")?
        .chars()
        .take_while(|c| *c != '\'')
        .collect();
    let shape_txt = field("'shape'")?;
    let shape: Vec<usize> = shape_txt
        [shape_txt.find('(').map_or(0, |i| i + 1)..shape_txt.find(')').unwrap_or(shape_txt.len())]
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let body = &raw[hstart + hlen..];
    let count: usize = shape.iter().product();
    let mut out = Npy {
        shape,
        f32s: Vec::new(),
        i64s: Vec::new(),
    };
    let need = |width: usize| -> Result<()> {
        if body.len() < count * width {
            bail!("{}: truncated data", path.display());
        }
        Ok(())
    };
    match descr.as_str() {
        "<f4" => {
            need(4)?;
            out.f32s = body[..count * 4]
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
        }
        "<i4" => {
            need(4)?;
            out.i64s = body[..count * 4]
                .chunks_exact(4)
                .map(|b| i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])))
                .collect();
        }
        "<i8" => {
            need(8)?;
            out.i64s = body[..count * 8]
                .chunks_exact(8)
                .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
                .collect();
        }
        other => bail!("{}: unsupported dtype {other}", path.display()),
    }
    Ok(out)
}

struct Args {
    base: PathBuf,
    queries: PathBuf,
    gt: PathBuf,
    tags: Option<PathBuf>,
    filters: Vec<(String, PathBuf)>,
    metric: String,
    m: usize,
    efc: usize,
    efs: Vec<usize>,
    k: usize,
    batch: usize,
    threads: usize,
    conc_ef: Option<usize>,
    store: String,
    data_dir: Option<PathBuf>,
    seal_rows: Option<usize>,
    max_seconds: f64,
    index_sweep: bool,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        base: PathBuf::new(),
        queries: PathBuf::new(),
        gt: PathBuf::new(),
        tags: None,
        filters: Vec::new(),
        metric: "L2".into(),
        m: 16,
        efc: 200,
        efs: vec![16, 32, 64, 128, 256],
        k: 10,
        batch: 1000,
        threads: 8,
        conc_ef: None,
        store: "memory".into(),
        data_dir: None,
        seal_rows: None,
        max_seconds: 20.0,
        index_sweep: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| err!("{flag} needs a value"));
        match flag.as_str() {
            "--base" => a.base = val()?.into(),
            "--queries" => a.queries = val()?.into(),
            "--gt" => a.gt = val()?.into(),
            "--tags" => a.tags = Some(val()?.into()),
            "--filter" => {
                let v = val()?;
                let (expr, path) = v
                    .rsplit_once('=')
                    .ok_or_else(|| err!("--filter wants EXPR=GT.npy, got {v:?}"))?;
                a.filters.push((expr.trim().to_string(), path.into()));
            }
            "--metric" => a.metric = val()?.to_ascii_uppercase(),
            "--m" => a.m = val()?.parse()?,
            "--efc" => a.efc = val()?.parse()?,
            "--ef" => {
                a.efs = val()?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            "--k" => a.k = val()?.parse()?,
            "--batch" => a.batch = val()?.parse()?,
            "--threads" => a.threads = val()?.parse()?,
            "--conc-ef" => a.conc_ef = Some(val()?.parse()?),
            "--store" => a.store = val()?,
            "--data-dir" => a.data_dir = Some(val()?.into()),
            "--seal-rows" => a.seal_rows = Some(val()?.parse()?),
            "--max-seconds" => a.max_seconds = val()?.parse()?,
            "--index-sweep" => a.index_sweep = true,
            "-h" | "--help" => {
                println!(
                    "core_bench --base B.npy --queries Q.npy --gt GT.npy [--metric L2|IP|COSINE] \
                     [--tags T.npy --filter 'EXPR=GT.npy' ...] [--m 16] [--efc 200] \
                     [--ef 16,32,64,128,256] [--k 10] [--batch 1000] [--threads 8] [--conc-ef EF] \
                     [--store memory|disk] [--data-dir DIR] [--seal-rows N] [--max-seconds S] \
                     [--index-sweep]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}"),
        }
    }
    if a.base.as_os_str().is_empty() || a.queries.as_os_str().is_empty() {
        bail!("--base and --queries are required");
    }
    if a.gt.as_os_str().is_empty() {
        bail!("--gt is required");
    }
    Ok(a)
}

/// User + system CPU seconds of this process (Linux `/proc/self/stat`, USER_HZ = 100).
fn cpu_seconds() -> f64 {
    let Ok(s) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = s.rsplit_once(')').map_or("", |x| x.1);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// (VmRSS, VmHWM) of this process in bytes.
fn rss_bytes() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let get = |key: &str| {
        s.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (get("VmRSS:"), get("VmHWM:"))
}

fn dir_bytes(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn search_request(dim: usize, q: &[f32], k: usize, ef: usize, filter: &str) -> SearchRequest {
    SearchRequest {
        collection: COLLECTION.into(),
        partitions: vec![],
        anns_field: None,
        vectors: q.to_vec(),
        num_queries: q.len() / dim,
        limit: k,
        offset: 0,
        metric: None,
        ef: Some(ef),
        filter: filter.into(),
        filter_params: HashMap::new(),
        output_fields: vec![],
        guarantee_ts: 0,
        ignore_growing: false,
        radius: None,
        range_filter: None,
    }
}

fn ids_of(hits: &[PrimaryKey]) -> Vec<i64> {
    hits.iter()
        .map(|p| match p {
            PrimaryKey::Int(i) => *i,
            PrimaryKey::Str(_) => -1,
        })
        .collect()
}

/// Recall@k of `found` against the first k ids of each ground-truth row.
fn recall(found: &[Vec<i64>], gt: &Npy, k: usize) -> f64 {
    let width = gt.shape.get(1).copied().unwrap_or(1);
    let mut hit = 0usize;
    let mut total = 0usize;
    for (qi, f) in found.iter().enumerate() {
        let row = &gt.i64s[qi * width..qi * width + width.min(k)];
        let truth: Vec<i64> = row.iter().copied().filter(|x| *x >= 0).collect();
        total += truth.len();
        hit += f.iter().take(k).filter(|x| truth.contains(x)).count();
    }
    if total == 0 {
        1.0
    } else {
        hit as f64 / total as f64
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// One query per call, one at a time, over all queries (or until `max_seconds`).
async fn sweep_one(
    db: &ClusterBackend,
    queries: &[f32],
    dim: usize,
    k: usize,
    ef: usize,
    filter: &str,
    max_seconds: f64,
) -> Result<(Vec<Vec<i64>>, f64, Vec<f64>)> {
    let nq = queries.len() / dim;
    for q in queries.chunks_exact(dim).take(nq.min(20)) {
        db.search(search_request(dim, q, k, ef, filter)).await?;
    }
    let mut found = Vec::with_capacity(nq);
    let mut lat = Vec::with_capacity(nq);
    let start = Instant::now();
    for q in queries.chunks_exact(dim) {
        let t = Instant::now();
        let r = db.search(search_request(dim, q, k, ef, filter)).await?;
        lat.push(t.elapsed().as_secs_f64() * 1e3);
        found.push(ids_of(&r.ids[0]));
        if start.elapsed().as_secs_f64() > max_seconds && found.len() >= 100 {
            break;
        }
    }
    let qps = found.len() as f64 / start.elapsed().as_secs_f64();
    lat.sort_by(|a, b| a.total_cmp(b));
    Ok((found, qps, lat))
}

/// Aggregate QPS of `threads` concurrent clients (tasks on the runtime's worker threads) each
/// issuing one query per call.
async fn concurrent_qps(
    db: &Arc<ClusterBackend>,
    queries: &Arc<Vec<f32>>,
    dim: usize,
    k: usize,
    ef: usize,
    threads: usize,
    duration: Duration,
) -> Result<f64> {
    let nq = queries.len() / dim;
    let start = Instant::now();
    let clients: Vec<_> = (0..threads)
        .map(|t| {
            let db = db.clone();
            let queries = queries.clone();
            tokio::spawn(async move {
                let mut n = 0usize;
                let mut i = t;
                while start.elapsed() < duration {
                    let q = &queries[(i % nq) * dim..(i % nq + 1) * dim];
                    db.search(search_request(dim, q, k, ef, "")).await?;
                    n += 1;
                    i += threads;
                }
                Ok::<usize, ferrovus_server::error::ApiError>(n)
            })
        })
        .collect();
    let mut total = 0;
    for c in clients {
        total += c.await??;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

/// A gauge's value in the Prometheus text exposition (0 when absent).
fn gauge(text: &str, name: &str) -> f64 {
    text.lines()
        .filter_map(|l| {
            l.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse::<f64>()
                .ok()
        })
        .sum()
}

/// Build the segment index directly (no engine) and sweep `ef` on it, single thread.
fn index_sweep(args: &Args, base: &[f32], dim: usize, queries: &[f32], gt: &Npy) -> Result<Value> {
    let spec = IndexSpec {
        index_id: 1,
        index_name: "vec_idx".into(),
        field_id: 101,
        field_name: "vec".into(),
        index_type: IndexType::Hnsw,
        metric: MetricType::parse(&args.metric)?,
        m: args.m,
        ef_construction: args.efc,
        params: BTreeMap::new(),
    };
    let cpu0 = cpu_seconds();
    let t = Instant::now();
    let index = vindex::build(&spec, dim, base, 0)?;
    let build_s = t.elapsed().as_secs_f64();
    let build_cpu_s = cpu_seconds() - cpu0;
    let mut sweep = Vec::new();
    for &ef in &args.efs {
        let ef = ef.max(args.k);
        for q in queries.chunks_exact(dim).take(20) {
            index.search(q, args.k, ef, None)?;
        }
        let mut found = Vec::new();
        let mut lat = Vec::new();
        let start = Instant::now();
        for q in queries.chunks_exact(dim) {
            let t = Instant::now();
            let hits = index.search(q, args.k, ef, None)?;
            lat.push(t.elapsed().as_secs_f64() * 1e3);
            found.push(hits[0].iter().map(|(row, _)| i64::from(*row)).collect());
            if start.elapsed().as_secs_f64() > args.max_seconds && found.len() >= 100 {
                break;
            }
        }
        let qps = found.len() as f64 / start.elapsed().as_secs_f64();
        lat.sort_by(|a, b| a.total_cmp(b));
        sweep.push(json!({
            "ef": ef,
            "qps": qps,
            "recall": recall(&found, gt, args.k),
            "queries": found.len(),
            "p50_ms": percentile(&lat, 0.5),
            "p99_ms": percentile(&lat, 0.99),
        }));
    }
    Ok(json!({
        "build_s": build_s,
        "build_cpu_s": build_cpu_s,
        "memory_bytes": index.memory_bytes(),
        "sweep": sweep,
    }))
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(args))
}

async fn run(args: Args) -> Result<()> {
    let base = read_npy(&args.base)?;
    let queries = read_npy(&args.queries)?;
    let gt = read_npy(&args.gt)?;
    let (n, dim) = match base.shape[..] {
        [n, d] => (n, d),
        _ => bail!("base must be 2-D"),
    };
    if queries.shape.get(1) != Some(&dim) {
        bail!("queries must be 2-D with dim {dim}");
    }
    let tags = match &args.tags {
        Some(p) => Some(read_npy(p)?.i64s),
        None => None,
    };
    if tags.as_ref().is_some_and(|t| t.len() != n) {
        bail!("--tags must have one value per base vector");
    }

    let mut config = Config::default();
    if let Some(s) = args.seal_rows {
        config.core.seal_rows = s;
    }
    let (meta, objects, data_dir): (Arc<dyn MetaStore>, Arc<dyn ObjectStore>, Option<PathBuf>) =
        match args.store.as_str() {
            "memory" => (
                Arc::new(MemoryMetaStore::default()),
                Arc::new(MemoryObjectStore::default()),
                None,
            ),
            "disk" => {
                let dir = args
                    .data_dir
                    .clone()
                    .ok_or_else(|| err!("--store disk needs --data-dir"))?;
                std::fs::create_dir_all(&dir)?;
                (
                    Arc::new(ferrovus_storage::RedbMetaStore::open(dir.join("meta.redb")).await?),
                    Arc::new(ferrovus_storage::LocalObjectStore::new(
                        dir.join("objects"),
                    )?),
                    Some(dir),
                )
            }
            other => bail!("--store must be memory or disk, got {other}"),
        };
    let rss_start = rss_bytes().0;
    let metrics = Arc::new(Metrics::new());
    let engine = Engine::start(&config, meta, objects, &metrics).await?;
    tokio::time::timeout(Duration::from_secs(120), engine.wait_ready(None))
        .await
        .map_err(|_| err!("the roles did not become ready"))?;
    let db = engine.backend().clone();

    let mut fields = vec![
        FieldSchema::new("id", DataType::Int64).primary(false),
        FieldSchema::new("vec", DataType::FloatVector).with_dim(dim as u32),
    ];
    if tags.is_some() {
        fields.push(FieldSchema::new("tag", DataType::Int64));
    }
    let schema = CollectionSchema {
        name: COLLECTION.into(),
        description: String::new(),
        fields,
        enable_dynamic_field: false,
    };
    db.create_collection(schema, 1, Consistency::Bounded, BTreeMap::new())
        .await?;
    let mut params = BTreeMap::new();
    params.insert("index_type".to_string(), "HNSW".to_string());
    params.insert("metric_type".to_string(), args.metric.clone());
    params.insert("M".to_string(), args.m.to_string());
    params.insert("efConstruction".to_string(), args.efc.to_string());
    db.create_index(COLLECTION, "vec", "vec_idx", params)
        .await?;
    db.load_collection(COLLECTION, 1).await?;
    while db.load_state(COLLECTION).await? != LoadState::Loaded {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Inserts, batches of `--batch` rows, as a client would send them.
    let t_insert = Instant::now();
    let mut start = 0;
    while start < n {
        let end = (start + args.batch).min(n);
        let mut columns = vec![
            (
                "id".to_string(),
                Column::Int((start as i64..end as i64).collect()),
            ),
            (
                "vec".to_string(),
                Column::FloatVector {
                    dim,
                    data: base.f32s[start * dim..end * dim].to_vec(),
                },
            ),
        ];
        if let Some(t) = &tags {
            columns.push(("tag".to_string(), Column::Int(t[start..end].to_vec())));
        }
        db.insert(COLLECTION, "", RowBatch { columns }).await?;
        start = end;
    }
    let insert_s = t_insert.elapsed().as_secs_f64();

    // Flush, then wait until every row is covered by the HNSW index.
    let t_index = Instant::now();
    let cpu0 = cpu_seconds();
    db.flush(COLLECTION).await?;
    loop {
        let d = db.describe_indexes(COLLECTION, "").await?;
        if d.iter().all(|i| i.finished() && i.total_rows >= n) {
            break;
        }
        if t_index.elapsed() > Duration::from_secs(7200) {
            bail!("index not built after 2 h: {d:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let index_s = t_index.elapsed().as_secs_f64();
    let index_cpu_s = cpu_seconds() - cpu0;
    let segments = db.segments(COLLECTION).await?.len();
    let mem_bytes = gauge(&metrics.render(), "ferrovus_querynode_memory_bytes") as u64;
    let (rss_loaded, _) = rss_bytes();

    let qv = &queries.f32s;
    let nq = qv.len() / dim;
    let mut sweep = Vec::new();
    for &ef in &args.efs {
        let ef = ef.max(args.k);
        let (found, qps, lat) = sweep_one(&db, qv, dim, args.k, ef, "", args.max_seconds).await?;
        sweep.push(json!({
            "ef": ef,
            "qps": qps,
            "recall": recall(&found, &gt, args.k),
            "queries": found.len(),
            "p50_ms": percentile(&lat, 0.5),
            "p99_ms": percentile(&lat, 0.99),
        }));
    }
    let conc_ef = args.conc_ef.unwrap_or(64).max(args.k);
    let conc_qps = concurrent_qps(
        &db,
        &Arc::new(qv.clone()),
        dim,
        args.k,
        conc_ef,
        args.threads,
        Duration::from_secs_f64((args.max_seconds / 4.0).clamp(1.0, 10.0)),
    )
    .await?;
    let mut filtered = Vec::new();
    for (expr, path) in &args.filters {
        let fgt = read_npy(path)?;
        let (found, qps, lat) =
            sweep_one(&db, qv, dim, args.k, conc_ef, expr, args.max_seconds).await?;
        filtered.push(json!({
            "filter": expr,
            "ef": conc_ef,
            "qps": qps,
            "recall": recall(&found, &fgt, args.k),
            "queries": found.len(),
            "p50_ms": percentile(&lat, 0.5),
            "p99_ms": percentile(&lat, 0.99),
        }));
    }
    let index_only = if args.index_sweep {
        Some(index_sweep(&args, &base.f32s, dim, qv, &gt)?)
    } else {
        None
    };
    let (rss_end, hwm) = rss_bytes();
    let out: Value = json!({
        "n": n,
        "dim": dim,
        "queries": nq,
        "metric": args.metric,
        "m": args.m,
        "ef_construction": args.efc,
        "store": args.store,
        "insert_s": insert_s,
        "insert_rows_per_s": n as f64 / insert_s,
        "index_s": index_s,
        "index_cpu_s": index_cpu_s,
        "segments": segments,
        "core_memory_bytes": mem_bytes,
        "rss_start_bytes": rss_start,
        "rss_loaded_bytes": rss_loaded,
        "rss_end_bytes": rss_end,
        "rss_peak_bytes": hwm,
        "disk_bytes": data_dir.as_deref().map(dir_bytes),
        "sweep": sweep,
        "concurrent": {"threads": args.threads, "ef": conc_ef, "qps": conc_qps},
        "filtered": filtered,
        "index_only": index_only,
    });
    engine.stop(false).await;
    println!("{out}");
    Ok(())
}
