//! Loading segments: deletes from delta objects and the journal, the set's insert contract,
//! indexes attached at load and swapped in later.

use std::sync::atomic::Ordering;

use ferrovus_core::keys;
use ferrovus_core::segment::SegmentIndexMeta;
use ferrovus_core::vindex;

use super::*;
use crate::querynode::metrics::QueryMetrics;

fn keys_of(rows: &[Row]) -> Vec<i64> {
    rows.iter().map(|r| int(&r.pk)).collect()
}

async fn query_at(n: &TestNode, ids: &[i64], snapshot: u64) -> ShardQueryResp {
    n.node
        .query_segments(SegmentsQueryReq {
            collection_id: CID,
            shard: 0,
            segment_ids: ids.to_vec(),
            snapshot,
            channel: route(),
            spec: query_spec("id >= 0", None),
        })
        .await
        .unwrap()
}

/// A sealed, released segment of keys 0..20, then deletes of 3 and 5 persisted by two
/// checkpoints and a delete of 7 only in the owner's journal.
async fn segment_with_deletes_everywhere(c: &Cluster) -> SegmentMeta {
    let o = &c.owner;
    o.write(insert(0..20, 0)).await;
    let s1 = o.flush().await.remove(0);
    o.shard.release_sealed(&[s1.segment_id]).unwrap();
    o.write(delete([3])).await;
    o.flush().await;
    o.write(delete([5])).await;
    o.flush().await;
    o.write(delete([7])).await;
    assert_eq!(o.checkpoint().await.deltas.len(), 2);
    assert!(
        matches!(o.shard.deltas_since(s1.base_ts), DeltaRead::Gap { .. }),
        "the journal no longer reaches back to the segment's base"
    );
    s1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_loads_with_the_deletes_of_delta_objects_and_then_the_journal() {
    let c = Cluster::new().await;
    let s1 = segment_with_deletes_everywhere(&c).await;
    let ck = c.owner.checkpoint().await;
    let n = c.node(1);
    n.coord
        .set_target(vec![collection(vec![])], vec![target(&s1, &ck)], vec![]);
    n.coord.until_loaded(1, &[s1.segment_id]).await;

    let report = n.coord.reports.borrow()[&1].clone();
    assert_eq!(report.loaded[0].rows, 20);
    assert_eq!(
        report.loaded[0].deleted_rows, 3,
        "3 and 5 from objects, 7 from the journal"
    );
    assert_eq!(
        c.owner.deltas_calls.load(Ordering::SeqCst),
        1,
        "the listed delta objects, then one journal pull after them"
    );
    let r = query_at(&n, &[s1.segment_id], c.owner.applied()).await;
    let want: Vec<i64> = (0..20).filter(|k| ![3, 5, 7].contains(k)).collect();
    assert_eq!(keys_of(&r.rows), want);
    assert_eq!(r.count, 17);
    assert_eq!(metric(&n.metrics, "querynode_segments_loaded"), 1.0);
    assert_eq!(metric(&n.metrics, "querynode_rows_loaded"), 20.0);
    assert_eq!(n.node.status(), Ok(()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_gap_is_filled_from_the_listed_delta_objects() {
    let c = Cluster::new().await;
    let s1 = segment_with_deletes_everywhere(&c).await;
    let mut stale = target(&s1, &c.owner.checkpoint().await);
    stale.deltas.clear(); // the coordinator's listing is behind
    let n = c.node(1);
    n.coord
        .set_target(vec![collection(vec![])], vec![stale], vec![]);
    n.coord.until_loaded(1, &[s1.segment_id]).await;
    assert_eq!(
        c.owner.deltas_calls.load(Ordering::SeqCst),
        2,
        "a gap, then the journal after the objects found by listing"
    );
    let r = query_at(&n, &[s1.segment_id], c.owner.applied()).await;
    let want: Vec<i64> = (0..20).filter(|k| ![3, 5, 7].contains(k)).collect();
    assert_eq!(keys_of(&r.rows), want);
}

/// The set's watermark moves past what a loading segment caught up to (a read pulled newer
/// deletes meanwhile): the segment joins only after catching up to the watermark, so a delete
/// of one of its rows in between is not lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_segment_catches_up_to_a_watermark_that_moved_ahead() {
    let c = Cluster::new().await;
    let o = &c.owner;
    o.write(insert(0..10, 0)).await;
    let s1 = o.flush().await.remove(0);
    o.write(insert(100..110, 0)).await;
    let s2 = o.flush().await.remove(0);
    o.shard
        .release_sealed(&[s1.segment_id, s2.segment_id])
        .unwrap();
    let ck = o.checkpoint().await;
    let n = c.node(1);
    n.coord
        .set_target(vec![collection(vec![])], vec![target(&s1, &ck)], vec![]);
    n.coord.until_loaded(1, &[s1.segment_id]).await;

    // s2's first delete pull is answered, then held.
    o.arm_gate();
    n.coord.set_target(
        vec![collection(vec![])],
        vec![target(&s1, &ck), target(&s2, &ck)],
        vec![],
    );
    o.gate.held.notified().await;
    o.write(delete([5, 105])).await;
    let r = o.applied();
    // A read of s1 at the new snapshot moves the shard's watermark past s2's deletes.
    let on_s1 = query_at(&n, &[s1.segment_id], r).await;
    assert!(!keys_of(&on_s1.rows).contains(&5));
    let hold = n.node.inner.hold((CID, 0)).unwrap();
    assert!(hold.set.deltas_applied_up_to() >= r);
    o.open_gate();
    n.coord
        .until_loaded(1, &[s1.segment_id, s2.segment_id])
        .await;
    let on_s2 = query_at(&n, &[s2.segment_id], r).await;
    let want: Vec<i64> = (100..110).filter(|k| *k != 105).collect();
    assert_eq!(
        keys_of(&on_s2.rows),
        want,
        "the delete between s2's pull and its join is applied"
    );
}

async fn put_index(
    c: &Cluster,
    meta: &SegmentMeta,
    keys: std::ops::Range<i64>,
    index_id: i64,
) -> SegmentIndexMeta {
    let spec = index_spec(index_id);
    let vectors: Vec<f32> = keys.flat_map(vector).collect();
    let idx = vindex::build(&spec, DIM, &vectors, 1).unwrap();
    let mut bytes = Vec::new();
    idx.write_to(&mut bytes).unwrap();
    let key = keys::segment_index(CID, 0, meta.segment_id, spec.field_id, index_id);
    c.objects.put(&key, bytes.into()).await.unwrap();
    SegmentIndexMeta {
        field_id: spec.field_id,
        index_id,
        key,
    }
}

async fn nearest(n: &TestNode, sid: i64, near: i64, snapshot: u64) -> Vec<i64> {
    let hits = n
        .node
        .search_segments(SegmentsSearchReq {
            collection_id: CID,
            shard: 0,
            segment_ids: vec![sid],
            snapshot,
            channel: route(),
            spec: search_spec(near, 5, ""),
        })
        .await
        .unwrap();
    hits[0].iter().map(|h| int(&h.pk)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_index_is_swapped_in_and_a_dropped_one_detached() {
    let c = Cluster::new().await;
    let o = &c.owner;
    o.write(insert(0..64, 0)).await;
    let s1 = o.flush().await.remove(0);
    o.shard.release_sealed(&[s1.segment_id]).unwrap();
    let ck = o.checkpoint().await;
    let n = c.node(1);
    n.coord
        .set_target(vec![collection(vec![])], vec![target(&s1, &ck)], vec![]);
    n.coord.until_loaded(1, &[s1.segment_id]).await;
    let snapshot = o.applied();
    let exact = nearest(&n, s1.segment_id, 10, snapshot).await;
    assert_eq!(exact[0], 10);
    let hold = n.node.inner.hold((CID, 0)).unwrap();
    assert_eq!(hold.set.vectors_in_index_rows(), 0);

    // The index is built and recorded: the node loads it (memory-mapped from the local
    // store) and swaps it in.
    let mut indexed = s1.clone();
    indexed.indexes.push(put_index(&c, &s1, 0..64, 77).await);
    n.coord.set_target(
        vec![collection(vec![index_spec(77)])],
        vec![target(&indexed, &ck)],
        vec![],
    );
    n.coord
        .until_report(1, "index 77 reported attached", |r| {
            r.loaded.len() == 1 && r.loaded[0].indexes == vec![77]
        })
        .await;
    assert_eq!(
        hold.set.vectors_in_index_rows(),
        64,
        "the index serves the vectors now (the raw copy is released)"
    );
    assert_eq!(nearest(&n, s1.segment_id, 10, snapshot).await, exact);
    let ok = QueryMetrics::outcome(true);
    assert_eq!(n.node.inner.metrics.index_loads.get_or_create(&ok).get(), 1);

    // A node loading the segment now attaches the index as part of the load.
    let n2 = c.node(2);
    n2.coord.set_target(
        vec![collection(vec![index_spec(77)])],
        vec![target(&indexed, &ck)],
        vec![],
    );
    n2.coord
        .until_report(2, "node 2 loaded with index 77", |r| {
            r.loaded.len() == 1 && r.loaded[0].indexes == vec![77]
        })
        .await;
    assert_eq!(nearest(&n2, s1.segment_id, 10, snapshot).await, exact);

    // The index definition is dropped: detached, searches use the vectors again.
    n.coord.set_target(
        vec![collection(vec![])],
        vec![target(&indexed, &ck)],
        vec![],
    );
    n.coord
        .until_report(1, "index 77 reported detached", |r| {
            r.known_version >= 4 && r.loaded.len() == 1 && r.loaded[0].indexes.is_empty()
        })
        .await;
    assert_eq!(hold.set.vectors_in_index_rows(), 0);
    assert_eq!(nearest(&n, s1.segment_id, 10, snapshot).await, exact);
}
