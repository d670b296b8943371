//! The standalone engine (every role in one process, behind the proxy's backend, without gRPC)
//! over in-memory stores: writes, reads, deletes, upserts, restarts, index changes, the
//! catalogue and bad input, through the [`Backend`] the Milvus handlers call.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrovus_core::CoreConfig;
use ferrovus_core::request::{Consistency, IndexType, MetricType, QueryRequest, SearchRequest};
use ferrovus_core::schema::{CollectionSchema, DataType, FieldSchema};
use ferrovus_core::store::memory::{MemoryMetaStore, MemoryObjectStore};
use ferrovus_core::store::{MetaStore, ObjectStore};
use ferrovus_core::value::{Column, PrimaryKey, RowBatch};
use ferrovus_proto::codes;
use ferrovus_server::backend::{Backend, LoadState, SegmentState};
use ferrovus_server::config::Config;
use ferrovus_server::error::ApiError;
use ferrovus_server::metrics::Metrics;
use ferrovus_server::standalone::Engine;

const DIM: usize = 8;

/// Stores that outlive an engine, so a test can stop it and start another over the same data.
struct Stores {
    meta: Arc<MemoryMetaStore>,
    objects: Arc<MemoryObjectStore>,
}

impl Stores {
    fn new() -> Self {
        Stores {
            meta: Arc::new(MemoryMetaStore::default()),
            objects: Arc::new(MemoryObjectStore::default()),
        }
    }

    async fn start(&self, core: CoreConfig) -> Engine {
        let cfg = Config {
            core,
            ..Config::default()
        };
        let meta: Arc<dyn MetaStore> = self.meta.clone();
        let objects: Arc<dyn ObjectStore> = self.objects.clone();
        let engine = Engine::start(&cfg, meta, objects, &Arc::new(Metrics::new()))
            .await
            .expect("start the engine");
        tokio::time::timeout(Duration::from_secs(60), engine.wait_ready(None))
            .await
            .expect("the roles serve");
        engine
    }
}

fn schema(name: &str) -> CollectionSchema {
    CollectionSchema {
        name: name.into(),
        description: String::new(),
        fields: vec![
            FieldSchema::new("id", DataType::Int64).primary(false),
            FieldSchema::new("title", DataType::VarChar).with_max_length(16),
            FieldSchema::new("price", DataType::Double),
            FieldSchema::new("v", DataType::FloatVector).with_dim(DIM as u32),
        ],
        enable_dynamic_field: true,
    }
}

fn vector(i: i64) -> Vec<f32> {
    // Deterministic, well-spread vectors.
    (0..DIM)
        .map(|d| ((i as f32 + 1.0) * (d as f32 + 0.37)).sin())
        .collect()
}

fn rows(ids: std::ops::Range<i64>, tag: &str) -> RowBatch {
    let ids: Vec<i64> = ids.collect();
    RowBatch {
        columns: vec![
            ("id".into(), Column::Int(ids.clone())),
            (
                "title".into(),
                Column::VarChar(ids.iter().map(|i| format!("{tag}{i}")).collect()),
            ),
            (
                "price".into(),
                Column::Double(ids.iter().map(|i| *i as f64 * 0.5).collect()),
            ),
            (
                "v".into(),
                Column::FloatVector {
                    dim: DIM,
                    data: ids.iter().flat_map(|i| vector(*i)).collect(),
                },
            ),
            (
                "$meta".into(),
                Column::Json(
                    ids.iter()
                        .map(|i| {
                            serde_json::json!({"color": if i % 2 == 0 { "red" } else { "blue" }})
                        })
                        .collect(),
                ),
            ),
        ],
    }
}

fn query(coll: &str, filter: &str, out: &[&str]) -> QueryRequest {
    QueryRequest {
        collection: coll.into(),
        partitions: vec![],
        filter: filter.into(),
        filter_params: HashMap::new(),
        output_fields: out.iter().map(|s| s.to_string()).collect(),
        limit: None,
        offset: 0,
        guarantee_ts: 0,
    }
}

fn search(coll: &str, q: &[f32], limit: usize, filter: &str) -> SearchRequest {
    SearchRequest {
        collection: coll.into(),
        partitions: vec![],
        anns_field: None,
        vectors: q.to_vec(),
        num_queries: q.len() / DIM,
        limit,
        offset: 0,
        metric: None,
        ef: None,
        filter: filter.into(),
        filter_params: HashMap::new(),
        output_fields: vec!["title".into()],
        guarantee_ts: 0,
        ignore_growing: false,
        radius: None,
        range_filter: None,
    }
}

async fn count(b: &dyn Backend, coll: &str, filter: &str) -> u64 {
    b.query(query(coll, filter, &["count(*)"]))
        .await
        .unwrap()
        .count
        .unwrap()
}

fn int_column(fields: &[ferrovus_core::request::OutputColumn], name: &str) -> Vec<i64> {
    match &fields.iter().find(|f| f.name == name).unwrap().column {
        Column::Int(v) => v.clone(),
        other => panic!("unexpected {other:?}"),
    }
}

async fn ids_of(b: &dyn Backend, coll: &str, filter: &str) -> Vec<i64> {
    let mut q = query(coll, filter, &["id"]);
    q.limit = Some(16384);
    let mut ids = int_column(&b.query(q).await.unwrap().fields, "id");
    ids.sort_unstable();
    ids
}

fn index_params(index: &str, metric: &str) -> BTreeMap<String, String> {
    [
        ("index_type".to_string(), index.to_string()),
        ("metric_type".to_string(), metric.to_string()),
    ]
    .into()
}

async fn wait_loaded(b: &dyn Backend, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while b.load_state(name).await.unwrap() != LoadState::Loaded {
        assert!(Instant::now() < deadline, "{name} did not load");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn load(b: &dyn Backend, name: &str) {
    b.load_collection(name, 1).await.unwrap();
    wait_loaded(b, name).await;
}

async fn setup(b: &dyn Backend, name: &str, index: &str) {
    b.create_collection(schema(name), 2, Consistency::Strong, BTreeMap::new())
        .await
        .unwrap();
    b.create_index(name, "v", "", index_params(index, "L2"))
        .await
        .unwrap();
    load(b, name).await;
}

async fn wait_indexed(b: &dyn Backend, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let d = b.describe_indexes(name, "").await.unwrap();
        if d.iter().all(|i| i.finished()) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "index build did not finish: {d:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn brute_force(ids: &[i64], q: &[f32], k: usize) -> Vec<i64> {
    let mut d: Vec<(f32, i64)> = ids
        .iter()
        .map(|i| {
            (
                vector(*i)
                    .iter()
                    .zip(q)
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum::<f32>(),
                *i,
            )
        })
        .collect();
    d.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap().then(a.1.cmp(&b.1)));
    d.into_iter().take(k).map(|x| x.1).collect()
}

fn pk_ints(v: &[PrimaryKey]) -> Vec<i64> {
    v.iter()
        .map(|p| if let PrimaryKey::Int(i) = p { *i } else { -1 })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_search_query_exact_and_filtered() {
    let s = Stores::new();
    let e = s.start(CoreConfig::default()).await;
    let b = e.backend().as_ref();
    setup(b, "c", "FLAT").await;
    let res = b.insert("c", "", rows(0..300, "t")).await.unwrap();
    assert_eq!(res.insert_count, 300);
    assert!(res.timestamp > 0);
    assert_eq!(count(b, "c", "").await, 300);

    let q = vector(1000);
    let all: Vec<i64> = (0..300).collect();
    let r = b.search(search("c", &q, 10, "")).await.unwrap();
    assert_eq!(pk_ints(&r.ids[0]), brute_force(&all, &q, 10));
    assert!(r.scores[0].windows(2).all(|w| w[0] <= w[1]), "L2 ascending");

    // Filter inside the search: exactly the top-10 among matching rows.
    let r = b
        .search(search("c", &q, 10, "id >= 100 and color == \"red\""))
        .await
        .unwrap();
    let matching: Vec<i64> = (100..300).filter(|i| i % 2 == 0).collect();
    assert_eq!(pk_ints(&r.ids[0]), brute_force(&matching, &q, 10));
    let titles = &r.fields.iter().find(|f| f.name == "title").unwrap().column;
    assert_eq!(titles.len(), 10);

    // A filter matching fewer than k rows returns exactly those rows.
    let r = b
        .search(search("c", &q, 10, "id in [3, 5, 7]"))
        .await
        .unwrap();
    let mut got = pk_ints(&r.ids[0]);
    got.sort();
    assert_eq!(got, vec![3, 5, 7]);

    // Query with limit/offset pages in primary-key order.
    let mut qr = query("c", "price > 10", &["id", "price"]);
    qr.limit = Some(5);
    qr.offset = 2;
    let r = b.query(qr).await.unwrap();
    assert_eq!(r.num_rows, 5);
    assert_eq!(int_column(&r.fields, "id"), vec![23, 24, 25, 26, 27]);
    assert_eq!(count(b, "c", "title like \"t1%\"").await, 111);
    assert_eq!(count(b, "c", "1 < id < 5").await, 3);
    e.stop(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latest_write_wins_upsert_and_deletes() {
    let s = Stores::new();
    let e = s.start(CoreConfig::default()).await;
    let b = e.backend().as_ref();
    setup(b, "c", "FLAT").await;
    b.insert("c", "", rows(0..100, "a")).await.unwrap();
    // Re-inserting keys replaces them: never visible twice.
    b.insert("c", "", rows(50..60, "b")).await.unwrap();
    assert_eq!(count(b, "c", "").await, 100);
    assert_eq!(count(b, "c", "title like \"b%\"").await, 10);
    b.upsert("c", "", rows(0..5, "u")).await.unwrap();
    assert_eq!(count(b, "c", "").await, 100);
    assert_eq!(
        ids_of(b, "c", "title like \"u%\"").await,
        vec![0, 1, 2, 3, 4]
    );
    // Upsert with a duplicated key in one batch is rejected.
    let mut dup = rows(0..2, "x");
    dup.columns[0].1 = Column::Int(vec![7, 7]);
    let err = b.upsert("c", "", dup).await.unwrap_err().to_string();
    assert!(
        err.contains("duplicate primary keys") && err.contains("id"),
        "{err}"
    );

    let d = b
        .delete("c", "", "id in [1, 2, 1000]", &HashMap::new())
        .await
        .unwrap();
    assert_eq!(d.delete_count, 3, "keys are passed through as Milvus does");
    assert_eq!(count(b, "c", "").await, 98);
    let d = b
        .delete("c", "", "id >= 90", &HashMap::new())
        .await
        .unwrap();
    assert_eq!(d.delete_count, 10);
    assert_eq!(count(b, "c", "").await, 88);
    let q = vector(95);
    let r = b.search(search("c", &q, 5, "")).await.unwrap();
    assert!(
        pk_ints(&r.ids[0])
            .iter()
            .all(|i| *i < 90 && *i != 1 && *i != 2)
    );
    e.stop(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovers_sealed_growing_deletes_and_indexes_after_restart() {
    let s = Stores::new();
    {
        let e = s.start(CoreConfig::default()).await;
        let b = e.backend().as_ref();
        setup(b, "c", "HNSW").await;
        b.create_partition("c", "p1").await.unwrap();
        b.insert("c", "", rows(0..400, "a")).await.unwrap();
        b.flush("c").await.unwrap();
        wait_indexed(b, "c").await;
        b.insert("c", "p1", rows(400..500, "b")).await.unwrap();
        b.delete("c", "", "id < 10 or id >= 490", &HashMap::new())
            .await
            .unwrap();
        b.upsert("c", "", rows(20..25, "u")).await.unwrap();
        assert_eq!(count(b, "c", "").await, 480);
        // Stopped without a flush: the tail lives only in the write-ahead log.
        e.stop(false).await;
    }
    let e = s.start(CoreConfig::default()).await;
    let b = e.backend().as_ref();
    wait_loaded(b, "c").await;
    assert_eq!(count(b, "c", "").await, 480);
    assert_eq!(
        ids_of(b, "c", "title like \"u%\"").await,
        vec![20, 21, 22, 23, 24]
    );
    let mut pq = query("c", "", &["count(*)"]);
    pq.partitions = vec!["p1".into()];
    assert_eq!(b.query(pq).await.unwrap().count, Some(90));
    assert_eq!(b.row_count("c", Some("p1")).await.unwrap(), 90);
    let d = b.describe_indexes("c", "").await.unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].spec.index_type, IndexType::Hnsw);
    assert!(d[0].finished(), "{d:?}");
    let q = vector(7);
    let r = b.search(search("c", &q, 5, "")).await.unwrap();
    assert_eq!(r.ids[0].len(), 5);
    assert!(pk_ints(&r.ids[0]).iter().all(|i| *i >= 10 && *i < 490));
    e.stop(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_are_typed_errors_naming_the_field() {
    let s = Stores::new();
    let e = s.start(CoreConfig::default()).await;
    let b = e.backend().as_ref();
    setup(b, "c", "FLAT").await;
    let field_err = |e: ApiError, field: &str| {
        let msg = e.to_string();
        assert!(msg.contains(field), "error {msg:?} should name {field:?}");
        msg
    };
    // wrong dimension
    let mut r = rows(0..2, "a");
    r.columns[3].1 = Column::FloatVector {
        dim: 4,
        data: vec![0.0; 8],
    };
    let err = b.insert("c", "", r).await.unwrap_err();
    assert!(err.to_string().contains("dim"), "{err}");
    field_err(err, "v");
    // missing field
    let mut r = rows(0..2, "a");
    r.columns.remove(2);
    field_err(b.insert("c", "", r).await.unwrap_err(), "price");
    // wrong type
    let mut r = rows(0..2, "a");
    r.columns[2].1 = Column::VarChar(vec!["x".into(), "y".into()]);
    field_err(b.insert("c", "", r).await.unwrap_err(), "price");
    // VarChar over max_length
    let mut r = rows(0..2, "a");
    r.columns[1].1 = Column::VarChar(vec!["x".repeat(17), "y".into()]);
    let msg = field_err(b.insert("c", "", r).await.unwrap_err(), "title");
    assert!(msg.contains("max_length"), "{msg}");
    // unknown field
    let mut r = rows(0..2, "a");
    r.columns.push(("nope".into(), Column::Int(vec![1, 2])));
    field_err(b.insert("c", "", r).await.unwrap_err(), "nope");
    // NaN in a vector
    let mut r = rows(0..2, "a");
    r.columns[3].1 = Column::FloatVector {
        dim: DIM,
        data: vec![f32::NAN; DIM * 2],
    };
    field_err(b.insert("c", "", r).await.unwrap_err(), "v");
    // unknown partition
    let err = b.insert("c", "nopart", rows(0..2, "a")).await.unwrap_err();
    assert_eq!(err.code(), codes::PARTITION_NOT_FOUND, "{err}");
    field_err(err, "nopart");
    // k out of range, wrong query dim, bad expression, unknown collection
    let q = vector(1);
    field_err(b.search(search("c", &q, 0, "")).await.unwrap_err(), "limit");
    field_err(
        b.search(search("c", &q, 20_000, "")).await.unwrap_err(),
        "limit",
    );
    let mut short = search("c", &q[..5], 3, "");
    short.num_queries = 1;
    let err = b.search(short).await.unwrap_err();
    assert!(err.to_string().contains("dim"), "{err}");
    field_err(
        b.search(search("c", &q, 3, "id >")).await.unwrap_err(),
        "id >",
    );
    field_err(
        b.search(search("c", &q, 3, "title > 5")).await.unwrap_err(),
        "title",
    );
    let err = b.search(search("nope", &q, 3, "")).await.unwrap_err();
    assert_eq!(err.code(), codes::COLLECTION_NOT_FOUND, "{err}");
    // nothing was written by any rejected request
    assert_eq!(count(b, "c", "").await, 0);
    e.stop(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn strong_reads_see_every_acknowledged_write() {
    let s = Stores::new();
    let e = s
        .start(CoreConfig {
            seal_rows: 200,
            ..CoreConfig::default()
        })
        .await;
    let b = e.backend().clone();
    setup(b.as_ref(), "c", "FLAT").await;
    let acked = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut writers = Vec::new();
    for w in 0..3i64 {
        let b = b.clone();
        let acked = acked.clone();
        writers.push(tokio::spawn(async move {
            for batch in 0..20i64 {
                let start = w * 10_000 + batch * 10;
                b.insert("c", "", rows(start..start + 10, "w"))
                    .await
                    .unwrap();
                acked.fetch_add(10, std::sync::atomic::Ordering::SeqCst);
            }
        }));
    }
    let reader = {
        let b = b.clone();
        let acked = acked.clone();
        tokio::spawn(async move {
            let mut checks = 0;
            while acked.load(std::sync::atomic::Ordering::SeqCst) < 600 {
                let before = acked.load(std::sync::atomic::Ordering::SeqCst);
                let seen = count(b.as_ref(), "c", "").await;
                assert!(
                    seen >= before,
                    "read saw {seen} rows but {before} were acknowledged before it started"
                );
                checks += 1;
                tokio::task::yield_now().await;
            }
            checks
        })
    };
    for w in writers {
        w.await.unwrap();
    }
    assert!(reader.await.unwrap() > 0);
    assert_eq!(count(b.as_ref(), "c", "").await, 600);
    e.stop(true).await;
}

/// Vectors of `field` in a query or search result, in result order.
fn output_vectors(fields: &[ferrovus_core::request::OutputColumn], field: &str) -> Vec<Vec<f32>> {
    match &fields.iter().find(|f| f.name == field).unwrap().column {
        Column::FloatVector { dim, data } => data.chunks(*dim).map(|c| c.to_vec()).collect(),
        other => panic!("unexpected {other:?}"),
    }
}

/// Every row of `ids` returns its inserted vector bit for bit, through query and search.
async fn assert_vectors_exact(b: &dyn Backend, coll: &str, ids: &[i64]) {
    let mut q = query(coll, "", &["id", "v"]);
    q.limit = Some(16384);
    let r = b.query(q).await.unwrap();
    let got_ids = int_column(&r.fields, "id");
    let mut sorted = got_ids.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, ids, "query returns every live row once");
    for (id, v) in got_ids.iter().zip(output_vectors(&r.fields, "v")) {
        let want: Vec<u32> = vector(*id).iter().map(|x| x.to_bits()).collect();
        let got: Vec<u32> = v.iter().map(|x| x.to_bits()).collect();
        assert_eq!(got, want, "vector of id {id}");
    }
    let mut s = search(coll, &vector(ids[ids.len() / 2]), 5, "");
    s.output_fields = vec!["v".into()];
    let r = b.search(s).await.unwrap();
    for (pk, v) in pk_ints(&r.ids[0])
        .iter()
        .zip(output_vectors(&r.fields, "v"))
    {
        assert_eq!(v, vector(*pk), "search output vector of id {pk}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_and_recreate_index_and_read_vectors_back_exactly() {
    let s = Stores::new();
    let e = s.start(CoreConfig::default()).await;
    let b = e.backend().as_ref();
    setup(b, "c", "HNSW").await; // L2: the index stores the vectors unchanged
    b.insert("c", "", rows(0..300, "a")).await.unwrap();
    b.flush("c").await.unwrap();
    wait_indexed(b, "c").await;
    assert_vectors_exact(b, "c", &(0..300).collect::<Vec<_>>()).await;
    b.delete("c", "", "id < 100", &HashMap::new())
        .await
        .unwrap();
    b.flush("c").await.unwrap();
    assert_vectors_exact(b, "c", &(100..300).collect::<Vec<_>>()).await;

    // A loaded collection's index cannot be dropped.
    let err = b.drop_index("c", "v", "").await.unwrap_err().to_string();
    assert!(err.contains("release"), "{err}");
    b.release_collection("c").await.unwrap();
    b.drop_index("c", "v", "").await.unwrap();
    let err = b.describe_indexes("c", "").await.unwrap_err();
    assert_eq!(err.code(), codes::INDEX_NOT_FOUND, "{err}");
    let err = b.load_collection("c", 1).await.unwrap_err().to_string();
    assert!(err.contains("create index"), "{err}");
    let mut p = index_params("HNSW", "IP");
    p.insert("M".to_string(), "8".to_string());
    b.create_index("c", "v", "v_ip", p).await.unwrap();
    wait_indexed(b, "c").await;
    let d = b.describe_indexes("c", "").await.unwrap();
    assert_eq!((d[0].spec.index_name.as_str(), d[0].spec.m), ("v_ip", 8));
    load(b, "c").await;
    let q = vector(103);
    let r = b.search(search("c", &q, 5, "")).await.unwrap();
    assert_eq!(r.ids[0].len(), 5);
    assert!(
        r.scores[0].windows(2).all(|w| w[0] >= w[1]),
        "IP descending"
    );
    let mut bad = search("c", &q, 5, "");
    bad.metric = Some(MetricType::L2);
    let err = b.search(bad).await.unwrap_err().to_string();
    assert!(err.contains("metric type not match"), "{err}");
    assert_vectors_exact(b, "c", &(100..300).collect::<Vec<_>>()).await;

    // COSINE indexes hold unit vectors: the inserted ones are still read back.
    b.create_collection(schema("cos"), 1, Consistency::Strong, BTreeMap::new())
        .await
        .unwrap();
    b.create_index("cos", "v", "", index_params("HNSW", "COSINE"))
        .await
        .unwrap();
    load(b, "cos").await;
    b.insert("cos", "", rows(0..200, "a")).await.unwrap();
    b.flush("cos").await.unwrap();
    wait_indexed(b, "cos").await;
    let mut q = query("cos", "id == 7", &["v"]);
    q.limit = Some(1);
    let r = b.query(q).await.unwrap();
    assert_eq!(output_vectors(&r.fields, "v"), vec![vector(7)]);
    e.stop(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalogue_is_plain_data() {
    let s = Stores::new();
    let e = s.start(CoreConfig::default()).await;
    let b = e.backend().as_ref();
    let mut sch = schema("c");
    sch.fields.truncate(1);
    sch.fields
        .push(FieldSchema::new("v", DataType::FloatVector).with_dim(2));
    b.create_collection(sch, 2, Consistency::Strong, BTreeMap::new())
        .await
        .unwrap();
    b.create_partition("c", "p").await.unwrap();
    b.create_alias("a", "c").await.unwrap();
    let c = b.describe_collection("a").await.unwrap();
    assert_eq!((c.name.as_str(), c.num_shards), ("c", 2));
    assert_eq!(c.aliases, ["a"]);
    assert_eq!(
        c.partitions
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>(),
        ["_default", "p"]
    );
    assert_eq!(c.load_state, LoadState::NotLoad);
    assert_eq!(c.consistency, Consistency::Strong);
    assert!(b.has_collection("a").await.unwrap());
    assert!(!b.has_collection("nope").await.unwrap());
    assert_eq!(b.alias_target("a").await.unwrap().as_deref(), Some("c"));
    assert_eq!(
        b.list_collections().await.unwrap(),
        std::slice::from_ref(&c)
    );
    assert_eq!(
        b.describe_collection("nope").await.unwrap_err().code(),
        codes::COLLECTION_NOT_FOUND
    );

    // Loading needs an index.
    assert_eq!(
        b.load_collection("c", 1).await.unwrap_err().code(),
        codes::PARAMETER_INVALID
    );
    assert_eq!(
        b.loading_progress("c").await.unwrap_err().code(),
        codes::COLLECTION_NOT_LOADED
    );
    b.create_index("c", "v", "", index_params("HNSW", "L2"))
        .await
        .unwrap();
    let idx = b.describe_indexes("c", "v").await.unwrap();
    assert_eq!(idx.len(), 1);
    assert_eq!(
        (idx[0].spec.index_type, idx[0].spec.metric),
        (IndexType::Hnsw, MetricType::L2)
    );
    assert!(idx[0].finished());
    assert_eq!(
        b.load_partitions("c", &["nope".to_string()])
            .await
            .unwrap_err()
            .code(),
        codes::PARTITION_NOT_FOUND
    );
    load(b, "c").await;
    assert_eq!(b.loading_progress("c").await.unwrap(), 100);
    b.release_collection("c").await.unwrap();
    assert_eq!(b.load_state("c").await.unwrap(), LoadState::NotLoad);
    load(b, "c").await;

    let replicas = b.replicas("c").await.unwrap();
    assert_eq!(replicas.len(), 1);
    assert_eq!(replicas[0].collection_id, c.id);
    assert_eq!(
        replicas[0]
            .shards
            .iter()
            .map(|s| s.shard)
            .collect::<Vec<_>>(),
        [0, 1]
    );
    e.stop(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_segments_and_totals() {
    let s = Stores::new();
    let e = s.start(CoreConfig::default()).await;
    let b = e.backend().as_ref();
    setup(b, "c", "FLAT").await;
    let res = b.insert("c", "", rows(0..3, "a")).await.unwrap();
    assert_eq!(res.insert_count, 3);
    b.flush("c").await.unwrap();
    let sealed = b.segments("c").await.unwrap();
    assert!(sealed.iter().any(|s| s.state == SegmentState::Sealed));
    let c = b.describe_collection("c").await.unwrap();
    assert!(sealed.iter().all(|s| s.collection_id == c.id));
    assert_eq!(b.row_count("c", None).await.unwrap(), 3);
    assert_eq!(b.row_count("c", Some("_default")).await.unwrap(), 3);
    assert_eq!(
        b.row_count("c", Some("nope")).await.unwrap_err().code(),
        codes::PARTITION_NOT_FOUND
    );
    let del = b
        .delete("c", "", "id in [1]", &HashMap::new())
        .await
        .unwrap();
    assert_eq!(del.delete_count, 1);
    let t = b.totals().await.unwrap();
    assert_eq!((t.collections, t.rows), (1, 2));
    assert!(b.alloc_timestamp().await.unwrap() > res.timestamp);
    e.stop(true).await;
}
