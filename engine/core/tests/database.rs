//! Database-level tests over in-memory stores: writes, reads, deletes, upserts, recovery,
//! compaction, corruption, consistency and bad input.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrovus_core::request::{Consistency, QueryRequest, SearchRequest};
use ferrovus_core::schema::{CollectionSchema, DataType, FieldSchema};
use ferrovus_core::store::memory::{MemoryMetaStore, MemoryObjectStore};
use ferrovus_core::store::{MetaStore, ObjectStore};
use ferrovus_core::value::{Column, PrimaryKey, RowBatch};
use ferrovus_core::{CoreConfig, CoreError, Database};

const DIM: usize = 8;

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
    async fn open(&self, cfg: CoreConfig) -> Result<Arc<Database>, CoreError> {
        let meta: Arc<dyn MetaStore> = self.meta.clone();
        let objects: Arc<dyn ObjectStore> = self.objects.clone();
        Database::open(meta, objects, cfg).await
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
            ("title".into(), Column::VarChar(ids.iter().map(|i| format!("{tag}{i}")).collect())),
            ("price".into(), Column::Double(ids.iter().map(|i| *i as f64 * 0.5).collect())),
            ("v".into(), Column::FloatVector { dim: DIM, data: ids.iter().flat_map(|i| vector(*i)).collect() }),
            (
                "$meta".into(),
                Column::Json(ids.iter().map(|i| serde_json::json!({"color": if i % 2 == 0 { "red" } else { "blue" }})).collect()),
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

fn count(db: &Database, coll: &str, filter: &str) -> u64 {
    db.query(&query(coll, filter, &["count(*)"]))
        .unwrap()
        .count
        .unwrap()
}

fn ids_of(db: &Database, coll: &str, filter: &str) -> Vec<i64> {
    let mut q = query(coll, filter, &["id"]);
    q.limit = Some(16384);
    let r = db.query(&q).unwrap();
    match &r.fields.iter().find(|f| f.name == "id").unwrap().column {
        Column::Int(v) => v.clone(),
        other => panic!("unexpected {other:?}"),
    }
}

async fn setup(db: &Database, name: &str, index: &str) {
    db.create_collection(schema(name), 2, Consistency::Strong, BTreeMap::new())
        .await
        .unwrap();
    let mut p = BTreeMap::new();
    p.insert("index_type".into(), index.into());
    p.insert("metric_type".into(), "L2".into());
    db.create_index(name, "v", "", p).await.unwrap();
    db.load(name).await.unwrap();
}

async fn wait_indexed(db: &Database, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let d = db.describe_indexes(name, "").unwrap();
        if d.iter().all(|(_, done, total)| done >= total) {
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

#[tokio::test]
async fn insert_search_query_exact_and_filtered() {
    let s = Stores::new();
    let db = s.open(CoreConfig::default()).await.unwrap();
    setup(&db, "c", "FLAT").await;
    let res = db.insert("c", "", rows(0..300, "t")).await.unwrap();
    assert_eq!(res.insert_count, 300);
    assert!(res.timestamp > 0);
    assert_eq!(count(&db, "c", ""), 300);

    let q = vector(1000);
    let all: Vec<i64> = (0..300).collect();
    let r = db.search(&search("c", &q, 10, "")).unwrap();
    assert_eq!(pk_ints(&r.ids[0]), brute_force(&all, &q, 10));
    assert!(r.scores[0].windows(2).all(|w| w[0] <= w[1]), "L2 ascending");

    // Filter inside the search: exactly the top-10 among matching rows.
    let r = db
        .search(&search("c", &q, 10, "id >= 100 and color == \"red\""))
        .unwrap();
    let matching: Vec<i64> = (100..300).filter(|i| i % 2 == 0).collect();
    assert_eq!(pk_ints(&r.ids[0]), brute_force(&matching, &q, 10));
    let titles = &r.fields.iter().find(|f| f.name == "title").unwrap().column;
    assert_eq!(titles.len(), 10);

    // A filter matching fewer than k rows returns exactly those rows.
    let r = db.search(&search("c", &q, 10, "id in [3, 5, 7]")).unwrap();
    let mut got = pk_ints(&r.ids[0]);
    got.sort();
    assert_eq!(got, vec![3, 5, 7]);

    // Query with limit/offset pages in primary-key order.
    let mut qr = query("c", "price > 10", &["id", "price"]);
    qr.limit = Some(5);
    qr.offset = 2;
    let r = db.query(&qr).unwrap();
    assert_eq!(r.num_rows, 5);
    assert_eq!(r.fields[0].column, Column::Int(vec![23, 24, 25, 26, 27]));
    assert_eq!(count(&db, "c", "title like \"t1%\""), 111);
    assert_eq!(count(&db, "c", "1 < id < 5"), 3);
}

#[tokio::test]
async fn latest_write_wins_upsert_and_deletes() {
    let s = Stores::new();
    let db = s.open(CoreConfig::default()).await.unwrap();
    setup(&db, "c", "FLAT").await;
    db.insert("c", "", rows(0..100, "a")).await.unwrap();
    // Re-inserting keys replaces them: never visible twice.
    db.insert("c", "", rows(50..60, "b")).await.unwrap();
    assert_eq!(count(&db, "c", ""), 100);
    assert_eq!(count(&db, "c", "title like \"b%\""), 10);
    db.upsert("c", "", rows(0..5, "u")).await.unwrap();
    assert_eq!(count(&db, "c", ""), 100);
    assert_eq!(ids_of(&db, "c", "title like \"u%\""), vec![0, 1, 2, 3, 4]);
    // Upsert with a duplicated key in one batch is rejected.
    let mut dup = rows(0..2, "x");
    dup.columns[0].1 = Column::Int(vec![7, 7]);
    let e = db.upsert("c", "", dup).await.unwrap_err().to_string();
    assert!(
        e.contains("duplicate primary keys") && e.contains("id"),
        "{e}"
    );

    let d = db
        .delete("c", "", "id in [1, 2, 1000]", &HashMap::new())
        .await
        .unwrap();
    assert_eq!(d.delete_count, 3, "keys are passed through as Milvus does");
    assert_eq!(count(&db, "c", ""), 98);
    let d = db
        .delete("c", "", "id >= 90", &HashMap::new())
        .await
        .unwrap();
    assert_eq!(d.delete_count, 10);
    assert_eq!(count(&db, "c", ""), 88);
    let q = vector(95);
    let r = db.search(&search("c", &q, 5, "")).unwrap();
    assert!(
        pk_ints(&r.ids[0])
            .iter()
            .all(|i| *i < 90 && *i != 1 && *i != 2)
    );
}

#[tokio::test]
async fn recovers_sealed_growing_deletes_and_indexes_after_restart() {
    let s = Stores::new();
    let cfg = CoreConfig {
        seal_rows: 1_000_000,
        compaction_small_rows: 0,
        ..CoreConfig::default()
    };
    {
        let db = s.open(cfg.clone()).await.unwrap();
        setup(&db, "c", "HNSW").await;
        db.create_partition("c", "p1").await.unwrap();
        db.insert("c", "", rows(0..400, "a")).await.unwrap();
        db.flush("c").await.unwrap();
        wait_indexed(&db, "c").await;
        db.insert("c", "p1", rows(400..500, "b")).await.unwrap();
        db.delete("c", "", "id < 10 or id >= 490", &HashMap::new())
            .await
            .unwrap();
        db.upsert("c", "", rows(20..25, "u")).await.unwrap();
        assert_eq!(count(&db, "c", ""), 480);
        // dropped without flush: the tail lives only in the write-ahead log
    }
    let db = s.open(cfg).await.unwrap();
    assert_eq!(count(&db, "c", ""), 480);
    assert_eq!(
        ids_of(&db, "c", "title like \"u%\""),
        vec![20, 21, 22, 23, 24]
    );
    let mut pq = query("c", "", &["count(*)"]);
    pq.partitions = vec!["p1".into()];
    assert_eq!(db.query(&pq).unwrap().count, Some(90));
    assert_eq!(
        db.load_state("c").unwrap(),
        ferrovus_core::database::LoadState::Loaded
    );
    let d = db.describe_indexes("c", "").unwrap();
    assert_eq!(
        (d[0].1, d[0].2),
        (400, 400),
        "the persisted HNSW index is loaded for the sealed segment"
    );
    let q = vector(7);
    let r = db.search(&search("c", &q, 5, "")).unwrap();
    assert!(pk_ints(&r.ids[0]).iter().all(|i| *i >= 10 && *i < 490));
}

#[tokio::test]
async fn compaction_merges_small_segments_and_drops_deleted_rows() {
    let s = Stores::new();
    let cfg = CoreConfig {
        seal_rows: 1_000_000,
        compaction_small_rows: 1_000,
        compaction_deleted_ratio: 0.2,
        ..CoreConfig::default()
    };
    let db = s.open(cfg.clone()).await.unwrap();
    db.create_collection(schema("c"), 1, Consistency::Strong, BTreeMap::new())
        .await
        .unwrap();
    let mut p = BTreeMap::new();
    p.insert("index_type".into(), "FLAT".into());
    db.create_index("c", "v", "", p).await.unwrap();
    db.load("c").await.unwrap();
    for b in 0..4 {
        db.insert("c", "", rows(b * 100..(b + 1) * 100, "a"))
            .await
            .unwrap();
        db.flush("c").await.unwrap();
    }
    let sealed = |db: &Database| {
        db.collection("c").unwrap().shards[0]
            .segment_infos()
            .iter()
            .filter(|s| s.sealed)
            .count()
    };
    assert_eq!(sealed(&db), 1, "four small flushes merged into one segment");
    db.delete("c", "", "id < 300", &HashMap::new())
        .await
        .unwrap();
    db.flush("c").await.unwrap();
    let infos = db.collection("c").unwrap().shards[0].segment_infos();
    assert_eq!(
        infos
            .iter()
            .filter(|s| s.sealed)
            .map(|s| s.rows)
            .sum::<usize>(),
        100,
        "deleted rows dropped"
    );
    assert_eq!(ids_of(&db, "c", "id >= 0").len(), 100);
    drop(db);
    let db = s.open(cfg).await.unwrap();
    assert_eq!(count(&db, "c", ""), 100);
    assert_eq!(ids_of(&db, "c", "id >= 0"), (300..400).collect::<Vec<_>>());
    // Superseded files were removed from the object store.
    let keys = s.objects.list("segments/").await.unwrap();
    assert_eq!(
        keys.iter().filter(|k| k.ends_with("/data")).count(),
        1,
        "{keys:?}"
    );
    assert_eq!(
        keys.iter().filter(|k| k.ends_with("/pks")).count(),
        1,
        "{keys:?}"
    );
    assert!(
        s.objects.list("deltas/").await.unwrap().is_empty(),
        "a standalone shard needs no delta objects"
    );
}

#[tokio::test]
async fn corrupted_segment_file_is_a_clear_error() {
    let s = Stores::new();
    {
        let db = s.open(CoreConfig::default()).await.unwrap();
        setup(&db, "c", "FLAT").await;
        db.insert("c", "", rows(0..50, "a")).await.unwrap();
        db.flush("c").await.unwrap();
    }
    let key = s
        .objects
        .list("segments/")
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.ends_with("/data"))
        .unwrap();
    let mut bytes = s.objects.get(&key).await.unwrap().to_vec();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    s.objects.put(&key, bytes.into()).await.unwrap();
    let err = s.open(CoreConfig::default()).await.unwrap_err();
    assert!(matches!(err, CoreError::Corrupted { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&key) && msg.contains("checksum"), "{msg}");
}

#[tokio::test]
async fn bad_inputs_are_typed_errors_naming_the_field() {
    let s = Stores::new();
    let db = s.open(CoreConfig::default()).await.unwrap();
    setup(&db, "c", "FLAT").await;
    let field_err = |e: CoreError, field: &str| {
        let msg = e.to_string();
        assert!(msg.contains(field), "error {msg:?} should name {field:?}");
        msg
    };
    // wrong dimension
    let mut b = rows(0..2, "a");
    b.columns[3].1 = Column::FloatVector {
        dim: 4,
        data: vec![0.0; 8],
    };
    let e = db.insert("c", "", b).await.unwrap_err();
    assert!(matches!(e, CoreError::DimensionMismatch { .. }));
    field_err(e, "v");
    // missing field
    let mut b = rows(0..2, "a");
    b.columns.remove(2);
    field_err(db.insert("c", "", b).await.unwrap_err(), "price");
    // wrong type
    let mut b = rows(0..2, "a");
    b.columns[2].1 = Column::VarChar(vec!["x".into(), "y".into()]);
    field_err(db.insert("c", "", b).await.unwrap_err(), "price");
    // VarChar over max_length
    let mut b = rows(0..2, "a");
    b.columns[1].1 = Column::VarChar(vec!["x".repeat(17), "y".into()]);
    let msg = field_err(db.insert("c", "", b).await.unwrap_err(), "title");
    assert!(msg.contains("max_length"), "{msg}");
    // unknown field
    let mut b = rows(0..2, "a");
    b.columns.push(("nope".into(), Column::Int(vec![1, 2])));
    field_err(db.insert("c", "", b).await.unwrap_err(), "nope");
    // NaN in a vector
    let mut b = rows(0..2, "a");
    b.columns[3].1 = Column::FloatVector {
        dim: DIM,
        data: vec![f32::NAN; DIM * 2],
    };
    field_err(db.insert("c", "", b).await.unwrap_err(), "v");
    // unknown partition
    let e = db.insert("c", "nopart", rows(0..2, "a")).await.unwrap_err();
    assert!(matches!(e, CoreError::PartitionNotFound(_)));
    field_err(e, "nopart");
    // k out of range, wrong query dim, bad expression, unknown collection
    let q = vector(1);
    field_err(db.search(&search("c", &q, 0, "")).unwrap_err(), "limit");
    field_err(
        db.search(&search("c", &q, 20_000, "")).unwrap_err(),
        "limit",
    );
    let mut short = search("c", &q[..5], 3, "");
    short.num_queries = 1;
    let e = db.search(&short).unwrap_err();
    assert!(matches!(e, CoreError::DimensionMismatch { .. }), "{e:?}");
    field_err(db.search(&search("c", &q, 3, "id >")).unwrap_err(), "id >");
    field_err(
        db.search(&search("c", &q, 3, "title > 5")).unwrap_err(),
        "title",
    );
    let e = db.search(&search("nope", &q, 3, "")).unwrap_err();
    assert!(matches!(e, CoreError::CollectionNotFound(_)));
    // nothing was written by any rejected request
    assert_eq!(count(&db, "c", ""), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn strong_reads_see_every_acknowledged_write() {
    let s = Stores::new();
    let db = s
        .open(CoreConfig {
            seal_rows: 200,
            ..CoreConfig::default()
        })
        .await
        .unwrap();
    setup(&db, "c", "FLAT").await;
    let acked = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut writers = Vec::new();
    for w in 0..3i64 {
        let db = db.clone();
        let acked = acked.clone();
        writers.push(tokio::spawn(async move {
            for b in 0..20i64 {
                let start = w * 10_000 + b * 10;
                db.insert("c", "", rows(start..start + 10, "w"))
                    .await
                    .unwrap();
                acked.fetch_add(10, std::sync::atomic::Ordering::SeqCst);
            }
        }));
    }
    let reader = {
        let db = db.clone();
        let acked = acked.clone();
        tokio::spawn(async move {
            let mut checks = 0;
            while acked.load(std::sync::atomic::Ordering::SeqCst) < 600 {
                let before = acked.load(std::sync::atomic::Ordering::SeqCst);
                let seen = count(&db, "c", "");
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
    assert_eq!(count(&db, "c", ""), 600);
}

#[tokio::test]
async fn drop_and_recreate_index() {
    let s = Stores::new();
    let db = s.open(CoreConfig::default()).await.unwrap();
    setup(&db, "c", "HNSW").await;
    db.insert("c", "", rows(0..300, "a")).await.unwrap();
    db.flush("c").await.unwrap();
    wait_indexed(&db, "c").await;
    assert_eq!(db.pending_index_rows(), 0);
    // A loaded collection's index cannot be dropped.
    let e = db.drop_index("c", "v", "").await.unwrap_err().to_string();
    assert!(e.contains("release"), "{e}");
    db.release("c").await.unwrap();
    db.drop_index("c", "v", "").await.unwrap();
    assert!(matches!(
        db.describe_indexes("c", ""),
        Err(CoreError::IndexNotFound { .. })
    ));
    let e = db.load("c").await.unwrap_err().to_string();
    assert!(e.contains("create index"), "{e}");
    let mut p = BTreeMap::new();
    p.insert("index_type".to_string(), "HNSW".to_string());
    p.insert("metric_type".to_string(), "IP".to_string());
    p.insert("M".to_string(), "8".to_string());
    db.create_index("c", "v", "v_ip", p).await.unwrap();
    wait_indexed(&db, "c").await;
    let d = db.describe_indexes("c", "").unwrap();
    assert_eq!((d[0].0.index_name.as_str(), d[0].0.m), ("v_ip", 8));
    db.load("c").await.unwrap();
    let q = vector(3);
    let r = db.search(&search("c", &q, 5, "")).unwrap();
    assert_eq!(r.ids[0].len(), 5);
    assert!(
        r.scores[0].windows(2).all(|w| w[0] >= w[1]),
        "IP descending"
    );
    let mut bad = search("c", &q, 5, "");
    bad.metric = Some(ferrovus_core::request::MetricType::L2);
    let e = db.search(&bad).unwrap_err().to_string();
    assert!(e.contains("metric type not match"), "{e}");
}

/// Vectors of `field` in a query or search result, by primary key order of `ids`.
fn output_vectors(fields: &[ferrovus_core::request::OutputColumn], field: &str) -> Vec<Vec<f32>> {
    match &fields.iter().find(|f| f.name == field).unwrap().column {
        Column::FloatVector { dim, data } => data.chunks(*dim).map(|c| c.to_vec()).collect(),
        other => panic!("unexpected {other:?}"),
    }
}

/// Every row of `ids` returns its inserted vector bit for bit, through query and search.
fn assert_vectors_exact(db: &Database, coll: &str, ids: &[i64]) {
    let mut q = query(coll, "", &["id", "v"]);
    q.limit = Some(16384);
    let r = db.query(&q).unwrap();
    let got_ids = match &r.fields.iter().find(|f| f.name == "id").unwrap().column {
        Column::Int(v) => v.clone(),
        other => panic!("unexpected {other:?}"),
    };
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
    let r = db.search(&s).unwrap();
    for (pk, v) in pk_ints(&r.ids[0])
        .iter()
        .zip(output_vectors(&r.fields, "v"))
    {
        assert_eq!(v, vector(*pk), "search output vector of id {pk}");
    }
}

fn vectors_in_index(db: &Database, coll: &str) -> usize {
    db.collection(coll)
        .unwrap()
        .shards
        .iter()
        .map(|s| s.vectors_in_index_rows())
        .sum()
}

#[tokio::test]
async fn indexed_sealed_vectors_are_held_once_and_read_back_exactly() {
    let s = Stores::new();
    let cfg = CoreConfig {
        seal_rows: 1_000_000,
        compaction_small_rows: 0,
        compaction_deleted_ratio: 0.2,
        ..CoreConfig::default()
    };
    let db = s.open(cfg.clone()).await.unwrap();
    setup(&db, "c", "HNSW").await; // L2: the index stores the vectors unchanged
    db.insert("c", "", rows(0..400, "a")).await.unwrap();
    db.flush("c").await.unwrap();
    wait_indexed(&db, "c").await;
    let before = db.totals().3;
    assert_eq!(
        vectors_in_index(&db, "c"),
        400,
        "the segments dropped their vector copies"
    );
    assert_vectors_exact(&db, "c", &(0..400).collect::<Vec<_>>());

    // Compaction rewrites the segments from the vectors the index holds.
    db.delete("c", "", "id < 100", &HashMap::new())
        .await
        .unwrap();
    db.flush("c").await.unwrap();
    wait_indexed(&db, "c").await;
    assert_vectors_exact(&db, "c", &(100..400).collect::<Vec<_>>());
    assert_eq!(vectors_in_index(&db, "c"), 300);
    assert!(
        db.totals().3 < before,
        "fewer rows, less memory: {} vs {before}",
        db.totals().3
    );

    // Recovery loads the index and again keeps one copy.
    drop(db);
    let db = s.open(cfg.clone()).await.unwrap();
    wait_indexed(&db, "c").await;
    assert_eq!(vectors_in_index(&db, "c"), 300);
    assert_vectors_exact(&db, "c", &(100..400).collect::<Vec<_>>());

    // Dropping the index gives the vectors back to the segments; a new index builds from them.
    db.release("c").await.unwrap();
    db.drop_index("c", "v", "").await.unwrap();
    assert_eq!(vectors_in_index(&db, "c"), 0);
    let mut p = BTreeMap::new();
    p.insert("index_type".to_string(), "HNSW".to_string());
    p.insert("metric_type".to_string(), "IP".to_string());
    db.create_index("c", "v", "", p).await.unwrap();
    wait_indexed(&db, "c").await;
    db.load("c").await.unwrap();
    assert_eq!(vectors_in_index(&db, "c"), 300);
    assert_vectors_exact(&db, "c", &(100..400).collect::<Vec<_>>());
    drop(db);
    let db = s.open(cfg).await.unwrap();
    assert_vectors_exact(&db, "c", &(100..400).collect::<Vec<_>>());

    // COSINE indexes hold unit vectors: the segment keeps the inserted ones.
    db.create_collection(schema("cos"), 1, Consistency::Strong, BTreeMap::new())
        .await
        .unwrap();
    let mut p = BTreeMap::new();
    p.insert("index_type".to_string(), "HNSW".to_string());
    p.insert("metric_type".to_string(), "COSINE".to_string());
    db.create_index("cos", "v", "", p).await.unwrap();
    db.load("cos").await.unwrap();
    db.insert("cos", "", rows(0..200, "a")).await.unwrap();
    db.flush("cos").await.unwrap();
    wait_indexed(&db, "cos").await;
    assert_eq!(vectors_in_index(&db, "cos"), 0);
    let mut q = query("cos", "id == 7", &["v"]);
    q.limit = Some(1);
    let r = db.query(&q).unwrap();
    assert_eq!(output_vectors(&r.fields, "v"), vec![vector(7)]);
}
