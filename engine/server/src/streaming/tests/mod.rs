//! The streaming node driven through a fake coordinator, with the real core shard over a local
//! object store: opening and recovery, term checks, writes and reads with exclusion, flush and
//! release, a refused commit, closing, fencing by a newer owner, drain.

pub(crate) mod fake;
mod process;

use std::collections::HashMap;
use std::sync::Arc;

use ferrovus_core::request::MetricType;
use ferrovus_core::store::ObjectStore;
use tempfile::TempDir;

use self::fake::*;
use super::StreamingNode;
use crate::api::*;
use crate::config::Config;
use crate::node::StopReason;
use crate::rpc::ClusterError;

const CH: ChannelId = ChannelId {
    collection_id: COLLECTION,
    shard: 0,
};

struct Fixture {
    _dir: TempDir,
    objects: Arc<CountingStore>,
    coord: Arc<FakeCoord>,
    config: Config,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        // Seal only when told to.
        config.core.seal_rows = usize::MAX;
        config.core.seal_bytes = usize::MAX;
        config.streaming.sync_wait_ms = 300;
        config.streaming.retry_max_ms = 100;
        Fixture {
            objects: CountingStore::new(dir.path()),
            _dir: dir,
            coord: FakeCoord::new(),
            config,
        }
    }

    fn node(&self, id: NodeId) -> StreamingNode {
        let node = StreamingNode::new(
            Arc::new(TestNodes {
                coord: self.coord.clone(),
            }),
            self.objects.clone(),
            &self.config,
            id,
            format!("127.0.0.1:{}", 20000 + id),
            None,
        );
        node.start();
        node
    }
}

async fn until_ready(node: &StreamingNode) {
    let mut changes = node.watch_changes();
    tokio::time::timeout(PATIENCE, async {
        loop {
            if node.status().is_ok() {
                return;
            }
            let _ = changes.changed().await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the node never became ready: {:?}", node.status()));
}

fn write(term: u64, record: ferrovus_core::wal::WalRecord) -> WriteReq {
    WriteReq {
        channel: CH,
        term,
        record,
        bytes: 0,
    }
}

fn query_spec(filter: &str, limit: Option<usize>) -> QuerySpec {
    QuerySpec {
        filter: filter.into(),
        filter_params: HashMap::new(),
        partitions: None,
        output: vec![0, 1],
        count_only: false,
        limit,
    }
}

async fn query(
    node: &StreamingNode,
    term: u64,
    filter: &str,
    exclude: Vec<i64>,
) -> ChannelQueryResp {
    node.query(ChannelQueryReq {
        channel: CH,
        term,
        spec: query_spec(filter, None),
        exclude,
    })
    .await
    .unwrap()
}

fn search_spec(target: i64, k: usize) -> SearchSpec {
    SearchSpec {
        field_index: 2,
        metric: MetricType::L2,
        queries: vector(target),
        num_queries: 1,
        k,
        ef: 16,
        filter: String::new(),
        filter_params: HashMap::new(),
        partitions: None,
        output: vec![1],
        ignore_growing: false,
        radius: None,
        range_filter: None,
    }
}

fn row_ids(r: &ChannelQueryResp) -> Vec<i64> {
    ints(r.rows.iter().map(|r| &r.pk))
}

async fn stats(node: &StreamingNode, term: u64, partitions: Option<Vec<i64>>) -> ChannelStats {
    node.stats(ChannelStatsReq {
        channel: CH,
        term,
        partitions,
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_channel_serves_only_once_recovered_and_only_at_its_term() {
    let f = Fixture::new();
    f.coord.close_open_gate();
    f.coord.assign(CH, 1, 3);
    let node = f.node(1);
    f.coord
        .until_streaming(1, |r| {
            r.channels.iter().any(|c| c.channel == CH && !c.ready)
        })
        .await;
    let e = node.write(write(3, insert(1, 0..4))).await.unwrap_err();
    assert!(
        matches!(&e, ClusterError::NotServing(m) if m.contains("recovering")),
        "{e}"
    );
    assert!(e.is_retriable());
    assert!(node.status().unwrap_err().contains("recovering"));

    f.coord.open_open_gate();
    until_ready(&node).await;
    f.coord
        .until_streaming(1, |r| {
            r.channels
                .iter()
                .any(|c| c.channel == CH && c.ready && c.term == 3)
        })
        .await;
    let e = node.write(write(2, insert(1, 0..4))).await.unwrap_err();
    assert_eq!(
        e,
        ClusterError::WrongTerm {
            channel: CH.to_string(),
            expected: 3,
            got: 2
        }
    );
    let mut other = write(3, insert(1, 0..4));
    other.channel = ChannelId::new(COLLECTION, 1);
    let e = node.write(other).await.unwrap_err();
    assert!(matches!(e, ClusterError::NotServing(_)), "{e}");
    // A record of the wrong shape is refused, not applied.
    let mut bad = insert(1, 0..4);
    if let ferrovus_core::wal::WalRecord::Insert { rows, .. } = &mut bad {
        rows.columns.pop();
    }
    let e = node.write(write(3, bad)).await.unwrap_err();
    assert!(matches!(e, ClusterError::InvalidArgument { .. }), "{e}");

    // Writes and reads.
    let t1 = node.write(write(3, insert(1, 0..10))).await.unwrap();
    node.write(write(3, insert(2, 10..15))).await.unwrap();
    node.write(write(3, delete([3]))).await.unwrap();
    let t4 = node.write(write(3, upsert(1, [4], 9))).await.unwrap();
    assert!(t4 > t1);
    let all = query(&node, 3, "id >= 0", vec![]).await;
    let want: Vec<i64> = (0..15).filter(|i| *i != 3).collect();
    assert_eq!((row_ids(&all), all.count), (want.clone(), 14));
    assert_eq!(all.snapshot, t4);
    let limited = node
        .query(ChannelQueryReq {
            channel: CH,
            term: 3,
            spec: query_spec("id >= 0", Some(3)),
            exclude: vec![],
        })
        .await
        .unwrap();
    assert_eq!(
        row_ids(&limited),
        vec![0, 1, 2],
        "key order, at most the limit"
    );
    assert_eq!(limited.count, 14);
    let mut count = query_spec("", None);
    count.count_only = true;
    let counted = node
        .query(ChannelQueryReq {
            channel: CH,
            term: 3,
            spec: count,
            exclude: vec![],
        })
        .await
        .unwrap();
    assert_eq!((counted.count, counted.rows.len()), (14, 0));
    let tagged = query(&node, 3, "tag == 9", vec![]).await;
    assert_eq!(row_ids(&tagged), vec![4]);
    assert_eq!(
        tagged.rows[0].values[1],
        ferrovus_core::value::Value::Int(9)
    );
    let found = node
        .search(ChannelSearchReq {
            channel: CH,
            term: 3,
            spec: search_spec(6, 3),
            exclude: vec![],
        })
        .await
        .unwrap();
    assert_eq!(found.hits.len(), 1);
    assert_eq!(found.hits[0].len(), 3);
    assert_eq!(
        found.hits[0][0].pk,
        ferrovus_core::value::PrimaryKey::Int(6)
    );
    assert_eq!(found.snapshot, t4);
    let e = node
        .query(ChannelQueryReq {
            channel: CH,
            term: 3,
            spec: query_spec("nope > 1", None),
            exclude: vec![],
        })
        .await
        .unwrap_err();
    assert!(e.to_string().contains("cannot parse expression"), "{e}");

    let s = stats(&node, 3, None).await;
    assert_eq!((s.live_rows, s.growing_rows, s.applied_ts), (14, 16, t4));
    assert_eq!(stats(&node, 3, Some(vec![2])).await.live_rows, 5);
    // No sealed row was deleted: the journal is empty.
    match node
        .deltas(DeltasReq {
            channel: CH,
            term: 3,
            after_ts: 0,
        })
        .await
        .unwrap()
    {
        DeltasResp::Entries { entries, up_to } => {
            assert!(entries.is_empty());
            assert_eq!(up_to, t4);
        }
        gap => panic!("{gap:?}"),
    }
    f.coord
        .until_streaming(1, |r| {
            r.channels
                .iter()
                .any(|c| c.channel == CH && c.live_rows == 14 && c.applied_ts == t4)
        })
        .await;
    node.stop().await;
}

#[tokio::test]
async fn flush_registers_segments_at_the_coordinator_and_release_drops_them() {
    let f = Fixture::new();
    f.coord.assign(CH, 1, 1);
    let node = f.node(1);
    until_ready(&node).await;
    node.write(write(1, insert(1, 0..10))).await.unwrap();
    let sealed = node
        .flush(ChannelReq {
            channel: CH,
            term: 1,
        })
        .await
        .unwrap();
    assert_eq!(sealed.len(), 1);
    let commits = f.coord.commits();
    let last = commits.last().unwrap();
    assert_eq!((last.channel, last.term), (CH, 1));
    assert_eq!(last.new_segments, sealed);
    let ck = f.coord.checkpoint(CH).unwrap();
    assert_eq!(
        ck.segments.iter().map(|m| m.segment_id).collect::<Vec<_>>(),
        sealed
    );
    assert!(ck.segments[0].pks_key.is_some());
    f.coord
        .until_streaming(1, |r| r.channels.iter().any(|c| c.retained == sealed))
        .await;

    // Retained: searched here unless excluded.
    let q = query(&node, 1, "id >= 0", vec![]).await;
    assert_eq!(
        (row_ids(&q), q.sealed_searched.clone()),
        ((0..10).collect(), sealed.clone())
    );
    let q = query(&node, 1, "id >= 0", sealed.clone()).await;
    assert_eq!((row_ids(&q), q.sealed_searched), (vec![], vec![]));
    let s = node
        .search(ChannelSearchReq {
            channel: CH,
            term: 1,
            spec: search_spec(2, 2),
            exclude: sealed.clone(),
        })
        .await
        .unwrap();
    assert!(s.hits[0].is_empty() && s.sealed_searched.is_empty());

    // A delete of a sealed row is journaled by key.
    let base = ck.segments[0].base_ts;
    let t = node.write(write(1, delete([2]))).await.unwrap();
    match node
        .deltas(DeltasReq {
            channel: CH,
            term: 1,
            after_ts: base,
        })
        .await
        .unwrap()
    {
        DeltasResp::Entries { entries, .. } => {
            assert_eq!(entries, vec![(ferrovus_core::value::PrimaryKey::Int(2), t)])
        }
        gap => panic!("{gap:?}"),
    }

    // Released: query nodes serve it now; the keys stay known here.
    f.coord.release(1, CH, sealed.clone());
    f.coord
        .until_streaming(1, |r| {
            r.channels
                .iter()
                .any(|c| c.channel == CH && c.retained.is_empty())
        })
        .await;
    let q = query(&node, 1, "id >= 0", vec![]).await;
    assert_eq!((row_ids(&q), q.sealed_searched), (vec![], vec![]));
    assert_eq!(stats(&node, 1, None).await.live_rows, 9);
    // A flush with nothing growing seals nothing.
    assert!(
        node.flush(ChannelReq {
            channel: CH,
            term: 1
        })
        .await
        .unwrap()
        .is_empty()
    );
    node.stop().await;
}

#[tokio::test]
async fn a_killed_owner_loses_no_acknowledged_write_and_recovery_reads_no_data_file() {
    let f = Fixture::new();
    f.coord.assign(CH, 1, 1);
    let a = f.node(1);
    until_ready(&a).await;
    a.write(write(1, insert(1, 0..10))).await.unwrap();
    a.flush(ChannelReq {
        channel: CH,
        term: 1,
    })
    .await
    .unwrap();
    a.write(write(1, insert(1, 10..20))).await.unwrap();
    a.flush(ChannelReq {
        channel: CH,
        term: 1,
    })
    .await
    .unwrap();
    // Only in the log from here on.
    let t_del = a.write(write(1, delete([5]))).await.unwrap();
    a.write(write(1, insert(1, 20..25))).await.unwrap();
    a.write(write(1, upsert(1, [21], 7))).await.unwrap();
    let last = a.write(write(1, delete([22]))).await.unwrap();
    // Killed: no flush, no hand-off.
    a.stop().await;
    drop(a);
    let ck = f.coord.checkpoint(CH).unwrap();
    assert_eq!(ck.segments.len(), 2);
    f.objects.take_gets();

    f.coord.assign(CH, 2, 2);
    let b = f.node(2);
    until_ready(&b).await;
    assert!(matches!(
        b.write(write(1, insert(1, [99]))).await.unwrap_err(),
        ClusterError::WrongTerm {
            expected: 2,
            got: 1,
            ..
        }
    ));
    let s = stats(&b, 2, None).await;
    assert_eq!(
        (s.live_rows, s.applied_ts),
        (23, last),
        "every acknowledged write"
    );
    // The checkpoint's segments start released (query nodes serve them); the log's rows are
    // growing here.
    let q = query(&b, 2, "id >= 0", vec![]).await;
    assert_eq!(row_ids(&q), vec![20, 21, 23, 24]);
    assert!(q.sealed_searched.is_empty());
    let upserted = query(&b, 2, "id == 21", vec![]).await;
    assert_eq!(
        upserted.rows[0].values[1],
        ferrovus_core::value::Value::Int(7)
    );
    f.coord
        .until_streaming(2, |r| {
            r.channels
                .iter()
                .any(|c| c.ready && c.retained.is_empty() && c.live_rows == 23)
        })
        .await;
    // The delete of a sealed row replayed from the log is in the journal again.
    match b
        .deltas(DeltasReq {
            channel: CH,
            term: 2,
            after_ts: ck.applied_ts,
        })
        .await
        .unwrap()
    {
        DeltasResp::Entries { entries, .. } => {
            assert_eq!(
                entries,
                vec![(ferrovus_core::value::PrimaryKey::Int(5), t_del)]
            )
        }
        gap => panic!("{gap:?}"),
    }
    let open = b.inner.channel(CH).unwrap().open().unwrap();
    let rec = open.shard.recovery_stats();
    assert_eq!((rec.segments, rec.replayed), (2, 4));
    // Recovery read the segments' keys, never their data files.
    let gets = f.objects.take_gets();
    assert!(gets.iter().all(|k| !k.ends_with("/data")), "{gets:?}");
    for m in &ck.segments {
        assert!(gets.contains(m.pks_key.as_ref().unwrap()), "{gets:?}");
    }
    // A deleted key of a released segment is still known: deleting it again journals nothing
    // new, deleting another one does.
    let t = b.write(write(2, delete([6]))).await.unwrap();
    assert_eq!(stats(&b, 2, None).await.live_rows, 22);
    match b
        .deltas(DeltasReq {
            channel: CH,
            term: 2,
            after_ts: t_del,
        })
        .await
        .unwrap()
    {
        DeltasResp::Entries { entries, .. } => {
            assert_eq!(entries, vec![(ferrovus_core::value::PrimaryKey::Int(6), t)])
        }
        gap => panic!("{gap:?}"),
    }
    b.stop().await;
}

#[tokio::test]
async fn a_refused_commit_stops_the_channel_and_keeps_its_log() {
    let f = Fixture::new();
    f.coord.assign(CH, 1, 1);
    let node = f.node(1);
    until_ready(&node).await;
    node.write(write(1, insert(1, 0..5))).await.unwrap();
    // The coordinator moved the channel on while this node was not listening.
    f.coord.set_term_silently(CH, 9, 2);
    let e = node
        .flush(ChannelReq {
            channel: CH,
            term: 1,
        })
        .await
        .unwrap_err();
    assert!(matches!(e, ClusterError::NotServing(_)), "{e}");
    let e = node.write(write(1, insert(1, [7]))).await.unwrap_err();
    assert!(
        matches!(&e, ClusterError::NotServing(m) if m.contains("refused its checkpoint")),
        "{e}"
    );
    assert!(node.status().is_err());
    assert!(f.coord.checkpoint(CH).is_none());
    let logs = f.objects.list("wal/7/0/").await.unwrap();
    assert!(logs.iter().any(|k| k.ends_with(".log")), "{logs:?}");
    node.stop().await;
}

#[tokio::test]
async fn an_unassigned_channel_closes_and_its_data_stays_for_the_next_owner() {
    let f = Fixture::new();
    f.coord.assign(CH, 1, 1);
    let node = f.node(1);
    until_ready(&node).await;
    node.write(write(1, insert(1, 0..5))).await.unwrap();
    f.coord.unassign(CH);
    f.coord.until_streaming(1, |r| r.channels.is_empty()).await;
    let e = node.write(write(1, insert(1, [9]))).await.unwrap_err();
    assert!(matches!(e, ClusterError::NotServing(_)), "{e}");
    assert!(!f.objects.list("wal/7/0/").await.unwrap().is_empty());
    // Assigned again (at a new term): recovered with its data.
    f.coord.assign(CH, 1, 2);
    f.coord
        .until_streaming(1, |r| r.channels.iter().any(|c| c.term == 2 && c.ready))
        .await;
    assert_eq!(stats(&node, 2, None).await.live_rows, 5);
    node.stop().await;
}

#[tokio::test]
async fn a_newer_owner_fences_an_old_one_that_did_not_hear_of_the_move() {
    let f = Fixture::new();
    f.coord.assign(CH, 1, 1);
    let a = f.node(1);
    until_ready(&a).await;
    a.write(write(1, insert(1, 0..3))).await.unwrap();
    // `a` is cut off from the coordinator, which moves the channel to `b`.
    f.coord.freeze(1);
    f.coord.assign(CH, 2, 2);
    let b = f.node(2);
    until_ready(&b).await;
    let e = a.write(write(1, insert(1, [10]))).await.unwrap_err();
    assert!(
        matches!(&e, ClusterError::NotServing(m) if m.contains("fenced")),
        "{e}"
    );
    assert!(a.write(write(1, insert(1, [11]))).await.is_err());
    assert!(a.status().is_err());
    assert_eq!(stats(&b, 2, None).await.live_rows, 3);
    b.write(write(2, insert(1, [12]))).await.unwrap();
    assert_eq!(
        row_ids(&query(&b, 2, "id >= 0", vec![]).await),
        vec![0, 1, 2, 12]
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn drain_flushes_reports_draining_and_serves_until_the_channel_moves() {
    let f = Fixture::new();
    f.coord.assign(CH, 1, 1);
    let node = f.node(1);
    until_ready(&node).await;
    node.write(write(1, insert(1, 0..8))).await.unwrap();
    let draining = {
        let node = node.clone();
        tokio::spawn(async move { node.drain(StopReason::Shutdown).await })
    };
    f.coord.until_streaming(1, |r| r.draining).await;
    let commits = f.coord.commits();
    assert_eq!(commits.len(), 1, "flushed before reporting draining");
    assert_eq!(commits[0].checkpoint.segments[0].num_rows, 8);
    assert!(node.status().unwrap_err().contains("draining"));
    // Still serving while the channel is assigned here.
    node.write(write(1, insert(1, [20]))).await.unwrap();
    assert!(!draining.is_finished());
    f.coord.unassign(CH);
    tokio::time::timeout(PATIENCE, draining)
        .await
        .expect("drain did not finish once the channel moved")
        .unwrap();
    assert!(node.write(write(1, insert(1, [21]))).await.is_err());
}
