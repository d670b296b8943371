//! Sessions and leader election against a real etcd (skipped with a notice when etcd is not
//! installed, unless FERROVUS_REQUIRE_EXTERNAL=1), and the local backend.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use ferrovus_core::store::memory::MemoryMetaStore;
use ferrovus_core::store::{MetaOp, MetaStore};
use ferrovus_storage::EtcdMetaStore;
use ferrovus_storage::testing::EtcdServer;
use tokio::time::Instant;

use super::*;

/// The smallest TTL etcd grants with its default timing (1.5 s, rounded up).
fn fast() -> CoordinationConfig {
    CoordinationConfig {
        session_ttl: Duration::from_secs(2),
        leader_ttl: Duration::from_secs(2),
        keepalive_interval: Duration::from_millis(500),
    }
}

async fn etcd_coord(server: &EtcdServer, ns: &str) -> EtcdCoordination {
    let store = EtcdMetaStore::connect(server.config(ns)).await.unwrap();
    EtcdCoordination::new(store, fast())
}

fn info(role: RoleKind, node_id: u64) -> SessionInfo {
    SessionInfo {
        role,
        node_id,
        grpc_address: format!("10.0.0.{node_id}:19531"),
        http_address: format!("10.0.0.{node_id}:9091"),
        version: "0.1.0".into(),
        start_time_ms: unix_time_ms(),
    }
}

async fn next_event(w: &mut SessionWatch, within: Duration) -> SessionEvent {
    tokio::time::timeout(within, w.next())
        .await
        .expect("no session event in time")
        .expect("watch ended")
}

#[test]
fn roles_and_keys() {
    for r in RoleKind::ALL {
        assert_eq!(r.as_str().parse::<RoleKind>().unwrap(), r);
        assert_eq!(parse_session_key(&session_key(r, 42)), Some((r, 42)));
    }
    let e = "indexer".parse::<RoleKind>().unwrap_err().to_string();
    assert!(e.contains("indexer") && e.contains("coordinator"), "{e}");
    assert_eq!(info(RoleKind::Query, 7).key(), "session/query/7");
    assert_eq!(parse_session_key("session/query/x"), None);
    assert_eq!(etcd::ttl_secs(Duration::from_millis(2500)), 3);
    assert_eq!(etcd::ttl_secs(Duration::from_millis(3000)), 3);
    assert_eq!(etcd::ttl_secs(Duration::from_millis(1)), 1);
}

#[tokio::test]
async fn etcd_sessions_appear_and_disappear() {
    let Some(server) = EtcdServer::start().await else {
        return;
    };
    let a = etcd_coord(&server, "t/sessions/").await;
    let b = etcd_coord(&server, "t/sessions/").await; // another process
    let mut all = b.watch_sessions(None).await.unwrap();
    assert!(all.initial.is_empty());

    let q = a.register(info(RoleKind::Query, 1)).await.unwrap();
    let s = a.register(info(RoleKind::Streaming, 2)).await.unwrap();
    assert_eq!(
        next_event(&mut all, Duration::from_secs(5)).await,
        SessionEvent::Added(info_of(&q))
    );
    assert_eq!(
        next_event(&mut all, Duration::from_secs(5)).await,
        SessionEvent::Added(info_of(&s))
    );
    // ordered by role (declaration order), then node id
    assert_eq!(
        b.list_sessions(None).await.unwrap(),
        vec![info_of(&s), info_of(&q)]
    );
    assert_eq!(
        b.list_sessions(Some(RoleKind::Query)).await.unwrap(),
        vec![info_of(&q)]
    );
    let mut queries = b.watch_sessions(Some(RoleKind::Query)).await.unwrap();
    assert_eq!(queries.initial, vec![info_of(&q)]);

    // Outlives several TTLs while kept alive.
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        assert_eq!(b.list_sessions(None).await.unwrap().len(), 2);
        assert!(!q.is_lost() && !s.is_lost());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // The query node "crashes": its keep-alive stops, the session goes when the lease expires.
    let crashed = Instant::now();
    drop(q);
    assert_eq!(
        b.list_sessions(Some(RoleKind::Query)).await.unwrap().len(),
        1,
        "a crashed session stays until its lease expires"
    );
    let removed = SessionEvent::Removed {
        role: RoleKind::Query,
        node_id: 1,
    };
    assert_eq!(next_event(&mut all, Duration::from_secs(10)).await, removed);
    let took = crashed.elapsed();
    assert!(
        took >= Duration::from_millis(1000) && took < Duration::from_secs(6),
        "expired after {took:?}"
    );
    assert_eq!(
        next_event(&mut queries, Duration::from_secs(5)).await,
        removed
    );

    // Revoking removes at once.
    let revoked = Instant::now();
    s.revoke().await.unwrap();
    assert_eq!(
        next_event(&mut all, Duration::from_secs(5)).await,
        SessionEvent::Removed {
            role: RoleKind::Streaming,
            node_id: 2
        }
    );
    assert!(revoked.elapsed() < Duration::from_secs(1));
    assert!(b.list_sessions(None).await.unwrap().is_empty());
    // the query watch saw nothing of the streaming node
    assert!(
        tokio::time::timeout(Duration::from_millis(200), queries.next())
            .await
            .is_err()
    );
}

fn info_of(s: &Session) -> SessionInfo {
    s.info().clone()
}

#[tokio::test]
async fn etcd_leader_election_takeover_and_fencing() {
    let Some(server) = EtcdServer::start().await else {
        return;
    };
    let ns = "t/election/";
    let a = etcd_coord(&server, ns).await;
    let b = etcd_coord(&server, ns).await;
    let c = etcd_coord(&server, ns).await;
    let store = a.store().clone();
    let key = COORDINATOR_LEADER_KEY;

    let mut observed = c.watch_leader(key).await.unwrap();
    assert_eq!(*observed.borrow(), None);

    let leader_a = a.campaign(key, b"a".to_vec()).await.unwrap();
    let fence_a = leader_a.fence().clone();
    assert_eq!(fence_a.key, key);
    assert_eq!(
        c.current_leader(key).await.unwrap(),
        Some(LeaderInfo {
            value: b"a".to_vec(),
            revision: fence_a.revision
        })
    );
    observed
        .wait_for(|l| l.as_ref().is_some_and(|l| l.value == b"a"))
        .await
        .unwrap();
    // A fenced write by the leader commits.
    assert!(
        store
            .txn(
                vec![fence_a.condition()],
                vec![MetaOp::Put {
                    key: "catalog/x".into(),
                    value: b"1".to_vec()
                }]
            )
            .await
            .unwrap()
    );

    // B waits while A leads (A keeps its lease alive across several TTLs).
    let b2 = b.clone();
    let mut campaign_b = tokio::spawn(async move { b2.campaign(key, b"b".to_vec()).await });
    assert!(
        tokio::time::timeout(Duration::from_secs(3), &mut campaign_b)
            .await
            .is_err(),
        "B must not lead while A does"
    );
    assert!(!leader_a.is_lost());

    // A resigns: B takes over at once, with a new fence; A's fence no longer commits.
    let resigned = Instant::now();
    leader_a.resign().await.unwrap();
    let leader_b = tokio::time::timeout(Duration::from_secs(5), campaign_b)
        .await
        .expect("B took over")
        .unwrap()
        .unwrap();
    assert!(resigned.elapsed() < Duration::from_secs(2));
    let fence_b = leader_b.fence().clone();
    assert!(fence_b.revision > fence_a.revision);
    let write = |fence: Fence| {
        let store = store.clone();
        async move {
            store
                .txn(
                    vec![fence.condition()],
                    vec![MetaOp::Put {
                        key: "catalog/x".into(),
                        value: b"2".to_vec(),
                    }],
                )
                .await
                .unwrap()
        }
    };
    assert!(
        !write(fence_a.clone()).await,
        "the old leader's fence holds"
    );
    assert!(write(fence_b.clone()).await);
    observed
        .wait_for(|l| l.as_ref().is_some_and(|l| l.value == b"b"))
        .await
        .unwrap();

    // B "crashes" (keep-alive stops, no resign): C takes over once B's lease expires.
    let c2 = c.clone();
    let mut campaign_c = tokio::spawn(async move { c2.campaign(key, b"c".to_vec()).await });
    assert!(
        tokio::time::timeout(Duration::from_millis(500), &mut campaign_c)
            .await
            .is_err()
    );
    let crashed = Instant::now();
    drop(leader_b);
    let leader_c = tokio::time::timeout(Duration::from_secs(10), campaign_c)
        .await
        .expect("C took over")
        .unwrap()
        .unwrap();
    let took = crashed.elapsed();
    assert!(
        took >= Duration::from_millis(1000) && took < Duration::from_secs(5),
        "takeover after {took:?}"
    );
    assert!(leader_c.fence().revision > fence_b.revision);
    assert!(!write(fence_b).await);
    assert!(write(leader_c.fence().clone()).await);
    observed
        .wait_for(|l| l.as_ref().is_some_and(|l| l.value == b"c"))
        .await
        .unwrap();
    leader_c.resign().await.unwrap();
    observed.wait_for(|l| l.is_none()).await.unwrap();
    assert_eq!(c.current_leader(key).await.unwrap(), None);
}

#[tokio::test]
async fn etcd_leader_and_session_report_lost_when_etcd_goes_away() {
    let Some(mut server) = EtcdServer::start().await else {
        return;
    };
    let a = etcd_coord(&server, "t/lost/").await;
    let leader = a.campaign("coord/leader", b"a".to_vec()).await.unwrap();
    let session = a.register(info(RoleKind::Coordinator, 1)).await.unwrap();
    assert!(!leader.is_lost() && !session.is_lost());

    let killed = Instant::now();
    server.kill();
    tokio::time::timeout(Duration::from_secs(5), leader.lost())
        .await
        .expect("the leader noticed");
    let leader_noticed = killed.elapsed();
    // Typically within one keep-alive interval, and in any case before the lease (renewed at most
    // one interval before the kill) can have expired for the others.
    assert!(
        leader_noticed < fast().leader_ttl - fast().keepalive_interval,
        "leader noticed after {leader_noticed:?}"
    );
    // A session rides out failures until its lease would expire, then reports lost.
    tokio::time::timeout(Duration::from_secs(10), session.lost())
        .await
        .expect("the session noticed");
    let session_noticed = killed.elapsed();
    assert!(
        session_noticed >= leader_noticed
            && session_noticed <= fast().session_ttl + Duration::from_millis(1500),
        "session lost after {session_noticed:?}"
    );
    assert!(leader.is_lost() && session.is_lost());
}

#[tokio::test]
async fn etcd_node_ids_are_unique_and_grow_across_restarts() {
    let Some(server) = EtcdServer::start().await else {
        return;
    };
    let ns = "t/ids/";
    let a = etcd_coord(&server, ns).await;
    let b = etcd_coord(&server, ns).await;
    let mut tasks = Vec::new();
    for i in 0..24 {
        let c = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move { c.allocate_node_id().await }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap().unwrap());
    }
    let unique: HashSet<u64> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "duplicate ids in {ids:?}");
    assert_eq!(*ids.iter().min().unwrap(), 1);
    let max = *ids.iter().max().unwrap();
    drop((a, b));
    // "restart": a new process (new connection) continues above every earlier id
    let c = etcd_coord(&server, ns).await;
    let next = c.allocate_node_id().await.unwrap();
    assert_eq!(next, max + 1);
    // another cluster (namespace) has its own ids
    let other = etcd_coord(&server, "t/ids-other/").await;
    assert_eq!(other.allocate_node_id().await.unwrap(), 1);
}

#[tokio::test]
async fn node_id_counter_refuses_garbage() {
    let meta = MemoryMetaStore::default();
    meta.put(NODE_ID_KEY, b"not a number".to_vec())
        .await
        .unwrap();
    let e = allocate_node_id(&meta).await.unwrap_err();
    assert!(matches!(e, SessionError::Corrupted { .. }), "{e}");
}

#[tokio::test]
async fn local_sessions_leaders_and_fences() {
    let meta: Arc<dyn MetaStore> = Arc::new(MemoryMetaStore::default());
    let local = LocalCoordination::new(meta.clone());
    assert_eq!(local.allocate_node_id().await.unwrap(), 1);
    assert_eq!(local.allocate_node_id().await.unwrap(), 2);
    // a "restart" over the same store continues
    assert_eq!(
        LocalCoordination::new(meta.clone())
            .allocate_node_id()
            .await
            .unwrap(),
        3
    );

    let mut w = local.watch_sessions(Some(RoleKind::Query)).await.unwrap();
    let q = local.register(info(RoleKind::Query, 1)).await.unwrap();
    let d = local.register(info(RoleKind::Data, 2)).await.unwrap();
    assert_eq!(
        next_event(&mut w, Duration::from_secs(1)).await,
        SessionEvent::Added(info(RoleKind::Query, 1).with_time(q.info()))
    );
    assert_eq!(local.list_sessions(None).await.unwrap().len(), 2);
    assert!(!q.is_lost());
    q.revoke().await.unwrap();
    assert_eq!(
        next_event(&mut w, Duration::from_secs(1)).await,
        SessionEvent::Removed {
            role: RoleKind::Query,
            node_id: 1
        }
    );
    drop(d);
    assert!(local.list_sessions(None).await.unwrap().is_empty());

    // leader at once; a second candidate waits; resign hands over; fences work on the store
    let key = COORDINATOR_LEADER_KEY;
    let mut observed = local.watch_leader(key).await.unwrap();
    let first = local.campaign(key, b"1".to_vec()).await.unwrap();
    assert!(!first.is_lost());
    assert_eq!(
        local.current_leader(key).await.unwrap().unwrap().value,
        b"1"
    );
    let l2 = local.clone();
    let mut second = tokio::spawn(async move { l2.campaign(key, b"2".to_vec()).await });
    assert!(
        tokio::time::timeout(Duration::from_millis(200), &mut second)
            .await
            .is_err()
    );
    let f1 = first.fence().clone();
    first.resign().await.unwrap();
    let second = second.await.unwrap().unwrap();
    assert!(second.fence().revision > f1.revision);
    let put = |f: &Fence| {
        meta.txn(
            vec![f.condition()],
            vec![MetaOp::Put {
                key: "catalog/y".into(),
                value: vec![],
            }],
        )
    };
    assert!(!put(&f1).await.unwrap());
    assert!(put(second.fence()).await.unwrap());
    observed
        .wait_for(|l| l.as_ref().is_some_and(|l| l.value == b"2"))
        .await
        .unwrap();
    // dropping the guard frees the seat at once in one process
    drop(second);
    observed.wait_for(|l| l.is_none()).await.unwrap();
    let third = tokio::time::timeout(Duration::from_secs(1), local.campaign(key, b"3".to_vec()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(third.value(), b"3");
}

impl SessionInfo {
    fn with_time(mut self, other: &SessionInfo) -> SessionInfo {
        self.start_time_ms = other.start_time_ms;
        self
    }
}
