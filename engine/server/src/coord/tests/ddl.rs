//! DDL: a script of changes and mistakes gives the expected results (error kinds and texts,
//! as Milvus clients see them) and catalogue; failed changes leave the catalogue as it was.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use ferrovus_core::request::Consistency;
use ferrovus_core::schema::{CollectionSchema, DataType, FieldSchema};

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

/// Each change with its expected outcome (the error's text).
fn script() -> Vec<(Op, Result<(), &'static str>)> {
    use Op::*;
    let no_pk = CollectionSchema {
        name: "nopk".into(),
        description: String::new(),
        fields: vec![FieldSchema::new("v", DataType::FloatVector).with_dim(4)],
        enable_dynamic_field: false,
    };
    let hnsw = vec![("index_type", "HNSW"), ("metric_type", "L2"), ("M", "16")];
    vec![
        (Create(schema("c1"), 2), Ok(())),
        (Create(schema("c1"), 2), Ok(())),
        (
            Create(other_schema("c1"), 1),
            Err("collection already exists with a different schema[collection=c1]"),
        ),
        (
            Create(schema("big"), 17),
            Err("invalid shards_num: shards_num must be in [1, 16], got 17"),
        ),
        (
            Create(no_pk, 1),
            Err("invalid schema: a collection needs exactly one primary key field, found 0"),
        ),
        (
            Create(schema("bad name"), 1),
            Err(
                "invalid collection_name: invalid name \"bad name\": must be 1-255 characters, start with a letter or '_', and contain only letters, digits and '_'",
            ),
        ),
        (Create(schema("c2"), 0), Ok(())),
        (CreatePartition("c1", "p1"), Ok(())),
        (
            CreatePartition("c1", "p1"),
            Err("invalid partition_name: partition p1 already exists"),
        ),
        (
            CreatePartition("c1", "1bad"),
            Err(
                "invalid partition_name: invalid name \"1bad\": must be 1-255 characters, start with a letter or '_', and contain only letters, digits and '_'",
            ),
        ),
        (
            CreatePartition("nope", "p1"),
            Err("collection not found[collection=nope]"),
        ),
        (
            DropPartition("c1", "_default"),
            Err("invalid partition_name: the default partition cannot be dropped"),
        ),
        (
            DropPartition("c1", "nope"),
            Err("partition not found[partition=nope]"),
        ),
        (
            DropPartition("nope", "p1"),
            Err("collection not found[collection=nope]"),
        ),
        (DropPartition("c1", "p1"), Ok(())),
        (CreateAlias("a1", "c1"), Ok(())),
        (
            CreateAlias("a1", "c2"),
            Err("invalid alias: alias a1 already exists"),
        ),
        (
            CreateAlias("c2", "c1"),
            Err("invalid alias: alias c2 conflicts with a collection name"),
        ),
        (
            CreateAlias("a9", "nope"),
            Err("collection not found[collection=nope]"),
        ),
        (
            CreateAlias("bad-alias", "c1"),
            Err(
                "invalid alias: invalid name \"bad-alias\": must be 1-255 characters, start with a letter or '_', and contain only letters, digits and '_'",
            ),
        ),
        (CreatePartition("a1", "via_alias"), Ok(())),
        (AlterAlias("a1", "c2"), Ok(())),
        (AlterAlias("a2", "c1"), Ok(())),
        (
            AlterAlias("c1", "c2"),
            Err("invalid alias: alias c1 conflicts with a collection name"),
        ),
        (DropAlias("a2"), Ok(())),
        (DropAlias("never"), Ok(())),
        (Rename("c2", "c3"), Ok(())),
        (
            Rename("nope", "c4"),
            Err("collection not found[collection=nope]"),
        ),
        (
            Rename("c3", "c1"),
            Err("invalid new_name: duplicated new collection name c1"),
        ),
        (
            Rename("c3", "9bad"),
            Err(
                "invalid new_name: invalid name \"9bad\": must be 1-255 characters, start with a letter or '_', and contain only letters, digits and '_'",
            ),
        ),
        (Alter("c1", "ttl", "60"), Ok(())),
        (
            Alter("nope", "ttl", "60"),
            Err("collection not found[collection=nope]"),
        ),
        (CreateIndex("c1", "v", "", hnsw.clone()), Ok(())),
        (CreateIndex("c1", "v", "other", hnsw.clone()), Ok(())),
        (
            CreateIndex(
                "c1",
                "v",
                "",
                vec![("index_type", "HNSW"), ("metric_type", "IP")],
            ),
            Err(
                "invalid index: at most one distinct index is allowed per field: v already has index v",
            ),
        ),
        (
            CreateIndex("c1", "id", "v", vec![]),
            Err("invalid index_name: index name v is already used"),
        ),
        (
            CreateIndex("c1", "missing", "", vec![]),
            Err("invalid field_name: field missing does not exist"),
        ),
        (
            CreateIndex("c3", "v", "", vec![("index_type", "IVF_PQ")]),
            Err(
                "invalid index_type: unsupported index type \"IVF_PQ\"; expected one of FLAT, HNSW, AUTOINDEX",
            ),
        ),
        (
            CreateIndex("c3", "v", "", vec![("metric_type", "HAMMING")]),
            Err(
                "invalid metric_type: unsupported metric type \"HAMMING\"; expected one of L2, IP, COSINE",
            ),
        ),
        (
            CreateIndex("c3", "v", "", vec![("index_type", "HNSW"), ("M", "abc")]),
            Err("invalid M: M must be a positive integer, got \"abc\""),
        ),
        (
            CreateIndex("nope", "v", "", vec![]),
            Err("collection not found[collection=nope]"),
        ),
        (
            Load("c3"),
            Err(
                "invalid index: there is no vector index on field: [v], please create index firstly",
            ),
        ),
        (Load("nope"), Err("collection not found[collection=nope]")),
        (Load("c1"), Ok(())),
        (Load("c1"), Ok(())),
        (
            DropIndex("c1", "v", ""),
            Err(
                "invalid index: index cannot be dropped while the collection is loaded; release it first",
            ),
        ),
        (Release("c1"), Ok(())),
        (Release("c1"), Ok(())),
        (DropIndex("c1", "", "missing"), Ok(())),
        (DropIndex("c1", "v", ""), Ok(())),
        (
            DropIndex("nope", "v", ""),
            Err("collection not found[collection=nope]"),
        ),
        (Drop("c3"), Ok(())),
        (Drop("c3"), Ok(())),
        (Drop("a1"), Ok(())),
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
async fn ddl_script_results_errors_and_catalogue() {
    let h = Harness::new().await;
    h.join(RoleKind::Query, 11).await;
    let mut errors = 0;
    for (op, want) in script() {
        let got = on_coordinator(&h, &op).await;
        assert_eq!(got, want.map_err(String::from), "{op:?}");
        errors += usize::from(want.is_err());
    }
    assert!(errors >= 25, "the script exercises the errors ({errors})");
    let want: Summary = vec![(
        "c1".into(),
        vec!["_default".into(), "via_alias".into()],
        vec![],
        vec![],
        [("ttl".to_string(), "60".to_string())].into(),
        false,
    )];
    assert_eq!(summary_of_coordinator(&h).await, want);
    // Names and aliases resolve.
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

    // Altering an alias to a missing collection keeps the alias.
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
