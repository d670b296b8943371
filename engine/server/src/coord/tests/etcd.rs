//! Leadership against a real etcd (skipped with a notice when etcd is not installed, unless
//! FERROVUS_REQUIRE_EXTERNAL=1): a second coordinator is a ready standby answering
//! `NotLeader` with the leader's address and keeping a warm catalogue; it takes over when the
//! leader resigns and when the leader's lease expires; a deposed leader that still believes it
//! leads cannot write; timestamps keep growing across takeovers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrovus_core::store::MetaStore;
use ferrovus_core::store::memory::MemoryObjectStore;
use ferrovus_storage::EtcdMetaStore;
use ferrovus_storage::testing::EtcdServer;

use super::support::*;
use crate::api::*;
use crate::coord::{Coordinator, CoordinatorOptions};
use crate::http::Health;
use crate::node::Readiness;
use crate::rpc::ClusterError;
use crate::session::{COORDINATOR_LEADER_KEY, CoordinationConfig, EtcdCoordination};

fn fast() -> CoordinationConfig {
    CoordinationConfig {
        session_ttl: Duration::from_secs(2),
        leader_ttl: Duration::from_secs(2),
        keepalive_interval: Duration::from_millis(500),
    }
}

struct Node {
    coord: Arc<Coordinator>,
    health: Arc<Health>,
    store: EtcdMetaStore,
}

async fn node(server: &EtcdServer, ns: &str, addr: &str) -> Node {
    let store = EtcdMetaStore::connect(server.config(ns)).await.unwrap();
    let coordination = Arc::new(EtcdCoordination::new(store.clone(), fast()));
    let health = Arc::new(Health::default());
    let coord = Coordinator::start(CoordinatorOptions {
        meta: Arc::new(store.clone()),
        objects: Arc::new(MemoryObjectStore::default()),
        coordination,
        addr: addr.into(),
        config: crate::config::CoordinatorConfig {
            // Only the watch can bring the warm copy up to date within the tests' waits.
            standby_refresh_ms: 600_000,
            ..fast_config()
        },
        core: small_core(),
        metrics: None,
        readiness: Some(Readiness::new(health.clone())),
    });
    Node {
        coord,
        health,
        store,
    }
}

fn ready_note(n: &Node) -> (bool, String) {
    (
        n.health.ready.load(std::sync::atomic::Ordering::SeqCst),
        n.health.ready_note.read().clone(),
    )
}

async fn not_leader(c: &Coordinator) -> Option<String> {
    match c.alloc_ts(1).await {
        Err(ClusterError::NotLeader { leader }) => leader,
        other => panic!("expected NotLeader, got {other:?}"),
    }
}

#[tokio::test]
async fn standby_takes_over_on_resign_and_on_lease_expiry_and_the_deposed_cannot_write() {
    let Some(server) = EtcdServer::start().await else {
        return;
    };
    let ns = "t/coord/";
    let a = node(&server, ns, "10.0.0.1:19531").await;
    a.coord.wait_leading(Duration::from_secs(10)).await.unwrap();
    assert_eq!(ready_note(&a), (true, String::new()));
    let b = node(&server, ns, "10.0.0.2:19531").await;

    // B is a ready standby that names the leader.
    let bc = b.coord.clone();
    eventually("b knows the leader", || {
        let bc = bc.clone();
        async move { bc.leader_address().filter(|l| l == "10.0.0.1:19531") }
    })
    .await;
    assert_eq!(
        not_leader(&b.coord).await.as_deref(),
        Some("10.0.0.1:19531")
    );
    assert_eq!(ready_note(&b), (true, "standby".to_string()));
    let e = b
        .coord
        .create_collection(CreateCollectionReq {
            schema: schema("nope"),
            num_shards: 1,
            consistency: ferrovus_core::request::Consistency::Bounded,
            properties: Default::default(),
        })
        .await
        .unwrap_err();
    assert!(matches!(e, ClusterError::NotLeader { .. }), "{e}");

    // The leader writes; the standby's warm copy follows.
    a.coord
        .create_collection(CreateCollectionReq {
            schema: schema("c1"),
            num_shards: 2,
            consistency: ferrovus_core::request::Consistency::Bounded,
            properties: Default::default(),
        })
        .await
        .unwrap();
    let bc = b.coord.clone();
    eventually("warm copy", || {
        let bc = bc.clone();
        async move { (bc.catalog_names() == vec!["c1".to_string()]).then_some(()) }
    })
    .await;
    let ts_a = a.coord.alloc_ts(1).await.unwrap();

    // A resigns: B takes over at once, with the catalogue and later timestamps.
    let resigned = Instant::now();
    a.coord.shutdown(true).await;
    b.coord.wait_leading(Duration::from_secs(5)).await.unwrap();
    assert!(
        resigned.elapsed() < Duration::from_millis(1500),
        "{:?}",
        resigned.elapsed()
    );
    assert_eq!(ready_note(&b), (true, String::new()));
    let ts_b = b.coord.alloc_ts(1).await.unwrap();
    assert!(
        ts_b > ts_a,
        "TSO went backwards across the takeover: {ts_a} then {ts_b}"
    );
    let got = b
        .coord
        .describe_collection(NameReq { name: "c1".into() })
        .await
        .unwrap();
    assert_eq!(got.num_shards, 2);

    // C joins as standby; B "crashes" (stops renewing without resigning): C takes over once
    // B's lease expired.
    let c = node(&server, ns, "10.0.0.3:19531").await;
    assert!(matches!(
        c.coord.alloc_ts(1).await,
        Err(ClusterError::NotLeader { .. })
    ));
    let ts_b = b.coord.alloc_ts(1).await.unwrap();
    let crashed = Instant::now();
    b.coord.shutdown(false).await;
    c.coord.wait_leading(Duration::from_secs(10)).await.unwrap();
    let took = crashed.elapsed();
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_secs(8),
        "took over after {took:?}"
    );
    let ts_c = c.coord.alloc_ts(1).await.unwrap();
    assert!(ts_c > ts_b);

    // C is deposed behind its back: its key is deleted and D wins the election while C's
    // lease (and keep-alive) are still fine. C's next write fails, and C stops leading.
    let d = node(&server, ns, "10.0.0.4:19531").await;
    c.store.delete(COORDINATOR_LEADER_KEY).await.unwrap();
    d.coord.wait_leading(Duration::from_secs(10)).await.unwrap();
    let fenced = c.coord.current().expect("c still believes it leads");
    assert!(!fenced.is_stopped());
    let e = c
        .coord
        .create_collection(CreateCollectionReq {
            schema: schema("by_the_deposed"),
            num_shards: 1,
            consistency: ferrovus_core::request::Consistency::Bounded,
            properties: Default::default(),
        })
        .await
        .unwrap_err();
    assert!(matches!(e, ClusterError::NotLeader { .. }), "{e}");
    assert!(
        fenced.store.put("probe", b"x".to_vec()).await.is_err(),
        "the deposed leader's fenced store refuses every write"
    );
    let cc = c.coord.clone();
    eventually("c stepped down", || {
        let cc = cc.clone();
        async move { (!cc.is_leader()).then_some(()) }
    })
    .await;
    let names: Vec<String> = d
        .coord
        .list_collections(Empty {})
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(
        names,
        vec!["c1"],
        "nothing of the deposed leader's write landed"
    );
    let ts_d = d.coord.alloc_ts(1).await.unwrap();
    assert!(ts_d > ts_c);
    assert!(d.store.get("probe").await.unwrap().is_none());

    c.coord.shutdown(true).await;
    d.coord.shutdown(true).await;
}
