//! A shard that compacts its own segments (`ShardOptions::local_compaction`), and a shard
//! opened over a damaged segment file.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use common::*;
use ferrovus_core::expr::Plan;
use ferrovus_core::shard::Shard;
use ferrovus_core::store::ObjectStore;
use ferrovus_core::{CoreConfig, CoreError};
use parking_lot::RwLock;

fn live_ids(shard: &Shard) -> Vec<i64> {
    let (_, rows) = shard
        .query(&Plan::match_all(), &None, &[0], false, &HashSet::new())
        .value;
    ints(&rows.into_iter().map(|(pk, _)| pk).collect::<Vec<_>>())
}

fn sealed(shard: &Shard) -> Vec<usize> {
    shard
        .segment_infos()
        .iter()
        .filter(|s| s.sealed)
        .map(|s| s.rows)
        .collect()
}

#[tokio::test]
async fn compaction_merges_small_segments_and_drops_deleted_rows() {
    let stores = Stores::new();
    let cfg = CoreConfig {
        seal_rows: 1_000_000,
        compaction_small_rows: 1_000,
        compaction_deleted_ratio: 0.2,
        ..CoreConfig::default()
    };
    let shard = stores.open(cfg.clone(), None).await;
    for b in 0..4 {
        shard
            .write(insert(1, b * 100..(b + 1) * 100, 0), 0)
            .await
            .unwrap();
        shard.flush().await.unwrap();
    }
    assert_eq!(
        sealed(&shard),
        vec![400],
        "four small flushes merged into one segment"
    );
    shard.write(delete(0..300), 0).await.unwrap();
    shard.flush().await.unwrap();
    assert_eq!(sealed(&shard), vec![100], "deleted rows dropped");
    assert_eq!(live_ids(&shard), (300..400).collect::<Vec<_>>());
    drop(shard);

    let shard = stores.open(cfg, None).await;
    assert_eq!(live_ids(&shard), (300..400).collect::<Vec<_>>());
    // Superseded files were removed from the object store.
    let keys = stores.objects.list("segments/").await.unwrap();
    assert_eq!(
        keys.iter().filter(|k| k.ends_with("/data")).count(),
        1,
        "{keys:?}"
    );
    assert_eq!(
        keys.iter().filter(|k| k.ends_with("/pks")).count(),
        1,
        "{keys:?}"
    );
    assert!(
        stores.objects.list("deltas/").await.unwrap().is_empty(),
        "a shard that compacts itself needs no delta objects"
    );
}

#[tokio::test]
async fn a_corrupted_segment_file_is_a_clear_error() {
    let stores = Stores::new();
    {
        let shard = stores.open(CoreConfig::default(), None).await;
        shard.write(insert(1, 0..50, 0), 0).await.unwrap();
        shard.flush().await.unwrap();
    }
    let key = stores
        .objects
        .list("segments/")
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.ends_with("/data"))
        .unwrap();
    let mut bytes = stores.objects.get(&key).await.unwrap().to_vec();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    stores.objects.put(&key, bytes.into()).await.unwrap();
    let env = stores.env(CoreConfig::default(), None).await;
    let err = Shard::open(
        COLLECTION,
        0,
        Arc::new(schema()),
        Arc::new(RwLock::new(Vec::new())),
        env,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, CoreError::Corrupted { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&key) && msg.contains("checksum"), "{msg}");
}
