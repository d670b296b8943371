//! `ferrovus run coordinator` as role processes (the node skeleton, real etcd, loopback
//! sockets): the leader is ready, the standby is ready as `standby`, a remote client reaches
//! the leader through the leader key's address and follows a takeover after SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use ferrovus_storage::EtcdMetaStore;
use ferrovus_storage::testing::EtcdServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::support::*;
use crate::api::*;
use crate::config::{Config, MetaKind};
use crate::coord::CoordinatorRole;
use crate::node::{RoleKind, run};
use crate::rpc::{RpcClientConfig, RpcPool};
use crate::session::{Coordination, EtcdCoordination, SessionEvent, SessionInfo};
use crate::standalone::etcd_config;

fn config(etcd: &EtcdServer, dir: &std::path::Path) -> Config {
    let mut cfg = Config::default();
    cfg.meta.kind = MetaKind::Etcd;
    cfg.meta.etcd_endpoints = vec![etcd.endpoint()];
    cfg.meta.etcd_prefix = "t/coord-role".into();
    cfg.data_dir = dir.to_path_buf();
    cfg.http.listen = "127.0.0.1".into();
    cfg.http.port = 0;
    cfg.grpc.listen = "127.0.0.1".into();
    cfg.cluster.internal_port = Some(0);
    cfg.cluster.session_ttl_ms = 2000;
    cfg.cluster.leader_ttl_ms = 2000;
    cfg.cluster.keepalive_interval_ms = 500;
    cfg.cluster.shutdown_grace_ms = 3000;
    cfg
}

async fn readyz(addr: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET /readyz HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = text.split_once("\r\n\r\n").unwrap().1.trim().to_string();
    (status, body)
}

async fn next_coordinator(w: &mut crate::session::SessionWatch) -> SessionInfo {
    loop {
        match tokio::time::timeout(Duration::from_secs(20), w.next())
            .await
            .expect("a coordinator registered")
        {
            Some(SessionEvent::Added(info)) if info.role == RoleKind::Coordinator => return info,
            Some(_) => continue,
            None => panic!("watch ended"),
        }
    }
}

#[tokio::test]
async fn coordinator_processes_lead_stand_by_and_hand_over_on_sigterm() {
    let Some(etcd) = EtcdServer::start().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&etcd, dir.path());
    let observer = Arc::new(EtcdCoordination::new(
        EtcdMetaStore::connect(etcd_config(&cfg)).await.unwrap(),
        cfg.cluster.coordination(),
    ));
    let mut sessions = observer
        .watch_sessions(Some(RoleKind::Coordinator))
        .await
        .unwrap();

    let (stop_a, stopped_a) = tokio::sync::oneshot::channel::<()>();
    let a = tokio::spawn(run(cfg.clone(), Arc::new(CoordinatorRole::new()), async {
        let _ = stopped_a.await;
    }));
    let info_a = next_coordinator(&mut sessions).await;
    let (stop_b, stopped_b) = tokio::sync::oneshot::channel::<()>();
    let b = tokio::spawn(run(cfg.clone(), Arc::new(CoordinatorRole::new()), async {
        let _ = stopped_b.await;
    }));
    let info_b = next_coordinator(&mut sessions).await;

    // A leads (the leader key holds its internal address), B stands by; both are ready.
    let who = observer.clone();
    let leader = eventually("a leads", || {
        let who = who.clone();
        async move {
            let l = who
                .current_leader(crate::session::COORDINATOR_LEADER_KEY)
                .await
                .ok()??;
            String::from_utf8(l.value).ok()
        }
    })
    .await;
    assert_eq!(leader, info_a.grpc_address);
    let addr_a = info_a.http_address.clone();
    eventually("a ready as leader", || {
        let addr_a = addr_a.clone();
        async move { (readyz(&addr_a).await == (200, "ready".into())).then_some(()) }
    })
    .await;
    assert_eq!(
        readyz(&info_b.http_address).await,
        (200, "standby".to_string())
    );

    // A remote client follows the leader key.
    let nodes = RemoteNodes::new(
        RpcPool::new(RpcClientConfig::default()),
        observer.clone(),
        Duration::from_secs(15),
    );
    let coord = nodes.coord();
    let rec = coord
        .create_collection(CreateCollectionReq {
            schema: schema("remote"),
            num_shards: 2,
            consistency: ferrovus_core::request::Consistency::Bounded,
            properties: Default::default(),
        })
        .await
        .unwrap();
    let ts = coord.alloc_ts(1).await.unwrap();

    // SIGTERM to A: it resigns, B takes over, the client follows without an error.
    let _ = stop_a.send(());
    a.await.unwrap().unwrap();
    let got = coord
        .describe_collection(NameReq {
            name: "remote".into(),
        })
        .await
        .unwrap();
    assert_eq!(got.id, rec.id);
    assert!(coord.alloc_ts(1).await.unwrap() > ts);
    assert_eq!(
        readyz(&info_b.http_address).await,
        (200, "ready".to_string())
    );

    let _ = stop_b.send(());
    b.await.unwrap().unwrap();
}
