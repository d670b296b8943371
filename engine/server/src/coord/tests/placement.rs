//! Replicas, placement and delegations: groups of nodes, every segment served once per
//! replica, delegators spread, load progress, node loss, rebalance on join (the new node loads
//! first), and the release of retained segments.

use std::collections::{BTreeMap, BTreeSet};

use super::support::*;
use crate::api::*;
use crate::session::RoleKind;

/// Steps every fake query node until `done` holds after a round.
async fn run_until(
    h: &Harness,
    nodes: &mut [FakeQuery],
    what: &str,
    done: impl Fn(&[FakeQuery]) -> bool,
) {
    for _ in 0..200 {
        for n in nodes.iter_mut() {
            n.step(h).await;
        }
        if done(nodes) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    panic!("never reached: {what}");
}

fn delegations(nodes: &[FakeQuery]) -> Vec<(u64, Delegation)> {
    nodes
        .iter()
        .flat_map(|n| {
            n.last
                .iter()
                .flat_map(|r| r.delegations.clone())
                .map(move |d| (n.node, d))
        })
        .collect()
}

/// Every (shard, replica) has a delegation that serves every target, on nodes of its
/// replica that hold the segment.
fn complete(nodes: &[FakeQuery], replicas: &[ReplicaView], shards: usize) -> bool {
    let ds = delegations(nodes);
    let held: BTreeMap<u64, BTreeSet<i64>> = nodes
        .iter()
        .map(|n| (n.node, n.loaded.iter().map(|x| x.2).collect()))
        .collect();
    ds.len() == shards * replicas.len()
        && ds.iter().all(|(_, d)| {
            let r = replicas
                .iter()
                .find(|r| r.replica_id == d.replica_id)
                .unwrap();
            let served: BTreeSet<i64> = d.served.iter().map(|e| e.segment_id).collect();
            d.targets.iter().all(|t| served.contains(&t.segment_id))
                && d.served.iter().all(|e| {
                    r.nodes.contains(&e.node)
                        && held.get(&e.node).is_some_and(|h| h.contains(&e.segment_id))
                })
        })
}

async fn replicas(h: &Harness, name: &str) -> Vec<ReplicaView> {
    h.coord
        .replicas(NameReq { name: name.into() })
        .await
        .unwrap()
}

async fn progress(h: &Harness, name: &str) -> LoadProgress {
    h.coord
        .load_progress(NameReq { name: name.into() })
        .await
        .unwrap()
}

#[tokio::test]
async fn replicas_serve_every_segment_with_spread_delegators() {
    let h = Harness::new().await;
    h.join(RoleKind::Streaming, 1).await;
    for n in 11..=14 {
        h.join(RoleKind::Query, n).await;
    }
    let c = h.create("c", 2).await;
    h.index("c").await;
    h.seal(&c, 0, &[(9001, 10), (9002, 20)]).await;
    h.seal(&c, 1, &[(9003, 30)]).await;

    let e = h
        .coord
        .load_collection(LoadReq {
            name: "c".into(),
            replica_number: 5,
        })
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("no enough nodes to create replicas"),
        "{e}"
    );
    assert_eq!(progress(&h, "c").await.state, LoadStateKind::NotLoad);
    h.load("c", 2).await;
    let reps = replicas(&h, "c").await;
    assert_eq!(reps.len(), 2);
    let groups: Vec<Vec<u64>> = reps.iter().map(|r| r.nodes.clone()).collect();
    assert_eq!(groups, vec![vec![11, 13], vec![12, 14]]);

    let mut nodes: Vec<FakeQuery> = (11..=14).map(FakeQuery::new).collect();
    let reps2 = reps.clone();
    run_until(&h, &mut nodes, "replicas complete", |n| {
        complete(n, &reps2, 2)
    })
    .await;
    // Each node leads exactly one (shard, replica).
    let mut leads: Vec<u64> = delegations(&nodes).iter().map(|(n, _)| *n).collect();
    leads.sort_unstable();
    assert_eq!(leads, vec![11, 12, 13, 14]);
    // Each segment once per replica.
    for r in &reps {
        let placed: BTreeSet<i64> = nodes
            .iter()
            .filter(|n| r.nodes.contains(&n.node))
            .flat_map(|n| n.loaded.iter().map(|x| x.2))
            .collect();
        assert_eq!(
            placed,
            BTreeSet::from([9001, 9002, 9003]),
            "replica {}",
            r.replica_id
        );
    }
    // Loading until the channels are open.
    assert_eq!(progress(&h, "c").await.state, LoadStateKind::Loading);
    let routes = h.routes(c.id).await;
    h.ssync(1, ready_channels(&routes, 1, &[])).await;
    let p = progress(&h, "c").await;
    assert_eq!((p.state, p.percent), (LoadStateKind::Loaded, 100));
    let segs = h
        .coord
        .segments(NameReq { name: "c".into() })
        .await
        .unwrap();
    assert!(segs.iter().all(|s| s.nodes.len() == 2), "{segs:?}");

    // Node 13 is lost: its segments and delegation go to 11, the survivor of its replica.
    let before: Vec<i64> = nodes[2].loaded.iter().map(|x| x.2).collect();
    assert!(!before.is_empty());
    h.leave(13);
    nodes.remove(2);
    let hh = &h;
    let reps = eventually("node 13 left its replica", || async move {
        let r = replicas(hh, "c").await;
        r.iter().all(|r| !r.nodes.contains(&13)).then_some(r)
    })
    .await;
    assert_eq!(reps[0].nodes, vec![11]);
    let reps2 = reps.clone();
    run_until(&h, &mut nodes, "recovered from the loss", |n| {
        complete(n, &reps2, 2)
    })
    .await;
    let n11: Vec<i64> = nodes[0].loaded.iter().map(|x| x.2).collect();
    for s in before {
        assert!(n11.contains(&s), "segment {s} moved to node 11");
    }
    assert!(reps[0].leaders.iter().all(|l| l.node == 11));
    assert_eq!(progress(&h, "c").await.state, LoadStateKind::Loaded);

    // Releasing removes the replicas; the nodes are told to drop everything.
    h.coord
        .release_collection(NameReq { name: "c".into() })
        .await
        .unwrap();
    let r = nodes[0].step(&h).await;
    assert!(r.segments.is_empty() && r.delegations.is_empty());
    assert_eq!(progress(&h, "c").await.state, LoadStateKind::NotLoad);
}

#[tokio::test]
async fn a_joining_node_takes_segments_after_loading_them() {
    let h = Harness::new().await;
    h.join(RoleKind::Streaming, 1).await;
    h.join(RoleKind::Query, 11).await;
    let c = h.create("c", 1).await;
    h.index("c").await;
    h.seal(&c, 0, &[(9001, 10), (9002, 10), (9003, 10), (9004, 10)])
        .await;
    h.load("c", 1).await;
    let mut old = FakeQuery::new(11);
    let reps = replicas(&h, "c").await;
    let reps2 = reps.clone();
    run_until(&h, std::slice::from_mut(&mut old), "loaded", |n| {
        complete(n, &reps2, 1)
    })
    .await;
    assert_eq!(old.loaded.len(), 4);

    h.join(RoleKind::Query, 12).await;
    let mut new = FakeQuery::new(12);
    // Step the new node once without loading anything: it has targets, the old node still
    // serves them.
    let hh = &h;
    let moving = eventually("a segment moves to node 12", || async move {
        let r = hh.qsync(12, &[], vec![]).await;
        r.segments.first().map(|t| t.record.id())
    })
    .await;
    let o = old.step(&h).await;
    assert!(
        o.segments.iter().any(|t| t.record.id() == moving),
        "the old node keeps {moving} until the new one loaded it"
    );
    let d = &o.delegations[0];
    assert_eq!(
        d.served
            .iter()
            .find(|e| e.segment_id == moving)
            .unwrap()
            .node,
        11
    );
    // The new node loads it: the distribution switches, then the old node drops it.
    new.step(&h).await;
    new.step(&h).await;
    let mut o = None;
    for _ in 0..500 {
        let got = old.step(&h).await;
        if !got.segments.iter().any(|t| t.record.id() == moving) {
            o = Some(got);
            break;
        }
        new.step(&h).await;
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let o = o.expect("the old node drops the moved segment");
    let d = &o.delegations[0];
    assert_eq!(
        d.served
            .iter()
            .find(|e| e.segment_id == moving)
            .unwrap()
            .node,
        12
    );
    // Balanced in the end, never a segment unserved on the way.
    let mut nodes = vec![old, new];
    let reps = replicas(&h, "c").await;
    run_until(&h, &mut nodes, "balanced", |n| {
        complete(n, &reps, 1) && n[0].loaded.len() == 2 && n[1].loaded.len() == 2
    })
    .await;
}

#[tokio::test]
async fn retained_segments_are_released_once_every_replica_serves_them() {
    let h = Harness::new().await;
    h.join(RoleKind::Streaming, 1).await;
    h.join(RoleKind::Query, 11).await;
    h.join(RoleKind::Query, 12).await;
    let c = h.create("c", 1).await;
    h.index("c").await;
    h.seal(&c, 0, &[(9001, 10)]).await;
    let routes = h.routes(c.id).await;
    // Not loaded: released at once.
    let s = h.ssync(1, ready_channels(&routes, 1, &[9001])).await;
    assert_eq!(s.release, vec![(routes.channels[0].channel, vec![9001])]);

    h.load("c", 2).await;
    let s = h.ssync(1, ready_channels(&routes, 1, &[9001])).await;
    assert!(s.release.is_empty(), "no replica serves it yet");
    let mut a = FakeQuery::new(11);
    let mut b = FakeQuery::new(12);
    // Node 11 loads and acknowledges; node 12 not yet.
    for _ in 0..3 {
        a.step(&h).await;
    }
    let s = h.ssync(1, ready_channels(&routes, 1, &[9001])).await;
    assert!(s.release.is_empty(), "one replica of two serves it");
    b.step(&h).await; // loads
    b.step(&h).await; // reports loaded, gets the new distribution
    let s = h.ssync(1, ready_channels(&routes, 1, &[9001])).await;
    assert!(
        s.release.is_empty(),
        "the delegator has not acknowledged yet"
    );
    let mut s = None;
    for _ in 0..200 {
        b.step(&h).await; // acknowledges what it applied
        a.step(&h).await;
        let got = h.ssync(1, ready_channels(&routes, 1, &[9001])).await;
        if !got.release.is_empty() {
            s = Some(got);
            break;
        }
        tokio::task::yield_now().await;
    }
    let s = s.expect("released once both delegators acknowledged");
    assert_eq!(s.release, vec![(routes.channels[0].channel, vec![9001])]);
    // A segment the catalogue does not know is released too.
    let s = h.ssync(1, ready_channels(&routes, 1, &[4242])).await;
    assert_eq!(s.release, vec![(routes.channels[0].channel, vec![4242])]);
}
