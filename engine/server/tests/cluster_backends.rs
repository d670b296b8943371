//! The standalone engine over the cluster storage backends: metadata in a real etcd, write-ahead
//! log and segments in a real S3-compatible server (moto). Writes, a partial flush, a "crash"
//! (every role is stopped without flushing, and a new engine starts over fresh connections), and
//! every acknowledged row is back exactly once.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use ferrovus_core::request::{Consistency, QueryRequest};
use ferrovus_core::schema::{CollectionSchema, DataType, FieldSchema};
use ferrovus_core::store::{MetaStore, ObjectStore};
use ferrovus_core::value::{Column, RowBatch};
use ferrovus_server::backend::{Backend, LoadState};
use ferrovus_server::config::Config;
use ferrovus_server::metrics::Metrics;
use ferrovus_server::standalone::Engine;
use ferrovus_storage::testing::{EtcdServer, MotoServer};
use ferrovus_storage::{EtcdConfig, EtcdMetaStore, S3ObjectStore};

fn schema() -> CollectionSchema {
    CollectionSchema {
        name: "c".into(),
        description: String::new(),
        fields: vec![
            FieldSchema::new("id", DataType::Int64).primary(false),
            FieldSchema::new("v", DataType::FloatVector).with_dim(4),
        ],
        enable_dynamic_field: false,
    }
}

fn rows(r: std::ops::Range<i64>) -> RowBatch {
    let ids: Vec<i64> = r.collect();
    RowBatch {
        columns: vec![
            ("id".into(), Column::Int(ids.clone())),
            (
                "v".into(),
                Column::FloatVector {
                    dim: 4,
                    data: ids
                        .iter()
                        .flat_map(|i| [*i as f32, 1.0, 0.5, -1.0])
                        .collect(),
                },
            ),
        ],
    }
}

async fn open(etcd: &EtcdServer, moto: &MotoServer) -> Engine {
    let meta: Arc<dyn MetaStore> = Arc::new(
        EtcdMetaStore::connect(EtcdConfig::new([etcd.endpoint()], "ferrovus-test/"))
            .await
            .expect("etcd"),
    );
    let objects: Arc<dyn ObjectStore> = Arc::new(
        S3ObjectStore::connect(moto.s3_config("ferrovus", "cluster-a"))
            .await
            .expect("s3"),
    );
    let engine = Engine::start(&Config::default(), meta, objects, &Arc::new(Metrics::new()))
        .await
        .expect("start the engine");
    tokio::time::timeout(Duration::from_secs(60), engine.wait_ready(None))
        .await
        .expect("the roles serve");
    engine
}

async fn wait_loaded(b: &dyn Backend) {
    for _ in 0..3000 {
        if b.load_state("c").await.expect("load state") == LoadState::Loaded {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the collection did not load");
}

async fn count(b: &dyn Backend) -> u64 {
    b.query(QueryRequest {
        collection: "c".into(),
        partitions: vec![],
        filter: String::new(),
        filter_params: HashMap::new(),
        output_fields: vec!["count(*)".into()],
        limit: None,
        offset: 0,
        guarantee_ts: 0,
    })
    .await
    .expect("count")
    .count
    .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_survives_restart_on_etcd_and_s3() {
    let Some(etcd) = EtcdServer::start().await else {
        return;
    };
    let Some(moto) = MotoServer::start().await else {
        return;
    };
    {
        let engine = open(&etcd, &moto).await;
        let b = engine.backend().as_ref();
        b.create_collection(schema(), 2, Consistency::Strong, BTreeMap::new())
            .await
            .expect("create");
        let mut p = BTreeMap::new();
        p.insert("index_type".to_string(), "HNSW".to_string());
        p.insert("metric_type".to_string(), "L2".to_string());
        b.create_index("c", "v", "", p).await.expect("index");
        b.load_collection("c", 1).await.expect("load");
        wait_loaded(b).await;
        b.insert("c", "", rows(0..500)).await.expect("insert");
        b.flush("c").await.expect("flush");
        b.insert("c", "", rows(500..800)).await.expect("insert");
        b.delete("c", "", "id < 100", &HashMap::new())
            .await
            .expect("delete");
        assert_eq!(count(b).await, 700);
        engine.stop(false).await;
    }
    let engine = open(&etcd, &moto).await;
    let b = engine.backend().as_ref();
    wait_loaded(b).await;
    assert_eq!(
        count(b).await,
        700,
        "every acknowledged write is back after restarting"
    );
    let ids = b
        .query(QueryRequest {
            collection: "c".into(),
            partitions: vec![],
            filter: "id < 105".into(),
            filter_params: HashMap::new(),
            output_fields: vec!["id".into()],
            limit: None,
            offset: 0,
            guarantee_ts: 0,
        })
        .await
        .expect("query");
    let Column::Int(mut ids) = ids.fields[0].column.clone() else {
        panic!("an Int column: {ids:?}");
    };
    ids.sort_unstable();
    assert_eq!(ids, vec![100, 101, 102, 103, 104]);
    // The log and segments really are in the bucket.
    let objects = S3ObjectStore::connect(moto.s3_config("ferrovus", "cluster-a"))
        .await
        .expect("s3");
    let keys = objects.list("").await.expect("list");
    assert!(keys.iter().any(|k| k.starts_with("wal/")), "{keys:?}");
    assert!(
        keys.iter()
            .any(|k| k.starts_with("segments/") && k.ends_with("/data")),
        "{keys:?}"
    );
    engine.stop(true).await;
}
