//! Against a real `etcd` process.

use std::sync::Arc;
use std::time::Duration;

use ferrovus_core::store::MetaStore;
use ferrovus_storage::testing::EtcdServer;
use ferrovus_storage::testing::conformance;
use ferrovus_storage::{EtcdMetaStore, WatchEvent, WatchEventKind};

/// Waits for the next events of a watch, failing the test after `secs`.
async fn next_events(watch: &mut ferrovus_storage::PrefixWatch, secs: u64) -> Vec<WatchEvent> {
    tokio::time::timeout(Duration::from_secs(secs), watch.next())
        .await
        .expect("watch event in time")
        .expect("watch ok")
        .expect("watch open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_conformance_and_namespaces() {
    crate::init_tracing();
    let Some(etcd) = EtcdServer::start().await else {
        return;
    };
    let a = EtcdMetaStore::connect(etcd.config("ferrovus/cluster-a/"))
        .await
        .unwrap();
    conformance::meta_store(Arc::new(a.clone())).await;

    // Namespaces isolate clusters; the raw keyspace shows the prefixes.
    let b = EtcdMetaStore::connect(etcd.config("ferrovus/cluster-b/"))
        .await
        .unwrap();
    let raw = EtcdMetaStore::connect(etcd.config("")).await.unwrap();
    a.put("k", b"a".to_vec()).await.unwrap();
    b.put("k", b"b".to_vec()).await.unwrap();
    assert_eq!(a.get("k").await.unwrap().unwrap().value, b"a");
    assert_eq!(b.list("").await.unwrap().len(), 1);
    let keys: Vec<String> = raw
        .list("ferrovus/")
        .await
        .unwrap()
        .into_iter()
        .map(|kv| kv.key)
        .collect();
    assert_eq!(keys, ["ferrovus/cluster-a/k", "ferrovus/cluster-b/k"]);

    // Listing pages through more keys than one range response holds, in order.
    let c = EtcdMetaStore::connect(etcd.config("ferrovus/cluster-c/"))
        .await
        .unwrap();
    for i in 0..1200 {
        c.put(&format!("n/{i:05}"), vec![0; 10]).await.unwrap();
    }
    let (all, revision) = c.list_with_revision("n/").await.unwrap();
    assert_eq!(all.len(), 1200);
    assert!(all.windows(2).all(|w| w[0].key < w[1].key));
    assert!(revision >= all.iter().map(|kv| kv.mod_revision).max().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_watch_prefix() {
    crate::init_tracing();
    let Some(etcd) = EtcdServer::start().await else {
        return;
    };
    let store = EtcdMetaStore::connect(etcd.config("ns/")).await.unwrap();
    let r0 = store.put("w/before", b"0".to_vec()).await.unwrap();
    let mut watch = store.watch_prefix("w/", None).await.unwrap();
    let r1 = store.put("w/a", b"1".to_vec()).await.unwrap();
    store.put("other", b"x".to_vec()).await.unwrap();
    store.delete("w/a").await.unwrap();
    let ev = next_events(&mut watch, 10).await;
    assert_eq!(ev.len(), 1);
    assert_eq!(
        (ev[0].kind, ev[0].kv.key.as_str(), ev[0].kv.value.as_slice()),
        (WatchEventKind::Put, "w/a", &b"1"[..])
    );
    assert_eq!(ev[0].kv.mod_revision, r1);
    let ev = next_events(&mut watch, 10).await;
    assert_eq!(
        (ev[0].kind, ev[0].kv.key.as_str()),
        (WatchEventKind::Delete, "w/a")
    );
    // From a past revision: replays history, no gap.
    let mut replay = store.watch_prefix("w/", Some(r0)).await.unwrap();
    let ev = next_events(&mut replay, 10).await;
    assert_eq!(ev[0].kv.key, "w/before");
}

/// Leader election: two contenders with leases, one wins; when the winner's lease dies (expiry
/// of an un-renewed TTL, then an explicit revoke) the other acquires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_lease_based_acquire() {
    crate::init_tracing();
    let Some(etcd) = EtcdServer::start().await else {
        return;
    };
    let a = EtcdMetaStore::connect(etcd.config("election/"))
        .await
        .unwrap();
    let b = EtcdMetaStore::connect(etcd.config("election/"))
        .await
        .unwrap();
    const KEY: &str = "coordinator/leader";

    let lease_a = a.grant_lease(2).await.unwrap();
    let lease_b = b.grant_lease(2).await.unwrap();
    let keep_a = a.keep_alive(lease_a).await.unwrap();
    let keep_b = b.keep_alive(lease_b).await.unwrap();

    let won = a.try_acquire(KEY, b"a".to_vec(), lease_a).await.unwrap();
    let rev_a = won.expect("first contender wins");
    assert_eq!(
        b.try_acquire(KEY, b"b".to_vec(), lease_b).await.unwrap(),
        None,
        "second loses"
    );
    let holder = b.get(KEY).await.unwrap().unwrap();
    assert_eq!(
        (holder.value.as_slice(), holder.mod_revision),
        (&b"a"[..], rev_a)
    );

    // Keep-alives hold the key well past the TTL.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!keep_a.is_lost());
    assert_eq!(
        b.get(KEY).await.unwrap().unwrap().value,
        b"a",
        "renewed lease keeps the key"
    );

    // The winner dies: its keep-alives stop and the key vanishes once the TTL runs out.
    let mut watch = b.watch_prefix(KEY, Some(rev_a + 1)).await.unwrap();
    drop(keep_a);
    let ev = loop {
        let ev = next_events(&mut watch, 15).await;
        if let Some(e) = ev.into_iter().find(|e| e.kind == WatchEventKind::Delete) {
            break e;
        }
    };
    assert_eq!(ev.kv.key, KEY);
    assert_eq!(
        a.lease_ttl(lease_a).await.unwrap(),
        None,
        "the lease expired"
    );
    let rev_b = b
        .try_acquire(KEY, b"b".to_vec(), lease_b)
        .await
        .unwrap()
        .expect("the other acquires");
    assert!(rev_b > rev_a);

    // Revoking the holder's lease frees the key at once, and its keep-alive reports it lost.
    let lease_a2 = a.grant_lease(5).await.unwrap();
    let mut keep_b = keep_b;
    assert_eq!(
        a.try_acquire(KEY, b"a".to_vec(), lease_a2).await.unwrap(),
        None
    );
    b.revoke_lease(lease_b).await.unwrap();
    b.revoke_lease(lease_b)
        .await
        .expect("revoking twice is fine");
    assert!(
        a.try_acquire(KEY, b"a".to_vec(), lease_a2)
            .await
            .unwrap()
            .is_some()
    );
    tokio::time::timeout(Duration::from_secs(10), keep_b.lost())
        .await
        .expect("keep-alive notices the revoke");
    assert!(keep_b.is_lost());

    // put_with_lease: the key lives and dies with the lease.
    let lease = a.grant_lease(5).await.unwrap();
    a.put_with_lease("member/a", b"addr".to_vec(), lease)
        .await
        .unwrap();
    assert!(a.get("member/a").await.unwrap().is_some());
    a.revoke_lease(lease).await.unwrap();
    assert_eq!(a.get("member/a").await.unwrap(), None);
    assert!(
        a.keep_alive(lease).await.is_err(),
        "keep-alive of a dead lease fails"
    );
}

/// The store rides through an etcd restart: calls fail over to retries until it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_reconnects_after_restart() {
    crate::init_tracing();
    let Some(mut etcd) = EtcdServer::start().await else {
        return;
    };
    let store = EtcdMetaStore::connect(etcd.config("r/")).await.unwrap();
    let r1 = store.put("k", b"1".to_vec()).await.unwrap();

    etcd.restart().await;
    assert_eq!(
        store.get("k").await.unwrap().unwrap().mod_revision,
        r1,
        "data survived the restart"
    );
    let r2 = store.put("k", b"2".to_vec()).await.unwrap();
    assert!(r2 > r1);

    // Down while a call starts: the call retries until etcd is back.
    etcd.kill();
    let pending = {
        let store = store.clone();
        tokio::spawn(async move { store.get("k").await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    etcd.restart().await;
    let got = pending
        .await
        .unwrap()
        .expect("get retried across the outage");
    assert_eq!(got.unwrap().value, b"2");

    // A transaction on the reconnected channel.
    etcd.restart().await;
    let ok = store
        .txn(
            vec![ferrovus_core::store::MetaCondition::ModRevision {
                key: "k".into(),
                revision: r2,
            }],
            vec![ferrovus_core::store::MetaOp::Put {
                key: "k".into(),
                value: b"3".to_vec(),
            }],
        )
        .await
        .unwrap();
    assert!(ok);
}
