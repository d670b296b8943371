//! Channel assignment: least-loaded live streaming node, terms that grow at every move,
//! reassignment after a node's loss (after the grace), rebalance on join, draining; the owner
//! and term checks of `open_channel` and `commit_checkpoint`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ferrovus_core::segment::SegmentMeta;
use ferrovus_core::shard::ShardCheckpoint;

use super::support::*;
use crate::api::*;
use crate::config::CoordinatorConfig;
use crate::rpc::ClusterError;
use crate::session::RoleKind;

fn owners(r: &CollectionRoutes) -> Vec<(u64, u64)> {
    r.channels.iter().map(|c| (c.node, c.term)).collect()
}

fn per_node(r: &CollectionRoutes) -> BTreeMap<u64, usize> {
    let mut m = BTreeMap::new();
    for c in &r.channels {
        *m.entry(c.node).or_insert(0) += 1;
    }
    m
}

async fn wait_routes(
    h: &Harness,
    cid: i64,
    what: &str,
    ok: impl Fn(&CollectionRoutes) -> bool,
) -> CollectionRoutes {
    let coord = h.coord.clone();
    eventually(what, || {
        let coord = coord.clone();
        let ok = &ok;
        async move {
            let r = coord.routes(RoutesReq { collection_id: cid }).await.ok()?;
            ok(&r).then_some(r)
        }
    })
    .await
}

#[tokio::test]
async fn channels_follow_streaming_nodes_with_growing_terms() {
    let h = Harness::new().await;
    let c = h.create("c", 4).await;
    // No streaming node: routes are a retriable error.
    let e = h
        .coord
        .routes(RoutesReq {
            collection_id: c.id,
        })
        .await
        .unwrap_err();
    assert!(matches!(e, ClusterError::Unavailable(_)), "{e}");

    h.join(RoleKind::Streaming, 1).await;
    let r = wait_routes(&h, c.id, "assigned to node 1", |_| true).await;
    assert_eq!(owners(&r), vec![(1, 1); 4]);
    assert_eq!(r.channels[0].addr, addr(1));
    let sync = h.ssync(1, vec![]).await;
    assert_eq!(sync.channels.len(), 4);
    assert!(sync.channels.iter().all(|a| a.term == 1));

    // A node joins: spread 4-0 ≥ 2, two channels move (term 2 each).
    h.join(RoleKind::Streaming, 2).await;
    let r = wait_routes(&h, c.id, "rebalanced", |r| {
        per_node(r).get(&2).copied() == Some(2)
    })
    .await;
    assert_eq!(per_node(&r), BTreeMap::from([(1, 2), (2, 2)]));
    for ch in &r.channels {
        assert_eq!(ch.term, if ch.node == 2 { 2 } else { 1 }, "{ch:?}");
    }
    let sync1 = h.ssync(1, vec![]).await;
    assert_eq!(sync1.channels.len(), 2, "node 1 closes the moved channels");

    // Node 1 is lost (grace 0): its channels go to node 2 with a new term.
    h.leave(1);
    let r = wait_routes(&h, c.id, "reassigned after loss", |r| {
        r.channels.iter().all(|c| c.node == 2)
    })
    .await;
    for ch in &r.channels {
        assert!(ch.term == 2, "every channel has moved once: {ch:?}");
    }

    // Node 2 drains with node 3 present: everything moves to node 3.
    h.join(RoleKind::Streaming, 3).await;
    wait_routes(&h, c.id, "node 3 got some", |r| {
        per_node(r).get(&3).copied() == Some(2)
    })
    .await;
    h.coord
        .streaming_sync(StreamingSyncReq {
            node: 2,
            addr: addr(2),
            known_version: 0,
            wait_ms: 0,
            channels: vec![],
            draining: true,
        })
        .await
        .unwrap();
    let r = wait_routes(&h, c.id, "drained", |r| {
        r.channels.iter().all(|c| c.node == 3)
    })
    .await;
    assert!(r.channels.iter().all(|c| c.term >= 3));
    let s2 = h.ssync(2, vec![]).await;
    assert!(s2.channels.is_empty());
}

#[tokio::test]
async fn a_lost_owner_keeps_its_channels_for_the_grace_period() {
    let config = CoordinatorConfig {
        node_loss_grace_ms: 400,
        ..fast_config()
    };
    let h = Harness::with(config, small_core()).await;
    h.join(RoleKind::Streaming, 1).await;
    h.join(RoleKind::Streaming, 2).await;
    let c = h.create("c", 2).await;
    let r = wait_routes(&h, c.id, "assigned", |_| true).await;
    let victim = r.channels[0].node;
    let lost = Instant::now();
    h.leave(victim);
    let r = wait_routes(&h, c.id, "reassigned", |r| {
        r.channels.iter().all(|c| c.node != victim)
    })
    .await;
    assert!(
        lost.elapsed() >= Duration::from_millis(400),
        "moved after {:?}, before the grace",
        lost.elapsed()
    );
    assert!(r.channels.iter().any(|c| c.term == 2));
}

#[tokio::test]
async fn open_and_commit_are_checked_against_owner_and_term() {
    let h = Harness::new().await;
    h.join(RoleKind::Streaming, 1).await;
    let c = h.create("c", 1).await;
    let r = h.routes(c.id).await;
    let ch = r.channels[0].clone();
    let open = h
        .coord
        .open_channel(ChannelTermReq {
            channel: ch.channel,
            term: ch.term,
            node: 1,
        })
        .await
        .unwrap();
    assert_eq!(open.collection.id, c.id);
    assert_eq!(open.checkpoint, None, "a new channel starts empty");
    let e = h
        .coord
        .open_channel(ChannelTermReq {
            channel: ch.channel,
            term: ch.term + 1,
            node: 1,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(e, ClusterError::WrongTerm { expected, got, .. } if expected == ch.term && got == ch.term + 1),
        "{e}"
    );
    let e = h
        .coord
        .open_channel(ChannelTermReq {
            channel: ch.channel,
            term: ch.term,
            node: 7,
        })
        .await
        .unwrap_err();
    assert!(matches!(e, ClusterError::NotServing(_)), "{e}");

    h.seal(&c, 0, &[(9001, 10), (9002, 20)]).await;
    let open = h
        .coord
        .open_channel(ChannelTermReq {
            channel: ch.channel,
            term: ch.term,
            node: 1,
        })
        .await
        .unwrap();
    let ck = open.checkpoint.unwrap();
    assert_eq!((ck.next_lsn, ck.applied_ts), (5, 20));
    let ids: Vec<i64> = ck.segments.iter().map(|m| m.segment_id).collect();
    assert_eq!(ids, vec![9001, 9002]);

    // A newer owner: the old term can no longer commit.
    h.join(RoleKind::Streaming, 2).await;
    h.leave(1);
    let r = wait_routes(&h, c.id, "moved", |r| r.channels[0].node == 2).await;
    assert_eq!(r.channels[0].term, ch.term + 1);
    let e = h
        .coord
        .commit_checkpoint(CommitCheckpointReq {
            channel: ch.channel,
            term: ch.term,
            node: 1,
            checkpoint: ShardCheckpoint::default(),
            new_segments: vec![SegmentMeta::new(9003, 1, 1, "x".into())],
        })
        .await
        .unwrap_err();
    assert!(matches!(e, ClusterError::WrongTerm { .. }), "{e}");
    let segs = h
        .coord
        .segments(NameReq { name: "c".into() })
        .await
        .unwrap();
    assert_eq!(segs.len(), 2, "nothing of the stale commit was registered");

    // The new owner drops a segment whose rows were all deleted; it leaves the catalogue.
    let new = &r.channels[0];
    let mut keep = ck.segments[0].clone();
    keep.deletes_key = Some("segments/d/1".into());
    keep.deletes_version = 1;
    h.coord
        .commit_checkpoint(CommitCheckpointReq {
            channel: new.channel,
            term: new.term,
            node: 2,
            checkpoint: ShardCheckpoint {
                next_lsn: 9,
                segments: vec![keep],
                applied_ts: 40,
                deltas: vec![],
            },
            new_segments: vec![],
        })
        .await
        .unwrap();
    let segs = h
        .coord
        .segments(NameReq { name: "c".into() })
        .await
        .unwrap();
    assert_eq!(segs.len(), 1);
    assert_eq!(segs[0].record.id(), 9001);
    assert_eq!(
        segs[0].record.meta.deletes_key.as_deref(),
        Some("segments/d/1"),
        "the rewritten delete log is taken over"
    );
}
