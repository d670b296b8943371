//! The sync loop: retries, readiness, releases after in-flight reads, draining.

use super::*;
use crate::node::StopReason;

async fn sealed(c: &Cluster, keys: std::ops::Range<i64>) -> SegmentMeta {
    c.owner.write(insert(keys, 0)).await;
    let m = c.owner.flush().await.remove(0);
    c.owner.shard.release_sealed(&[m.segment_id]).unwrap();
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinator_errors_are_retried_and_ready_means_every_segment_loaded() {
    let c = Cluster::new().await;
    let s1 = sealed(&c, 0..10).await;
    let ck = c.owner.checkpoint().await;
    let n = c.node_failing(1, 3);
    assert!(n.node.status().is_err());
    // Publish a target whose load is held at its delete pull.
    c.owner.arm_gate();
    n.coord
        .set_target(vec![collection(vec![])], vec![target(&s1, &ck)], vec![]);
    c.owner.gate.held.notified().await;
    let e = n.node.status().unwrap_err();
    assert!(e.contains("loading segments: 1 of 1 assigned"), "{e}");
    assert_eq!(metric(&n.metrics, "querynode_segments_loading"), 1.0);
    assert_eq!(metric(&n.metrics, "querynode_sync_errors_total"), 3.0);
    c.owner.open_gate();
    n.coord.until_loaded(1, &[s1.segment_id]).await;
    let mut changes = n.node.watch_changes();
    until(&mut changes, "ready", |_| n.node.status().is_ok()).await;
    assert_eq!(metric(&n.metrics, "querynode_segments_loading"), 0.0);
    assert_eq!(metric(&n.metrics, "querynode_segments_targeted"), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unassigned_segment_is_released_after_the_reads_in_flight() {
    let c = Cluster::new().await;
    let s1 = sealed(&c, 0..10).await;
    let s2 = sealed(&c, 10..20).await;
    let ck = c.owner.checkpoint().await;
    let n = c.node(1);
    n.coord.set_target(
        vec![collection(vec![])],
        vec![target(&s1, &ck), target(&s2, &ck)],
        vec![],
    );
    n.coord
        .until_loaded(1, &[s1.segment_id, s2.segment_id])
        .await;
    let hold = n.node.inner.hold((CID, 0)).unwrap();
    // A read of s1 is in flight.
    let reading = hold.acquire(&[s1.segment_id], 1).unwrap();
    n.coord
        .set_target(vec![collection(vec![])], vec![target(&s2, &ck)], vec![]);
    n.coord.until_loaded(1, &[s2.segment_id]).await;
    assert!(
        hold.set.contains(s1.segment_id),
        "kept while a read uses it"
    );
    let e = n
        .node
        .query_segments(SegmentsQueryReq {
            collection_id: CID,
            shard: 0,
            segment_ids: vec![s1.segment_id],
            snapshot: c.owner.applied(),
            channel: route(),
            spec: query_spec("", Some(1)),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(e, ClusterError::NotServing(_)),
        "no new reads: {e}"
    );
    drop(reading);
    let mut changes = n.node.watch_changes();
    until(&mut changes, "s1 released", |_| {
        !hold.set.contains(s1.segment_id)
    })
    .await;
    assert_eq!(hold.set.segment_ids(), vec![s2.segment_id]);
    assert_eq!(metric(&n.metrics, "querynode_segments_loaded"), 1.0);

    // Nothing assigned any more: the shard is forgotten.
    n.coord.set_target(vec![], vec![], vec![]);
    until(&mut changes, "the shard forgotten", |_| {
        n.node.inner.hold((CID, 0)).is_none()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_reports_it_and_serves_until_everything_moved() {
    let c = Cluster::new().await;
    let s1 = sealed(&c, 0..10).await;
    let ck = c.owner.checkpoint().await;
    let n = c.node(1);
    let d = delegation(1, &[(s1.segment_id, 1)], plain(&[s1.segment_id]));
    n.coord.set_target(
        vec![collection(vec![])],
        vec![target(&s1, &ck)],
        vec![d.clone()],
    );
    n.coord.until_loaded(1, &[s1.segment_id]).await;
    n.coord
        .until_report(1, "delegation acknowledged", |r| {
            r.delegations
                == vec![DelegationAck {
                    collection_id: CID,
                    shard: 0,
                    replica_id: 1,
                    version: 1,
                }]
        })
        .await;

    let node = n.node.clone();
    let drained = tokio::spawn(async move { node.drain(StopReason::Shutdown).await });
    n.coord
        .until_report(1, "draining reported", |r| r.draining)
        .await;
    assert!(n.node.status().unwrap_err().contains("draining"));
    // Still serving while the coordinator moves things away.
    let read = n
        .node
        .query_shard(ShardQueryReq {
            collection_id: CID,
            shard: 0,
            replica_id: 1,
            spec: query_spec("id >= 0", None),
        })
        .await
        .unwrap();
    assert_eq!(read.count, 10);
    assert!(!drained.is_finished());
    n.coord.set_target(vec![], vec![], vec![]);
    tokio::time::timeout(Duration::from_secs(30), drained)
        .await
        .expect("drain finishes once nothing is assigned")
        .unwrap();
    assert!(
        n.node.inner.sync_task.lock().is_none(),
        "the sync loop stopped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_session_stops_at_once() {
    let c = Cluster::new().await;
    let n = c.node(1);
    n.coord.until_report(1, "first sync", |_| true).await;
    tokio::time::timeout(
        Duration::from_secs(30),
        n.node.drain(StopReason::SessionLost),
    )
    .await
    .expect("no hand-off after a lost session");
    assert!(n.node.inner.sync_task.lock().is_none());
}
