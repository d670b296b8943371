//! Write-path benchmarks: WAL group commit throughput of one shard over the local-disk object
//! store semantics (temp file + fsync + rename), and filtered search through a shard.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ferrovus_core::CoreConfig;
use ferrovus_core::collection::{DEFAULT_PARTITION, PartitionMeta};
use ferrovus_core::plan;
use ferrovus_core::request::{IndexSpec, IndexType, MetricType, SearchRequest};
use ferrovus_core::schema::{CollectionSchema, DataType, FieldSchema};
use ferrovus_core::shard::{MetaCheckpointStore, Shard, ShardEnv};
use ferrovus_core::store::memory::{MemoryMetaStore, MemoryObjectStore};
use ferrovus_core::tso::{IdAllocator, TimestampOracle};
use ferrovus_core::value::{Column, RowBatch};
use ferrovus_core::wal::WalRecord;
use parking_lot::RwLock;

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
    .validate_and_normalize()
    .expect("schema")
}

const PARTITION: i64 = 1;

fn flat_index(schema: &CollectionSchema) -> IndexSpec {
    let v = schema.field("v").expect("v");
    IndexSpec {
        index_id: 1,
        index_name: "v".into(),
        field_id: v.field_id,
        field_name: "v".into(),
        index_type: IndexType::Flat,
        metric: MetricType::L2,
        m: 0,
        ef_construction: 0,
        params: BTreeMap::new(),
    }
}

/// Rows `start..start + n` as one insert record (schema-ordered, as the proxy sends them).
fn insert(start: i64, n: usize) -> WalRecord {
    WalRecord::Insert {
        partition_id: PARTITION,
        ts: 0,
        rows: batch(start, n),
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

/// Shard 0 of a one-shard collection with a FLAT index, never sealing on its own.
fn open(rt: &tokio::runtime::Runtime) -> Arc<Shard> {
    rt.block_on(async {
        let objects = Arc::new(FsyncStore {
            dir: tempfile::tempdir().expect("tempdir"),
            inner: MemoryObjectStore::default(),
        });
        let meta = Arc::new(MemoryMetaStore::default());
        let env = ShardEnv {
            objects,
            meta: meta.clone(),
            tso: Arc::new(
                TimestampOracle::open(meta.clone(), "tso/upper")
                    .await
                    .expect("tso"),
            ),
            ids: Arc::new(
                IdAllocator::open(meta.clone(), "ids/next", 1_000)
                    .await
                    .expect("ids"),
            ),
            config: Arc::new(CoreConfig {
                seal_rows: usize::MAX,
                seal_bytes: usize::MAX,
                ..CoreConfig::default()
            }),
            checkpoints: Arc::new(MetaCheckpointStore::new(meta)),
            hooks: None,
        };
        let schema = Arc::new(schema());
        let indexes = Arc::new(RwLock::new(vec![flat_index(&schema)]));
        let shard = Shard::open(1, 0, schema, indexes, env).await.expect("open");
        Arc::new(shard)
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
                let shard = open(&rt);
                let mut next = 0i64;
                b.iter(|| {
                    let base = next;
                    next += (writers * rows_per_call * 10) as i64;
                    rt.block_on(async {
                        let mut tasks = Vec::new();
                        for w in 0..writers {
                            let shard = shard.clone();
                            tasks.push(tokio::spawn(async move {
                                for k in 0..10 {
                                    let start = base + ((w * 10 + k) * rows_per_call) as i64;
                                    shard
                                        .write(insert(start, rows_per_call), 0)
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
    let shard = open(&rt);
    rt.block_on(async {
        for k in 0..20 {
            shard
                .write(insert(k * 1000, 1000), 0)
                .await
                .expect("insert");
        }
    });
    let schema = schema();
    let indexes = vec![flat_index(&schema)];
    let partitions = vec![PartitionMeta {
        id: PARTITION,
        name: DEFAULT_PARTITION.into(),
        created_ts: 0,
    }];
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
        // Planning and merging as the proxy does, the shard's search as its owner does.
        g.bench_function(name, |b| {
            b.iter(|| {
                let p = plan::plan_search(&schema, &indexes, &partitions, &req).expect("plan");
                let hits = shard
                    .search(&p.prepared(), &HashSet::new())
                    .expect("search")
                    .value;
                plan::merge_search(&schema, &p, vec![hits])
            })
        });
    }
    g.finish();
}

criterion_group!(benches, wal_group_commit, filtered_search);
criterion_main!(benches);
