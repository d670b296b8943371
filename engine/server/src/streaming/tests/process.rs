//! `ferrovus run streaming` and `ferrovus run data` as real role processes ([`crate::node::run`])
//! against a real etcd: the coordinator (a fake, served over the internal RPC) found through
//! the leader key, `StreamingApi` served over the internal RPC, `/readyz` and `/metrics`,
//! SIGTERM with drain.

use std::sync::Arc;
use std::time::Duration;

use ferrovus_core::keys;
use ferrovus_core::request::{IndexSpec, IndexType, MetricType};
use ferrovus_core::segment::{SegmentData, SegmentMeta};
use ferrovus_core::store::ObjectStore;
use ferrovus_storage::testing::EtcdServer;
use ferrovus_storage::{EtcdMetaStore, LocalObjectStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::fake::*;
use super::{CH, query_spec, search_spec, write};
use crate::api::*;
use crate::config::{Config, MetaKind};
use crate::datanode::DataRole;
use crate::node::{self, RoleKind};
use crate::rpc::{ClusterError, RpcClient, RpcClientConfig, RpcServer};
use crate::session::{
    COORDINATOR_LEADER_KEY, Coordination, EtcdCoordination, LeaderGuard, SessionEvent, SessionInfo,
};
use crate::standalone::etcd_config;
use crate::streaming::StreamingRole;

fn process_config(etcd: &EtcdServer, dir: &std::path::Path, prefix: &str) -> Config {
    let mut cfg = Config::default();
    cfg.meta.kind = MetaKind::Etcd;
    cfg.meta.etcd_endpoints = vec![etcd.endpoint()];
    cfg.meta.etcd_prefix = prefix.into();
    cfg.data_dir = dir.to_path_buf();
    cfg.http.listen = "127.0.0.1".into();
    cfg.http.port = 0;
    cfg.grpc.listen = "127.0.0.1".into();
    cfg.cluster.internal_port = Some(0);
    cfg.core.seal_rows = usize::MAX;
    cfg.core.seal_bytes = usize::MAX;
    cfg.core.index_build_threads = 1;
    cfg.streaming.sync_wait_ms = 300;
    cfg.datanode.sync_wait_ms = 300;
    cfg.datanode.busy_sync_wait_ms = 50;
    cfg
}

/// `(status, body)` of a plain HTTP/1.0 GET, or `None` if nothing answers.
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

/// Poll `/readyz` until it answers `want` (readiness follows the node's state asynchronously).
async fn until_readyz(addr: &str, want: u16) {
    tokio::time::timeout(PATIENCE, async {
        loop {
            if http_get(addr, "/readyz").await.map(|r| r.0) == Some(want) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("/readyz never answered {want}"));
}

/// The fake coordinator served over the internal RPC and leading (its address in the leader
/// key), and a watch of the sessions of `role`.
async fn leading_coordinator(
    cfg: &Config,
    role: RoleKind,
) -> (
    Arc<FakeCoord>,
    crate::rpc::RunningRpcServer,
    LeaderGuard,
    crate::session::SessionWatch,
) {
    let coord = FakeCoord::new();
    let mut rpc = RpcServer::new(cfg.rpc_server_config());
    serve_coord(&mut rpc, coord.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = rpc.spawn(listener).unwrap();
    let coordination = EtcdCoordination::new(
        EtcdMetaStore::connect(etcd_config(cfg)).await.unwrap(),
        cfg.cluster.coordination(),
    );
    let leader = coordination
        .campaign(COORDINATOR_LEADER_KEY, addr.into_bytes())
        .await
        .unwrap();
    let sessions = coordination.watch_sessions(Some(role)).await.unwrap();
    (coord, server, leader, sessions)
}

async fn session_added(sessions: &mut crate::session::SessionWatch) -> SessionInfo {
    match tokio::time::timeout(PATIENCE, sessions.next())
        .await
        .expect("session registered")
    {
        Some(SessionEvent::Added(info)) => info,
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn the_streaming_role_process_serves_its_channels_over_the_internal_rpc() {
    let Some(etcd) = EtcdServer::start().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = process_config(&etcd, dir.path(), "t/streaming");
    let (coord, server, _leader, mut sessions) =
        leading_coordinator(&cfg, RoleKind::Streaming).await;
    let role = Arc::new(StreamingRole::new());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let process = tokio::spawn(node::run(cfg, role.clone(), async move {
        let _ = stopped.await;
    }));
    let info = session_added(&mut sessions).await;
    let id = info.node_id;
    coord
        .until_streaming(id, |r| r.addr == info.grpc_address)
        .await;
    until_readyz(&info.http_address, 200).await;

    coord.assign(CH, id, 1);
    coord
        .until_streaming(id, |r| r.channels.iter().any(|c| c.ready && c.term == 1))
        .await;
    until_readyz(&info.http_address, 200).await;

    let client = RemoteStreaming::new(
        RpcClient::new(&info.grpc_address, &RpcClientConfig::default()).unwrap(),
    );
    let ts = client.write(write(1, insert(1, 0..5))).await.unwrap();
    let e = client.write(write(2, insert(1, [9]))).await.unwrap_err();
    assert!(
        matches!(
            e,
            ClusterError::WrongTerm {
                expected: 1,
                got: 2,
                ..
            }
        ),
        "{e}"
    );
    let q = client
        .query(ChannelQueryReq {
            channel: CH,
            term: 1,
            spec: query_spec("id >= 0", None),
            exclude: vec![],
        })
        .await
        .unwrap();
    assert_eq!(
        (ints(q.rows.iter().map(|r| &r.pk)), q.snapshot),
        ((0..5).collect(), ts)
    );
    let s = client
        .search(ChannelSearchReq {
            channel: CH,
            term: 1,
            spec: search_spec(3, 2),
            exclude: vec![],
        })
        .await
        .unwrap();
    assert_eq!(s.hits[0][0].pk, ferrovus_core::value::PrimaryKey::Int(3));
    let sealed = client
        .flush(ChannelReq {
            channel: CH,
            term: 1,
        })
        .await
        .unwrap();
    assert_eq!(coord.commits().last().unwrap().new_segments, sealed);
    let (code, body) = http_get(&info.http_address, "/metrics").await.unwrap();
    assert_eq!(code, 200);
    assert!(
        body.contains("ferrovus_streaming_records_written_total 1"),
        "{body}"
    );
    assert!(
        body.contains("ferrovus_streaming_channels{state=\"ready\"}"),
        "{body}"
    );

    // SIGTERM: the node reports draining, serves until the channel moves, then exits.
    stop.send(()).unwrap();
    coord.until_streaming(id, |r| r.draining).await;
    client.write(write(1, insert(1, [20]))).await.unwrap();
    coord.unassign(CH);
    tokio::time::timeout(PATIENCE, process)
        .await
        .expect("the process stops once its channel moved")
        .unwrap()
        .unwrap();
    server.shutdown(Duration::from_secs(1)).await.unwrap();
}

#[tokio::test]
async fn the_data_role_process_runs_tasks_from_the_coordinator() {
    let Some(etcd) = EtcdServer::start().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = process_config(&etcd, dir.path(), "t/data");
    let (coord, server, _leader, mut sessions) = leading_coordinator(&cfg, RoleKind::Data).await;
    // A sealed segment in the process's object store (the local store under data_dir).
    let objects = LocalObjectStore::new(dir.path().join("objects")).unwrap();
    let schema = schema();
    let mut data = SegmentData::empty(&schema);
    let b = batch(0..30, 0);
    data.append(b.columns.iter().map(|(_, c)| c), 5);
    let meta = SegmentMeta::new(3, 1, 30, keys::segment_data(COLLECTION, 0, 3));
    objects
        .put(&meta.data_key, data.encode(3, 1, &schema).into())
        .await
        .unwrap();

    let role = Arc::new(DataRole::new());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let process = tokio::spawn(node::run(cfg, role.clone(), async move {
        let _ = stopped.await;
    }));
    let info = session_added(&mut sessions).await;
    until_readyz(&info.http_address, 200).await;
    let field_id = schema.field("v").unwrap().field_id;
    let key = keys::segment_index(COLLECTION, 0, 3, field_id, 4);
    coord.add_task(Task {
        id: 1,
        collection: collection(),
        shard: 0,
        kind: TaskKind::IndexBuild {
            segment: Box::new(meta),
            field_id,
            spec: IndexSpec {
                index_id: 4,
                index_name: "i".into(),
                field_id,
                field_name: "v".into(),
                index_type: IndexType::Hnsw,
                metric: MetricType::Ip,
                m: 8,
                ef_construction: 32,
                params: Default::default(),
            },
            index_key: key.clone(),
        },
    });
    let results = coord.until_results(|r| !r.is_empty()).await;
    assert!(results[0].outcome.is_ok(), "{results:?}");
    assert!(objects.exists(&key).await.unwrap());
    stop.send(()).unwrap();
    tokio::time::timeout(PATIENCE, process)
        .await
        .expect("the process stops")
        .unwrap()
        .unwrap();
    server.shutdown(Duration::from_secs(1)).await.unwrap();
}
