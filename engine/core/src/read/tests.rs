//! Snapshot reads over segments built by the shard's own apply path: overwrites and deletes are
//! seen as of their timestamps, before and after persisting the delete marks.

use std::sync::Arc;

use super::*;
use crate::expr::{self, Plan};
use crate::request::MetricType;
use crate::schema::{CollectionSchema, DataType, FieldSchema};
use crate::segment::{DeleteMarks, Segment, SegmentKind, SegmentMeta};
use crate::shard::state::ShardState;
use crate::value::{Column, PrimaryKey, RowBatch, Value};
use crate::wal::WalRecord;

fn schema() -> CollectionSchema {
    CollectionSchema {
        name: "c".into(),
        description: String::new(),
        fields: vec![
            FieldSchema::new("id", DataType::Int64).primary(false),
            FieldSchema::new("tag", DataType::Int64),
            FieldSchema::new("v", DataType::FloatVector).with_dim(2),
        ],
        enable_dynamic_field: false,
    }
    .validate_and_normalize()
    .unwrap()
}

fn rows(ids: &[i64], tag: i64) -> RowBatch {
    RowBatch {
        columns: vec![
            ("id".into(), Column::Int(ids.to_vec())),
            ("tag".into(), Column::Int(vec![tag; ids.len()])),
            (
                "v".into(),
                Column::FloatVector {
                    dim: 2,
                    data: ids.iter().flat_map(|i| [*i as f32, 0.0]).collect(),
                },
            ),
        ],
    }
}

/// One segment holding: keys 1, 2, 3 inserted at 10 (tag 0); key 1 upserted at 20 (tag 1);
/// key 2 deleted at 30; key 2 inserted again at 40 (tag 2).
fn history() -> (CollectionSchema, Segment) {
    let schema = schema();
    let mut st = ShardState::new(0);
    let recs = [
        WalRecord::Insert {
            partition_id: 1,
            ts: 10,
            rows: rows(&[1, 2, 3], 0),
        },
        WalRecord::Upsert {
            partition_id: 1,
            ts: 20,
            rows: rows(&[1], 1),
        },
        WalRecord::Delete {
            ts: 30,
            pks: vec![PrimaryKey::Int(2)],
        },
        WalRecord::Insert {
            partition_id: 1,
            ts: 40,
            rows: rows(&[2], 2),
        },
    ];
    for r in &recs {
        st.apply(&schema, 0, r);
    }
    assert_eq!(st.applied_ts, 40);
    let (_, seg) = st.segments.pop_first().unwrap();
    (schema, seg)
}

/// (key, tag) of every visible row at `snapshot`, by key.
fn visible(seg: &Segment, plan: &Plan, snapshot: u64) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    for_each_visible_match(seg, plan, snapshot, |row| {
        match row_values(seg, row, &[0, 1]).as_slice() {
            [Value::Int(k), Value::Int(t)] => out.push((*k, *t)),
            other => panic!("unexpected {other:?}"),
        }
    });
    out.sort_unstable();
    out
}

fn searched_keys(seg: &Segment, schema: &CollectionSchema, plan: &Plan, snapshot: u64) -> Vec<i64> {
    let q = [0.0f32, 0.0];
    let req = PreparedSearch {
        field_index: 2,
        metric: MetricType::L2,
        queries: &q,
        num_queries: 1,
        k: 10,
        ef: 10,
        plan,
        partitions: None,
        output: &[],
        ignore_growing: false,
        radius: None,
        range_filter: None,
    };
    let hits = search_segment(seg, schema, &req, snapshot).unwrap();
    let mut keys: Vec<i64> = hits[0]
        .iter()
        .map(|(_, row)| match seg.value(0, *row as usize) {
            Value::Int(k) => k,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    keys.sort_unstable();
    keys
}

fn check_history(schema: &CollectionSchema, seg: &Segment) {
    let all = Plan::match_all();
    let expect: [(u64, Vec<(i64, i64)>); 7] = [
        (5, vec![]),
        (10, vec![(1, 0), (2, 0), (3, 0)]),
        (19, vec![(1, 0), (2, 0), (3, 0)]),
        (20, vec![(1, 1), (2, 0), (3, 0)]),
        (30, vec![(1, 1), (3, 0)]),
        (40, vec![(1, 1), (2, 2), (3, 0)]),
        (LATEST, vec![(1, 1), (2, 2), (3, 0)]),
    ];
    for (r, want) in &expect {
        assert_eq!(&visible(seg, &all, *r), want, "query at {r}");
        assert_eq!(
            count_visible_matches(seg, &all, *r),
            want.len(),
            "count at {r}"
        );
        let keys: Vec<i64> = want.iter().map(|(k, _)| *k).collect();
        assert_eq!(searched_keys(seg, schema, &all, *r), keys, "search at {r}");
    }
    // A filter sees the version of the snapshot.
    let tag1 = expr::compile_str("tag == 1", schema).unwrap();
    assert_eq!(visible(seg, &tag1, 19), vec![]);
    assert_eq!(visible(seg, &tag1, 20), vec![(1, 1)]);
    assert_eq!(searched_keys(seg, schema, &tag1, 19), Vec::<i64>::new());
    assert_eq!(searched_keys(seg, schema, &tag1, 25), vec![1]);
    // Get by key: rows 0 (key 1 at 10) and 3 (key 1 at 20) hold key 1; rows 1 and 4 key 2.
    assert_eq!(visible_row(seg, [0, 3], 19), Some(0));
    assert_eq!(visible_row(seg, [0, 3], 20), Some(3));
    assert_eq!(visible_row(seg, [1, 4], 35), None);
    assert_eq!(visible_row(seg, [1, 4], 29), Some(1));
    assert_eq!(visible_row(seg, [1, 4], LATEST), Some(4));
}

#[test]
fn overwrites_and_deletes_are_seen_as_of_their_timestamps() {
    let (schema, seg) = history();
    assert!(!seg.is_sealed());
    assert_eq!(
        seg.deleted.ts(0),
        Some(20),
        "overwritten at the new row's ts"
    );
    assert_eq!(seg.deleted.ts(1), Some(30));
    check_history(&schema, &seg);
}

#[test]
fn sealed_segment_with_a_persisted_delete_log_answers_the_same() {
    let (schema, seg) = history();
    let SegmentKind::Growing(data) = seg.kind else {
        panic!("growing expected")
    };
    let rows = data.num_rows();
    let marks = DeleteMarks::decode(&seg.deleted.encode(rows), rows, "log").unwrap();
    let meta = SegmentMeta::new(5, 1, rows, "d".into());
    let sealed = Segment::sealed(9, Arc::new(data), meta, marks);
    check_history(&schema, &sealed);
}

#[test]
fn merge_hits_ranks_by_metric_and_keeps_list_order_on_ties() {
    let h = |score, segment| SegmentHit {
        score,
        segment,
        row: 0,
    };
    let merged = merge_hits(
        MetricType::L2,
        vec![vec![h(0.5, 1), h(2.0, 1)], vec![h(0.5, 2), h(0.1, 2)]],
        3,
    );
    assert_eq!(merged, vec![h(0.1, 2), h(0.5, 1), h(0.5, 2)]);
    let merged = merge_hits(MetricType::Ip, vec![vec![h(0.5, 1)], vec![h(0.9, 2)]], 5);
    assert_eq!(merged, vec![h(0.9, 2), h(0.5, 1)]);
}
