//! `ferrovus run proxy` as a process: a real etcd, the other roles' fakes served over the real
//! internal RPC (the coordinator found through the leader key), a Milvus client on the proxy's
//! port; draining lets an in-flight request finish.

use std::sync::Arc;
use std::time::Duration;

use ferrovus_core::request::OutputColumn;
use ferrovus_proto::MilvusServiceClient;
use ferrovus_proto::common::StateCode;
use ferrovus_proto::milvus as pm;
use ferrovus_proto::{codes, status};
use ferrovus_storage::EtcdMetaStore;
use ferrovus_storage::testing::EtcdServer;
use prost::Message;

use super::fakes::{FakeCoord, FakeQuery, FakeStreaming};
use super::*;
use crate::api::serve_all;
use crate::cluster::ProxyRole;
use crate::config::{Config, MetaKind};
use crate::convert::{column_to_field_data, kv, schema_to_proto};
use crate::node;
use crate::rpc::{RpcServer, RpcServerConfig};
use crate::session::{COORDINATOR_LEADER_KEY, Coordination, EtcdCoordination};
use crate::standalone::etcd_config;

fn proxy_config(etcd: &EtcdServer, dir: &std::path::Path) -> Config {
    let mut cfg = Config::default();
    cfg.meta.kind = MetaKind::Etcd;
    cfg.meta.etcd_endpoints = vec![etcd.endpoint()];
    cfg.meta.etcd_prefix = "t/proxy".into();
    cfg.data_dir = dir.to_path_buf();
    cfg.http.listen = "127.0.0.1".into();
    cfg.http.port = 0;
    cfg.grpc.listen = "127.0.0.1".into();
    cfg.grpc.port = 0;
    cfg.cluster.internal_port = Some(0);
    cfg
}

fn field(name: &str, column: Column) -> ferrovus_proto::schema::FieldData {
    column_to_field_data(&OutputColumn {
        name: name.into(),
        field_id: 0,
        data_type: match &column {
            Column::Int(_) => DataType::Int64,
            _ => DataType::FloatVector,
        },
        is_dynamic: false,
        column,
    })
}

#[tokio::test]
async fn the_proxy_role_serves_milvus_over_the_cluster_and_drains() {
    let Some(etcd) = EtcdServer::start().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = proxy_config(&etcd, dir.path());

    // The other roles: fakes behind one internal RPC server, the coordinator leading.
    let coord = Arc::new(FakeCoord::default());
    let streaming = Arc::new(FakeStreaming::default());
    let query = Arc::new(FakeQuery::new(coord.clone(), streaming.clone()));
    let mut rpc = RpcServer::new(RpcServerConfig::default());
    serve_all(
        &mut rpc,
        Some(coord.clone()),
        Some(streaming.clone()),
        Some(query.clone()),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fakes = rpc.spawn(listener).unwrap();
    let fakes_addr = fakes.local_addr().to_string();
    coord.set_node_addr(&fakes_addr);
    let coordination = EtcdCoordination::new(
        EtcdMetaStore::connect(etcd_config(&cfg)).await.unwrap(),
        cfg.cluster.coordination(),
    );
    let _leading = coordination
        .campaign(COORDINATOR_LEADER_KEY, fakes_addr.clone().into_bytes())
        .await
        .unwrap();

    let role = Arc::new(ProxyRole::new());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let node = tokio::spawn(node::run(cfg, role.clone(), async move {
        let _ = stopped.await;
    }));
    let addr = role.milvus_address().await;
    role.backend().unwrap().coordinator_reached().await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = MilvusServiceClient::new(channel);

    let states = client
        .get_component_states(pm::GetComponentStatesRequest::default())
        .await
        .unwrap()
        .into_inner();
    let me = states.state.unwrap();
    assert_eq!(me.role, "proxy");
    assert_eq!(me.state_code, StateCode::Healthy as i32);
    assert!(me.node_id > 0);
    let info = client
        .connect(pm::ConnectRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.server_info.unwrap().deploy_mode, "CLUSTER");

    // DDL, a write and a read, through the coordinator, the channel owner and a delegator.
    let st = client
        .create_collection(pm::CreateCollectionRequest {
            collection_name: "c".into(),
            schema: schema_to_proto(&schema("c", false)).encode_to_vec(),
            shards_num: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(status::is_success(&st), "{st:?}");
    let ins = client
        .insert(pm::InsertRequest {
            collection_name: "c".into(),
            fields_data: vec![
                field("id", Column::Int(vec![1, 2, 3])),
                field(
                    "v",
                    Column::FloatVector {
                        dim: 2,
                        data: vec![1.0, 0.0, 2.0, 0.0, 3.0, 0.0],
                    },
                ),
                field("n", Column::Int(vec![10, 20, 30])),
            ],
            num_rows: 3,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(status::is_success(ins.status.as_ref().unwrap()), "{ins:?}");
    assert_eq!(ins.insert_cnt, 3);
    let not_loaded = client
        .query(pm::QueryRequest {
            collection_name: "c".into(),
            expr: "id > 1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        not_loaded.status.unwrap().code,
        codes::COLLECTION_NOT_LOADED
    );
    let st = client
        .load_collection(pm::LoadCollectionRequest {
            collection_name: "c".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(status::is_success(&st), "{st:?}");
    let q = pm::QueryRequest {
        collection_name: "c".into(),
        expr: "id > 1".into(),
        output_fields: vec!["n".into()],
        query_params: vec![kv("limit", "10")],
        ..Default::default()
    };
    let res = client.query(q.clone()).await.unwrap().into_inner();
    assert!(status::is_success(res.status.as_ref().unwrap()), "{res:?}");
    assert_eq!(res.output_fields, ["id", "n"]);

    // Drain: a query in flight when the stop comes still gets its answer.
    let hold = query.hold_queries();
    let mut in_flight_client = client.clone();
    let in_flight = tokio::spawn(async move { in_flight_client.query(q).await });
    hold.entered.notified().await;
    stop.send(()).unwrap();
    hold.release();
    let res = in_flight.await.unwrap().unwrap().into_inner();
    assert!(status::is_success(res.status.as_ref().unwrap()), "{res:?}");
    tokio::time::timeout(Duration::from_secs(20), node)
        .await
        .expect("the proxy stops")
        .unwrap()
        .unwrap();
    // The node's future owned the listener: it has returned, so the socket is closed. (Probing
    // the port would race with other tests' servers binding the freed port.)
    fakes.shutdown(Duration::from_secs(1)).await.unwrap();
}
