//! A data directory written before terms, pks objects, delta objects and timestamped delete
//! logs still opens: old log object names, old checkpoint records, version-1 delete logs.

mod common;

use std::collections::HashSet;

use common::*;
use ferrovus_core::codec::{Writer, frame};
use ferrovus_core::expr::Plan;
use ferrovus_core::segment::DeleteMarks;
use ferrovus_core::shard::{Shard, ShardOptions};
use ferrovus_core::store::{MetaStore, ObjectStore};
use ferrovus_core::value::PrimaryKey;

fn live_ids(shard: &Shard) -> Vec<i64> {
    let r = shard.query(&Plan::match_all(), &None, &[0], false, &HashSet::new());
    ints(
        &r.value
            .1
            .into_iter()
            .map(|(pk, _)| pk)
            .collect::<Vec<PrimaryKey>>(),
    )
}

/// Rewrite what a shard wrote into the layout of the previous release.
async fn downgrade(stores: &Stores) {
    let objects = &stores.objects;
    for key in objects.list("wal/").await.unwrap() {
        // <term>-<first>-<last>.log → <first>-<last>.log
        let (dir, name) = key.rsplit_once('/').unwrap();
        let stem = name.strip_suffix(".log").unwrap();
        let (_, old_stem) = stem.split_once('-').unwrap();
        let bytes = objects.get(&key).await.unwrap();
        objects.delete(&key).await.unwrap();
        objects
            .put(&format!("{dir}/{old_stem}.log"), bytes)
            .await
            .unwrap();
    }
    let kv = stores
        .meta
        .get(&format!("shards/{COLLECTION}/0"))
        .await
        .unwrap()
        .unwrap();
    let mut ck: serde_json::Value = serde_json::from_slice(&kv.value).unwrap();
    let obj = ck.as_object_mut().unwrap();
    obj.remove("applied_ts");
    obj.remove("deltas");
    for seg in obj["segments"].as_array_mut().unwrap() {
        let seg = seg.as_object_mut().unwrap();
        seg.remove("base_ts");
        let pks = seg.remove("pks_key").unwrap();
        objects.delete(pks.as_str().unwrap()).await.unwrap();
        let rows = seg["num_rows"].as_u64().unwrap() as usize;
        if let Some(k) = seg["deletes_key"].as_str() {
            // Version 1 delete log: rows, words, the bitmap; no timestamps.
            let marks = DeleteMarks::decode(&objects.get(k).await.unwrap(), rows, k).unwrap();
            let mut words = vec![0u64; rows.div_ceil(64)];
            for (row, _) in marks.iter() {
                words[row as usize / 64] |= 1 << (row % 64);
            }
            let mut w = Writer::new();
            w.u64(rows as u64);
            w.u64(words.len() as u64);
            for x in words {
                w.u64(x);
            }
            objects
                .put(k, frame(b"FVDL", 1, &w.buf).into())
                .await
                .unwrap();
        }
    }
    stores
        .meta
        .put(&kv.key, serde_json::to_vec(&ck).unwrap())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_data_directory_of_the_previous_format_opens() {
    let stores = Stores::new();
    let shard = stores.open(manual_config(), None).await;
    shard.write(insert(1, 0..10, 0), 0).await.unwrap();
    shard.write(delete([2]), 0).await.unwrap();
    shard.flush().await.unwrap();
    // Only in the log:
    shard.write(delete([3]), 0).await.unwrap();
    shard.write(insert(1, 10..12, 0), 0).await.unwrap();
    drop(shard);
    downgrade(&stores).await;
    let want: Vec<i64> = (0..12).filter(|i| *i != 2 && *i != 3).collect();

    let shard = stores.open(manual_config(), None).await;
    assert_eq!(live_ids(&shard), want);
    assert!(shard.applied_ts() > 0, "applied ts recovered from the rows");
    // A channel owner of the old data reads the keys from the data file.
    drop(shard);
    let shard = stores
        .open_with(
            manual_config(),
            None,
            ShardOptions {
                term: 1,
                retain_sealed: true,
                ..ShardOptions::default()
            },
        )
        .await;
    assert_eq!(shard.live_rows(), want.len());
    // Checkpointing the old data writes the new format, and it opens again.
    shard.flush().await.unwrap();
    drop(shard);
    let shard = stores.open(manual_config(), None).await;
    assert_eq!(live_ids(&shard), want);
}
