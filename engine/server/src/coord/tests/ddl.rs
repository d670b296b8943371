//! DDL: the same script against standalone's `Database` and the coordinator gives the same
//! results (error kinds and texts) and the same catalogue; failed changes leave the catalogue
//! as it was.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use ferrovus_core::request::Consistency;
use ferrovus_core::schema::{CollectionSchema, DataType, FieldSchema};
use ferrovus_core::store::memory::{MemoryMetaStore, MemoryObjectStore};
use ferrovus_core::{CoreConfig, CoreError, Database};

use super::support::*;
use crate::api::*;
use crate::rpc::ClusterError;
use crate::session::RoleKind;

#[derive(Debug, Clone)]
enum Op {
    Create(CollectionSchema, u32),
    Drop(&'static str),
    Rename(&'static str, &'static str),
    Alter(&'static str, &'static str, &'static str),
    CreatePartition(&'static str, &'static str),
    DropPartition(&'static str, &'static str),
    CreateAlias(&'static str, &'static str),
    DropAlias(&'static str),
    AlterAlias(&'static str, &'static str),
    CreateIndex(
        &'static str,
        &'static str,
        &'static str,
        Vec<(&'static str, &'static str)>,
    ),
    DropIndex(&'static str, &'static str, &'static str),
    Load(&'static str),
    Release(&'static str),
}

fn params(p: &[(&str, &str)]) -> BTreeMap<String, String> {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn on_database(db: &Database, op: &Op) -> Result<(), String> {
    let r: Result<(), CoreError> = match op.clone() {
        Op::Create(s, n) => {
            db.create_collection(s, n as usize, Consistency::Bounded, BTreeMap::new())
                .await
        }
        Op::Drop(n) => db.drop_collection(n).await,
        Op::Rename(a, b) => db.rename_collection(a, b).await,
        Op::Alter(c, k, v) => db.alter_properties(c, params(&[(k, v)])).await,
        Op::CreatePartition(c, p) => db.create_partition(c, p).await,
        Op::DropPartition(c, p) => db.drop_partition(c, p).await,
        Op::CreateAlias(a, c) => db.create_alias(a, c).await,
        Op::DropAlias(a) => db.drop_alias(a).await,
        Op::AlterAlias(a, c) => db.alter_alias(a, c).await,
        Op::CreateIndex(c, f, n, p) => db.create_index(c, f, n, params(&p)).await,
        Op::DropIndex(c, f, n) => db.drop_index(c, f, n).await,
        Op::Load(c) => db.load(c).await,
        Op::Release(c) => db.release(c).await,
    };
    r.map_err(|e| e.to_string())
}

async fn on_coordinator(h: &Harness, op: &Op) -> Result<(), String> {
    let c = &h.coord;
    let r: Result<(), ClusterError> = match op.clone() {
        Op::Create(schema, num_shards) => c
            .create_collection(CreateCollectionReq {
                schema,
                num_shards,
                consistency: Consistency::Bounded,
                properties: BTreeMap::new(),
            })
            .await
            .map(|_| ()),
        Op::Drop(n) => c.drop_collection(NameReq { name: n.into() }).await,
        Op::Rename(a, b) => {
            c.rename_collection(RenameReq {
                old_name: a.into(),
                new_name: b.into(),
            })
            .await
        }
        Op::Alter(n, k, v) => {
            c.alter_collection(AlterCollectionReq {
                name: n.into(),
                properties: params(&[(k, v)]),
            })
            .await
        }
        Op::CreatePartition(col, p) => {
            c.create_partition(PartitionReq {
                collection: col.into(),
                partition: p.into(),
            })
            .await
        }
        Op::DropPartition(col, p) => {
            c.drop_partition(PartitionReq {
                collection: col.into(),
                partition: p.into(),
            })
            .await
        }
        Op::CreateAlias(a, col) => {
            c.create_alias(AliasReq {
                alias: a.into(),
                collection: col.into(),
            })
            .await
        }
        Op::DropAlias(a) => c.drop_alias(NameReq { name: a.into() }).await,
        Op::AlterAlias(a, col) => {
            c.alter_alias(AliasReq {
                alias: a.into(),
                collection: col.into(),
            })
            .await
        }
        Op::CreateIndex(col, f, n, p) => {
            c.create_index(CreateIndexReq {
                collection: col.into(),
                field_name: f.into(),
                index_name: n.into(),
                params: params(&p),
            })
            .await
        }
        Op::DropIndex(col, f, n) => {
            c.drop_index(DropIndexReq {
                collection: col.into(),
                field_name: f.into(),
                index_name: n.into(),
            })
            .await
        }
        Op::Load(n) => {
            c.load_collection(LoadReq {
                name: n.into(),
                replica_number: 1,
            })
            .await
        }
        Op::Release(n) => c.release_collection(NameReq { name: n.into() }).await,
    };
    r.map_err(|e| e.to_string())
}

fn other_schema(name: &str) -> CollectionSchema {
    CollectionSchema {
        name: name.into(),
        description: String::new(),
        fields: vec![
            FieldSchema::new("id", DataType::VarChar)
                .with_max_length(16)
                .primary(false),
            FieldSchema::new("v", DataType::FloatVector).with_dim(8),
        ],
        enable_dynamic_field: false,
    }
}

fn script() -> Vec<Op> {
    use Op::*;
    let no_pk = CollectionSchema {
        name: "nopk".into(),
        description: String::new(),
        fields: vec![FieldSchema::new("v", DataType::FloatVector).with_dim(4)],
        enable_dynamic_field: false,
    };
    let hnsw = vec![("index_type", "HNSW"), ("metric_type", "L2"), ("M", "16")];
    vec![
        Create(schema("c1"), 2),
        Create(schema("c1"), 2),
        Create(other_schema("c1"), 1),
        Create(schema("big"), 17),
        Create(no_pk, 1),
        Create(schema("bad name"), 1),
        Create(schema("c2"), 0),
        CreatePartition("c1", "p1"),
        CreatePartition("c1", "p1"),
        CreatePartition("c1", "1bad"),
        CreatePartition("nope", "p1"),
        DropPartition("c1", "_default"),
        DropPartition("c1", "nope"),
        DropPartition("nope", "p1"),
        DropPartition("c1", "p1"),
        CreateAlias("a1", "c1"),
        CreateAlias("a1", "c2"),
        CreateAlias("c2", "c1"),
        CreateAlias("a9", "nope"),
        CreateAlias("bad-alias", "c1"),
        CreatePartition("a1", "via_alias"),
        AlterAlias("a1", "c2"),
        AlterAlias("a2", "c1"),
        AlterAlias("c1", "c2"),
        DropAlias("a2"),
        DropAlias("never"),
        Rename("c2", "c3"),
        Rename("nope", "c4"),
        Rename("c3", "c1"),
        Rename("c3", "9bad"),
        Alter("c1", "ttl", "60"),
        Alter("nope", "ttl", "60"),
        CreateIndex("c1", "v", "", hnsw.clone()),
        CreateIndex("c1", "v", "other", hnsw.clone()),
        CreateIndex(
            "c1",
            "v",
            "",
            vec![("index_type", "HNSW"), ("metric_type", "IP")],
        ),
        CreateIndex("c1", "id", "v", vec![]),
        CreateIndex("c1", "missing", "", vec![]),
        CreateIndex("c3", "v", "", vec![("index_type", "IVF_PQ")]),
        CreateIndex("c3", "v", "", vec![("metric_type", "HAMMING")]),
        CreateIndex("c3", "v", "", vec![("index_type", "HNSW"), ("M", "abc")]),
        CreateIndex("nope", "v", "", vec![]),
        Load("c3"),
        Load("nope"),
        Load("c1"),
        Load("c1"),
        DropIndex("c1", "v", ""),
        Release("c1"),
        Release("c1"),
        DropIndex("c1", "", "missing"),
        DropIndex("c1", "v", ""),
        DropIndex("nope", "v", ""),
        Drop("c3"),
        Drop("c3"),
        Drop("a1"),
    ]
}

/// (name, partitions, aliases, indexes, properties, loaded) of every collection, by name.
type Summary = Vec<(
    String,
    Vec<String>,
    Vec<String>,
    Vec<String>,
    BTreeMap<String, String>,
    bool,
)>;

fn index_text(s: &ferrovus_core::request::IndexSpec) -> String {
    format!(
        "{}:{}:{:?}:{:?}:{}:{}",
        s.index_name, s.field_name, s.index_type, s.metric, s.m, s.ef_construction
    )
}

async fn summary_of_database(db: &Database) -> Summary {
    let mut out: Summary = db
        .list_collections()
        .iter()
        .map(|c| {
            let m = c.meta.read().clone();
            (
                m.name.clone(),
                m.partitions.iter().map(|p| p.name.clone()).collect(),
                db.aliases_of(&m.name),
                m.indexes.iter().map(index_text).collect(),
                m.properties.clone(),
                c.is_loaded(),
            )
        })
        .collect();
    out.sort();
    out
}

async fn summary_of_coordinator(h: &Harness) -> Summary {
    let mut out: Summary = h
        .coord
        .list_collections(Empty {})
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            let mut aliases = r.aliases.clone();
            aliases.sort();
            (
                r.name.clone(),
                r.partitions.iter().map(|p| p.name.clone()).collect(),
                aliases,
                r.indexes.iter().map(index_text).collect(),
                r.properties.clone(),
                r.load.is_some(),
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn ddl_matches_standalone_results_and_errors() {
    let db = Database::open(
        Arc::new(MemoryMetaStore::default()),
        Arc::new(MemoryObjectStore::default()),
        CoreConfig::default(),
    )
    .await
    .unwrap();
    let h = Harness::new().await;
    h.join(RoleKind::Query, 11).await;
    let mut errors = 0;
    for op in script() {
        let want = on_database(&db, &op).await;
        let got = on_coordinator(&h, &op).await;
        assert_eq!(got, want, "{op:?}");
        errors += usize::from(want.is_err());
    }
    assert!(errors >= 25, "the script exercises the errors ({errors})");
    assert_eq!(
        summary_of_coordinator(&h).await,
        summary_of_database(&db).await
    );
    // Names and aliases resolve like standalone's.
    let c1 = h
        .coord
        .describe_collection(NameReq { name: "c1".into() })
        .await
        .unwrap();
    assert_eq!(c1.schema.name, "c1");
    let e = h
        .coord
        .describe_collection(NameReq { name: "c4".into() })
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "collection not found[collection=c4]");
}

#[tokio::test]
async fn a_failed_write_leaves_the_catalogue_unchanged() {
    let h = Harness::new().await;
    let c = h.create("old", 1).await;
    h.create("other", 1).await;
    h.coord
        .create_alias(AliasReq {
            alias: "al".into(),
            collection: "old".into(),
        })
        .await
        .unwrap();
    let version = h.coord.catalog_version();

    h.meta.fail_writes.store(true, Ordering::SeqCst);
    let e = h
        .coord
        .rename_collection(RenameReq {
            old_name: "old".into(),
            new_name: "new".into(),
        })
        .await
        .unwrap_err();
    assert!(e.to_string().contains("injected"), "{e}");
    let e = h
        .coord
        .alter_alias(AliasReq {
            alias: "al".into(),
            collection: "other".into(),
        })
        .await
        .unwrap_err();
    assert!(e.to_string().contains("injected"), "{e}");
    h.meta.fail_writes.store(false, Ordering::SeqCst);

    // Memory never ran ahead of the store.
    assert_eq!(h.coord.catalog_version(), version);
    let got = h
        .coord
        .describe_collection(NameReq { name: "old".into() })
        .await
        .unwrap();
    assert_eq!((got.id, got.name.as_str()), (c.id, "old"));
    assert!(
        h.coord
            .describe_collection(NameReq { name: "new".into() })
            .await
            .is_err()
    );
    let via = h
        .coord
        .describe_collection(NameReq { name: "al".into() })
        .await
        .unwrap();
    assert_eq!(via.id, c.id, "the alias keeps its target");

    // Altering an alias to a missing collection keeps the alias (standalone lost it).
    let e = h
        .coord
        .alter_alias(AliasReq {
            alias: "al".into(),
            collection: "missing".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "collection not found[collection=missing]");
    let via = h
        .coord
        .describe_collection(NameReq { name: "al".into() })
        .await
        .unwrap();
    assert_eq!(via.id, c.id);

    // And a successful change is persisted: a new leader over the same store sees it.
    h.coord
        .rename_collection(RenameReq {
            old_name: "old".into(),
            new_name: "new".into(),
        })
        .await
        .unwrap();
    h.coord
        .alter_alias(AliasReq {
            alias: "al".into(),
            collection: "other".into(),
        })
        .await
        .unwrap();
    h.coord.shutdown(true).await;
    let again = crate::coord::Coordinator::in_process(
        h.meta.clone(),
        h.objects.clone(),
        h.coordination.clone(),
        small_core(),
        None,
    )
    .await
    .unwrap();
    let names: Vec<String> = again
        .list_collections(Empty {})
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, vec!["new", "other"]);
    let via = again
        .describe_collection(NameReq { name: "al".into() })
        .await
        .unwrap();
    assert_eq!(via.name, "other");
    let renamed = again
        .describe_collection(NameReq { name: "new".into() })
        .await
        .unwrap();
    assert!(renamed.aliases.is_empty());
    assert_eq!(renamed.schema.name, "new");
}

#[tokio::test]
async fn dropping_a_partition_hides_it_and_collects_its_segments() {
    let h = Harness::new().await;
    h.join(RoleKind::Streaming, 1).await;
    h.create("c", 1).await;
    h.coord
        .create_partition(PartitionReq {
            collection: "c".into(),
            partition: "p".into(),
        })
        .await
        .unwrap();
    let c = h
        .coord
        .describe_collection(NameReq { name: "c".into() })
        .await
        .unwrap();
    let p = c.partitions.iter().find(|p| p.name == "p").unwrap().id;
    // One segment in each partition.
    h.seal(&c, 0, &[(9001, 10)]).await;
    let routes = h.routes(c.id).await;
    let r = &routes.channels[0];
    let mut m =
        ferrovus_core::segment::SegmentMeta::new(9002, p, 5, "segments/x/0/9002/data".into());
    m.base_ts = 10;
    let open = h
        .coord
        .open_channel(ChannelTermReq {
            channel: r.channel,
            term: r.term,
            node: r.node,
        })
        .await
        .unwrap();
    let mut all = open.checkpoint.unwrap().segments;
    all.push(m.clone());
    h.coord
        .commit_checkpoint(CommitCheckpointReq {
            channel: r.channel,
            term: r.term,
            node: r.node,
            checkpoint: ferrovus_core::shard::ShardCheckpoint {
                next_lsn: 9,
                segments: all,
                applied_ts: 30,
                deltas: vec![],
            },
            new_segments: vec![m],
        })
        .await
        .unwrap();
    h.objects()
        .put("segments/x/0/9002/data", bytes::Bytes::from_static(b"x"))
        .await
        .unwrap();
    let ids = |v: Vec<SegmentView>| v.iter().map(|s| s.record.id()).collect::<Vec<_>>();
    assert_eq!(
        ids(h
            .coord
            .segments(NameReq { name: "c".into() })
            .await
            .unwrap()),
        vec![9001, 9002]
    );
    h.coord
        .drop_partition(PartitionReq {
            collection: "c".into(),
            partition: "p".into(),
        })
        .await
        .unwrap();
    // Gone from the record (reads filter on it) and from the live segments at once.
    let rec = h
        .coord
        .describe_collection(NameReq { name: "c".into() })
        .await
        .unwrap();
    assert!(!rec.partitions.iter().any(|x| x.id == p));
    assert_eq!(
        ids(h
            .coord
            .segments(NameReq { name: "c".into() })
            .await
            .unwrap()),
        vec![9001]
    );
    // The owner recovers without it, and its record and files are collected.
    let open = h
        .coord
        .open_channel(ChannelTermReq {
            channel: r.channel,
            term: r.term,
            node: r.node,
        })
        .await
        .unwrap();
    let segs: Vec<i64> = open
        .checkpoint
        .unwrap()
        .segments
        .iter()
        .map(|m| m.segment_id)
        .collect();
    assert_eq!(segs, vec![9001]);
    let meta = h.meta.clone();
    let objects = h.objects.clone();
    let key = crate::coord::catalog::segment_key(c.id, 9002);
    eventually("segment record and files collected", || {
        let (meta, objects, key) = (meta.clone(), objects.clone(), key.clone());
        async move {
            let gone = ferrovus_core::store::MetaStore::get(&*meta, &key)
                .await
                .unwrap()
                .is_none();
            let file =
                ferrovus_core::store::ObjectStore::exists(&*objects, "segments/x/0/9002/data")
                    .await
                    .unwrap();
            (gone && !file).then_some(())
        }
    })
    .await;
}

#[tokio::test]
async fn a_dropped_collection_is_collected_once_its_channels_closed() {
    let h = Harness::new().await;
    h.join(RoleKind::Streaming, 1).await;
    let c = h.create("gone", 1).await;
    let keep = h.create("kept", 1).await;
    h.seal(&c, 0, &[(9001, 10)]).await;
    h.seal(&keep, 0, &[(9101, 10)]).await;
    let files = [
        ferrovus_core::keys::segment_data(c.id, 0, 9001),
        format!(
            "{}/0000000001-00000000000000000000-00000000000000000004.log",
            ferrovus_core::keys::wal_prefix(c.id, 0)
        ),
        ferrovus_core::keys::delta_object(c.id, 0, 0, 20),
    ];
    let kept = ferrovus_core::keys::segment_data(keep.id, 0, 9101);
    for k in files.iter().chain([&kept]) {
        h.objects()
            .put(k, bytes::Bytes::from_static(b"x"))
            .await
            .unwrap();
    }
    let routes = h.routes(c.id).await;
    h.ssync(1, ready_channels(&routes, 1, &[])).await;

    h.coord
        .drop_collection(NameReq {
            name: "gone".into(),
        })
        .await
        .unwrap();
    // The owner is told to close the channel; once it no longer reports it, everything goes.
    let s = h.ssync(1, vec![]).await;
    assert!(s.channels.iter().all(|a| a.channel.collection_id != c.id));
    let (meta, objects) = (h.meta.clone(), h.objects.clone());
    let files2 = files.clone();
    eventually("dropped collection collected", || {
        let (meta, objects, files) = (meta.clone(), objects.clone(), files2.clone());
        async move {
            for k in &files {
                if ferrovus_core::store::ObjectStore::exists(&*objects, k)
                    .await
                    .unwrap()
                {
                    return None;
                }
            }
            let left = ferrovus_core::store::MetaStore::list(&*meta, "catalog/")
                .await
                .unwrap()
                .into_iter()
                .filter(|kv| {
                    kv.key.contains(&format!("/{}/", c.id))
                        || kv.key.ends_with(&format!("/{}", c.id))
                })
                .count();
            (left == 0).then_some(())
        }
    })
    .await;
    assert!(
        ferrovus_core::store::ObjectStore::exists(&*h.objects, &kept)
            .await
            .unwrap(),
        "another collection's files stay"
    );
    assert_eq!(
        h.coord
            .segments(NameReq {
                name: "kept".into()
            })
            .await
            .unwrap()
            .len(),
        1
    );
}
