//! Data-node tasks: index builds recorded on segments, compaction and its swap (a result is
//! placed only once indexed, never served together with a source; sources removed once every
//! replica serves it), re-queue on node loss and on timeout, back-off after a failure.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use ferrovus_core::segment::SegmentMeta;

use super::support::*;
use crate::api::*;
use crate::config::CoordinatorConfig;
use crate::session::RoleKind;

async fn dsync(h: &Harness, node: u64, slots: u32, finished: Vec<TaskResult>) -> DataSyncResp {
    dsync_running(h, node, slots, finished, vec![]).await
}

async fn dsync_running(
    h: &Harness,
    node: u64,
    slots: u32,
    finished: Vec<TaskResult>,
    running: Vec<TaskProgress>,
) -> DataSyncResp {
    h.coord
        .data_sync(DataSyncReq {
            node,
            addr: addr(node),
            wait_ms: 0,
            slots,
            running,
            finished,
            draining: false,
        })
        .await
        .unwrap()
}

/// Finishes an index task as a data node would.
fn index_done(t: &Task) -> TaskResult {
    let TaskKind::IndexBuild {
        segment,
        field_id,
        spec,
        index_key,
    } = &t.kind
    else {
        panic!("not an index task: {t:?}");
    };
    TaskResult {
        id: t.id,
        outcome: Ok(TaskOutput::Index {
            segment_id: segment.segment_id,
            field_id: *field_id,
            index_id: spec.index_id,
            key: index_key.clone(),
        }),
    }
}

fn index_segment(t: &Task) -> Option<i64> {
    match &t.kind {
        TaskKind::IndexBuild { segment, .. } => Some(segment.segment_id),
        TaskKind::Compaction { .. } => None,
    }
}

/// The served ids of every delegation in a query node's answer; asserts the swap rule.
fn served(r: &QuerySyncResp) -> BTreeSet<i64> {
    let mut out = BTreeSet::new();
    for d in &r.delegations {
        let ids: BTreeSet<i64> = d.served.iter().map(|e| e.segment_id).collect();
        for t in &d.targets {
            if ids.contains(&t.segment_id) {
                for src in &t.compacted_from {
                    assert!(
                        !ids.contains(src),
                        "result {} served together with its source {src}: {d:?}",
                        t.segment_id
                    );
                }
            }
        }
        out.extend(ids);
    }
    out
}

#[tokio::test]
async fn compaction_swaps_results_in_only_once_indexed_and_loaded() {
    let h = Harness::new().await;
    h.join(RoleKind::Streaming, 1).await;
    h.join(RoleKind::Query, 11).await;
    h.join(RoleKind::Data, 21).await;
    let c = h.create("c", 1).await;
    h.index("c").await;
    h.seal(&c, 0, &[(9001, 10), (9002, 20)]).await;
    for (sid, tag) in [(9001, "a"), (9002, "b")] {
        h.objects()
            .put(
                &ferrovus_core::keys::segment_data(c.id, 0, sid),
                bytes::Bytes::from(tag),
            )
            .await
            .unwrap();
    }
    h.load("c", 1).await;
    let routes = h.routes(c.id).await;
    h.ssync(1, ready_channels(&routes, 1, &[])).await;
    let mut q = FakeQuery::new(11);
    q.step_until(&h, "loaded and served", |r| {
        served(r) == BTreeSet::from([9001, 9002])
    })
    .await;

    // Index builds first, then the compaction of the two small segments.
    let r = dsync(&h, 21, 8, vec![]).await;
    let indexed: BTreeSet<i64> = r.tasks.iter().filter_map(index_segment).collect();
    assert_eq!(indexed, BTreeSet::from([9001, 9002]));
    let compaction = r
        .tasks
        .iter()
        .find(|t| matches!(t.kind, TaskKind::Compaction { .. }))
        .expect("a compaction of the small segments")
        .clone();
    let TaskKind::Compaction {
        sources,
        snapshot_ts,
        target_segment_id,
        partition_id,
        ..
    } = &compaction.kind
    else {
        unreachable!()
    };
    let mut ids: Vec<i64> = sources.iter().map(|s| s.segment_id).collect();
    ids.sort_unstable();
    assert_eq!(ids, vec![9001, 9002]);
    assert_eq!(*snapshot_ts, 20, "the channel's last checkpoint");
    let target = *target_segment_id;
    assert!(target > 0);
    // Nothing more to hand out while these run.
    assert!(dsync(&h, 21, 8, vec![]).await.tasks.is_empty());

    let results: Vec<TaskResult> = r
        .tasks
        .iter()
        .filter(|t| index_segment(t).is_some())
        .map(index_done)
        .collect();
    dsync(&h, 21, 0, results).await;
    let p = h
        .coord
        .index_progress(NameReq { name: "c".into() })
        .await
        .unwrap();
    assert_eq!(
        (p[0].indexed_rows, p[0].total_rows, p[0].pending_segments),
        (30, 30, 0)
    );

    // The compaction result arrives: C replaces A and B in the catalogue, but is not placed
    // before its index exists; A and B stay served.
    let mut out = SegmentMeta::new(
        target,
        *partition_id,
        30,
        ferrovus_core::keys::segment_data(c.id, 0, target),
    );
    out.base_ts = 20;
    let r = dsync(
        &h,
        21,
        8,
        vec![TaskResult {
            id: compaction.id,
            outcome: Ok(TaskOutput::Compacted { segment: out }),
        }],
    )
    .await;
    let c_index = r
        .tasks
        .iter()
        .find(|t| index_segment(t) == Some(target))
        .expect("an index build for the result")
        .clone();
    let unplaced = |resp: &QuerySyncResp| {
        assert_eq!(served(resp), BTreeSet::from([9001, 9002]));
        assert!(!resp.segments.iter().any(|t| t.record.id() == target));
        let d = &resp.delegations[0];
        d.targets.len() == 1 && d.targets[0].segment_id == target
    };
    q.step_until(&h, "the result is the target", unplaced).await;
    for _ in 0..3 {
        assert!(unplaced(&q.step(&h).await));
    }
    assert_eq!(
        h.coord
            .load_progress(NameReq { name: "c".into() })
            .await
            .unwrap()
            .state,
        LoadStateKind::Loaded,
        "covered by the sources meanwhile"
    );
    let segs = h
        .coord
        .segments(NameReq { name: "c".into() })
        .await
        .unwrap();
    assert_eq!(
        segs.iter().map(|s| s.record.id()).collect::<Vec<_>>(),
        vec![target]
    );

    // Indexed: placed, loaded, then swapped in one step; the sources go once acknowledged.
    dsync(&h, 21, 0, vec![index_done(&c_index)]).await;
    let meta = h.meta.clone();
    let key_a = crate::coord::catalog::segment_key(c.id, 9001);
    let mut swapped = false;
    for _ in 0..200 {
        let resp = q.step(&h).await;
        let s = served(&resp);
        if s == BTreeSet::from([target]) {
            swapped = true;
        } else if !swapped {
            assert_eq!(s, BTreeSet::from([9001, 9002]));
        }
        let gone = ferrovus_core::store::MetaStore::get(&*meta, &key_a)
            .await
            .unwrap()
            .is_none();
        if swapped && gone {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(swapped, "the result is served");
    let objects = h.objects.clone();
    eventually("source files collected", || {
        let objects = objects.clone();
        let key = ferrovus_core::keys::segment_data(c.id, 0, 9001);
        async move {
            (!ferrovus_core::store::ObjectStore::exists(&*objects, &key)
                .await
                .unwrap())
            .then_some(())
        }
    })
    .await;
    let resp = q.step(&h).await;
    assert_eq!(
        resp.segments
            .iter()
            .map(|t| t.record.id())
            .collect::<Vec<_>>(),
        vec![target],
        "the query node releases the sources"
    );
}

#[tokio::test]
async fn tasks_are_handed_out_again_after_loss_timeout_or_failure() {
    let config = CoordinatorConfig {
        task_timeout_ms: 300,
        task_retry_ms: 60_000,
        ..fast_config()
    };
    let h = Harness::with(config, small_core()).await;
    h.join(RoleKind::Streaming, 1).await;
    h.join(RoleKind::Data, 21).await;
    h.join(RoleKind::Data, 22).await;
    let c = h.create("c", 1).await;
    h.index("c").await;
    h.seal(&c, 0, &[(9001, 500)]).await;

    let first = dsync(&h, 21, 1, vec![]).await.tasks;
    assert_eq!(first.len(), 1);
    assert_eq!(index_segment(&first[0]), Some(9001));
    assert!(
        dsync(&h, 22, 1, vec![]).await.tasks.is_empty(),
        "one task per (segment, index) at a time"
    );

    // Node 21 leaves: node 22 gets the build.
    h.leave(21);
    let coord_h = &h;
    let second = eventually("re-queued after the node left", || async move {
        let t = dsync(coord_h, 22, 1, vec![]).await.tasks;
        (!t.is_empty()).then_some(t)
    })
    .await;
    assert_eq!(index_segment(&second[0]), Some(9001));
    assert_ne!(second[0].id, first[0].id);
    // A late result of the old task is ignored.
    dsync(&h, 21, 0, vec![index_done(&first[0])]).await;
    let p = h
        .coord
        .index_progress(NameReq { name: "c".into() })
        .await
        .unwrap();
    assert_eq!(p[0].pending_segments, 1);

    // The build times out: node 22 is told to cancel it, and gets it again.
    let started = Instant::now();
    let running = vec![TaskProgress {
        id: second[0].id,
        fraction: 0.5,
    }];
    let third = eventually("re-queued after the timeout", || {
        let running = running.clone();
        async move {
            let r = dsync_running(coord_h, 22, 1, vec![], running).await;
            (!r.tasks.is_empty()).then_some(r)
        }
    })
    .await;
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert!(third.cancel.contains(&second[0].id), "{third:?}");
    assert_eq!(index_segment(&third.tasks[0]), Some(9001));

    // It fails: not handed out again before the retry delay.
    dsync(
        &h,
        22,
        0,
        vec![TaskResult {
            id: third.tasks[0].id,
            outcome: Err("out of memory".into()),
        }],
    )
    .await;
    assert!(dsync(&h, 22, 4, vec![]).await.tasks.is_empty());
    let p = h
        .coord
        .index_progress(NameReq { name: "c".into() })
        .await
        .unwrap();
    assert_eq!((p[0].indexed_rows, p[0].total_rows), (0, 500));
}

#[tokio::test]
async fn a_segment_with_many_deletes_is_rewritten() {
    let h = Harness::new().await;
    h.join(RoleKind::Streaming, 1).await;
    h.join(RoleKind::Query, 11).await;
    h.join(RoleKind::Data, 21).await;
    let c = h.create("c", 1).await;
    h.seal(&c, 0, &[(9001, 1000)]).await; // large: not a compaction candidate by size
    let r = dsync(&h, 21, 4, vec![]).await;
    assert!(r.tasks.is_empty(), "nothing to do yet: {r:?}");
    // A query node reports 300 of its 1000 rows deleted (> 20 %): a rewrite is due.
    h.coord
        .query_sync(QuerySyncReq {
            node: 11,
            addr: addr(11),
            known_version: 0,
            wait_ms: 0,
            loaded: vec![LoadedSegment {
                collection_id: c.id,
                shard: 0,
                segment_id: 9001,
                indexes: vec![],
                rows: 1000,
                deleted_rows: 300,
            }],
            delegations: vec![],
            draining: false,
            refused: vec![],
        })
        .await
        .unwrap();
    let r = dsync(&h, 21, 4, vec![]).await;
    assert_eq!(r.tasks.len(), 1, "{r:?}");
    let TaskKind::Compaction { sources, .. } = &r.tasks[0].kind else {
        panic!("{:?}", r.tasks[0]);
    };
    assert_eq!(sources.len(), 1);
    assert_eq!(sources[0].segment_id, 9001);
}
