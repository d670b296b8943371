//! The role-process skeleton with a small real role, against a real etcd and loopback sockets.

use std::sync::Arc;
use std::time::Duration;

use ferrovus_storage::testing::EtcdServer;
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::*;
use crate::rpc::{RpcClient, RpcClientConfig};
use crate::session::SessionEvent;

/// A data-role stand-in: one handler, ready when the test says so, records its drain.
#[derive(Default)]
struct EchoRole {
    fail_start: bool,
    readiness: Mutex<Option<Readiness>>,
    grpc_address: Mutex<Option<String>>,
    /// The stop reason, and whether its own RPC server still answered during the drain.
    drained: Mutex<Option<(StopReason, bool)>>,
}

#[async_trait]
impl Role for EchoRole {
    fn kind(&self) -> RoleKind {
        RoleKind::Data
    }

    async fn start(&self, ctx: &mut RoleContext) -> Result<(), NodeError> {
        if self.fail_start {
            return Err(NodeError::Role {
                role: RoleKind::Data,
                message: "cannot start on purpose".into(),
            });
        }
        ctx.rpc
            .handle("data.echo", |s: String| async move { Ok(s) });
        ctx.readiness.set_not_ready("loading test data");
        *self.readiness.lock() = Some(ctx.readiness.clone());
        *self.grpc_address.lock() = Some(ctx.session.grpc_address.clone());
        Ok(())
    }

    async fn drain(&self, reason: StopReason) {
        let addr = self.grpc_address.lock().clone().unwrap_or_default();
        let served = match RpcClient::new(&addr, &RpcClientConfig::default()) {
            Ok(c) => c
                .call::<_, String>("data.echo", "draining")
                .await
                .is_ok_and(|s| s == "draining"),
            Err(_) => false,
        };
        *self.drained.lock() = Some((reason, served));
    }
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

fn node_config(etcd: &EtcdServer, dir: &std::path::Path, prefix: &str) -> Config {
    let mut cfg = Config::default();
    cfg.meta.kind = MetaKind::Etcd;
    cfg.meta.etcd_endpoints = vec![etcd.endpoint()];
    cfg.meta.etcd_prefix = prefix.into();
    cfg.data_dir = dir.to_path_buf();
    cfg.http.listen = "127.0.0.1".into();
    cfg.http.port = 0;
    cfg.grpc.listen = "127.0.0.1".into();
    cfg.cluster.internal_port = Some(0);
    cfg
}

#[tokio::test]
async fn a_role_process_starts_serves_and_stops_cleanly() {
    let Some(etcd) = EtcdServer::start().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = node_config(&etcd, dir.path(), "t/node");
    let observer = EtcdCoordination::new(
        EtcdMetaStore::connect(etcd_config(&cfg)).await.unwrap(),
        cfg.cluster.coordination(),
    );
    let mut sessions = observer.watch_sessions(Some(RoleKind::Data)).await.unwrap();

    let role = Arc::new(EchoRole::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let node = tokio::spawn(run(cfg, role.clone(), async move {
        let _ = stopped.await;
    }));

    let info = match tokio::time::timeout(Duration::from_secs(20), sessions.next())
        .await
        .expect("session registered")
    {
        Some(SessionEvent::Added(info)) => info,
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(info.role, RoleKind::Data);
    assert!(info.grpc_address.starts_with("127.0.0.1:"), "{info:?}");
    assert_eq!(info.version, env!("CARGO_PKG_VERSION"));

    // HTTP: alive, not ready (with the role's reason), metrics.
    assert_eq!(
        http_get(&info.http_address, "/healthz").await.unwrap().0,
        200
    );
    let (code, body) = http_get(&info.http_address, "/readyz").await.unwrap();
    assert_eq!(code, 503);
    assert!(body.contains("loading test data"), "{body}");
    let (code, body) = http_get(&info.http_address, "/metrics").await.unwrap();
    assert_eq!(code, 200);
    assert!(body.contains("ferrovus_"), "{body}");

    // Internal RPC: the built-in node.info and the role's handler.
    let client = RpcClient::new(&info.grpc_address, &RpcClientConfig::default()).unwrap();
    let me: NodeInfo = client.call(rpc::NODE_INFO, &()).await.unwrap();
    assert_eq!(
        me,
        NodeInfo {
            node_id: info.node_id,
            role: "data".into(),
            version: env!("CARGO_PKG_VERSION").into()
        }
    );
    let echo: String = client.call("data.echo", "hi").await.unwrap();
    assert_eq!(echo, "hi");

    // The role says ready.
    role.readiness.lock().clone().unwrap().set_ready();
    assert_eq!(
        http_get(&info.http_address, "/readyz").await.unwrap().0,
        200
    );

    // SIGTERM: drain while still serving, then the session goes at once (revoked, not expired).
    let stopping = Instant::now();
    stop.send(()).unwrap();
    match tokio::time::timeout(Duration::from_secs(10), sessions.next())
        .await
        .expect("session removed")
    {
        Some(SessionEvent::Removed { role, node_id }) => {
            assert_eq!((role, node_id), (RoleKind::Data, info.node_id));
        }
        other => panic!("unexpected {other:?}"),
    }
    node.await.unwrap().unwrap();
    assert!(stopping.elapsed() < Duration::from_secs(5));
    assert_eq!(*role.drained.lock(), Some((StopReason::Shutdown, true)));
    assert!(http_get(&info.http_address, "/healthz").await.is_none());
    let e = client
        .call::<_, NodeInfo>(rpc::NODE_INFO, &())
        .await
        .unwrap_err();
    assert!(matches!(e, ClusterError::Unavailable(_)), "{e}");

    // A restarted process gets a new node id.
    let dir2 = tempfile::tempdir().unwrap();
    let role2 = Arc::new(EchoRole::default());
    let (stop2, stopped2) = tokio::sync::oneshot::channel::<()>();
    let node2 = tokio::spawn(run(
        node_config(&etcd, dir2.path(), "t/node"),
        role2,
        async move {
            let _ = stopped2.await;
        },
    ));
    let deadline = Instant::now() + Duration::from_secs(20);
    let info2 = loop {
        if let Some(SessionEvent::Added(i)) =
            tokio::time::timeout(Duration::from_secs(20), sessions.next())
                .await
                .unwrap()
        {
            break i;
        }
        assert!(Instant::now() < deadline);
    };
    assert!(info2.node_id > info.node_id);
    stop2.send(()).unwrap();
    node2.await.unwrap().unwrap();
}

#[tokio::test]
async fn cluster_roles_need_etcd_and_report_a_failed_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config {
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    cfg.http.port = 0;
    let e = run(cfg, Arc::new(EchoRole::default()), std::future::pending())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("ferrovus run data") && e.contains("etcd"), "{e}");

    let Some(etcd) = EtcdServer::start().await else {
        return;
    };
    let role = Arc::new(EchoRole {
        fail_start: true,
        ..EchoRole::default()
    });
    let e = run(
        node_config(&etcd, dir.path(), "t/fail"),
        role,
        std::future::pending(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&e, NodeError::Role { role: RoleKind::Data, message } if message.contains("on purpose")),
        "{e}"
    );
}

#[test]
fn only_the_coordinator_role_is_available_yet() {
    let role = available_role(RoleKind::Coordinator).expect("the coordinator role");
    assert_eq!(role.kind(), RoleKind::Coordinator);
    for kind in RoleKind::ALL
        .into_iter()
        .filter(|k| *k != RoleKind::Coordinator)
    {
        assert!(available_role(kind).is_none(), "{kind}");
        let e = NodeError::RoleUnavailable(kind).to_string();
        assert!(e.contains(kind.as_str()) && e.contains("standalone"), "{e}");
    }
}
