//! The database over the cluster backends: metadata in a real etcd, write-ahead log and
//! segments in a real S3-compatible server (moto). Writes, a partial flush, a "crash" (the
//! database is dropped without flushing, and reopened over fresh connections), and every
//! acknowledged row is back exactly once.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use ferrovus_core::request::{Consistency, QueryRequest};
use ferrovus_core::schema::{CollectionSchema, DataType, FieldSchema};
use ferrovus_core::store::{MetaStore, ObjectStore};
use ferrovus_core::value::{Column, RowBatch};
use ferrovus_core::{CoreConfig, Database};
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

async fn open(etcd: &EtcdServer, moto: &MotoServer) -> Arc<Database> {
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
    Database::open(meta, objects, CoreConfig::default())
        .await
        .expect("open database")
}

fn count(db: &Database) -> u64 {
    db.query(&QueryRequest {
        collection: "c".into(),
        partitions: vec![],
        filter: String::new(),
        filter_params: HashMap::new(),
        output_fields: vec!["count(*)".into()],
        limit: None,
        offset: 0,
        guarantee_ts: 0,
    })
    .expect("count")
    .count
    .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_survives_restart_on_etcd_and_s3() {
    let Some(etcd) = EtcdServer::start().await else {
        return;
    };
    let Some(moto) = MotoServer::start().await else {
        return;
    };
    {
        let db = open(&etcd, &moto).await;
        db.create_collection(schema(), 2, Consistency::Strong, BTreeMap::new())
            .await
            .expect("create");
        let mut p = BTreeMap::new();
        p.insert("index_type".to_string(), "HNSW".to_string());
        p.insert("metric_type".to_string(), "L2".to_string());
        db.create_index("c", "v", "", p).await.expect("index");
        db.load("c").await.expect("load");
        db.insert("c", "", rows(0..500)).await.expect("insert");
        db.flush("c").await.expect("flush");
        db.insert("c", "", rows(500..800)).await.expect("insert");
        db.delete("c", "", "id < 100", &HashMap::new())
            .await
            .expect("delete");
        assert_eq!(count(&db), 700);
    }
    let db = open(&etcd, &moto).await;
    assert_eq!(
        count(&db),
        700,
        "every acknowledged write is back after reopening"
    );
    let ids = db
        .query(&QueryRequest {
            collection: "c".into(),
            partitions: vec![],
            filter: "id < 105".into(),
            filter_params: HashMap::new(),
            output_fields: vec!["id".into()],
            limit: None,
            offset: 0,
            guarantee_ts: 0,
        })
        .expect("query");
    assert_eq!(
        ids.fields[0].column,
        Column::Int(vec![100, 101, 102, 103, 104])
    );
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
}
