//! Internal RPC over real tonic on loopback.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

use super::*;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct EchoReq {
    text: String,
    n: u64,
    #[serde(with = "serde_bytes")]
    vectors: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct EchoResp {
    text: String,
    n: u64,
    len: u64,
    #[serde(with = "serde_bytes")]
    vectors: Vec<u8>,
}

/// The same request as a newer node would send it: one more field.
#[derive(Debug, Clone, Serialize)]
struct EchoReqV2 {
    text: String,
    extra: Vec<String>,
    n: u64,
    #[serde(with = "serde_bytes")]
    vectors: Vec<u8>,
}

fn echo_server(max_message_bytes: usize) -> RpcServer {
    let mut s = RpcServer::new(RpcServerConfig {
        max_message_bytes,
        ..RpcServerConfig::default()
    });
    s.handle("test.echo", |r: EchoReq| async move {
        Ok(EchoResp {
            len: r.vectors.len() as u64,
            text: r.text,
            n: r.n + 1,
            vectors: r.vectors,
        })
    })
    .handle("test.fail", |r: EchoReq| async move {
        Err::<EchoResp, _>(ClusterError::WrongTerm {
            channel: r.text,
            expected: 7,
            got: r.n,
        })
    })
    .handle("test.core_fail", |_: ()| async move {
        Err::<(), _>(ClusterError::from(
            ferrovus_core::CoreError::CollectionNotFound("c1".into()),
        ))
    })
    .handle("test.panic", |_: ()| async move {
        if std::hint::black_box(true) {
            panic!("boom");
        }
        Ok(())
    })
    .handle("test.hang", |_: ()| async move {
        std::future::pending::<()>().await;
        Ok(())
    });
    s
}

async fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.unwrap()
}

fn client(addr: std::net::SocketAddr) -> RpcClient {
    RpcClient::new(
        &addr.to_string(),
        &RpcClientConfig {
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(2),
            max_message_bytes: 64 * 1024 * 1024,
            secret: None,
        },
    )
    .unwrap()
}

fn req(text: &str, n: u64) -> EchoReq {
    EchoReq {
        text: text.into(),
        n,
        vectors: vec![1, 2, 3],
    }
}

#[test]
fn bodies_tolerate_added_fields() {
    let v2 = EchoReqV2 {
        text: "hi".into(),
        extra: vec!["x".into()],
        n: 3,
        vectors: vec![9; 5],
    };
    let v1: EchoReq = decode(&encode(&v2).unwrap()).unwrap();
    assert_eq!(
        v1,
        EchoReq {
            text: "hi".into(),
            n: 3,
            vectors: vec![9; 5]
        }
    );
    // raw bytes are a MessagePack bin, not an array of numbers: ~1 byte per byte
    let big = EchoReq {
        text: String::new(),
        n: 0,
        vectors: vec![200; 10_000],
    };
    assert!(encode(&big).unwrap().len() < 10_100);
    let e = decode::<EchoReq>(b"\xc1garbage").unwrap_err();
    assert!(
        matches!(&e, ClusterError::InvalidArgument { field, .. } if field == "body"),
        "{e}"
    );
}

#[tokio::test]
async fn round_trip_errors_and_unknown_methods() {
    let server = echo_server(1 << 20).spawn(listener().await).unwrap();
    let c = client(server.local_addr());

    let r: EchoResp = c.call("test.echo", &req("hello", 41)).await.unwrap();
    assert_eq!(
        r,
        EchoResp {
            text: "hello".into(),
            n: 42,
            len: 3,
            vectors: vec![1, 2, 3]
        }
    );
    // a newer caller's request with an extra field is understood
    let r: EchoResp = c
        .call(
            "test.echo",
            &EchoReqV2 {
                text: "v2".into(),
                extra: vec![],
                n: 1,
                vectors: vec![],
            },
        )
        .await
        .unwrap();
    assert_eq!((r.text.as_str(), r.n), ("v2", 2));

    let e = c
        .call::<_, EchoResp>("test.fail", &req("7/0", 3))
        .await
        .unwrap_err();
    assert_eq!(
        e,
        ClusterError::WrongTerm {
            channel: "7/0".into(),
            expected: 7,
            got: 3
        }
    );
    assert!(e.is_retriable());

    let e = c.call::<_, ()>("test.core_fail", &()).await.unwrap_err();
    assert_eq!(e, ClusterError::CollectionNotFound("c1".into()));
    assert_eq!(e.milvus_code(), ferrovus_proto::codes::COLLECTION_NOT_FOUND);

    let e = c.call::<_, ()>("test.nope", &()).await.unwrap_err();
    assert_eq!(
        e,
        ClusterError::UnknownMethod {
            method: "test.nope".into()
        }
    );
    assert!(!e.is_retriable() && e.to_string().contains("test.nope"));

    // a body of the wrong type
    let e = c
        .call::<_, EchoResp>("test.echo", &"text")
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ClusterError::InvalidArgument { field, .. } if field == "body"),
        "{e}"
    );

    // a panicking handler answers Internal and the server keeps serving
    let e = c.call::<_, ()>("test.panic", &()).await.unwrap_err();
    assert!(
        matches!(&e, ClusterError::Internal(m) if m.contains("boom") && m.contains("test.panic")),
        "{e}"
    );
    let r: EchoResp = c.call("test.echo", &req("again", 0)).await.unwrap();
    assert_eq!(r.n, 1);

    server.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn duplicate_methods_are_refused() {
    let mut s = echo_server(1024);
    s.handle("test.echo", |_: ()| async { Ok(()) });
    let e = s.spawn(listener().await).unwrap_err();
    assert!(
        matches!(&e, ClusterError::Conflict(m) if m.contains("test.echo")),
        "{e}"
    );
}

#[tokio::test]
async fn a_call_times_out_as_unavailable() {
    let server = echo_server(1 << 20).spawn(listener().await).unwrap();
    let c = client(server.local_addr());
    let started = Instant::now();
    let e = c
        .call_with_timeout::<_, ()>("test.hang", &(), Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ClusterError::Unavailable(m) if m.contains("test.hang")),
        "{e}"
    );
    assert!(e.is_retriable());
    assert!(started.elapsed() < Duration::from_secs(3));
    // the connection is still usable
    let r: EchoResp = c.call("test.echo", &req("x", 1)).await.unwrap();
    assert_eq!(r.n, 2);
    // the hung handler must not hold up shutdown forever
    server.shutdown(Duration::from_secs(2)).await.unwrap();
}

#[tokio::test]
async fn server_gone_is_unavailable_and_the_client_recovers_on_the_same_port() {
    let l = listener().await;
    let addr = l.local_addr().unwrap();
    let server = echo_server(1 << 20).spawn(l).unwrap();
    let c = client(addr);
    let _: EchoResp = c.call("test.echo", &req("up", 0)).await.unwrap();
    server.shutdown(Duration::from_secs(5)).await.unwrap();

    let e = c
        .call::<_, EchoResp>("test.echo", &req("down", 0))
        .await
        .unwrap_err();
    assert!(matches!(e, ClusterError::Unavailable(_)), "{e}");
    assert!(e.is_retriable());

    // never-started peer: also Unavailable
    let dead = RpcClient::new(&addr.to_string(), &RpcClientConfig::default()).unwrap();
    let e = dead
        .call::<_, EchoResp>("test.echo", &req("x", 0))
        .await
        .unwrap_err();
    assert!(matches!(e, ClusterError::Unavailable(_)), "{e}");

    // a new server on the same port: the same client gets through again
    let server = echo_server(1 << 20)
        .spawn(TcpListener::bind(addr).await.unwrap())
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let r = loop {
        match c.call::<_, EchoResp>("test.echo", &req("back", 1)).await {
            Ok(r) => break r,
            Err(e) if Instant::now() < deadline => {
                assert!(matches!(e, ClusterError::Unavailable(_)), "{e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("client did not recover: {e}"),
        }
    };
    assert_eq!(r.text, "back");
    server.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn large_payloads_and_the_size_limit() {
    let limit = 40 * 1024 * 1024;
    let server = echo_server(limit).spawn(listener().await).unwrap();
    let c = client(server.local_addr());
    // 32 MiB of little-endian f32s
    let floats: Vec<f32> = (0..8 * 1024 * 1024).map(|i| i as f32 * 0.5).collect();
    let bytes: Vec<u8> = floats.iter().flat_map(|f| f.to_le_bytes()).collect();
    let r: EchoResp = c
        .call(
            "test.echo",
            &EchoReq {
                text: "big".into(),
                n: 0,
                vectors: bytes.clone(),
            },
        )
        .await
        .unwrap();
    assert_eq!(r.len, bytes.len() as u64);
    assert!(r.vectors == bytes, "payload changed in transit");

    let e = c
        .call::<_, EchoResp>(
            "test.echo",
            &EchoReq {
                text: "too big".into(),
                n: 0,
                vectors: vec![0; limit + 1],
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ClusterError::InvalidArgument { field, .. } if field == "message"),
        "{e}"
    );
    server.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn shutdown_lets_in_flight_calls_finish() {
    let entered = Arc::new(Notify::new());
    let (release_tx, release_rx) = oneshot::channel::<()>();
    let release_rx = Arc::new(parking_lot::Mutex::new(Some(release_rx)));
    let mut s = RpcServer::new(RpcServerConfig::default());
    let e2 = entered.clone();
    s.handle("test.slow", move |n: u64| {
        let entered = e2.clone();
        let gate = release_rx.lock().take();
        async move {
            entered.notify_one();
            if let Some(gate) = gate {
                let _ = gate.await;
            }
            Ok(n * 2)
        }
    });
    let server = s.spawn(listener().await).unwrap();
    let c = client(server.local_addr());
    let call = tokio::spawn(async move { c.call::<_, u64>("test.slow", &21u64).await });
    entered.notified().await;
    let stopping = tokio::spawn(server.shutdown(Duration::from_secs(10)));
    // the server is draining, not done: the call is still running
    tokio::task::yield_now().await;
    assert!(!stopping.is_finished());
    release_tx.send(()).unwrap();
    assert_eq!(call.await.unwrap().unwrap(), 42);
    stopping.await.unwrap().unwrap();
}

#[tokio::test]
async fn the_pool_shares_one_client_per_address() {
    let server = echo_server(1 << 20).spawn(listener().await).unwrap();
    let pool = RpcPool::new(RpcClientConfig::default());
    let addr = server.local_addr().to_string();
    let a = pool.get(&addr).unwrap();
    let b = pool.get(&addr).unwrap();
    assert_eq!(a.addr(), b.addr());
    assert_eq!(pool.addresses(), vec![addr.clone()]);
    let r: EchoResp = b.call("test.echo", &req("pooled", 0)).await.unwrap();
    assert_eq!(r.text, "pooled");
    pool.forget(&addr);
    assert!(pool.addresses().is_empty());
    assert!(matches!(
        pool.get("http://x:1/"),
        Err(ClusterError::InvalidArgument { .. })
    ));
    server.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn a_cluster_secret_is_required_of_every_caller() {
    let mut s = RpcServer::new(RpcServerConfig {
        secret: Some("s3cret-of-this-cluster".into()),
        ..RpcServerConfig::default()
    });
    s.handle("test.echo", |r: EchoReq| async move {
        Ok(EchoResp {
            len: 0,
            text: r.text,
            n: r.n,
            vectors: vec![],
        })
    });
    let server = s.spawn(listener().await).unwrap();
    let addr = server.local_addr().to_string();
    let with = |secret: Option<&str>| {
        RpcClient::new(
            &addr,
            &RpcClientConfig {
                secret: secret.map(Into::into),
                ..RpcClientConfig::default()
            },
        )
        .unwrap()
    };
    let ok: EchoResp = with(Some("s3cret-of-this-cluster"))
        .call("test.echo", &req("hi", 1))
        .await
        .unwrap();
    assert_eq!(ok.text, "hi");
    for bad in [None, Some("guess"), Some("s3cret-of-this-cluster ")] {
        let e = with(bad)
            .call::<_, EchoResp>("test.echo", &req("hi", 1))
            .await
            .unwrap_err();
        assert!(!e.is_retriable(), "{e}");
        let text = e.to_string();
        assert!(
            text.contains("cluster") && text.contains("secret") && text.contains("test.echo"),
            "{text}"
        );
    }
    server.shutdown(Duration::from_secs(5)).await.unwrap();
}
