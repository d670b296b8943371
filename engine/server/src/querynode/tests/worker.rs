//! Worker reads: at the delegator's snapshot, after pulling the deletes up to it.

use std::sync::atomic::Ordering;

use super::*;

async fn loaded_segment(c: &Cluster, keys: std::ops::Range<i64>) -> (TestNode, SegmentMeta) {
    let o = &c.owner;
    o.write(insert(keys, 0)).await;
    let s1 = o.flush().await.remove(0);
    o.shard.release_sealed(&[s1.segment_id]).unwrap();
    let n = c.node(1);
    n.coord.set_target(
        vec![collection(vec![])],
        vec![target(&s1, &o.checkpoint().await)],
        vec![],
    );
    n.coord.until_loaded(1, &[s1.segment_id]).await;
    (n, s1)
}

fn segments_query(sid: i64, snapshot: u64, spec: QuerySpec) -> SegmentsQueryReq {
    SegmentsQueryReq {
        collection_id: CID,
        shard: 0,
        segment_ids: vec![sid],
        snapshot,
        channel: route(),
        spec,
    }
}

fn segments_search(sid: i64, snapshot: u64, spec: SearchSpec) -> SegmentsSearchReq {
    SegmentsSearchReq {
        collection_id: CID,
        shard: 0,
        segment_ids: vec![sid],
        snapshot,
        channel: route(),
        spec,
    }
}

/// A row upserted after its segment was sealed: at a snapshot after the upsert the worker hides
/// the old version (pulling the delete from the owner first) and the owner has the new one, so
/// the key is seen exactly once; at a snapshot before it, the old version is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_upserted_after_sealing_is_seen_once_at_any_snapshot() {
    let c = Cluster::new().await;
    let (n, s1) = loaded_segment(&c, 0..10).await;
    let o = &c.owner;
    let before = o.applied();
    let pulls = metric(&n.metrics, "querynode_delta_pulls_total");
    o.write(upsert([4], 1)).await;

    // As a delegator reads a shard: the owner first (excluding the served segment) ...
    let growing = o
        .query(ChannelQueryReq {
            channel: route().channel,
            term: TERM,
            spec: query_spec("id >= 0", None),
            exclude: vec![s1.segment_id],
        })
        .await
        .unwrap();
    assert_eq!(id_tags(&growing.rows), vec![(4, 1)]);
    assert!(growing.sealed_searched.is_empty());
    // ... then the worker at the owner's snapshot.
    let sealed = n
        .node
        .query_segments(segments_query(
            s1.segment_id,
            growing.snapshot,
            query_spec("id >= 0", None),
        ))
        .await
        .unwrap();
    let mut all = id_tags(&growing.rows);
    all.extend(id_tags(&sealed.rows));
    all.sort_unstable();
    let want: Vec<(i64, i64)> = (0..10).map(|k| (k, i64::from(k == 4))).collect();
    assert_eq!(all, want, "key 4 once, in its new version");
    assert_eq!(sealed.count, 9);
    assert_eq!(
        metric(&n.metrics, "querynode_delta_pulls_total"),
        pulls + 1.0,
        "one pull brought the deletes up to the snapshot"
    );
    let hold = n.node.inner.hold((CID, 0)).unwrap();
    assert!(hold.set.deltas_applied_up_to() >= growing.snapshot);

    // The old version is still what an older snapshot sees.
    let old = n
        .node
        .query_segments(segments_query(
            s1.segment_id,
            before,
            query_spec("id == 4", None),
        ))
        .await
        .unwrap();
    assert_eq!(id_tags(&old.rows), vec![(4, 0)]);

    // Search: the worker's nearest to 4 is no longer 4.
    let hits = n
        .node
        .search_segments(segments_search(
            s1.segment_id,
            growing.snapshot,
            search_spec(4, 3, ""),
        ))
        .await
        .unwrap();
    assert!(hits[0].iter().all(|h| int(&h.pk) != 4), "{hits:?}");
    let hits = n
        .node
        .search_segments(segments_search(
            s1.segment_id,
            before,
            search_spec(4, 1, ""),
        ))
        .await
        .unwrap();
    assert_eq!(int(&hits[0][0].pk), 4);
    assert_eq!(hits[0][0].values, vec![Value::Int(4), Value::Int(0)]);
}

/// Reads needing the same catch-up share one pull: the ones arriving while it is in flight wait
/// for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reads_share_one_delta_pull() {
    let c = Cluster::new().await;
    let (n, s1) = loaded_segment(&c, 0..10).await;
    let o = &c.owner;
    o.write(delete([1, 2])).await;
    let r = o.applied();
    let calls = o.deltas_calls.load(Ordering::SeqCst);
    o.arm_gate();
    let read = |node: QueryNode| {
        tokio::spawn(async move {
            node.query_segments(segments_query(
                s1.segment_id,
                r,
                query_spec("id >= 0", None),
            ))
            .await
        })
    };
    let first = read(n.node.clone());
    o.gate.held.notified().await;
    let others: Vec<_> = (0..4).map(|_| read(n.node.clone())).collect();
    o.open_gate();
    for t in std::iter::once(first).chain(others) {
        let rows = t.await.unwrap().unwrap().rows;
        let keys: Vec<i64> = rows.iter().map(|r| int(&r.pk)).collect();
        assert_eq!(keys, vec![0, 3, 4, 5, 6, 7, 8, 9]);
    }
    assert_eq!(o.deltas_calls.load(Ordering::SeqCst) - calls, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_of_segments_not_held_are_not_serving_and_bad_specs_are_refused() {
    let c = Cluster::new().await;
    let (n, s1) = loaded_segment(&c, 0..10).await;
    let r = c.owner.applied();
    let mut req = segments_query(s1.segment_id, r, query_spec("", Some(3)));
    req.segment_ids = vec![s1.segment_id, 12345];
    let e = n.node.query_segments(req).await.unwrap_err();
    assert!(
        matches!(&e, ClusterError::NotServing(m) if m.contains("segment 12345")),
        "{e}"
    );
    assert!(e.is_retriable());
    let mut req = segments_search(4242, r, search_spec(1, 3, ""));
    req.collection_id = 99;
    let e = n.node.search_segments(req).await.unwrap_err();
    assert!(
        matches!(&e, ClusterError::NotServing(m) if m.contains("segment 4242")),
        "{e}"
    );
    // Input errors keep their kind (the proxy answers them to the client as is).
    let mut bad = search_spec(1, 3, "");
    bad.queries.pop();
    let e = n
        .node
        .search_segments(segments_search(s1.segment_id, r, bad))
        .await
        .unwrap_err();
    assert!(matches!(e, ClusterError::DimensionMismatch { .. }), "{e}");
    let e = n
        .node
        .query_segments(segments_query(
            s1.segment_id,
            r,
            query_spec("nope > 1", None),
        ))
        .await
        .unwrap_err();
    assert!(!e.is_retriable(), "{e}");
    // A limit takes the first keys; a count only counts.
    let rows = n
        .node
        .query_segments(segments_query(
            s1.segment_id,
            r,
            query_spec("id > 2", Some(3)),
        ))
        .await
        .unwrap();
    assert_eq!(id_tags(&rows.rows), vec![(3, 0), (4, 0), (5, 0)]);
    assert_eq!(rows.count, 7);
    let mut count = query_spec("", None);
    count.count_only = true;
    let rows = n
        .node
        .query_segments(segments_query(s1.segment_id, r, count))
        .await
        .unwrap();
    assert_eq!((rows.count, rows.rows.len()), (10, 0));
}
