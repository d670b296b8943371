//! A query node's segment set next to the channel that sealed its segments: loaded from the
//! object store, brought up to date with the channel's deletes by key, read at the channel's
//! snapshot, the two halves together answer exactly what one standalone shard would.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use common::*;
use ferrovus_core::CoreError;
use ferrovus_core::delta::DeltaRead;
use ferrovus_core::expr::Plan;
use ferrovus_core::read::{PreparedSearch, merge_hits};
use ferrovus_core::request::{IndexSpec, IndexType, MetricType};
use ferrovus_core::sealed::{SealedSegment, SegmentSet};
use ferrovus_core::shard::{Shard, ShardOptions};
use ferrovus_core::value::{PrimaryKey, Value};
use ferrovus_core::vindex;

fn channel() -> ShardOptions {
    ShardOptions {
        term: 1,
        local_compaction: false,
        local_index_builds: false,
        retain_sealed: true,
    }
}

/// Catch the set up with the channel's deletes.
fn catch_up(set: &SegmentSet, shard: &Shard) {
    match shard.deltas_since(set.deltas_applied_up_to()) {
        DeltaRead::Entries { entries, up_to } => set.apply_deltas(&entries, up_to),
        DeltaRead::Gap { journal_start } => panic!("journal starts at {journal_start}"),
    }
}

/// (key, tag) of every row, the channel's growing side and the set's sealed side together.
fn rows_at(
    shard: &Shard,
    set: &SegmentSet,
    sealed: &[i64],
    snapshot: Option<u64>,
) -> Vec<(i64, i64)> {
    let all = Plan::match_all();
    let mut rows = Vec::new();
    let exclude: HashSet<i64> = sealed.iter().copied().collect();
    let r = shard.query(&all, &None, &[0, 1], false, &exclude);
    if snapshot.is_none() {
        rows.extend(r.value.1);
    }
    let at = snapshot.unwrap_or(r.snapshot);
    rows.extend(
        set.query(&all, &None, &[0, 1], false, at, sealed)
            .unwrap()
            .1,
    );
    let mut out: Vec<(i64, i64)> = rows
        .into_iter()
        .map(|(_, v)| match v.as_slice() {
            [Value::Int(k), Value::Int(t)] => (*k, *t),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    out.sort_unstable();
    out
}

#[tokio::test]
async fn channel_and_segment_set_answer_together_at_one_snapshot() {
    let stores = Stores::new();
    let shard = stores.open_with(manual_config(), None, channel()).await;
    shard.write(insert(1, 0..20, 0), 0).await.unwrap();
    shard.flush().await.unwrap();
    let meta = shard.sealed_segments()[0].clone();
    let schema = Arc::new(schema());
    let set = SegmentSet::new(COLLECTION, 0, schema.clone());
    let seg = SealedSegment::load(&*stores.objects, &schema, &meta)
        .await
        .unwrap();
    assert_eq!(
        seg.rows_of(&PrimaryKey::Int(7)).collect::<Vec<_>>(),
        vec![7]
    );
    set.insert(seg);
    catch_up(&set, &shard);
    shard.release_sealed(&[meta.segment_id]).unwrap();
    let sealed = [meta.segment_id];
    let before = shard.applied_ts();

    // Deletes and overwrites of sealed rows on the channel.
    shard.write(delete([3]), 0).await.unwrap();
    shard.write(upsert(1, [4], 1), 0).await.unwrap();
    shard.write(insert(1, [30], 2), 0).await.unwrap();
    // Until the set catches up it refuses to read at the channel's snapshot.
    let all = Plan::match_all();
    let err = set
        .query(&all, &None, &[0], false, shard.applied_ts(), &sealed)
        .unwrap_err();
    assert!(matches!(err, CoreError::Conflict(_)), "{err:?}");
    catch_up(&set, &shard);

    let mut want: Vec<(i64, i64)> = (0..20)
        .filter(|k| *k != 3 && *k != 4)
        .map(|k| (k, 0))
        .collect();
    want.extend([(4, 1), (30, 2)]);
    want.sort_unstable();
    assert_eq!(rows_at(&shard, &set, &sealed, None), want);
    // The sealed side still answers the older snapshot.
    let old: Vec<(i64, i64)> = (0..20).map(|k| (k, 0)).collect();
    assert_eq!(rows_at(&shard, &set, &sealed, Some(before)), old);

    // Get by key: the sealed version of key 4 is gone at the new snapshot.
    let now = shard.applied_ts();
    let keys = [PrimaryKey::Int(4), PrimaryKey::Int(5), PrimaryKey::Int(3)];
    let got = set.get(&keys, &None, &[1], now, &sealed).unwrap();
    assert_eq!(got, vec![(PrimaryKey::Int(5), vec![Value::Int(0)])]);
    let got = set.get(&keys, &None, &[1], before, &sealed).unwrap();
    assert_eq!(got.len(), 3);
    // Count and a missing segment.
    assert_eq!(
        set.query(&all, &None, &[], true, now, &sealed).unwrap().0,
        18
    );
    let err = set
        .query(&all, &None, &[], true, now, &[12345])
        .unwrap_err();
    assert!(matches!(err, CoreError::NotFound(_)), "{err:?}");

    // Search: the channel's hits and the set's hits merge into the exact top k.
    let q = vector(4);
    let plan = Plan::match_all();
    let req = PreparedSearch {
        field_index: 2,
        metric: MetricType::L2,
        queries: &q,
        num_queries: 1,
        k: 5,
        ef: 16,
        plan: &plan,
        partitions: None,
        output: &[1],
        ignore_growing: false,
        radius: None,
        range_filter: None,
    };
    let exclude: HashSet<i64> = sealed.into();
    let from_channel = shard.search(&req, &exclude).unwrap();
    let from_set = set.search(&req, from_channel.snapshot, &sealed).unwrap();
    let merged = merge_hits(
        MetricType::L2,
        vec![from_channel.value[0].clone(), from_set[0].clone()],
        5,
    );
    let mut live: Vec<i64> = want.iter().map(|(k, _)| *k).collect();
    live.sort_by(|a, b| {
        let d = |k: i64| -> f32 {
            vector(k)
                .iter()
                .zip(&q)
                .map(|(x, y)| (x - y) * (x - y))
                .sum()
        };
        d(*a).partial_cmp(&d(*b)).unwrap().then(a.cmp(b))
    });
    let got: Vec<i64> = merged.iter().map(|h| int(&h.pk)).collect();
    assert_eq!(got, live[..5].to_vec());
    assert_eq!(got[0], 4, "the upserted row, from the channel");
    assert_eq!(merged[0].values, vec![Value::Int(1)]);
}

#[tokio::test]
async fn attached_index_serves_search_and_vectors() {
    let stores = Stores::new();
    let shard = stores.open_with(manual_config(), None, channel()).await;
    shard.write(insert(1, 0..300, 0), 0).await.unwrap();
    shard.flush().await.unwrap();
    let meta = shard.sealed_segments()[0].clone();
    let schema = Arc::new(schema());
    let set = SegmentSet::new(COLLECTION, 0, schema.clone());
    set.insert(
        SealedSegment::load(&*stores.objects, &schema, &meta)
            .await
            .unwrap(),
    );
    catch_up(&set, &shard);
    let snapshot = shard.applied_ts();
    let ids = [meta.segment_id];
    let q = vector(42);
    let plan = Plan::match_all();
    let req = PreparedSearch {
        field_index: 2,
        metric: MetricType::L2,
        queries: &q,
        num_queries: 1,
        k: 3,
        ef: 64,
        plan: &plan,
        partitions: None,
        output: &[2],
        ignore_growing: false,
        radius: None,
        range_filter: None,
    };
    let exact = set.search(&req, snapshot, &ids).unwrap();

    let spec = IndexSpec {
        index_id: 77,
        index_name: "v".into(),
        field_id: schema.fields[2].field_id,
        field_name: "v".into(),
        index_type: IndexType::Hnsw,
        metric: MetricType::L2,
        m: 16,
        ef_construction: 100,
        params: BTreeMap::new(),
    };
    let vectors: Vec<f32> = (0..300).flat_map(vector).collect();
    let idx = Arc::new(vindex::build(&spec, DIM, &vectors, 1).unwrap());
    // A wrong-sized index is refused.
    let small = Arc::new(vindex::build(&spec, DIM, &vectors[..DIM * 10], 1).unwrap());
    assert!(
        set.attach_index(meta.segment_id, spec.field_id, 77, small)
            .is_err()
    );
    assert_eq!(set.vectors_in_index_rows(), 0);
    set.attach_index(meta.segment_id, spec.field_id, 77, idx)
        .unwrap();
    assert_eq!(set.vectors_in_index_rows(), 300, "the raw copy is released");
    let indexed = set.search(&req, snapshot, &ids).unwrap();
    assert_eq!(indexed[0][0].pk, PrimaryKey::Int(42));
    assert_eq!(
        indexed[0].iter().map(|h| h.pk.clone()).collect::<Vec<_>>(),
        exact[0].iter().map(|h| h.pk.clone()).collect::<Vec<_>>()
    );
    // Vectors come back exactly from the index that now holds the only copy.
    assert_eq!(indexed[0][0].values, vec![Value::FloatVector(vector(42))]);
    set.detach_index(meta.segment_id, spec.field_id);
    assert_eq!(set.vectors_in_index_rows(), 0);
    let got = set
        .get(&[PrimaryKey::Int(7)], &None, &[2], snapshot, &ids)
        .unwrap();
    assert_eq!(got[0].1, vec![Value::FloatVector(vector(7))]);
    assert_eq!(set.remove(&ids).len(), 1);
    assert!(set.segment_ids().is_empty());
}

/// A data node compacts two released segments at the channel's checkpoint snapshot; the
/// compacted segment, loaded with deletes after its base timestamp applied by key, reads the
/// same as the two it replaces — no row-offset remapping anywhere.
#[tokio::test]
async fn compacted_segment_applies_the_deltas_after_its_base() {
    use ferrovus_core::compaction;
    use ferrovus_core::delta;
    use ferrovus_core::segment::SegmentMeta;
    use ferrovus_core::shard::{CheckpointStore, MetaCheckpointStore};

    let stores = Stores::new();
    let shard = stores.open_with(manual_config(), None, channel()).await;
    shard.write(insert(1, 0..10, 0), 0).await.unwrap();
    shard.flush().await.unwrap();
    shard.write(insert(1, 10..20, 0), 0).await.unwrap();
    shard.flush().await.unwrap();
    let metas = shard.sealed_segments();
    assert_eq!(metas.len(), 2);
    let ids: Vec<i64> = metas.iter().map(|m| m.segment_id).collect();
    shard.release_sealed(&ids).unwrap();
    shard.write(delete([3, 12]), 0).await.unwrap();
    shard.flush().await.unwrap();
    let ck = MetaCheckpointStore::new(stores.meta.clone())
        .load(COLLECTION, 0)
        .await
        .unwrap()
        .unwrap();
    let snapshot = ck.applied_ts;

    // The data node: inputs with the persisted deltas after their base applied, merged.
    let schema = Arc::new(schema());
    let mut inputs = Vec::new();
    for m in &ck.segments {
        let mut s = SealedSegment::load(&*stores.objects, &schema, m)
            .await
            .unwrap();
        s.apply_deltas(
            &delta::read_deltas(&*stores.objects, &ck.deltas, m.base_ts)
                .await
                .unwrap(),
        );
        inputs.push(s);
    }
    let refs: Vec<_> = inputs.iter().map(|s| s.segment()).collect();
    let merged = compaction::merge(&schema, &refs, snapshot).unwrap();
    assert_eq!(merged.data.num_rows(), 18, "the two deleted rows are gone");

    // A delete after the compaction's snapshot, then the query node loads the result.
    shard.write(delete([5]), 0).await.unwrap();
    let mut meta = SegmentMeta::new(999, 1, 18, "segments/compacted/data".into());
    meta.base_ts = snapshot;
    let c = SealedSegment::from_parts(&schema, meta, merged.data, merged.deletes, Some(merged.pks))
        .unwrap();
    let set = SegmentSet::new(COLLECTION, 0, schema.clone());
    set.insert(c);
    let DeltaRead::Entries { entries, up_to } = shard.deltas_since(snapshot) else {
        panic!("the journal reaches back to the last checkpoint")
    };
    set.apply_deltas(&entries, up_to);
    let want: Vec<(i64, i64)> = (0..20)
        .filter(|k| ![3, 5, 12].contains(k))
        .map(|k| (k, 0))
        .collect();
    assert_eq!(rows_at(&shard, &set, &[999], None), want);
}
