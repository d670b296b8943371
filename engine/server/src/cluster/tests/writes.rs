//! Writes through the proxy: routing by key hash with the channel's term, auto ids, retries
//! after a stale route, all-or-error results, deletes.

use std::collections::HashMap;
use std::time::Duration;

use ferrovus_core::CoreError;
use ferrovus_core::plan::shard_of;
use ferrovus_core::value::{PrimaryKey, Value};
use ferrovus_proto::codes;

use super::*;
use crate::api::ChannelId;
use crate::error::ApiError;
use crate::rpc::ClusterError;

fn ints(keys: &[PrimaryKey]) -> Vec<i64> {
    keys.iter()
        .map(|k| match k {
            PrimaryKey::Int(i) => *i,
            PrimaryKey::Str(s) => panic!("an int key, got {s}"),
        })
        .collect()
}

#[tokio::test]
async fn rows_go_to_the_owner_of_their_key_hash() {
    let h = harness();
    let c = h.collection("c", 4, 0).await;
    let ids: Vec<i64> = (0..100).collect();
    let res = h.proxy.insert("c", "", rows(&ids, true)).await.unwrap();
    assert_eq!((res.insert_count, res.upsert_count), (100, 0));
    assert_eq!(ints(&res.ids), ids);
    assert!(res.timestamp > 0);
    let default = c.partitions[0].id;
    let mut seen = 0;
    for shard in 0..4 {
        let stored = h.streaming.rows(ChannelId::new(c.id, shard));
        assert!(!stored.is_empty(), "shard {shard} got rows");
        for (pk, row) in &stored {
            assert_eq!(shard_of(pk, 4), shard as usize, "{pk} in shard {shard}");
            assert_eq!(row.partition, default);
            let PrimaryKey::Int(id) = pk else {
                panic!("int key")
            };
            // Schema order: id, v, n, $meta.
            assert_eq!(row.values[0], Value::Int(*id));
            assert_eq!(row.values[1], Value::FloatVector(vec![*id as f32, 0.0]));
            assert_eq!(row.values[2], Value::Int(id % 3));
        }
        seen += stored.len();
    }
    assert_eq!(seen, 100);
    // One record per shard.
    assert_eq!(h.streaming.writes(), 4);

    // An upsert replaces; counts say so.
    let res = h
        .proxy
        .upsert("c", "_default", rows(&[5], true))
        .await
        .unwrap();
    assert_eq!((res.insert_count, res.upsert_count), (1, 1));
}

#[tokio::test]
async fn auto_ids_come_from_blocks_of_the_coordinator() {
    let h = harness(); // blocks of 100
    h.proxy
        .create_collection(schema("a", true), 2, Consistency::Bounded, BTreeMap::new())
        .await
        .unwrap();
    let first = h.proxy.insert("a", "", rows(&[0; 3], false)).await.unwrap();
    let second = h.proxy.insert("a", "", rows(&[0; 5], false)).await.unwrap();
    assert_eq!(ints(&first.ids), [1, 2, 3]);
    assert_eq!(ints(&second.ids), [4, 5, 6, 7, 8]);
    assert_eq!(h.coord.calls("alloc_ids"), 1, "one block served both");
    // A batch larger than what is left gets a block of its own size.
    let big = h
        .proxy
        .insert("a", "", rows(&[0; 150], false))
        .await
        .unwrap();
    assert_eq!(ints(&big.ids), (101..251).collect::<Vec<_>>());
    assert_eq!(h.coord.calls("alloc_ids"), 2);
    let rec = h.coord.record("a").unwrap();
    let stored: usize = (0..2)
        .map(|s| h.streaming.rows(ChannelId::new(rec.id, s)).len())
        .sum();
    assert_eq!(stored, 158);
    // Supplying an auto id is refused as standalone refuses it, before anything is written.
    let writes = h.streaming.writes();
    let e = h.proxy.insert("a", "", rows(&[1], true)).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid id: the primary key id is auto_id; do not supply values for it"
    );
    assert_eq!(h.streaming.writes(), writes);
}

#[tokio::test]
async fn a_wrong_term_refreshes_the_routes_and_the_write_succeeds() {
    let h = harness();
    let c = h.collection("c", 2, 0).await;
    h.proxy
        .insert("c", "", rows(&[1, 2, 3], true))
        .await
        .unwrap();
    let routes_before = h.coord.calls("routes");
    // Channel 0 moves to a new owner term; the proxy's cached routes still say term 1.
    let moved = ChannelId::new(c.id, 0);
    h.coord.set_term(moved, 2);
    h.streaming.set_term(moved, 2);
    let ids: Vec<i64> = (10..40).collect();
    h.proxy.insert("c", "", rows(&ids, true)).await.unwrap();
    assert_eq!(
        h.coord.calls("routes"),
        routes_before + 1,
        "routes refreshed once"
    );
    assert_eq!(h.proxy.metrics().route_refreshes.get(), 1);
    assert_eq!(h.proxy.metrics().retries_of("write"), 1);
    let in_moved = h.streaming.rows(moved);
    for id in &ids {
        let pk = PrimaryKey::Int(*id);
        if shard_of(&pk, 2) == 0 {
            assert!(in_moved.contains_key(&pk), "{id} written at the new term");
        }
    }
}

#[tokio::test]
async fn transient_owner_failures_are_retried() {
    let h = harness();
    let c = h.collection("c", 1, 0).await;
    let ch = ChannelId::new(c.id, 0);
    h.streaming
        .fail_next(ch, ClusterError::Unavailable("connection reset".into()));
    h.streaming
        .fail_next(ch, ClusterError::NotServing("recovering".into()));
    h.proxy.insert("c", "", rows(&[1, 2], true)).await.unwrap();
    assert_eq!(h.streaming.rows(ch).len(), 2);
    assert_eq!(h.proxy.metrics().retries_of("write"), 2);
}

#[tokio::test]
async fn a_shard_that_keeps_failing_fails_the_write() {
    let h = harness_with(config(Duration::from_millis(200)));
    let c = h.collection("c", 2, 0).await;
    h.streaming.break_channel(
        ChannelId::new(c.id, 1),
        ClusterError::NotServing("channel 1 is moving".into()),
    );
    let ids: Vec<i64> = (0..20).collect();
    let e = h.proxy.insert("c", "", rows(&ids, true)).await.unwrap_err();
    assert!(matches!(e, ApiError::Cluster(_)), "{e:?}");
    assert_eq!(e.code(), codes::SERVICE_UNAVAILABLE);
    assert!(e.to_string().contains("channel 1 is moving"), "{e}");
    assert!(e.to_status().retriable);
    assert!(h.proxy.metrics().retries_of("write") > 0);
    // A non-retriable error is answered at once, as the node said it.
    h.streaming.break_channel(
        ChannelId::new(c.id, 1),
        ClusterError::Storage("disk full".into()),
    );
    let retries = h.proxy.metrics().retries_of("write");
    let e = h.proxy.insert("c", "", rows(&ids, true)).await.unwrap_err();
    assert_eq!(e.to_string(), "storage error: disk full");
    assert_eq!(h.proxy.metrics().retries_of("write"), retries);
}

#[tokio::test]
async fn bad_rows_get_the_standalone_errors_and_nothing_is_written() {
    let h = harness();
    h.collection("c", 2, 0).await;
    let mut bad = rows(&[1, 2], true);
    bad.columns.retain(|(n, _)| n != "n");
    let e = h.proxy.insert("c", "", bad).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid n: missing field n (Int64) in the inserted data"
    );
    let e = h
        .proxy
        .insert("c", "nope", rows(&[1], true))
        .await
        .unwrap_err();
    assert_eq!(e.code(), codes::PARTITION_NOT_FOUND);
    let e = h
        .proxy
        .insert("missing", "", rows(&[1], true))
        .await
        .unwrap_err();
    assert_eq!(e.code(), codes::COLLECTION_NOT_FOUND);
    assert_eq!(h.streaming.writes(), 0);
}

#[tokio::test]
async fn a_partition_created_through_another_proxy_is_found() {
    let h = harness();
    let c = h.collection("c", 1, 0).await;
    h.coord.add_partition_silently(c.id, "later");
    h.proxy
        .insert("c", "later", rows(&[1], true))
        .await
        .unwrap();
    let rec = h.coord.record("c").unwrap();
    let pid = rec
        .partitions
        .iter()
        .find(|p| p.name == "later")
        .unwrap()
        .id;
    let stored = h.streaming.rows(ChannelId::new(c.id, 0));
    assert_eq!(stored[&PrimaryKey::Int(1)].partition, pid);
}

#[tokio::test]
async fn deletes_by_key_name_the_keys_without_reading() {
    let h = harness();
    let c = h.collection("c", 3, 1).await;
    let ids: Vec<i64> = (0..30).collect();
    h.proxy.insert("c", "", rows(&ids, true)).await.unwrap();
    let res = h
        .proxy
        .delete("c", "", "id in [1, 2, 99]", &HashMap::new())
        .await
        .unwrap();
    assert_eq!(res.delete_count, 3);
    assert_eq!(ints(&res.ids), [1, 2, 99]);
    assert!(h.query.calls().is_empty(), "no read for a key delete");
    let left: usize = (0..3)
        .map(|s| h.streaming.rows(ChannelId::new(c.id, s)).len())
        .sum();
    assert_eq!(left, 28);
    // Keys are deleted as named, whether they exist or not (as standalone does).
    let res = h
        .proxy
        .delete("c", "", "id in [1000]", &HashMap::new())
        .await
        .unwrap();
    assert_eq!(res.delete_count, 1);
}

#[tokio::test]
async fn deletes_by_filter_read_the_keys_through_the_delegators() {
    let h = harness();
    let c = h.collection("c", 3, 1).await;
    let ids: Vec<i64> = (0..30).collect();
    h.proxy.insert("c", "", rows(&ids, true)).await.unwrap();
    let res = h
        .proxy
        .delete(
            "c",
            "",
            "n == {x}",
            &[("x".to_string(), serde_json::json!(1))].into(),
        )
        .await
        .unwrap();
    assert_eq!(res.delete_count, 10);
    let mut deleted = ints(&res.ids);
    deleted.sort();
    assert_eq!(deleted, (0..30).filter(|i| i % 3 == 1).collect::<Vec<_>>());
    let mut shards: Vec<u32> = h.query.calls().iter().map(|(_, s)| *s).collect();
    shards.sort();
    assert_eq!(shards, [0, 1, 2], "one read per shard");
    for s in 0..3 {
        for (pk, row) in h.streaming.rows(ChannelId::new(c.id, s)) {
            assert_ne!(row.values[2], Value::Int(1), "{pk} should be deleted");
        }
    }
    // Nothing matches: no delete record, a timestamp all the same.
    let writes = h.streaming.writes();
    let res = h
        .proxy
        .delete("c", "", "n == 1", &HashMap::new())
        .await
        .unwrap();
    assert_eq!(res.delete_count, 0);
    assert!(res.timestamp > 0);
    assert_eq!(h.streaming.writes(), writes);

    // The rules of standalone.
    let e = h
        .proxy
        .delete("c", "", " ", &HashMap::new())
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid expr: delete needs a filter expression or primary keys"
    );
    let e = h
        .proxy
        .delete("c", "nope", "n == 2", &HashMap::new())
        .await
        .unwrap_err();
    assert_eq!(e.code(), codes::PARTITION_NOT_FOUND);
    // A filter needs the rows read: the collection must be loaded.
    h.proxy.release_collection("c").await.unwrap();
    let e = h
        .proxy
        .delete("c", "", "n == 2", &HashMap::new())
        .await
        .unwrap_err();
    assert!(
        matches!(e, ApiError::Core(CoreError::CollectionNotLoaded(ref n)) if n == "c"),
        "{e:?}"
    );
}

#[tokio::test]
async fn flush_and_row_counts_go_to_every_channel() {
    let h = harness();
    let c = h.collection("c", 3, 0).await;
    h.proxy.create_partition("c", "p").await.unwrap();
    h.proxy
        .insert("c", "", rows(&(0..10).collect::<Vec<_>>(), true))
        .await
        .unwrap();
    h.proxy
        .insert("c", "p", rows(&(10..14).collect::<Vec<_>>(), true))
        .await
        .unwrap();
    assert_eq!(h.proxy.row_count("c", None).await.unwrap(), 14);
    assert_eq!(h.proxy.row_count("c", Some("p")).await.unwrap(), 4);
    let e = h.proxy.row_count("c", Some("q")).await.unwrap_err();
    assert_eq!(e.code(), codes::PARTITION_NOT_FOUND);
    h.proxy.flush("c").await.unwrap();
    let flushed = h.streaming.flushed();
    assert_eq!(flushed.len(), 3);
    assert!((0..3).all(|s| flushed.contains(&ChannelId::new(c.id, s))));
}

#[tokio::test]
async fn a_route_lookup_the_coordinator_cannot_answer_yet_is_retried() {
    let h = harness();
    h.collection("c", 2, 0).await;
    h.coord.fail_routes(3);
    let res = h
        .proxy
        .insert("c", "", rows(&[1, 2, 3], true))
        .await
        .unwrap();
    assert_eq!(res.insert_count, 3);
    assert!(h.coord.calls("routes") >= 4, "{}", h.coord.calls("routes"));
}
