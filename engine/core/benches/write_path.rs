//! Write-path benchmarks: WAL group commit throughput over the local-disk object store semantics
//! (temp file + fsync + rename), and filtered search through a shard.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ferrovus_core::request::{Consistency, SearchRequest};
use ferrovus_core::schema::{CollectionSchema, DataType, FieldSchema};
use ferrovus_core::store::memory::{MemoryMetaStore, MemoryObjectStore};
use ferrovus_core::value::{Column, RowBatch};
use ferrovus_core::{CoreConfig, Database};

const DIM: usize = 128;

fn schema() -> CollectionSchema {
    CollectionSchema {
        name: "b".into(),
        description: String::new(),
        fields: vec![
            FieldSchema::new("id", DataType::Int64).primary(false),
            FieldSchema::new("tag", DataType::Int64),
            FieldSchema::new("v", DataType::FloatVector).with_dim(DIM as u32),
        ],
        enable_dynamic_field: false,
    }
}

fn batch(start: i64, n: usize) -> RowBatch {
    let ids: Vec<i64> = (start..start + n as i64).collect();
    RowBatch {
        columns: vec![
            ("id".into(), Column::Int(ids.clone())),
            (
                "tag".into(),
                Column::Int(ids.iter().map(|i| i % 100).collect()),
            ),
            (
                "v".into(),
                Column::FloatVector {
                    dim: DIM,
                    data: ids
                        .iter()
                        .flat_map(|i| {
                            (0..DIM).map(move |d| ((i * 31 + d as i64) % 97) as f32 / 97.0)
                        })
                        .collect(),
                },
            ),
        ],
    }
}

/// A durable local store for the benchmark: every put is temp file + fsync + rename, as the
/// standalone object store does.
#[derive(Debug)]
struct FsyncStore {
    dir: tempfile::TempDir,
    inner: MemoryObjectStore,
}

#[async_trait::async_trait]
impl ferrovus_core::store::ObjectStore for FsyncStore {
    async fn put(&self, key: &str, data: bytes::Bytes) -> ferrovus_core::Result<()> {
        let path = self.dir.path().join(key.replace('/', "_"));
        let tmp = path.with_extension("tmp");
        let d = data.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&d)?;
            f.sync_data()?;
            std::fs::rename(&tmp, &path)
        })
        .await
        .map_err(|e| ferrovus_core::CoreError::Internal(e.to_string()))??;
        self.inner.put(key, data).await
    }
    async fn get(&self, key: &str) -> ferrovus_core::Result<bytes::Bytes> {
        self.inner.get(key).await
    }
    async fn get_range(&self, key: &str, o: u64, l: u64) -> ferrovus_core::Result<bytes::Bytes> {
        self.inner.get_range(key, o, l).await
    }
    async fn delete(&self, key: &str) -> ferrovus_core::Result<()> {
        let _ = std::fs::remove_file(self.dir.path().join(key.replace('/', "_")));
        self.inner.delete(key).await
    }
    async fn list(&self, prefix: &str) -> ferrovus_core::Result<Vec<String>> {
        self.inner.list(prefix).await
    }
    async fn exists(&self, key: &str) -> ferrovus_core::Result<bool> {
        self.inner.exists(key).await
    }
}

fn open(rt: &tokio::runtime::Runtime) -> Arc<Database> {
    rt.block_on(async {
        let store = Arc::new(FsyncStore {
            dir: tempfile::tempdir().expect("tempdir"),
            inner: MemoryObjectStore::default(),
        });
        let db = Database::open(
            Arc::new(MemoryMetaStore::default()),
            store,
            CoreConfig {
                seal_rows: usize::MAX,
                seal_bytes: usize::MAX,
                ..CoreConfig::default()
            },
        )
        .await
        .expect("open");
        db.create_collection(schema(), 1, Consistency::Strong, BTreeMap::new())
            .await
            .expect("create");
        let mut p = BTreeMap::new();
        p.insert("index_type".to_string(), "FLAT".to_string());
        p.insert("metric_type".to_string(), "L2".to_string());
        db.create_index("b", "v", "", p).await.expect("index");
        db.load("b").await.expect("load");
        db
    })
}

fn wal_group_commit(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut g = c.benchmark_group("wal_append");
    g.sample_size(10);
    for writers in [1usize, 8] {
        let rows_per_call = 100;
        g.throughput(Throughput::Elements((writers * rows_per_call * 10) as u64));
        g.bench_with_input(
            BenchmarkId::new("concurrent_writers", writers),
            &writers,
            |b, &writers| {
                let db = open(&rt);
                let mut next = 0i64;
                b.iter(|| {
                    let base = next;
                    next += (writers * rows_per_call * 10) as i64;
                    rt.block_on(async {
                        let mut tasks = Vec::new();
                        for w in 0..writers {
                            let db = db.clone();
                            tasks.push(tokio::spawn(async move {
                                for k in 0..10 {
                                    let start = base + ((w * 10 + k) * rows_per_call) as i64;
                                    db.insert("b", "", batch(start, rows_per_call))
                                        .await
                                        .expect("insert");
                                }
                            }));
                        }
                        for t in tasks {
                            t.await.expect("task");
                        }
                    });
                });
            },
        );
    }
    g.finish();
}

fn filtered_search(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let db = open(&rt);
    rt.block_on(async {
        for k in 0..20 {
            db.insert("b", "", batch(k * 1000, 1000))
                .await
                .expect("insert");
        }
    });
    let q: Vec<f32> = (0..DIM).map(|d| d as f32 / DIM as f32).collect();
    let mut g = c.benchmark_group("growing_search_20k");
    for (name, filter) in [("none", ""), ("10pct", "tag < 10"), ("1pct", "tag == 7")] {
        let req = SearchRequest {
            collection: "b".into(),
            partitions: vec![],
            anns_field: None,
            vectors: q.clone(),
            num_queries: 1,
            limit: 10,
            offset: 0,
            metric: None,
            ef: None,
            filter: filter.into(),
            filter_params: HashMap::new(),
            output_fields: vec![],
            guarantee_ts: 0,
            ignore_growing: false,
            radius: None,
            range_filter: None,
        };
        g.bench_function(name, |b| b.iter(|| db.search(&req).expect("search")));
    }
    g.finish();
}

criterion_group!(benches, wal_group_commit, filtered_search);
criterion_main!(benches);
