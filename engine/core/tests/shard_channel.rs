//! A shard as a streaming node's channel: retained sealed segments and their release, reads
//! excluding segments served elsewhere, the delete journal and its delta objects, terms in the
//! log, recovery with sealed segments served elsewhere.

mod common;

use std::collections::HashSet;

use common::*;
use ferrovus_core::delta::{self, DeltaRead};
use ferrovus_core::expr::Plan;
use ferrovus_core::shard::{CheckpointStore, MetaCheckpointStore, Shard, ShardOptions};
use ferrovus_core::store::ObjectStore;
use ferrovus_core::value::PrimaryKey;

fn channel(term: u64) -> ShardOptions {
    ShardOptions {
        term,
        local_compaction: false,
        local_index_builds: false,
        retain_sealed: true,
    }
}

fn ids_excluding(shard: &Shard, exclude: &[i64]) -> (Vec<i64>, Vec<i64>) {
    let exclude: HashSet<i64> = exclude.iter().copied().collect();
    let r = shard.query(&Plan::match_all(), &None, &[0], false, &exclude);
    let pks: Vec<PrimaryKey> = r.value.1.into_iter().map(|(pk, _)| pk).collect();
    (ints(&pks), r.sealed_searched)
}

fn entries(r: DeltaRead) -> Vec<(i64, u64)> {
    match r {
        DeltaRead::Entries { entries, .. } => {
            entries.into_iter().map(|(pk, ts)| (int(&pk), ts)).collect()
        }
        DeltaRead::Gap { journal_start } => panic!("gap: journal starts at {journal_start}"),
    }
}

#[tokio::test]
async fn retained_segments_are_read_until_released_and_deletes_of_them_are_journaled() {
    let stores = Stores::new();
    let shard = stores.open_with(manual_config(), None, channel(1)).await;
    shard.write(insert(1, 0..10, 0), 0).await.unwrap();
    shard.flush().await.unwrap();
    let sealed = shard.sealed_segments();
    assert_eq!(sealed.len(), 1);
    let seg = sealed[0].clone();
    assert_eq!(seg.base_ts, shard.applied_ts());
    assert!(seg.pks_key.is_some());
    assert!(
        stores
            .objects
            .exists(seg.pks_key.as_ref().unwrap())
            .await
            .unwrap()
    );

    // Reads cover the retained segment unless it is excluded.
    assert_eq!(
        ids_excluding(&shard, &[]),
        ((0..10).collect(), vec![seg.segment_id])
    );
    assert_eq!(ids_excluding(&shard, &[seg.segment_id]), (vec![], vec![]));
    let exclude: HashSet<i64> = [seg.segment_id].into();
    let get = shard.get(&[PrimaryKey::Int(5)], &None, &[0], &exclude);
    assert!(get.value.is_empty() && get.snapshot == shard.applied_ts());
    assert_eq!(
        shard
            .get(&[PrimaryKey::Int(5)], &None, &[0], &HashSet::new())
            .value
            .len(),
        1
    );

    // Deletes and overwrites of sealed rows are journaled by key; of growing rows they are not.
    let t_del = shard.write(delete([3]), 0).await.unwrap();
    let t_up = shard.write(upsert(1, [4], 1), 0).await.unwrap();
    shard.write(insert(1, [20], 0), 0).await.unwrap();
    shard.write(delete([20]), 0).await.unwrap();
    shard.write(delete([999]), 0).await.unwrap(); // no such key
    assert_eq!(
        entries(shard.deltas_since(seg.base_ts)),
        vec![(3, t_del), (4, t_up)]
    );
    assert_eq!(entries(shard.deltas_since(t_del)), vec![(4, t_up)]);
    match shard.deltas_since(t_up) {
        DeltaRead::Entries { entries, up_to } => {
            assert!(entries.is_empty());
            assert_eq!(up_to, shard.applied_ts());
        }
        gap => panic!("{gap:?}"),
    }
    assert_eq!(shard.live_rows(), 9);

    // Released: no longer read here, but its keys are still known.
    shard.release_sealed(&[seg.segment_id]).unwrap();
    assert!(shard.sealed_segments().is_empty());
    assert_eq!(
        ids_excluding(&shard, &[]),
        (vec![4], vec![]),
        "the upserted row is growing"
    );
    assert_eq!(shard.live_rows(), 9);
    let t_rel = shard.write(delete([5]), 0).await.unwrap();
    assert_eq!(shard.live_rows(), 8);
    let DeltaRead::Entries { entries: after, .. } = shard.deltas_since(t_up) else {
        panic!("gap")
    };
    assert_eq!(after, vec![(PrimaryKey::Int(5), t_rel)]);
    // Dropping the partition deletes the released rows too, through the journal.
    shard.drop_partition(1).await.unwrap();
    assert_eq!(shard.live_rows(), 0);
    let mut dropped: Vec<i64> = entries(shard.deltas_since(t_rel))
        .into_iter()
        .map(|e| e.0)
        .collect();
    dropped.sort_unstable();
    assert_eq!(
        dropped,
        vec![0, 1, 2, 6, 7, 8, 9],
        "the released rows; key 4's row is growing"
    );
}

#[tokio::test]
async fn checkpoints_persist_deltas_and_recovery_applies_them() {
    let stores = Stores::new();
    let checkpoints = MetaCheckpointStore::new(stores.meta.clone());
    let shard = stores.open_with(manual_config(), None, channel(1)).await;
    shard.write(insert(1, 0..10, 0), 0).await.unwrap();
    shard.flush().await.unwrap();
    let t1 = shard.applied_ts();
    let seg = shard.sealed_segments()[0].clone();
    shard.release_sealed(&[seg.segment_id]).unwrap();

    let ta = shard.write(delete([1]), 0).await.unwrap();
    shard.flush().await.unwrap();
    let t2 = shard.applied_ts();
    let ck = checkpoints.load(COLLECTION, 0).await.unwrap().unwrap();
    assert_eq!(ck.applied_ts, t2);
    assert_eq!(ck.deltas.len(), 1);
    assert_eq!((ck.deltas[0].from_ts, ck.deltas[0].to_ts), (t1, t2));
    assert_eq!(
        ck.segments.len(),
        1,
        "the released segment stays in the checkpoint"
    );
    // The journal still reaches back to the previous checkpoint.
    assert_eq!(entries(shard.deltas_since(t1)), vec![(1, ta)]);

    let tb = shard.write(delete([2]), 0).await.unwrap();
    shard.flush().await.unwrap();
    assert_eq!(shard.deltas_since(t1), DeltaRead::Gap { journal_start: t2 });
    assert_eq!(entries(shard.deltas_since(t2)), vec![(2, tb)]);
    let ck = checkpoints.load(COLLECTION, 0).await.unwrap().unwrap();
    let persisted = delta::read_deltas(&*stores.objects, &ck.deltas, 0)
        .await
        .unwrap();
    assert_eq!(
        persisted,
        vec![(PrimaryKey::Int(1), ta), (PrimaryKey::Int(2), tb)]
    );
    assert_eq!(
        delta::read_deltas(&*stores.objects, &ck.deltas, ta)
            .await
            .unwrap(),
        vec![(PrimaryKey::Int(2), tb)]
    );

    // One more delete only in the log, then a crash.
    let tc = shard.write(delete([3]), 0).await.unwrap();
    drop(shard);
    let shard = stores.open_with(manual_config(), None, channel(2)).await;
    assert!(
        shard.sealed_segments().is_empty(),
        "recovered segments start released"
    );
    assert_eq!(
        shard.live_rows(),
        7,
        "keys 1, 2 (deltas) and 3 (log) are deleted"
    );
    assert_eq!(shard.applied_ts(), tc);
    // The journal starts at the checkpoint and holds what the log replayed.
    assert_eq!(entries(shard.deltas_since(ck.applied_ts)), vec![(3, tc)]);
    assert_eq!(
        shard.deltas_since(ck.applied_ts - 1),
        DeltaRead::Gap {
            journal_start: ck.applied_ts
        }
    );
    // A delete of a key that deltas already deleted is not a delete of a sealed row.
    shard.write(delete([1]), 0).await.unwrap();
    assert_eq!(entries(shard.deltas_since(ck.applied_ts)).len(), 1);
}

#[tokio::test]
async fn log_objects_carry_the_term_and_every_term_replays() {
    let stores = Stores::new();
    let shard = stores.open_with(manual_config(), None, channel(3)).await;
    shard.write(insert(1, 0..5, 0), 0).await.unwrap();
    drop(shard);
    let shard = stores.open_with(manual_config(), None, channel(4)).await;
    shard.write(insert(1, 5..8, 0), 0).await.unwrap();
    let keys: Vec<String> = stores
        .objects
        .list("wal/")
        .await
        .unwrap()
        .into_iter()
        .filter(|k| k.ends_with(".log"))
        .collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys[0].contains("/0000000003-") && keys[1].contains("/0000000004-"));
    drop(shard);
    let shard = stores.open_with(manual_config(), None, channel(5)).await;
    assert_eq!(ids_excluding(&shard, &[]).0, (0..8).collect::<Vec<_>>());
}

#[tokio::test]
async fn standalone_shard_owns_its_sealed_segments() {
    let stores = Stores::new();
    let shard = stores.open(manual_config(), None).await;
    shard.write(insert(1, 0..4, 0), 0).await.unwrap();
    shard.flush().await.unwrap();
    let id = shard.sealed_segments()[0].segment_id;
    assert!(shard.release_sealed(&[id]).is_err());
    // Deletes of sealed rows go to the segment's delete log; no delta object is needed.
    shard.write(delete([1]), 0).await.unwrap();
    shard.flush().await.unwrap();
    assert!(stores.objects.list("deltas/").await.unwrap().is_empty());
    let meta = &shard.sealed_segments()[0];
    assert_eq!(
        meta.base_ts,
        shard.applied_ts(),
        "the delete log covers up to here"
    );
    drop(shard);
    let shard = stores.open(manual_config(), None).await;
    assert_eq!(ids_excluding(&shard, &[]).0, vec![0, 2, 3]);
}

#[tokio::test]
async fn a_new_owner_fences_the_old_one_which_acknowledges_nothing_more() {
    let stores = Stores::new();
    let old = stores.open_with(manual_config(), None, channel(1)).await;
    old.write(insert(1, 0..3, 0), 0).await.unwrap();
    assert_eq!(old.fenced_by(), None);
    let new = stores.open_with(manual_config(), None, channel(2)).await;
    assert_eq!(
        stores
            .objects
            .list("wal/")
            .await
            .unwrap()
            .iter()
            .filter(|k| k.contains("/fence/"))
            .count(),
        1,
        "older fences are dropped"
    );
    // The old owner's next group reaches the log but is refused, and not applied.
    let e = old.write(insert(1, [10], 0), 0).await.unwrap_err();
    assert!(matches!(e, ferrovus_core::CoreError::Conflict(_)), "{e}");
    assert_eq!(old.fenced_by(), Some(2));
    assert_eq!(old.live_rows(), 3);
    // Later writes do not even reach the log.
    let logs = stores.objects.list("wal/").await.unwrap().len();
    assert!(old.write(insert(1, [11], 0), 0).await.is_err());
    assert_eq!(stores.objects.list("wal/").await.unwrap().len(), logs);
    // The new owner has every acknowledged write and goes on.
    assert_eq!(ids_excluding(&new, &[]).0, vec![0, 1, 2]);
    new.write(insert(1, [20], 0), 0).await.unwrap();
    assert_eq!(new.fenced_by(), None);
    drop(new);
    // An owner of an older term cannot open any more.
    let env = stores.env(manual_config(), None).await;
    let e = Shard::open_with(
        COLLECTION,
        0,
        std::sync::Arc::new(schema()),
        std::sync::Arc::new(parking_lot::RwLock::new(Vec::new())),
        env,
        channel(1),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, ferrovus_core::CoreError::Conflict(_)), "{e}");
    let again = stores.open_with(manual_config(), None, channel(3)).await;
    assert_eq!(ids_excluding(&again, &[]).0, vec![0, 1, 2, 20]);
    // A closed channel refuses writes and keeps its data.
    again.close();
    assert!(again.write(insert(1, [30], 0), 0).await.is_err());
    assert_eq!(again.live_rows(), 4);
    drop(again);
    let reopened = stores.open_with(manual_config(), None, channel(4)).await;
    assert_eq!(ids_excluding(&reopened, &[]).0, vec![0, 1, 2, 20]);
}

/// An object store that records the keys read.
#[derive(Debug)]
struct CountingStore {
    inner: std::sync::Arc<ferrovus_core::store::memory::MemoryObjectStore>,
    gets: parking_lot::Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl ObjectStore for CountingStore {
    async fn put(&self, key: &str, data: bytes::Bytes) -> ferrovus_core::Result<()> {
        self.inner.put(key, data).await
    }
    async fn get(&self, key: &str) -> ferrovus_core::Result<bytes::Bytes> {
        self.gets.lock().push(key.to_string());
        self.inner.get(key).await
    }
    async fn get_range(
        &self,
        key: &str,
        offset: u64,
        len: u64,
    ) -> ferrovus_core::Result<bytes::Bytes> {
        self.gets.lock().push(key.to_string());
        self.inner.get_range(key, offset, len).await
    }
    async fn delete(&self, key: &str) -> ferrovus_core::Result<()> {
        self.inner.delete(key).await
    }
    async fn list(&self, prefix: &str) -> ferrovus_core::Result<Vec<String>> {
        self.inner.list(prefix).await
    }
    async fn exists(&self, key: &str) -> ferrovus_core::Result<bool> {
        self.inner.exists(key).await
    }
}

#[tokio::test]
async fn recovery_of_released_segments_reads_keys_and_delete_logs_never_data() {
    let stores = Stores::new();
    let shard = stores.open_with(manual_config(), None, channel(1)).await;
    for round in 0..3i64 {
        shard
            .write(insert(1, round * 10..round * 10 + 10, 0), 0)
            .await
            .unwrap();
        shard.flush().await.unwrap();
    }
    let held = shard.sealed_segments();
    assert_eq!(held.len(), 3);
    // A delete of a retained row: the segment gets a delete log, and a delta object.
    shard.write(delete([3]), 0).await.unwrap();
    shard.flush().await.unwrap();
    shard.write(insert(1, [100], 0), 0).await.unwrap();
    let (groups, records) = shard.commit_stats();
    assert_eq!((groups, records), (5, 5));
    assert_eq!(shard.growing_rows(), 1);
    drop(shard);

    let counting = std::sync::Arc::new(CountingStore {
        inner: stores.objects.clone(),
        gets: parking_lot::Mutex::new(Vec::new()),
    });
    let mut env = stores.env(manual_config(), None).await;
    env.objects = counting.clone();
    let shard = Shard::open_with(
        COLLECTION,
        0,
        std::sync::Arc::new(schema()),
        std::sync::Arc::new(parking_lot::RwLock::new(Vec::new())),
        env,
        channel(2),
    )
    .await
    .unwrap();
    assert_eq!(shard.live_rows(), 30);
    assert_eq!(shard.live_rows_in(&Some([1].into())), 30);
    assert_eq!(shard.live_rows_in(&Some([2].into())), 0);
    assert_eq!(shard.growing_rows(), 1);
    assert_eq!(
        shard.recovery_stats(),
        ferrovus_core::shard::RecoveryStats {
            segments: 3,
            replayed: 1
        }
    );
    let gets = counting.gets.lock().clone();
    assert!(gets.iter().all(|k| !k.ends_with("/data")), "{gets:?}");
    for m in &held {
        assert!(gets.contains(m.pks_key.as_ref().unwrap()), "{gets:?}");
    }
    assert!(gets.iter().any(|k| k.contains("/deletes-")), "{gets:?}");
    assert!(gets.iter().any(|k| k.starts_with("deltas/")), "{gets:?}");
}

/// A checkpoint store whose commits wait until the test opens the gate.
#[derive(Debug)]
struct GatedCheckpoints {
    inner: MetaCheckpointStore,
    entered: tokio::sync::Notify,
    gate: tokio::sync::Semaphore,
}

#[async_trait::async_trait]
impl CheckpointStore for GatedCheckpoints {
    async fn load(
        &self,
        collection_id: i64,
        shard: usize,
    ) -> ferrovus_core::Result<Option<ferrovus_core::shard::ShardCheckpoint>> {
        self.inner.load(collection_id, shard).await
    }
    async fn commit(
        &self,
        collection_id: i64,
        shard: usize,
        term: u64,
        checkpoint: &ferrovus_core::shard::ShardCheckpoint,
        new_segments: &[ferrovus_core::segment::SegmentMeta],
    ) -> ferrovus_core::Result<()> {
        self.entered.notify_one();
        self.gate.acquire().await.unwrap().forget();
        self.inner
            .commit(collection_id, shard, term, checkpoint, new_segments)
            .await
    }
    async fn remove(&self, collection_id: i64, shard: usize) -> ferrovus_core::Result<()> {
        self.inner.remove(collection_id, shard).await
    }
}

#[tokio::test]
async fn a_sealed_segment_is_reported_retained_only_once_its_checkpoint_is_committed() {
    let stores = Stores::new();
    let gated = std::sync::Arc::new(GatedCheckpoints {
        inner: MetaCheckpointStore::new(stores.meta.clone()),
        entered: tokio::sync::Notify::new(),
        gate: tokio::sync::Semaphore::new(0),
    });
    let mut env = stores.env(manual_config(), None).await;
    env.checkpoints = gated.clone();
    let shard = std::sync::Arc::new(
        Shard::open_with(
            COLLECTION,
            0,
            std::sync::Arc::new(schema()),
            std::sync::Arc::new(parking_lot::RwLock::new(Vec::new())),
            env,
            channel(1),
        )
        .await
        .unwrap(),
    );
    shard.write(insert(1, 0..10, 0), 0).await.unwrap();
    let flushing = {
        let shard = shard.clone();
        tokio::spawn(async move { shard.flush().await })
    };
    // The commit is in flight: the segment is sealed in memory (and read), but the catalogue
    // does not know it yet, so it is not reported as retained (nothing may release it).
    gated.entered.notified().await;
    assert_eq!(shard.sealed_segments().len(), 1);
    assert!(shard.retained_committed().is_empty());
    assert_eq!(ids_excluding(&shard, &[]).0, (0..10).collect::<Vec<_>>());
    gated.gate.add_permits(1);
    flushing.await.unwrap().unwrap();
    let sealed = shard.sealed_segments();
    assert_eq!(shard.retained_committed(), vec![sealed[0].segment_id]);
}
