//! The planning functions on their own: the errors bad inputs get (the same text standalone has
//! always answered), routing, and merging shard results.

use std::collections::{BTreeMap, HashMap};

use super::*;
use crate::read::ShardHit;
use crate::request::{IndexSpec, IndexType, MetricType, QueryRequest, SearchRequest};
use crate::schema::{CollectionSchema, DataType, FieldSchema};
use crate::value::{Column, PrimaryKey, RowBatch, Value};
use crate::wal::WalRecord;

fn schema(auto_id: bool, dynamic: bool) -> CollectionSchema {
    CollectionSchema {
        name: "c".into(),
        description: String::new(),
        fields: vec![
            FieldSchema::new("id", DataType::Int64).primary(auto_id),
            FieldSchema::new("v", DataType::FloatVector).with_dim(2),
            FieldSchema::new("tag", DataType::VarChar).with_max_length(4),
            FieldSchema::new("n", DataType::Int8),
        ],
        enable_dynamic_field: dynamic,
    }
    .validate_and_normalize()
    .unwrap()
}

fn partitions() -> Vec<PartitionMeta> {
    vec![
        PartitionMeta {
            id: 10,
            name: "_default".into(),
            created_ts: 1,
        },
        PartitionMeta {
            id: 11,
            name: "p".into(),
            created_ts: 2,
        },
    ]
}

fn batch(ids: &[i64]) -> RowBatch {
    let n = ids.len();
    RowBatch {
        columns: vec![
            ("id".into(), Column::Int(ids.to_vec())),
            (
                "v".into(),
                Column::FloatVector {
                    dim: 2,
                    data: ids.iter().flat_map(|i| [*i as f32, 0.0]).collect(),
                },
            ),
            ("tag".into(), Column::VarChar(vec!["a".into(); n])),
            ("n".into(), Column::Int(vec![1; n])),
        ],
    }
}

fn err(r: Result<impl std::fmt::Debug>) -> String {
    r.unwrap_err().to_string()
}

#[test]
fn rows_are_validated_with_the_errors_standalone_answers() {
    let s = schema(false, false);
    assert_eq!(
        err(normalize_rows(
            &s,
            RowBatch { columns: vec![] },
            None,
            false
        )),
        "invalid data: no rows to insert: the request has 0 rows"
    );
    let mut b = batch(&[1, 2]);
    b.columns[3].1 = Column::Int(vec![1]);
    assert_eq!(
        err(normalize_rows(&s, b, None, false)),
        "invalid n: column has 1 rows but the first column has 2"
    );
    let mut b = batch(&[1]);
    b.columns.push(("nope".into(), Column::Int(vec![1])));
    assert_eq!(
        err(normalize_rows(&s, b, None, false)),
        "invalid nope: field nope does not exist in collection c's schema"
    );
    let mut b = batch(&[1]);
    b.columns.remove(2);
    assert_eq!(
        err(normalize_rows(&s, b, None, false)),
        "invalid tag: missing field tag (VarChar) in the inserted data"
    );
    let mut b = batch(&[1]);
    b.columns[3].1 = Column::Int(vec![300]);
    assert_eq!(
        err(normalize_rows(&s, b, None, false)),
        "invalid n: value 300 is out of range for Int8 field n"
    );
    let mut b = batch(&[1]);
    b.columns[2].1 = Column::VarChar(vec!["toolong".into()]);
    assert_eq!(
        err(normalize_rows(&s, b, None, false)),
        "invalid tag: the length (7) of VarChar field tag exceeds max_length (4)"
    );
    let mut b = batch(&[1]);
    b.columns[1].1 = Column::FloatVector {
        dim: 3,
        data: vec![0.0; 3],
    };
    assert_eq!(
        err(normalize_rows(&s, b, None, false)),
        "the vector field v expects dim 2, got 3"
    );
    let mut b = batch(&[1]);
    b.columns[1].1 = Column::FloatVector {
        dim: 2,
        data: vec![f32::NAN, 0.0],
    };
    assert_eq!(
        err(normalize_rows(&s, b, None, false)),
        "invalid v: vector field v contains NaN or infinite values"
    );
    let mut b = batch(&[1]);
    b.columns[2].1 = Column::Int(vec![1]);
    assert_eq!(
        err(normalize_rows(&s, b, None, false)),
        "invalid tag: field tag expects VarChar data, got Int"
    );
    assert_eq!(
        err(normalize_rows(&s, batch(&[4, 4]), None, true)),
        "invalid id: duplicate primary keys are not allowed in the same batch: 4"
    );
    // An insert may repeat a key (the latest row wins); columns come back in schema order.
    let mut b = batch(&[4, 4]);
    b.columns.reverse();
    let (cols, pks) = normalize_rows(&s, b, None, false).unwrap();
    assert_eq!(pks, [PrimaryKey::Int(4), PrimaryKey::Int(4)]);
    assert_eq!(cols[0], Column::Int(vec![4, 4]));
    assert_eq!(cols[3], Column::Int(vec![1, 1]));
}

#[test]
fn auto_ids_are_counted_and_filled() {
    let s = schema(true, true);
    let mut b = batch(&[0, 0, 0]);
    assert_eq!(
        err(normalize_rows(&s, b.clone(), None, false)),
        "invalid id: the primary key id is auto_id; do not supply values for it"
    );
    // An upsert may name auto ids (it replaces those rows).
    assert_eq!(auto_id_count(&s, &b), 0);
    b.columns.remove(0);
    assert_eq!(auto_id_count(&s, &b), 3);
    assert_eq!(
        err(normalize_rows(&s, b.clone(), None, false)),
        "internal error: no auto ids allocated"
    );
    let (cols, pks) = normalize_rows(&s, b, Some(100), false).unwrap();
    assert_eq!(
        pks,
        [100, 101, 102].map(PrimaryKey::Int),
        "consecutive ids from the first allocated"
    );
    // The dynamic field is filled with empty objects.
    let dynamic = s.fields.iter().position(|f| f.is_dynamic).unwrap();
    assert_eq!(cols[dynamic], Column::Json(vec![serde_json::json!({}); 3]));
    assert_eq!(auto_id_count(&schema(false, false), &batch(&[1])), 0);
}

#[test]
fn write_partitions_default_to_the_default_partition() {
    let p = partitions();
    assert_eq!(write_partition_id(&p, "").unwrap(), 10);
    assert_eq!(write_partition_id(&p, "p").unwrap(), 11);
    assert_eq!(
        err(write_partition_id(&p, "q")),
        "partition not found[partition=q]"
    );
    assert_eq!(partition_ids(&p, &[]).unwrap(), None);
    assert_eq!(
        partition_ids(&p, &["p".into(), "p".into(), "_default".into()]).unwrap(),
        Some(vec![11, 10])
    );
}

#[test]
fn rows_go_to_the_shard_of_their_key_hash() {
    let s = schema(false, false);
    let ids: Vec<i64> = (0..64).collect();
    let (cols, pks) = normalize_rows(&s, batch(&ids), None, false).unwrap();
    let records = shard_records(&s, 11, cols, &pks, 4, false);
    let mut seen = 0;
    let mut shards = Vec::new();
    for (shard, record, bytes) in records {
        shards.push(shard);
        let WalRecord::Insert {
            partition_id,
            ts,
            rows,
        } = record
        else {
            panic!("an insert record");
        };
        assert_eq!((partition_id, ts), (11, 0));
        assert!(bytes > 0);
        let names: Vec<&str> = rows.columns.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["id", "v", "tag", "n"]);
        let Some(Column::Int(keys)) = rows.column("id") else {
            panic!("int keys");
        };
        for k in keys {
            assert_eq!(shard_of(&PrimaryKey::Int(*k), 4), shard);
            assert_eq!(
                shard as u64,
                PrimaryKey::Int(*k).shard_hash() % 4,
                "the same hash as the collection record"
            );
        }
        // Vectors travel with their keys.
        let Some(Column::FloatVector { data, .. }) = rows.column("v") else {
            panic!("vectors");
        };
        assert_eq!(
            data.chunks(2).map(|c| c[0] as i64).collect::<Vec<_>>(),
            *keys
        );
        seen += keys.len();
    }
    assert_eq!(seen, 64);
    assert!(shards.windows(2).all(|w| w[0] < w[1]), "{shards:?}");
    // One shard: one upsert record with every row.
    let (cols, pks) = normalize_rows(&s, batch(&[1, 2]), None, true).unwrap();
    let one = shard_records(&s, 10, cols, &pks, 1, true);
    assert_eq!(one.len(), 1);
    assert!(matches!(&one[0].1, WalRecord::Upsert { rows, .. } if rows.num_rows() == 2));

    let dels = delete_records((0..10).map(PrimaryKey::Int).collect(), 3);
    let mut n = 0;
    for (shard, record, _) in dels {
        let WalRecord::Delete { ts: 0, pks } = record else {
            panic!("a delete record");
        };
        assert!(pks.iter().all(|k| shard_of(k, 3) == shard));
        n += pks.len();
    }
    assert_eq!(n, 10);
}

fn search(limit: usize) -> SearchRequest {
    SearchRequest {
        collection: "c".into(),
        partitions: vec![],
        anns_field: None,
        vectors: vec![0.0, 0.0],
        num_queries: 1,
        limit,
        offset: 0,
        metric: None,
        ef: None,
        filter: String::new(),
        filter_params: HashMap::new(),
        output_fields: vec![],
        guarantee_ts: 0,
        ignore_growing: false,
        radius: None,
        range_filter: None,
    }
}

fn hnsw(s: &CollectionSchema, metric: MetricType) -> IndexSpec {
    IndexSpec {
        index_id: 1,
        index_name: "v".into(),
        field_id: s.field("v").unwrap().field_id,
        field_name: "v".into(),
        index_type: IndexType::Hnsw,
        metric,
        m: 16,
        ef_construction: 200,
        params: BTreeMap::new(),
    }
}

#[test]
fn searches_are_validated_with_the_errors_standalone_answers() {
    let s = schema(false, true);
    let p = partitions();
    let idx = [hnsw(&s, MetricType::Ip)];
    let plan = |r: SearchRequest| plan_search(&s, &idx, &p, &r);
    assert_eq!(
        err(plan(search(0))),
        "invalid limit: topk (limit) should be in range [1, 16384], but got 0"
    );
    let mut r = search(10);
    r.offset = 16380;
    assert_eq!(
        err(plan(r)),
        "invalid offset: offset + limit should be in range [1, 16384], but got 16390"
    );
    let mut r = search(10);
    r.anns_field = Some("tag".into());
    assert_eq!(
        err(plan(r)),
        "invalid anns_field: vector field tag does not exist"
    );
    let mut r = search(10);
    r.vectors.clear();
    assert_eq!(err(plan(r)), "invalid data: no query vectors given");
    let mut r = search(10);
    r.vectors = vec![0.0; 3];
    assert_eq!(err(plan(r)), "the vector field v expects dim 2, got 3");
    let mut r = search(10);
    r.vectors = vec![f32::INFINITY, 0.0];
    assert_eq!(
        err(plan(r)),
        "invalid data: query vectors contain NaN or infinite values"
    );
    let mut r = search(10);
    r.metric = Some(MetricType::L2);
    assert_eq!(
        err(plan(r)),
        "invalid metric_type: metric type not match: the index on v uses IP, the search asked for L2"
    );
    let mut r = search(10);
    r.filter = "id >".into();
    assert!(err(plan(r)).starts_with("invalid expr: cannot parse expression: id >, error: "));
    let mut r = search(10);
    r.output_fields = vec!["whatever".into()];
    assert!(plan(r).is_ok(), "a dynamic key");
    let strict = schema(false, false);
    let mut r = search(10);
    r.output_fields = vec!["whatever".into()];
    assert_eq!(
        err(plan_search(&strict, &[], &p, &r)),
        "invalid output_fields: field whatever does not exist in collection c"
    );
    let mut r = search(10);
    r.partitions = vec!["q".into()];
    assert_eq!(err(plan(r)), "partition not found[partition=q]");

    let mut two = schema(false, false);
    two.fields
        .push(FieldSchema::new("w", DataType::FloatVector).with_dim(2));
    assert_eq!(
        err(plan_search(&two, &[], &p, &search(1))),
        "invalid anns_field: collection has several vector fields: set anns_field"
    );
}

#[test]
fn a_search_plan_carries_what_every_shard_executes() {
    let s = schema(false, true);
    let p = partitions();
    let mut r = search(5);
    r.offset = 3;
    r.ef = Some(4);
    r.filter = "n > {x}".into();
    r.filter_params = [("x".to_string(), serde_json::json!(0))].into();
    r.output_fields = vec!["tag".into(), "*".into()];
    r.partitions = vec!["p".into()];
    let plan = plan_search(&s, &[hnsw(&s, MetricType::Cosine)], &p, &r).unwrap();
    assert_eq!((plan.field_index, plan.metric), (1, MetricType::Cosine));
    assert_eq!((plan.k, plan.limit, plan.offset), (8, 5, 3));
    assert_eq!(plan.ef, 8, "ef is at least k");
    assert_eq!(plan.partitions, Some(vec![11]));
    assert_eq!(plan.output[0], 2, "requested order, then the rest of *");
    assert_eq!(plan.output.len(), s.fields.len());
    assert_eq!(plan.filter, "n > {x}");
    assert!(!plan.plan.is_match_all());
    let prepared = plan.prepared();
    assert_eq!(prepared.k, 8);
    assert!(prepared.partitions.unwrap().contains(&11));
    // No index and no metric: L2; default ef.
    let plan = plan_search(&s, &[], &p, &search(1)).unwrap();
    assert_eq!(plan.metric, MetricType::L2);
    assert_eq!(plan.ef, crate::vindex::DEFAULT_SEARCH_EF);
}

fn hit(score: f32, pk: i64) -> ShardHit {
    ShardHit {
        score,
        pk: PrimaryKey::Int(pk),
        values: vec![Value::Int(pk * 10)],
    }
}

#[test]
fn shard_hits_merge_by_metric_with_offset_and_limit() {
    let s = schema(false, false);
    let mut r = search(3);
    r.offset = 1;
    r.output_fields = vec!["n".into()];
    r.num_queries = 2;
    r.vectors = vec![0.0; 4];
    let plan = plan_search(&s, &[hnsw(&s, MetricType::Ip)], &partitions(), &r).unwrap();
    // Two shards, two queries each, best first per shard (IP: higher is better).
    let shard0 = vec![vec![hit(0.9, 1), hit(0.5, 2)], vec![hit(0.3, 5)]];
    let shard1 = vec![
        vec![hit(0.95, 3), hit(0.7, 4), hit(0.1, 6)],
        vec![hit(0.8, 7), hit(0.3, 8)],
    ];
    let res = merge_search(&s, &plan, vec![shard0, shard1]);
    assert_eq!((res.num_queries, res.topk), (2, 3));
    // Query 0: 3, 1, 4, 2, 6 → skip 1, keep 3.
    assert_eq!(res.ids[0], [1, 4, 2].map(PrimaryKey::Int));
    assert_eq!(res.scores[0], [0.9, 0.7, 0.5]);
    // Query 1: 7, 5, 8 (a tie keeps shard order) → skip 1.
    assert_eq!(res.ids[1], [5, 8].map(PrimaryKey::Int));
    assert_eq!(res.fields.len(), 1);
    assert_eq!(res.fields[0].name, "n");
    assert_eq!(res.fields[0].column, Column::Int(vec![10, 40, 20, 50, 80]));

    // L2: lower is better.
    let plan = plan_search(&s, &[], &partitions(), &search(2)).unwrap();
    let res = merge_search(
        &s,
        &plan,
        vec![
            vec![vec![hit(0.5, 1), hit(3.0, 2)]],
            vec![vec![hit(0.1, 3)]],
        ],
    );
    assert_eq!(res.ids[0], [3, 1].map(PrimaryKey::Int));
    assert!(res.fields.is_empty());
}

fn query(filter: &str, out: &[&str], limit: Option<usize>) -> QueryRequest {
    QueryRequest {
        collection: "c".into(),
        partitions: vec![],
        filter: filter.into(),
        filter_params: HashMap::new(),
        output_fields: out.iter().map(|s| s.to_string()).collect(),
        limit,
        offset: 0,
        guarantee_ts: 0,
    }
}

#[test]
fn queries_are_validated_with_the_errors_standalone_answers() {
    let s = schema(false, false);
    let p = partitions();
    let plan = |r: QueryRequest| plan_query(&s, &p, &r);
    assert_eq!(
        err(plan(query("", &["count(*)", "n"], None))),
        "invalid output_fields: count(*) cannot be combined with other output fields"
    );
    assert_eq!(
        err(plan(query("id > 0", &[], Some(16385)))),
        "invalid limit: limit + offset should be in range [1, 16384], but got 16385"
    );
    let mut r = query("id > 0", &[], Some(10));
    r.offset = 16380;
    assert_eq!(
        err(plan(r)),
        "invalid limit: limit + offset should be in range [1, 16384], but got 16390"
    );
    assert!(err(plan(query("id >>", &[], None))).starts_with("invalid expr: cannot parse"));
    assert_eq!(
        err(plan(query("", &["n"], None))),
        "invalid expr: empty expression should be used with limit"
    );
    assert_eq!(
        err(plan(query("id > 0", &["nope"], None))),
        "invalid output_fields: field nope does not exist in collection c"
    );
    let mut r = query("id > 0", &[], None);
    r.partitions = vec!["q".into()];
    assert_eq!(err(plan(r)), "partition not found[partition=q]");
}

#[test]
fn query_plans_add_the_key_and_find_key_lookups() {
    let s = schema(false, false);
    let p = partitions();
    let q = plan_query(&s, &p, &query("", &["count(*)"], None)).unwrap();
    assert!(q.count_only && q.output.is_empty());
    assert_eq!(q.shards(3), [0, 1, 2]);
    let mut r = query("n > 0", &["tag"], Some(5));
    r.offset = 2;
    let q = plan_query(&s, &p, &r).unwrap();
    assert_eq!(q.output, [0, 2], "the primary key first");
    assert_eq!(q.shard_limit(), Some(7));
    assert_eq!(q.keys(), None);
    let q = plan_query(&s, &p, &query("n > 0", &["tag", "id"], None)).unwrap();
    assert_eq!(q.output, [2, 0]);
    assert_eq!(q.shard_limit(), None);
    let q = plan_query(&s, &p, &query("id in [3, 9]", &[], None)).unwrap();
    let keys = q.keys().unwrap();
    assert_eq!(keys, [3, 9].map(PrimaryKey::Int));
    let mut want: Vec<usize> = keys.iter().map(|k| shard_of(k, 8)).collect();
    want.sort();
    want.dedup();
    assert_eq!(q.shards(8), want);
}

fn row(pk: i64) -> (PrimaryKey, Vec<Value>) {
    (
        PrimaryKey::Int(pk),
        vec![Value::Int(pk), Value::Int(pk % 3)],
    )
}

#[test]
fn shard_rows_merge_in_key_order_with_offset_and_limit() {
    let s = schema(false, false);
    let p = partitions();
    let mut r = query("id > 0", &["n"], Some(3));
    r.offset = 2;
    let q = plan_query(&s, &p, &r).unwrap();
    let res = merge_query(
        &s,
        &q,
        vec![
            (3, vec![row(2), row(5), row(9)]),
            (4, vec![row(1), row(3), row(4), row(8)]),
        ],
    );
    assert_eq!(res.num_rows, 3);
    assert_eq!(res.count, None);
    assert_eq!(res.fields[0].name, "id");
    assert_eq!(res.fields[0].column, Column::Int(vec![3, 4, 5]));
    assert_eq!(res.fields[1].column, Column::Int(vec![0, 1, 2]));
    let q = plan_query(&s, &p, &query("", &["count(*)"], None)).unwrap();
    let res = merge_query(&s, &q, vec![(3, vec![]), (4, vec![])]);
    assert_eq!((res.num_rows, res.count), (1, Some(7)));
}

#[test]
fn deletes_need_a_filter_and_name_keys_directly() {
    let s = schema(false, false);
    assert_eq!(
        err(plan_delete(&s, "  ", &HashMap::new())),
        "invalid expr: delete needs a filter expression or primary keys"
    );
    assert!(
        err(plan_delete(&s, "id in [", &HashMap::new()))
            .starts_with("invalid expr: cannot parse expression: id in [, error: ")
    );
    let d = plan_delete(&s, "id in [1, 2]", &HashMap::new()).unwrap();
    assert_eq!(d.keys, Some(vec![PrimaryKey::Int(1), PrimaryKey::Int(2)]));
    let d = plan_delete(&s, "n == 1", &HashMap::new()).unwrap();
    assert_eq!(d.keys, None);
    let p = partitions();
    assert_eq!(delete_partitions(&p, "").unwrap(), None);
    assert_eq!(delete_partitions(&p, "p").unwrap(), Some(vec![11]));
    assert_eq!(
        err(delete_partitions(&p, "q")),
        "partition not found[partition=q]"
    );
}

#[test]
fn values_become_typed_columns() {
    let s = schema(false, true);
    let dynamic = s.fields.iter().find(|f| f.is_dynamic).unwrap();
    assert_eq!(
        values_to_column(
            dynamic,
            vec![Value::Json(serde_json::json!({"a": 1})), Value::Null]
        ),
        Column::Json(vec![serde_json::json!({"a": 1}), serde_json::Value::Null])
    );
    let v = s.field("v").unwrap();
    assert_eq!(
        values_to_column(v, vec![Value::FloatVector(vec![1.0, 2.0])]),
        Column::FloatVector {
            dim: 2,
            data: vec![1.0, 2.0]
        }
    );
    let cols = output_columns(&s, &[3], vec![vec![Value::Int(7)]]);
    assert_eq!(cols[0].name, "n");
    assert_eq!(cols[0].data_type, DataType::Int8);
    assert_eq!(cols[0].column, Column::Int(vec![7]));
}
