//! Reads through the proxy: shards merged by metric / key order with offset and limit, replica
//! rotation and fail-over, no partial results, load checks.

use std::time::Duration;

use ferrovus_core::CoreError;
use ferrovus_core::plan::shard_of;
use ferrovus_core::request::MetricType;
use ferrovus_core::value::PrimaryKey;
use ferrovus_proto::codes;

use super::*;
use crate::error::ApiError;
use crate::rpc::ClusterError;

fn pks(v: &[PrimaryKey]) -> Vec<i64> {
    v.iter()
        .map(|k| match k {
            PrimaryKey::Int(i) => *i,
            PrimaryKey::Str(s) => panic!("an int key, got {s}"),
        })
        .collect()
}

async fn loaded(shards: usize, replicas: u32, n: i64) -> Harness {
    let h = harness_with(config(Duration::from_millis(300)));
    h.collection("c", shards, replicas).await;
    let ids: Vec<i64> = (0..n).collect();
    h.proxy.insert("c", "", rows(&ids, true)).await.unwrap();
    h
}

#[tokio::test]
async fn searches_merge_the_shards_by_metric_with_offset_and_limit() {
    let h = loaded(3, 1, 50).await;
    // L2 to [10.2, 0]: 10, 11, 9, 12, 8, 13, 7, 14, ...; skip 2, keep 5.
    let res = h
        .proxy
        .search(search("c", [10.2, 0.0], 5, 2))
        .await
        .unwrap();
    assert_eq!((res.num_queries, res.topk), (1, 5));
    assert_eq!(pks(&res.ids[0]), [9, 12, 8, 13, 7]);
    assert!(res.scores[0].windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(res.fields.len(), 1);
    assert_eq!(res.fields[0].name, "n");
    assert_eq!(int_column(&res.fields[0].column), [0, 0, 2, 1, 1]);
    // Every shard was asked for limit + offset hits.
    let mut shards: Vec<u32> = h.query.calls().iter().map(|(_, s)| *s).collect();
    shards.sort();
    assert_eq!(shards, [0, 1, 2]);

    // Two queries, inner product (higher is better), a filter.
    let mut r = search("c", [1.0, 0.0], 3, 0);
    r.vectors.extend([-1.0, 0.0]);
    r.num_queries = 2;
    r.metric = Some(MetricType::Ip);
    r.filter = "n != 0".into();
    let res = h.proxy.search(r).await.unwrap();
    assert_eq!(pks(&res.ids[0]), [49, 47, 46]);
    assert_eq!(pks(&res.ids[1]), [1, 2, 4]);
    assert_eq!(int_column(&res.fields[0].column), [1, 2, 1, 1, 2, 1]);

    // Bad requests get the standalone errors before any node is asked.
    let calls = h.query.calls().len();
    let e = h
        .proxy
        .search(search("c", [1.0, 0.0], 0, 0))
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid limit: topk (limit) should be in range [1, 16384], but got 0"
    );
    let mut r = search("c", [1.0, 0.0], 3, 0);
    r.vectors.push(1.0);
    let e = h.proxy.search(r).await.unwrap_err();
    assert_eq!(e.to_string(), "the vector field v expects dim 2, got 3");
    assert_eq!(h.query.calls().len(), calls);
}

#[tokio::test]
async fn queries_merge_in_key_order_with_offset_and_limit() {
    let h = loaded(3, 1, 50).await;
    let res = h
        .proxy
        .query(query("c", "id >= 5", Some(7), 3))
        .await
        .unwrap();
    assert_eq!(res.num_rows, 7);
    assert_eq!(res.fields[0].name, "id", "the primary key comes first");
    assert_eq!(
        int_column(&res.fields[0].column),
        (8..15).collect::<Vec<_>>()
    );
    assert_eq!(
        int_column(&res.fields[1].column),
        (8..15).map(|i| i % 3).collect::<Vec<_>>()
    );

    let mut count = query("c", "n == 2", None, 0);
    count.output_fields = vec!["count(*)".into()];
    let res = h.proxy.query(count).await.unwrap();
    assert_eq!(res.count, Some(16));

    // A key lookup only asks the shards owning the keys.
    let before = h.query.calls().len();
    let res = h
        .proxy
        .query(query("c", "id in [3, 4]", None, 0))
        .await
        .unwrap();
    assert_eq!(int_column(&res.fields[0].column), [3, 4]);
    let mut asked: Vec<u32> = h.query.calls()[before..].iter().map(|c| c.1).collect();
    asked.sort();
    let mut owners: Vec<u32> = [3, 4]
        .iter()
        .map(|k| shard_of(&PrimaryKey::Int(*k), 3) as u32)
        .collect();
    owners.sort();
    owners.dedup();
    assert_eq!(asked, owners);

    let e = h.proxy.query(query("c", "", None, 0)).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid expr: empty expression should be used with limit"
    );
}

#[tokio::test]
async fn replicas_take_turns() {
    let h = loaded(2, 2, 20).await;
    for _ in 0..4 {
        h.proxy.search(search("c", [0.0, 0.0], 3, 0)).await.unwrap();
    }
    let calls = h.query.calls();
    assert_eq!(calls.len(), 8);
    for replica in [1, 2] {
        assert!(
            calls.iter().filter(|(r, _)| *r == replica).count() >= 2,
            "{calls:?}"
        );
    }
}

#[tokio::test]
async fn a_failed_replica_is_retried_on_another_at_once() {
    let h = loaded(2, 2, 20).await;
    for shard in 0..2 {
        h.query.fail(
            1,
            shard,
            ClusterError::Unavailable("node 11 is gone".into()),
        );
    }
    for _ in 0..4 {
        let res = h.proxy.search(search("c", [3.1, 0.0], 3, 0)).await.unwrap();
        assert_eq!(pks(&res.ids[0]), [3, 4, 2]);
        let res = h.proxy.query(query("c", "id < 4", None, 0)).await.unwrap();
        assert_eq!(int_column(&res.fields[0].column), [0, 1, 2, 3]);
    }
    // Every read that went to replica 1 was answered by replica 2 for the same shard next.
    let calls = h.query.calls();
    for (i, (replica, shard)) in calls.iter().enumerate() {
        if *replica == 1 {
            assert!(calls[i + 1..].contains(&(2, *shard)), "{calls:?}");
        }
    }
    assert!(h.proxy.metrics().retries_of("search") > 0);
    assert!(h.proxy.metrics().retries_of("query") > 0);
}

#[tokio::test]
async fn no_partial_result_when_every_replica_of_a_shard_fails() {
    let h = loaded(2, 2, 20).await;
    for replica in [1, 2] {
        h.query.fail(
            replica,
            1,
            ClusterError::NotServing("shard 1 has no delegator".into()),
        );
    }
    let routes = h.coord.calls("routes");
    let e = h
        .proxy
        .search(search("c", [3.1, 0.0], 3, 0))
        .await
        .unwrap_err();
    assert!(matches!(e, ApiError::Cluster(_)), "{e:?}");
    assert_eq!(e.code(), codes::SERVICE_UNAVAILABLE);
    assert!(e.to_string().contains("shard 1 has no delegator"), "{e}");
    assert!(
        h.coord.calls("routes") > routes,
        "routes were refreshed between rounds"
    );
    assert!(
        h.query.calls().iter().any(|(_, s)| *s == 0),
        "shard 0 answered, yet no partial result"
    );
    let mut count = query("c", "n >= 0", None, 0);
    count.output_fields = vec!["count(*)".into()];
    let e = h.proxy.query(count).await.unwrap_err();
    assert_eq!(e.code(), codes::SERVICE_UNAVAILABLE);

    // Once a delegator serves again, reads work.
    h.query.heal();
    let res = h.proxy.search(search("c", [3.1, 0.0], 3, 0)).await.unwrap();
    assert_eq!(pks(&res.ids[0]), [3, 4, 2]);
}

#[tokio::test]
async fn node_errors_that_are_not_retriable_are_answered_as_is() {
    let h = loaded(1, 2, 5).await;
    h.query.fail(
        1,
        0,
        ClusterError::invalid("expr", "the delegator cannot parse it"),
    );
    h.query.fail(
        2,
        0,
        ClusterError::invalid("expr", "the delegator cannot parse it"),
    );
    let before = h.query.calls().len();
    let e = h
        .proxy
        .query(query("c", "id > 0", None, 0))
        .await
        .unwrap_err();
    assert_eq!(e.code(), codes::PARAMETER_INVALID);
    assert_eq!(e.to_string(), "invalid expr: the delegator cannot parse it");
    assert_eq!(h.query.calls().len(), before + 1, "not retried");
}

#[tokio::test]
async fn reads_need_a_loaded_collection_and_a_stale_load_state_is_refetched() {
    let h = harness();
    h.collection("c", 2, 0).await;
    h.proxy
        .insert("c", "", rows(&[1, 2, 3], true))
        .await
        .unwrap();
    let e = h
        .proxy
        .search(search("c", [0.0, 0.0], 3, 0))
        .await
        .unwrap_err();
    assert!(
        matches!(e, ApiError::Core(CoreError::CollectionNotLoaded(ref n)) if n == "c"),
        "{e:?}"
    );
    assert_eq!(e.code(), codes::COLLECTION_NOT_LOADED);
    // Loaded behind this proxy's back (no catalogue watch running): the cached record is
    // stale, the read fetches a fresh one.
    use crate::api::{CoordApi, LoadReq};
    h.coord
        .load_collection(LoadReq {
            name: "c".into(),
            replica_number: 1,
        })
        .await
        .unwrap();
    let res = h.proxy.search(search("c", [0.0, 0.0], 3, 0)).await.unwrap();
    assert_eq!(pks(&res.ids[0]), [1, 2, 3]);
    // Reads by alias.
    h.proxy.create_alias("al", "c").await.unwrap();
    let res = h
        .proxy
        .query(query("al", "id == 2", None, 0))
        .await
        .unwrap();
    assert_eq!(res.num_rows, 1);
}
