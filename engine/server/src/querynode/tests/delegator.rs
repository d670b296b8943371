//! Delegator reads over a channel owner and two query nodes: coverage (each segment read
//! exactly once, or a retriable error), compaction results against their sources, segments the
//! owner retains, merge order, and refusals.

use ferrovus_core::compaction;
use ferrovus_core::delta;
use ferrovus_core::keys;
use ferrovus_core::pks::SegmentPks;
use ferrovus_core::sealed::SealedSegment;

use super::*;

/// Shard 0: `a` (0..10) served by node 1, `b` (10..20) by node 2, `r` (20..30) retained by the
/// owner, 30..35 growing; 5 and 15 upserted (tag 1) and 25 deleted after sealing.
struct Shard0 {
    c: Cluster,
    n1: TestNode,
    n2: TestNode,
    a: SegmentMeta,
    b: SegmentMeta,
    r: SegmentMeta,
}

impl Shard0 {
    async fn new() -> Shard0 {
        let c = Cluster::new().await;
        let o = &c.owner;
        o.write(insert(0..10, 0)).await;
        let a = o.flush().await.remove(0);
        o.write(insert(10..20, 0)).await;
        let b = o.flush().await.remove(0);
        o.write(insert(20..30, 0)).await;
        let r = o.flush().await.remove(0);
        o.shard
            .release_sealed(&[a.segment_id, b.segment_id])
            .unwrap();
        o.write(insert(30..35, 0)).await;
        o.write(upsert([5, 15], 1)).await;
        o.write(delete([25])).await;
        let n1 = c.node(1);
        let n2 = c.node(2);
        let s = Shard0 { c, n1, n2, a, b, r };
        let (a, b, r) = (s.a.segment_id, s.b.segment_id, s.r.segment_id);
        s.place(
            &[a],
            &[b],
            delegation(1, &[(a, 1), (b, 2)], plain(&[a, b, r])),
        )
        .await;
        s
    }

    /// Node 1 holds `on1` and delegates with `d`; node 2 holds `on2`.
    async fn place(&self, on1: &[i64], on2: &[i64], d: Delegation) {
        let ck = self.c.owner.checkpoint().await;
        let metas: Vec<SegmentMeta> = ck.segments.clone();
        let targets = |ids: &[i64]| -> Vec<SegmentTarget> {
            ids.iter()
                .map(|id| {
                    let m = metas.iter().find(|m| m.segment_id == *id).unwrap();
                    target(m, &ck)
                })
                .collect()
        };
        self.n1
            .coord
            .set_target(vec![collection(vec![])], targets(on1), vec![d]);
        self.n2
            .coord
            .set_target(vec![collection(vec![])], targets(on2), vec![]);
        self.n1.coord.until_loaded(1, on1).await;
        self.n2.coord.until_loaded(2, on2).await;
    }

    async fn query(&self, spec: QuerySpec) -> Result<ShardQueryResp, ClusterError> {
        self.n1
            .node
            .query_shard(ShardQueryReq {
                collection_id: CID,
                shard: 0,
                replica_id: 1,
                spec,
            })
            .await
    }

    async fn search(&self, spec: SearchSpec) -> Result<Vec<Vec<Hit>>, ClusterError> {
        self.n1
            .node
            .search_shard(ShardSearchReq {
                collection_id: CID,
                shard: 0,
                replica_id: 1,
                spec,
            })
            .await
    }
}

/// Every live (key, tag) of the shard.
fn live() -> Vec<(i64, i64)> {
    (0..35)
        .filter(|k| *k != 25)
        .map(|k| (k, i64::from(k == 5 || k == 15)))
        .collect()
}

fn l2(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_read_covers_workers_and_the_owner_once_and_merges_in_order() {
    let s = Shard0::new().await;
    let all = s.query(query_spec("id >= 0", None)).await.unwrap();
    assert_eq!(
        id_tags(&all.rows),
        live(),
        "every live row once, in key order"
    );
    assert_eq!(all.count, 34);
    // A limit takes the first keys across the owner and both workers.
    let page = s.query(query_spec("id >= 3", Some(4))).await.unwrap();
    assert_eq!(id_tags(&page.rows), vec![(3, 0), (4, 0), (5, 1), (6, 0)]);
    assert_eq!(page.count, 31);
    let mut count = query_spec("tag == 1", None);
    count.count_only = true;
    let counted = s.query(count).await.unwrap();
    assert_eq!((counted.count, counted.rows.len()), (2, 0));
    // Get by key: each key once, in its visible version.
    let got = s
        .query(query_spec("id in [5, 15, 25, 26]", None))
        .await
        .unwrap();
    assert_eq!(id_tags(&got.rows), vec![(5, 1), (15, 1), (26, 0)]);

    // Search: the exact top k over every live row, best first.
    for near in [5, 14, 27, 33] {
        let hits = s.search(search_spec(near, 6, "")).await.unwrap();
        let q = vector(near);
        let mut want: Vec<(f32, i64)> = live()
            .iter()
            .map(|(k, _)| (l2(&vector(*k), &q), *k))
            .collect();
        want.sort_by(|x, y| x.0.partial_cmp(&y.0).unwrap().then(x.1.cmp(&y.1)));
        let got: Vec<i64> = hits[0].iter().map(|h| int(&h.pk)).collect();
        assert_eq!(
            got,
            want[..6].iter().map(|w| w.1).collect::<Vec<_>>(),
            "near {near}"
        );
        assert!(hits[0].windows(2).all(|w| w[0].score <= w[1].score));
        for h in &hits[0] {
            let k = int(&h.pk);
            assert_eq!(
                h.values,
                vec![Value::Int(k), Value::Int(i64::from(k == 5 || k == 15))]
            );
        }
    }
    let filtered = s.search(search_spec(5, 3, "tag == 1")).await.unwrap();
    let got: Vec<i64> = filtered[0].iter().map(|h| int(&h.pk)).collect();
    assert_eq!(got.len(), 2);
    assert!(got.contains(&5) && got.contains(&15));
}

/// A segment the owner retains is read by the owner while no query node serves it, and only by
/// the query node once served (the owner excludes it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_retained_segment_is_counted_once() {
    let s = Shard0::new().await;
    let (a, b, r) = (s.a.segment_id, s.b.segment_id, s.r.segment_id);
    assert_eq!(
        s.query(query_spec("id >= 0", None)).await.unwrap().count,
        34
    );
    // Node 2 loads r; the distribution serves it from there.
    s.place(
        &[a],
        &[b, r],
        delegation(2, &[(a, 1), (b, 2), (r, 2)], plain(&[a, b, r])),
    )
    .await;
    let all = s.query(query_spec("id >= 0", None)).await.unwrap();
    assert_eq!(id_tags(&all.rows), live());
    assert_eq!(all.count, 34);
    let hits = s.search(search_spec(26, 40, "")).await.unwrap();
    let mut keys: Vec<i64> = hits[0].iter().map(|h| int(&h.pk)).collect();
    keys.sort_unstable();
    assert_eq!(keys, live().iter().map(|l| l.0).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_nobody_read_is_a_retriable_error_not_a_partial_answer() {
    let s = Shard0::new().await;
    let (a, b, r) = (s.a.segment_id, s.b.segment_id, s.r.segment_id);
    // The owner released r, but the distribution does not serve it yet.
    s.c.owner.shard.release_sealed(&[r]).unwrap();
    for e in [
        s.query(query_spec("id >= 0", None)).await.unwrap_err(),
        s.search(search_spec(3, 5, "")).await.unwrap_err(),
    ] {
        assert!(
            matches!(&e, ClusterError::NotServing(m) if m.contains(&format!("segment {r}"))),
            "{e}"
        );
        assert!(e.is_retriable());
    }
    // A target segment nobody knows of at all.
    s.place(
        &[a],
        &[b, r],
        delegation(2, &[(a, 1), (b, 2), (r, 2)], plain(&[a, b, r, 999])),
    )
    .await;
    let e = s.query(query_spec("id >= 0", None)).await.unwrap_err();
    assert!(
        matches!(&e, ClusterError::NotServing(m) if m.contains("segment 999")),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_failures_and_unknown_delegations_are_retriable() {
    let s = Shard0::new().await;
    let (a, b, r) = (s.a.segment_id, s.b.segment_id, s.r.segment_id);
    // Node 3 is unreachable.
    s.place(
        &[a],
        &[b],
        delegation(2, &[(a, 1), (b, 3)], plain(&[a, b, r])),
    )
    .await;
    let e = s.query(query_spec("id >= 0", None)).await.unwrap_err();
    assert!(
        matches!(&e, ClusterError::Unavailable(m) if m.contains("query node 3")),
        "{e}"
    );
    // Node 2 does not hold a segment the distribution says it serves.
    s.place(
        &[a],
        &[b],
        delegation(3, &[(a, 1), (b, 2), (r, 2)], plain(&[a, b, r])),
    )
    .await;
    let e = s.search(search_spec(1, 3, "")).await.unwrap_err();
    assert!(
        matches!(&e, ClusterError::NotServing(m) if m.contains("query node 2") && m.contains(&format!("segment {r}"))),
        "{e}"
    );
    // A shard this node does not lead (another replica).
    let e =
        s.n1.node
            .query_shard(ShardQueryReq {
                collection_id: CID,
                shard: 0,
                replica_id: 9,
                spec: query_spec("id >= 0", None),
            })
            .await
            .unwrap_err();
    assert!(
        matches!(&e, ClusterError::NotServing(m) if m.contains("replica 9")),
        "{e}"
    );
    let e =
        s.n2.node
            .search_shard(ShardSearchReq {
                collection_id: CID,
                shard: 0,
                replica_id: 1,
                spec: search_spec(1, 3, ""),
            })
            .await
            .unwrap_err();
    assert!(e.is_retriable(), "{e}");
    // An input error stays what it is.
    let e = s.query(query_spec("id >", None)).await.unwrap_err();
    assert!(!e.is_retriable(), "{e}");
}

/// `a` and the owner-retained `r` compacted into `c` (as a data node does, at the checkpoint's
/// snapshot): whether the replica serves the sources or the result, every row is read once —
/// once `c` is served the owner must not search `r` any more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compaction_result_and_its_sources_are_counted_once() {
    let s = Shard0::new().await;
    let (a, b, r) = (s.a.segment_id, s.b.segment_id, s.r.segment_id);
    let o = &s.c.owner;
    o.flush().await; // the upsert and delete reach delta objects
    let ck = o.checkpoint().await;
    let schema = schema();
    let mut inputs = Vec::new();
    for id in [a, r] {
        let m = ck.segments.iter().find(|m| m.segment_id == id).unwrap();
        let mut seg = SealedSegment::load(&*s.c.objects, &schema, m)
            .await
            .unwrap();
        seg.apply_deltas(
            &delta::read_deltas(&*s.c.objects, &ck.deltas, m.base_ts)
                .await
                .unwrap(),
        );
        inputs.push(seg);
    }
    let refs: Vec<_> = inputs.iter().map(|x| x.segment()).collect();
    let merged = compaction::merge(&schema, &refs, ck.applied_ts).unwrap();
    assert_eq!(
        merged.data.num_rows(),
        18,
        "the old version of 5 and the deleted 25 are gone"
    );
    assert_eq!(merged.deletes.count(), 0);
    let c_id = 500;
    let mut meta = SegmentMeta::new(
        c_id,
        PARTITION,
        merged.data.num_rows(),
        keys::segment_data(CID, 0, c_id),
    );
    meta.base_ts = ck.applied_ts;
    meta.pks_key = Some(keys::segment_pks(CID, 0, c_id));
    put(
        &s.c,
        &meta.data_key,
        merged.data.encode(c_id, PARTITION, &schema),
    )
    .await;
    let pks: &SegmentPks = &merged.pks;
    put(&s.c, meta.pks_key.as_ref().unwrap(), pks.encode(c_id)).await;
    // Deletes after the compaction's snapshot: c gets them by key.
    o.write(delete([3, 22])).await;

    let ck = o.checkpoint().await;
    let seg_targets = |ids: &[i64]| -> Vec<SegmentTarget> {
        ids.iter()
            .map(
                |id| match ck.segments.iter().find(|m| m.segment_id == *id) {
                    Some(m) => target(m, &ck),
                    None => target_from(&meta, &ck, vec![a, r]),
                },
            )
            .collect()
    };
    let mut targets = plain(&[a, b, r]);
    targets.push(TargetSegment {
        segment_id: c_id,
        compacted_from: vec![a, r],
    });
    let want: Vec<(i64, i64)> = live()
        .into_iter()
        .filter(|(k, _)| *k != 3 && *k != 22)
        .collect();

    // Before c is loaded anywhere: the sources are read (r by the owner), c through them.
    s.place(
        &[a],
        &[b],
        delegation(2, &[(a, 1), (b, 2)], targets.clone()),
    )
    .await;
    let all = s.query(query_spec("id >= 0", None)).await.unwrap();
    assert_eq!(id_tags(&all.rows), want);
    // Node 2 loads c; the delegator swaps a and r for c in one step.
    s.n1.coord.set_target(
        vec![collection(vec![])],
        seg_targets(&[a]),
        vec![delegation(3, &[(b, 2), (c_id, 2)], targets.clone())],
    );
    s.n2.coord
        .set_target(vec![collection(vec![])], seg_targets(&[b, c_id]), vec![]);
    s.n2.coord.until_loaded(2, &[b, c_id]).await;
    s.n1.coord.until_loaded(1, &[a]).await;
    let all = s.query(query_spec("id >= 0", None)).await.unwrap();
    assert_eq!(id_tags(&all.rows), want, "c once; a and r not at all");
    assert_eq!(all.count, want.len());
    let hits = s.search(search_spec(22, 40, "")).await.unwrap();
    let mut keys: Vec<i64> = hits[0].iter().map(|h| int(&h.pk)).collect();
    keys.sort_unstable();
    assert_eq!(keys, want.iter().map(|w| w.0).collect::<Vec<_>>());
}

async fn put(c: &Cluster, key: &str, bytes: Vec<u8>) {
    c.objects.put(key, bytes.into()).await.unwrap();
}
