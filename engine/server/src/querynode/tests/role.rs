//! `ferrovus run query` as a process would run it: the role-process skeleton with a real etcd,
//! the coordinator (fake) found through the leader key and the channel owner over the internal
//! RPC, `/readyz` telling the truth, SIGTERM draining.

use ferrovus_core::store::ObjectStore;
use ferrovus_storage::testing::EtcdServer;
use ferrovus_storage::{EtcdMetaStore, LocalObjectStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::config::MetaKind;
use crate::node::{self, RoleKind};
use crate::rpc::{RpcPool, RpcServer, RpcServerConfig};
use crate::session::{COORDINATOR_LEADER_KEY, Coordination, EtcdCoordination, SessionEvent};
use crate::standalone::etcd_config;

/// `(status, body)` of a plain HTTP/1.0 GET.
async fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// Await `/readyz` answering `code` (the role mirrors the node's status asynchronously).
async fn readyz(addr: &str, code: u16, what: &str) {
    let r = tokio::time::timeout(Duration::from_secs(20), async {
        while http_get(addr, "/readyz").await.map(|r| r.0) != Some(code) {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(r.is_ok(), "{what}: {:?}", http_get(addr, "/readyz").await);
}

async fn serve(rpc: RpcServer) -> (crate::rpc::RunningRpcServer, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = rpc.spawn(listener).unwrap();
    let addr = server.local_addr().to_string();
    (server, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_query_role_process_loads_serves_over_rpc_and_drains() {
    let Some(etcd) = EtcdServer::start().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::default();
    cfg.meta.kind = MetaKind::Etcd;
    cfg.meta.etcd_endpoints = vec![etcd.endpoint()];
    cfg.meta.etcd_prefix = "t/query".into();
    cfg.data_dir = dir.path().to_path_buf();
    cfg.http.listen = "127.0.0.1".into();
    cfg.http.port = 0;
    cfg.grpc.listen = "127.0.0.1".into();
    cfg.cluster.internal_port = Some(0);
    cfg.query.sync_wait_ms = 1000;

    // The channel owner over RPC, on the object store the node will open.
    let objects: Arc<dyn ObjectStore> =
        Arc::new(LocalObjectStore::new(dir.path().join("objects")).unwrap());
    let owner = Owner::open(objects).await;
    owner.write(insert(0..10, 0)).await;
    let s1 = owner.flush().await.remove(0);
    owner.shard.release_sealed(&[s1.segment_id]).unwrap();
    owner.write(upsert([4], 1)).await;
    let mut rpc = RpcServer::new(RpcServerConfig::default());
    serve_streaming(&mut rpc, owner.clone());
    let (_owner_server, owner_addr) = serve(rpc).await;

    // The coordinator, leading.
    let coord = FakeCoord::new();
    *coord.owner_addr.lock() = owner_addr.clone();
    let mut rpc = RpcServer::new(RpcServerConfig::default());
    serve_coord(&mut rpc, coord.clone());
    let (_coord_server, coord_addr) = serve(rpc).await;
    let coordination = EtcdCoordination::new(
        EtcdMetaStore::connect(etcd_config(&cfg)).await.unwrap(),
        cfg.cluster.coordination(),
    );
    let _leading = coordination
        .campaign(COORDINATOR_LEADER_KEY, coord_addr.into_bytes())
        .await
        .unwrap();
    let mut sessions = coordination
        .watch_sessions(Some(RoleKind::Query))
        .await
        .unwrap();

    let role = node::available_role(RoleKind::Query).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let process = tokio::spawn(node::run(cfg, role, async move {
        let _ = stopped.await;
    }));
    let info = match tokio::time::timeout(Duration::from_secs(20), sessions.next())
        .await
        .expect("session registered")
    {
        Some(SessionEvent::Added(info)) => info,
        other => panic!("unexpected {other:?}"),
    };
    coord
        .until_report(info.node_id, "the node syncs", |r| {
            r.addr == info.grpc_address
        })
        .await;
    readyz(
        &info.http_address,
        200,
        "registered, nothing assigned: ready",
    )
    .await;

    // A segment is assigned: not ready until it is loaded (over RPC: deletes from the owner).
    owner.arm_gate();
    let ck = owner.checkpoint().await;
    coord.set_target(vec![collection(vec![])], vec![target(&s1, &ck)], vec![]);
    owner.gate.held.notified().await;
    readyz(&info.http_address, 503, "not ready while its segment loads").await;
    let (_, body) = http_get(&info.http_address, "/readyz").await.unwrap();
    assert!(body.contains("loading segments"), "{body}");
    owner.open_gate();
    coord.until_loaded(info.node_id, &[s1.segment_id]).await;
    readyz(&info.http_address, 200, "ready once its segment is loaded").await;
    let (_, metrics) = http_get(&info.http_address, "/metrics").await.unwrap();
    assert!(
        metrics.contains("ferrovus_querynode_segments_loaded 1"),
        "{metrics}"
    );

    // A worker read over the internal RPC.
    let pool = RpcPool::new(Default::default());
    let remote = RemoteQuery::new(pool.get(&info.grpc_address).unwrap());
    let got = remote
        .query_segments(SegmentsQueryReq {
            collection_id: CID,
            shard: 0,
            segment_ids: vec![s1.segment_id],
            snapshot: owner.applied(),
            channel: ChannelRoute {
                addr: owner_addr.clone(),
                ..route()
            },
            spec: query_spec("id >= 0", None),
        })
        .await
        .unwrap();
    let keys: Vec<i64> = got.rows.iter().map(|r| int(&r.pk)).collect();
    assert_eq!(
        keys,
        vec![0, 1, 2, 3, 5, 6, 7, 8, 9],
        "the upserted key's old row is hidden"
    );

    // SIGTERM: the node reports draining and waits for its segments to move.
    stop.send(()).unwrap();
    coord
        .until_report(info.node_id, "draining reported", |r| r.draining)
        .await;
    assert!(!process.is_finished());
    coord.set_target(vec![], vec![], vec![]);
    tokio::time::timeout(Duration::from_secs(20), process)
        .await
        .expect("the process stops once its segments moved")
        .unwrap()
        .unwrap();
}
