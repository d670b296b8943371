//! The data node driven through a fake coordinator over a local object store: an index build
//! and a compaction whose outputs a query node loads ([`SealedSegment::load`]) with the right
//! rows and deletes; a failed task; cancellation; drain.

use std::collections::BTreeMap;
use std::sync::Arc;

use ferrovus_core::delta::{self, DeltaObjectMeta};
use ferrovus_core::keys;
use ferrovus_core::request::{IndexSpec, IndexType, MetricType};
use ferrovus_core::sealed::SealedSegment;
use ferrovus_core::segment::{DeleteMarks, SegmentData, SegmentMeta};
use ferrovus_core::store::ObjectStore;
use ferrovus_core::value::PrimaryKey;
use ferrovus_core::vindex::VectorIndex;
use tempfile::TempDir;

use super::DataNode;
use crate::api::{Task, TaskKind, TaskOutput, TaskResult};
use crate::config::Config;
use crate::node::StopReason;
use crate::streaming::tests::fake::*;

struct Fixture {
    _dir: TempDir,
    objects: Arc<CountingStore>,
    coord: Arc<FakeCoord>,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Fixture {
            objects: CountingStore::new(dir.path()),
            _dir: dir,
            coord: FakeCoord::new(),
        }
    }

    fn node(&self) -> DataNode {
        let mut config = Config::default();
        config.datanode.sync_wait_ms = 300;
        config.datanode.busy_sync_wait_ms = 50;
        config.datanode.retry_max_ms = 100;
        config.core.index_build_threads = 1;
        let node = DataNode::new(
            Arc::new(TestNodes {
                coord: self.coord.clone(),
            }),
            self.objects.clone(),
            &config,
            5,
            "127.0.0.1:20005",
            None,
        );
        node.start();
        node
    }

    /// Write a sealed segment of `keys` (rows at `row_ts`) with a delete log of `deletes`
    /// (key, ts), as a streaming node's checkpoint would.
    async fn segment(
        &self,
        id: i64,
        keys: std::ops::Range<i64>,
        row_ts: u64,
        base_ts: u64,
        deletes: &[(i64, u64)],
    ) -> SegmentMeta {
        let schema = schema();
        let mut data = SegmentData::empty(&schema);
        let b = batch(keys.clone(), id);
        data.append(b.columns.iter().map(|(_, c)| c), row_ts);
        let mut meta = SegmentMeta::new(
            id,
            1,
            data.num_rows(),
            keys::segment_data(COLLECTION, 0, id),
        );
        meta.base_ts = base_ts;
        self.objects
            .put(&meta.data_key, data.encode(id, 1, &schema).into())
            .await
            .unwrap();
        let pks = ferrovus_core::pks::SegmentPks::from_data(&data, 0).unwrap();
        let pks_key = keys::segment_pks(COLLECTION, 0, id);
        self.objects
            .put(&pks_key, pks.encode(id).into())
            .await
            .unwrap();
        meta.pks_key = Some(pks_key);
        if !deletes.is_empty() {
            let mut marks = DeleteMarks::default();
            for (k, ts) in deletes {
                marks.mark((k - keys.start) as u32, *ts);
            }
            let key = keys::segment_deletes(COLLECTION, 0, id, 1);
            self.objects
                .put(&key, marks.encode(data.num_rows()).into())
                .await
                .unwrap();
            meta.deletes_key = Some(key);
            meta.deletes_version = 1;
        }
        meta
    }

    async fn deltas(&self, from_ts: u64, to_ts: u64, entries: &[(i64, u64)]) -> DeltaObjectMeta {
        let entries: Vec<(PrimaryKey, u64)> = entries
            .iter()
            .map(|(k, ts)| (PrimaryKey::Int(*k), *ts))
            .collect();
        let key = keys::delta_object(COLLECTION, 0, from_ts, to_ts);
        self.objects
            .put(&key, delta::encode(&entries).into())
            .await
            .unwrap();
        DeltaObjectMeta {
            key,
            from_ts,
            to_ts,
            entries: entries.len(),
        }
    }
}

fn hnsw(index_id: i64) -> IndexSpec {
    IndexSpec {
        index_id,
        index_name: "v_idx".into(),
        field_id: vector_field_id(),
        field_name: "v".into(),
        index_type: IndexType::Hnsw,
        metric: MetricType::L2,
        m: 8,
        ef_construction: 32,
        params: BTreeMap::new(),
    }
}

fn vector_field_id() -> i64 {
    schema().field("v").unwrap().field_id
}

fn index_task(id: u64, segment: &SegmentMeta, index_id: i64) -> Task {
    Task {
        id,
        collection: collection(),
        shard: 0,
        kind: TaskKind::IndexBuild {
            segment: Box::new(segment.clone()),
            field_id: vector_field_id(),
            spec: hnsw(index_id),
            index_key: keys::segment_index(
                COLLECTION,
                0,
                segment.segment_id,
                vector_field_id(),
                index_id,
            ),
        },
    }
}

fn result_of(results: &[TaskResult], id: u64) -> Option<&TaskResult> {
    results.iter().find(|r| r.id == id)
}

#[tokio::test]
async fn an_index_build_writes_an_index_a_query_node_attaches() {
    let f = Fixture::new();
    let seg = f.segment(40, 0..60, 100, 100, &[]).await;
    let node = f.node();
    f.coord.add_task(index_task(1, &seg, 11));
    let results = f.coord.until_results(|r| result_of(r, 1).is_some()).await;
    let key = keys::segment_index(COLLECTION, 0, 40, vector_field_id(), 11);
    assert_eq!(
        result_of(&results, 1).unwrap().outcome,
        Ok(TaskOutput::Index {
            segment_id: 40,
            field_id: vector_field_id(),
            index_id: 11,
            key: key.clone(),
        })
    );
    let index = Arc::new(VectorIndex::load(f.objects.get(&key).await.unwrap()).unwrap());
    assert_eq!((index.len(), index.dim()), (60, DIM));
    let mut loaded = SealedSegment::load(&*f.objects, &schema(), &seg)
        .await
        .unwrap();
    loaded
        .attach_index(vector_field_id(), 11, index.clone())
        .unwrap();
    let hits = index.search(&vector(17), 1, 16, None).unwrap();
    assert_eq!(hits[0][0].0, 17, "the index rows are the segment rows");
    assert!(node.status().is_ok());
    // Every slot is free again, and the result was acknowledged once.
    f.coord
        .until_data(|r| r.slots == 2 && r.running.is_empty() && r.finished.is_empty())
        .await;
    assert_eq!(f.coord.results().iter().filter(|r| r.id == 1).count(), 1);
    node.stop().await;
}

#[tokio::test]
async fn a_compaction_applies_deletes_by_key_at_its_snapshot() {
    let f = Fixture::new();
    // A: keys 0..10 written at 100, base 200; its delete log: key 1 at 150, key 2 at 400.
    let a = f.segment(50, 0..10, 100, 200, &[(1, 150), (2, 400)]).await;
    // B: keys 10..20 written at 210, base 220, no delete log.
    let b = f.segment(51, 10..20, 210, 220, &[]).await;
    let deltas = f
        .deltas(
            200,
            350,
            &[
                (5, 205),  // after A's base: applied
                (3, 250),  // applied
                (13, 215), // before B's base (B's delete log would hold it): not applied
                (12, 260), // applied
                (14, 330), // after the snapshot: left to the deltas after the new base
            ],
        )
        .await;
    let node = f.node();
    f.coord.add_task(Task {
        id: 2,
        collection: collection(),
        shard: 0,
        kind: TaskKind::Compaction {
            partition_id: 1,
            sources: vec![a, b],
            deltas: vec![deltas.clone()],
            snapshot_ts: 300,
            target_segment_id: 60,
        },
    });
    let results = f.coord.until_results(|r| result_of(r, 2).is_some()).await;
    let Ok(TaskOutput::Compacted { segment }) = &result_of(&results, 2).unwrap().outcome else {
        panic!("{results:?}")
    };
    assert_eq!(segment.segment_id, 60);
    assert_eq!(segment.partition_id, 1);
    assert_eq!(segment.base_ts, 300);
    assert_eq!(segment.data_key, keys::segment_data(COLLECTION, 0, 60));
    assert_eq!(
        segment.pks_key.as_deref(),
        Some(&*keys::segment_pks(COLLECTION, 0, 60))
    );
    assert!(segment.deletes_key.is_some());
    let kept: Vec<i64> = [0, 2, 4, 6, 7, 8, 9]
        .into_iter()
        .chain((10..20).filter(|k| *k != 12))
        .collect();
    assert_eq!(segment.num_rows, kept.len());

    let mut loaded = SealedSegment::load(&*f.objects, &schema(), segment)
        .await
        .unwrap();
    assert_eq!(loaded.num_rows(), kept.len());
    let mut keys_found: Vec<i64> = Vec::new();
    for k in 0..20 {
        if loaded.rows_of(&PrimaryKey::Int(k)).next().is_some() {
            keys_found.push(k);
        }
    }
    assert_eq!(keys_found, kept);
    // Key 2 stays, deleted at 400 by its delete log (after the snapshot).
    let seg = loaded.segment();
    let row2 = loaded.rows_of(&PrimaryKey::Int(2)).next().unwrap();
    assert_eq!(seg.deleted.count(), 1);
    assert_eq!(seg.deleted.ts(row2), Some(400));
    // The row timestamps and values came along.
    let row13 = loaded.rows_of(&PrimaryKey::Int(13)).next().unwrap();
    assert_eq!(seg.data().timestamps[row13], 210);
    assert_eq!(
        seg.value(2, row13),
        ferrovus_core::value::Value::FloatVector(vector(13))
    );
    // A query node applies the deltas after the new base: key 14 at 330.
    let after = delta::read_deltas(&*f.objects, &[deltas], segment.base_ts)
        .await
        .unwrap();
    assert_eq!(after, vec![(PrimaryKey::Int(14), 330)]);
    assert_eq!(loaded.apply_deltas(&after), 1);
    node.stop().await;
}

#[tokio::test]
async fn a_failed_task_reports_its_error() {
    let f = Fixture::new();
    let mut seg = SegmentMeta::new(70, 1, 5, keys::segment_data(COLLECTION, 0, 70));
    seg.base_ts = 1;
    let node = f.node();
    f.coord.add_task(index_task(3, &seg, 11));
    let results = f.coord.until_results(|r| result_of(r, 3).is_some()).await;
    let err = result_of(&results, 3).unwrap().outcome.clone().unwrap_err();
    assert!(err.contains("segments/7/0/70/data"), "{err}");
    // A FLAT index is not built.
    let seg = f.segment(71, 0..5, 1, 1, &[]).await;
    let mut flat = index_task(4, &seg, 12);
    if let TaskKind::IndexBuild { spec, .. } = &mut flat.kind {
        spec.index_type = IndexType::Flat;
    }
    f.coord.add_task(flat);
    let results = f.coord.until_results(|r| result_of(r, 4).is_some()).await;
    assert!(result_of(&results, 4).unwrap().outcome.is_err());
    node.stop().await;
}

#[tokio::test]
async fn a_cancelled_task_stops_and_reports_nothing() {
    let f = Fixture::new();
    let seg = f.segment(80, 0..20, 1, 1, &[]).await;
    f.objects.block(&seg.data_key);
    let node = f.node();
    f.coord.add_task(index_task(5, &seg, 11));
    f.coord
        .until_data(|r| r.running.iter().any(|p| p.id == 5) && r.slots == 1)
        .await;
    f.coord.cancel_task(5);
    f.coord.until_data(|r| r.running.is_empty()).await;
    f.objects.unblock(&seg.data_key);
    // Another task goes through after it; the cancelled one never reports.
    let other = f.segment(81, 0..20, 1, 1, &[]).await;
    f.coord.add_task(index_task(6, &other, 11));
    let results = f.coord.until_results(|r| result_of(r, 6).is_some()).await;
    assert!(result_of(&results, 5).is_none(), "{results:?}");
    let key = keys::segment_index(COLLECTION, 0, 80, vector_field_id(), 11);
    assert!(!f.objects.exists(&key).await.unwrap());
    node.stop().await;
}

#[tokio::test]
async fn drain_takes_no_new_task_and_reports_the_running_one() {
    let f = Fixture::new();
    let seg = f.segment(90, 0..20, 1, 1, &[]).await;
    f.objects.block(&seg.data_key);
    let node = f.node();
    f.coord.add_task(index_task(7, &seg, 11));
    f.coord
        .until_data(|r| r.running.iter().any(|p| p.id == 7))
        .await;
    let draining = {
        let node = node.clone();
        tokio::spawn(async move { node.drain(StopReason::Shutdown).await })
    };
    f.coord.until_data(|r| r.draining && r.slots == 0).await;
    assert!(node.status().unwrap_err().contains("draining"));
    let queued = f.segment(91, 0..20, 1, 1, &[]).await;
    f.coord.add_task(index_task(8, &queued, 11));
    f.objects.unblock(&seg.data_key);
    tokio::time::timeout(PATIENCE, draining)
        .await
        .expect("drain did not finish")
        .unwrap();
    let results = f.coord.results();
    assert!(
        result_of(&results, 7).unwrap().outcome.is_ok(),
        "{results:?}"
    );
    assert!(
        result_of(&results, 8).is_none(),
        "no task is taken while draining"
    );
}
