//! The catalogue through the proxy: caching and its invalidation, DDL, aliases, load state,
//! indexes, replicas, identity and health.

use crate::backend::LoadState;
use ferrovus_proto::codes;

use super::*;
use crate::api::{CoordApi, PartitionReq};

#[tokio::test]
async fn records_are_cached_until_the_catalogue_version_changes() {
    let h = harness();
    h.proxy.watch_catalog();
    h.proxy.coordinator_reached().await;
    let c = h.collection("c", 2, 0).await;
    // Let the watch see the creation first (it drops the cache once more).
    h.proxy.caught_up(h.coord.version()).await;
    h.proxy.describe_collection("c").await.unwrap();
    let fetched = h.coord.calls("describe_collection");
    for _ in 0..3 {
        assert_eq!(h.proxy.describe_collection("c").await.unwrap(), c);
    }
    assert_eq!(
        h.coord.calls("describe_collection"),
        fetched,
        "served from the cache"
    );
    // Another proxy adds a partition: the catalogue version moves, the cache is dropped.
    h.coord
        .create_partition(PartitionReq {
            collection: "c".into(),
            partition: "p".into(),
        })
        .await
        .unwrap();
    let version = h.coord.bump_version();
    h.proxy.caught_up(version).await;
    let after = h.proxy.describe_collection("c").await.unwrap();
    assert_eq!(
        after
            .partitions
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>(),
        ["_default", "p"]
    );
    assert_eq!(h.coord.calls("describe_collection"), fetched + 1);
    assert!(h.proxy.metrics().cache_drops.get() >= 2);
    assert_eq!(
        h.proxy.metrics().catalog_version.get(),
        i64::try_from(version).unwrap()
    );
    // Routes are dropped with the records.
    h.proxy.insert("c", "", rows(&[1], true)).await.unwrap();
    assert_eq!(h.proxy.cache.sizes().1, 1);
    let version = h.coord.bump_version();
    h.proxy.caught_up(version).await;
    assert_eq!(h.proxy.cache.sizes(), (0, 0));
    h.proxy.stop_watching();
}

#[tokio::test]
async fn ddl_through_this_proxy_drops_the_cache() {
    let h = harness(); // no watch: only the proxy's own DDL drops the cache
    h.collection("c", 1, 0).await;
    h.proxy.describe_collection("c").await.unwrap();
    h.proxy.create_partition("c", "p").await.unwrap();
    let c = h.proxy.describe_collection("c").await.unwrap();
    assert_eq!(c.partitions.len(), 2);
    h.proxy
        .alter_properties("c", [("k".to_string(), "v".to_string())].into())
        .await
        .unwrap();
    assert_eq!(
        h.proxy.describe_collection("c").await.unwrap().properties["k"],
        "v"
    );
    h.proxy.rename_collection("c", "d").await.unwrap();
    assert!(!h.proxy.has_collection("c").await.unwrap());
    assert!(h.proxy.has_collection("d").await.unwrap());
    h.proxy.drop_collection("d").await.unwrap();
    let e = h.proxy.describe_collection("d").await.unwrap_err();
    assert_eq!(e.code(), codes::COLLECTION_NOT_FOUND);
    assert!(h.proxy.list_collections().await.unwrap().is_empty());
}

#[tokio::test]
async fn aliases_resolve_to_their_collection() {
    let h = harness();
    h.collection("c", 1, 0).await;
    h.collection("b", 1, 0).await;
    h.proxy.create_alias("x", "c").await.unwrap();
    h.proxy.create_alias("a", "c").await.unwrap();
    let c = h.proxy.describe_collection("x").await.unwrap();
    assert_eq!(c.name, "c");
    assert_eq!(c.aliases, ["a", "x"], "sorted");
    assert_eq!(
        h.proxy.alias_target("x").await.unwrap().as_deref(),
        Some("c")
    );
    assert_eq!(
        h.proxy.alias_target("c").await.unwrap(),
        None,
        "a name, not an alias"
    );
    assert_eq!(h.proxy.alias_target("nope").await.unwrap(), None);
    h.proxy.alter_alias("x", "b").await.unwrap();
    assert_eq!(h.proxy.describe_collection("x").await.unwrap().name, "b");
    h.proxy.drop_alias("x").await.unwrap();
    assert!(!h.proxy.has_collection("x").await.unwrap());
    let names: Vec<String> = h
        .proxy
        .list_collections()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["b", "c"], "ordered by name");
}

#[tokio::test]
async fn load_state_and_progress_come_from_the_coordinator() {
    let h = harness();
    h.collection("c", 1, 0).await;
    assert_eq!(h.proxy.load_state("c").await.unwrap(), LoadState::NotLoad);
    let e = h.proxy.loading_progress("c").await.unwrap_err();
    assert_eq!(e.code(), codes::COLLECTION_NOT_LOADED);
    assert_eq!(
        h.proxy.describe_collection("c").await.unwrap().load_state,
        LoadState::NotLoad
    );
    let e = h
        .proxy
        .load_partitions("c", &["nope".to_string()])
        .await
        .unwrap_err();
    assert_eq!(e.code(), codes::PARTITION_NOT_FOUND);
    h.proxy
        .load_partitions("c", &["_default".to_string()])
        .await
        .unwrap();
    assert_eq!(h.proxy.load_state("c").await.unwrap(), LoadState::Loading);
    assert_eq!(h.proxy.loading_progress("c").await.unwrap(), 40);
    assert_eq!(
        h.proxy.describe_collection("c").await.unwrap().load_state,
        LoadState::Loaded
    );
    assert_eq!(h.coord.record("c").unwrap().load.unwrap().replica_number, 1);
    h.proxy
        .release_partitions("c", &["_default".to_string()])
        .await
        .unwrap();
    assert_eq!(h.proxy.load_state("c").await.unwrap(), LoadState::Loading);
    h.proxy.release_collection("c").await.unwrap();
    assert_eq!(h.proxy.load_state("c").await.unwrap(), LoadState::NotLoad);
    let e = h.proxy.load_state("nope").await.unwrap_err();
    assert_eq!(e.code(), codes::COLLECTION_NOT_FOUND);
}

#[tokio::test]
async fn indexes_replicas_and_timestamps() {
    let h = harness();
    let c = h.collection("c", 2, 0).await;
    h.proxy
        .create_index(
            "c",
            "v",
            "vi",
            [("metric_type".to_string(), "IP".to_string())].into(),
        )
        .await
        .unwrap();
    let all = h.proxy.describe_indexes("c", "").await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!((all[0].indexed_rows, all[0].total_rows), (5, 8));
    assert_eq!(h.proxy.describe_indexes("c", "vi").await.unwrap().len(), 1);
    assert_eq!(h.proxy.describe_indexes("c", "v").await.unwrap().len(), 1);
    let e = h.proxy.describe_indexes("c", "n").await.unwrap_err();
    assert_eq!(e.code(), codes::INDEX_NOT_FOUND);
    assert_eq!(
        h.proxy.describe_collection("c").await.unwrap().indexes[0].index_name,
        "vi",
        "the index is in the fresh record"
    );

    h.coord.set_replicas(2);
    h.proxy.load_collection("c", 2).await.unwrap();
    let replicas = h.proxy.replicas("c").await.unwrap();
    assert_eq!(replicas.len(), 2);
    for r in &replicas {
        assert_eq!(r.collection_id, c.id);
        assert_eq!(r.partition_ids, [c.partitions[0].id]);
        assert_eq!(r.shards.iter().map(|s| s.shard).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(r.node_ids, [r.shards[0].leader_id]);
        assert_eq!(r.resource_group, "__default_resource_group");
    }
    let t1 = h.proxy.alloc_timestamp().await.unwrap();
    let t2 = h.proxy.alloc_timestamp().await.unwrap();
    assert!(t2 > t1);
}

#[tokio::test]
async fn identity_and_health_follow_the_coordinator() {
    let h = harness();
    let me = h.proxy.identity();
    assert_eq!((me.node_id, me.role.as_str()), (7, "proxy"));
    assert_eq!(me.deploy_mode, "CLUSTER");
    let reasons = h.proxy.unhealthy_reasons().await;
    assert_eq!(reasons, ["the coordinator has not answered yet"]);
    h.proxy.watch_catalog();
    h.proxy.coordinator_reached().await;
    assert!(h.proxy.unhealthy_reasons().await.is_empty());
    h.proxy.stop_watching();
}
