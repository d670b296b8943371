//! Query node tests: real core segments written by a real channel (a core `Shard` retaining its
//! sealed segments, as a streaming node runs it) into a local object store, behind fakes of the
//! other roles' APIs — `Owner` (`StreamingApi` over the shard) and `FakeCoord` (`CoordApi`:
//! `query_sync` long polls over a scripted target, `routes`).

mod delegator;
mod load;
mod role;
mod sync;
mod worker;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use ferrovus_core::CoreConfig;
use ferrovus_core::delta::DeltaRead;
use ferrovus_core::read::PreparedSearch;
use ferrovus_core::request::{Consistency, IndexSpec, IndexType, MetricType};
use ferrovus_core::schema::{CollectionSchema, DataType, FieldSchema};
use ferrovus_core::segment::SegmentMeta;
use ferrovus_core::shard::{
    CheckpointStore, MetaCheckpointStore, Shard, ShardCheckpoint, ShardEnv, ShardOptions,
};
use ferrovus_core::store::ObjectStore;
use ferrovus_core::store::memory::MemoryMetaStore;
use ferrovus_core::tso::{IdAllocator, TimestampOracle};
use ferrovus_core::value::{Column, PrimaryKey, RowBatch, Value};
use ferrovus_core::wal::WalRecord;
use ferrovus_storage::LocalObjectStore;
use parking_lot::{Mutex, RwLock};
use tokio::sync::{Notify, watch};

use super::QueryNode;
use super::spec;
use crate::api::*;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::rpc::ClusterError;

pub(super) const CID: i64 = 7;
pub(super) const DIM: usize = 4;
pub(super) const TERM: u64 = 3;
pub(super) const OWNER_NODE: NodeId = 100;
pub(super) const PARTITION: i64 = 1;

pub(super) fn schema() -> CollectionSchema {
    CollectionSchema {
        name: "c".into(),
        description: String::new(),
        fields: vec![
            FieldSchema::new("id", DataType::Int64).primary(false),
            FieldSchema::new("tag", DataType::Int64),
            FieldSchema::new("v", DataType::FloatVector).with_dim(DIM as u32),
        ],
        enable_dynamic_field: false,
    }
    .validate_and_normalize()
    .unwrap()
}

pub(super) fn vector(i: i64) -> Vec<f32> {
    (0..DIM)
        .map(|d| ((i + 1) as f32 * (d as f32 + 0.5)).sin())
        .collect()
}

fn batch(ids: &[i64], tag: i64) -> RowBatch {
    RowBatch {
        columns: vec![
            ("id".into(), Column::Int(ids.to_vec())),
            ("tag".into(), Column::Int(vec![tag; ids.len()])),
            (
                "v".into(),
                Column::FloatVector {
                    dim: DIM,
                    data: ids.iter().flat_map(|i| vector(*i)).collect(),
                },
            ),
        ],
    }
}

pub(super) fn insert(ids: impl IntoIterator<Item = i64>, tag: i64) -> WalRecord {
    WalRecord::Insert {
        partition_id: PARTITION,
        ts: 0,
        rows: batch(&ids.into_iter().collect::<Vec<_>>(), tag),
    }
}

pub(super) fn upsert(ids: impl IntoIterator<Item = i64>, tag: i64) -> WalRecord {
    WalRecord::Upsert {
        partition_id: PARTITION,
        ts: 0,
        rows: batch(&ids.into_iter().collect::<Vec<_>>(), tag),
    }
}

pub(super) fn delete(ids: impl IntoIterator<Item = i64>) -> WalRecord {
    WalRecord::Delete {
        ts: 0,
        pks: ids.into_iter().map(PrimaryKey::Int).collect(),
    }
}

pub(super) fn int(pk: &PrimaryKey) -> i64 {
    match pk {
        PrimaryKey::Int(i) => *i,
        PrimaryKey::Str(s) => panic!("string key {s}"),
    }
}

pub(super) fn route() -> ChannelRoute {
    ChannelRoute {
        channel: ChannelId::new(CID, 0),
        node: OWNER_NODE,
        addr: "owner:1".into(),
        term: TERM,
    }
}

pub(super) fn index_spec(index_id: i64) -> IndexSpec {
    IndexSpec {
        index_id,
        index_name: "v_idx".into(),
        field_id: schema().fields[2].field_id,
        field_name: "v".into(),
        index_type: IndexType::Hnsw,
        metric: MetricType::L2,
        m: 16,
        ef_construction: 100,
        params: BTreeMap::new(),
    }
}

pub(super) fn collection(indexes: Vec<IndexSpec>) -> CollectionRecord {
    CollectionRecord {
        id: CID,
        name: "c".into(),
        schema: schema(),
        num_shards: 1,
        partitions: vec![],
        aliases: vec![],
        indexes,
        consistency: Consistency::Strong,
        properties: BTreeMap::new(),
        created_ts: 0,
        load: Some(LoadSpec { replica_number: 1 }),
    }
}

/// A search of `k` nearest to `vector(near)`, returning `id` and `tag`.
pub(super) fn search_spec(near: i64, k: usize, filter: &str) -> SearchSpec {
    SearchSpec {
        field_index: 2,
        metric: MetricType::L2,
        queries: vector(near),
        num_queries: 1,
        k,
        ef: 64,
        filter: filter.into(),
        filter_params: HashMap::new(),
        partitions: None,
        output: vec![0, 1],
        ignore_growing: false,
        radius: None,
        range_filter: None,
    }
}

/// A query of every row matching `filter`: `id` and `tag`.
pub(super) fn query_spec(filter: &str, limit: Option<usize>) -> QuerySpec {
    QuerySpec {
        filter: filter.into(),
        filter_params: HashMap::new(),
        partitions: None,
        output: vec![0, 1],
        count_only: false,
        limit,
    }
}

/// (id, tag) of rows.
pub(super) fn id_tags(rows: &[Row]) -> Vec<(i64, i64)> {
    rows.iter()
        .map(|r| match r.values.as_slice() {
            [Value::Int(k), Value::Int(t)] => (*k, *t),
            other => panic!("unexpected values {other:?}"),
        })
        .collect()
}

/// Await `cond` on every change of `rx`, failing (with the last value seen) after a generous
/// bound instead of hanging.
pub(super) async fn until<T: std::fmt::Debug>(
    rx: &mut watch::Receiver<T>,
    what: &str,
    mut cond: impl FnMut(&T) -> bool,
) {
    let r = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if cond(&rx.borrow_and_update()) {
                return;
            }
            if rx.changed().await.is_err() {
                panic!("gave up waiting for {what}: the sender is gone");
            }
        }
    })
    .await;
    assert!(
        r.is_ok(),
        "timed out waiting for {what}; last: {:#?}",
        *rx.borrow()
    );
}

// ---------------------------------------------------------------------------------------------
// The channel owner: a real shard behind `StreamingApi`.

/// A gate on `deltas` answers: the next answer is computed, then held until released.
#[derive(Default)]
pub(super) struct Gate {
    armed: Mutex<bool>,
    held: Notify,
    release: Notify,
}

pub(super) struct Owner {
    pub shard: Shard,
    meta: Arc<MemoryMetaStore>,
    schema: Arc<CollectionSchema>,
    pub deltas_calls: AtomicUsize,
    pub gate: Gate,
}

impl Owner {
    pub async fn open(objects: Arc<dyn ObjectStore>) -> Arc<Owner> {
        let meta = Arc::new(MemoryMetaStore::default());
        let config = CoreConfig {
            seal_rows: usize::MAX,
            seal_bytes: usize::MAX,
            compaction_small_rows: 0,
            compaction_deleted_ratio: 1.0,
            ..CoreConfig::default()
        };
        let env = ShardEnv {
            objects: objects.clone(),
            meta: meta.clone(),
            tso: Arc::new(
                TimestampOracle::open(meta.clone(), "tso/upper")
                    .await
                    .unwrap(),
            ),
            ids: Arc::new(
                IdAllocator::open(meta.clone(), "ids/next", 1000)
                    .await
                    .unwrap(),
            ),
            config: Arc::new(config),
            checkpoints: Arc::new(MetaCheckpointStore::new(meta.clone())),
            hooks: None,
        };
        let schema = Arc::new(schema());
        let shard = Shard::open_with(
            CID,
            0,
            schema.clone(),
            Arc::new(RwLock::new(Vec::new())),
            env,
            ShardOptions {
                term: TERM,
                local_compaction: false,
                local_index_builds: false,
                retain_sealed: true,
            },
        )
        .await
        .unwrap();
        Arc::new(Owner {
            shard,
            meta,
            schema,
            deltas_calls: AtomicUsize::new(0),
            gate: Gate::default(),
        })
    }

    pub async fn write(&self, r: WalRecord) -> u64 {
        self.shard.write(r, 64).await.unwrap()
    }

    /// Seal and persist; returns the new segments' metadata.
    pub async fn flush(&self) -> Vec<SegmentMeta> {
        let before: HashSet<i64> = self
            .checkpoint()
            .await
            .segments
            .iter()
            .map(|m| m.segment_id)
            .collect();
        self.shard.flush().await.unwrap();
        self.checkpoint()
            .await
            .segments
            .into_iter()
            .filter(|m| !before.contains(&m.segment_id))
            .collect()
    }

    pub async fn checkpoint(&self) -> ShardCheckpoint {
        MetaCheckpointStore::new(self.meta.clone())
            .load(CID, 0)
            .await
            .unwrap()
            .unwrap_or_default()
    }

    pub fn applied(&self) -> u64 {
        self.shard.applied_ts()
    }

    /// Arm the gate: the next `deltas` answer waits for [`Owner::open_gate`].
    pub fn arm_gate(&self) {
        *self.gate.armed.lock() = true;
    }

    pub fn open_gate(&self) {
        self.gate.release.notify_one();
    }

    fn check_term(&self, term: u64) -> Result<(), ClusterError> {
        if term != TERM {
            return Err(ClusterError::WrongTerm {
                channel: format!("{CID}/0"),
                expected: TERM,
                got: term,
            });
        }
        Ok(())
    }
}

fn nope<T>(method: &str) -> Result<T, ClusterError> {
    Err(ClusterError::UnknownMethod {
        method: method.into(),
    })
}

#[async_trait]
impl StreamingApi for Owner {
    async fn write(&self, _: WriteReq) -> Result<u64, ClusterError> {
        nope("streaming.write")
    }

    async fn search(&self, req: ChannelSearchReq) -> Result<ChannelSearchResp, ClusterError> {
        self.check_term(req.term)?;
        let plan = spec::check_search(&self.schema, &req.spec)?;
        let s = &req.spec;
        let prepared = PreparedSearch {
            field_index: s.field_index,
            metric: s.metric,
            queries: &s.queries,
            num_queries: s.num_queries,
            k: s.k,
            ef: s.ef.max(s.k),
            plan: &plan,
            partitions: spec::partition_set(&s.partitions),
            output: &s.output,
            ignore_growing: s.ignore_growing,
            radius: s.radius,
            range_filter: s.range_filter,
        };
        let exclude: HashSet<i64> = req.exclude.iter().copied().collect();
        let r = self.shard.search(&prepared, &exclude)?;
        Ok(ChannelSearchResp {
            hits: spec::to_hits(r.value),
            snapshot: r.snapshot,
            sealed_searched: r.sealed_searched,
        })
    }

    async fn query(&self, req: ChannelQueryReq) -> Result<ChannelQueryResp, ClusterError> {
        self.check_term(req.term)?;
        let plan = spec::check_query(&self.schema, &req.spec)?;
        let exclude: HashSet<i64> = req.exclude.iter().copied().collect();
        let r = self.shard.query(
            &plan,
            &spec::partition_set(&req.spec.partitions),
            &req.spec.output,
            req.spec.count_only,
            &exclude,
        );
        let (count, rows) = r.value;
        Ok(ChannelQueryResp {
            count,
            rows: if req.spec.count_only {
                Vec::new()
            } else {
                spec::to_rows(rows, req.spec.limit)
            },
            snapshot: r.snapshot,
            sealed_searched: r.sealed_searched,
        })
    }

    async fn deltas(&self, req: DeltasReq) -> Result<DeltasResp, ClusterError> {
        self.check_term(req.term)?;
        self.deltas_calls.fetch_add(1, Ordering::SeqCst);
        let resp = match self.shard.deltas_since(req.after_ts) {
            DeltaRead::Entries { entries, up_to } => DeltasResp::Entries { entries, up_to },
            DeltaRead::Gap { journal_start } => DeltasResp::Gap { journal_start },
        };
        let gated = std::mem::take(&mut *self.gate.armed.lock());
        if gated {
            let released = self.gate.release.notified();
            self.gate.held.notify_one();
            released.await;
        }
        Ok(resp)
    }

    async fn flush(&self, _: ChannelReq) -> Result<Vec<i64>, ClusterError> {
        nope("streaming.flush")
    }

    async fn stats(&self, _: ChannelStatsReq) -> Result<ChannelStats, ClusterError> {
        nope("streaming.stats")
    }
}

// ---------------------------------------------------------------------------------------------
// The coordinator: a scripted target behind `query_sync`.

pub(super) struct FakeCoord {
    target: watch::Sender<QuerySyncResp>,
    /// The last report of each node.
    pub reports: watch::Sender<HashMap<NodeId, QuerySyncReq>>,
    /// Fail this many `query_sync` calls first.
    pub fail_syncs: AtomicUsize,
    pub sync_calls: AtomicUsize,
    /// The channel owner's address in `routes`.
    pub owner_addr: Mutex<String>,
}

impl FakeCoord {
    pub fn new() -> Arc<FakeCoord> {
        Arc::new(FakeCoord {
            target: watch::channel(QuerySyncResp {
                version: 1,
                collections: vec![],
                segments: vec![],
                delegations: vec![],
            })
            .0,
            reports: watch::channel(HashMap::new()).0,
            fail_syncs: AtomicUsize::new(0),
            sync_calls: AtomicUsize::new(0),
            owner_addr: Mutex::new(route().addr),
        })
    }

    /// Publish a new target (one for every node: tests give each node its own coordinator).
    pub fn set_target(
        &self,
        collections: Vec<CollectionRecord>,
        segments: Vec<SegmentTarget>,
        delegations: Vec<Delegation>,
    ) {
        self.target.send_modify(|t| {
            t.version += 1;
            t.collections = collections;
            t.segments = segments;
            t.delegations = delegations;
        });
    }

    pub fn version(&self) -> u64 {
        self.target.borrow().version
    }

    /// Await a report of `node` satisfying `cond`.
    pub async fn until_report(
        &self,
        node: NodeId,
        what: &str,
        mut cond: impl FnMut(&QuerySyncReq) -> bool,
    ) {
        let mut rx = self.reports.subscribe();
        until(&mut rx, what, |r| r.get(&node).is_some_and(&mut cond)).await;
    }

    /// Await a report of `node` with exactly these loaded segment ids, applying the current
    /// target version.
    pub async fn until_loaded(&self, node: NodeId, ids: &[i64]) {
        let version = self.version();
        let mut want = ids.to_vec();
        want.sort_unstable();
        self.until_report(
            node,
            &format!("node {node} to report {want:?} loaded"),
            |r| {
                r.known_version >= version
                    && r.loaded.iter().map(|l| l.segment_id).collect::<Vec<_>>() == want
            },
        )
        .await;
    }
}

fn unknown<T>(m: &str) -> Result<T, ClusterError> {
    nope(m)
}

#[async_trait]
impl CoordApi for FakeCoord {
    async fn query_sync(&self, req: QuerySyncReq) -> Result<QuerySyncResp, ClusterError> {
        self.sync_calls.fetch_add(1, Ordering::SeqCst);
        let node = req.node;
        let known = req.known_version;
        let wait = Duration::from_millis(req.wait_ms);
        self.reports.send_modify(|r| {
            r.insert(node, req);
        });
        if self
            .fail_syncs
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(ClusterError::Unavailable(
                "the coordinator is restarting".into(),
            ));
        }
        let mut rx = self.target.subscribe();
        let _ = tokio::time::timeout(wait, rx.wait_for(|t| t.version > known)).await;
        Ok(rx.borrow().clone())
    }

    async fn routes(&self, req: RoutesReq) -> Result<CollectionRoutes, ClusterError> {
        Ok(CollectionRoutes {
            collection_id: req.collection_id,
            channels: vec![ChannelRoute {
                addr: self.owner_addr.lock().clone(),
                ..route()
            }],
            replicas: vec![],
        })
    }

    async fn create_collection(
        &self,
        _: CreateCollectionReq,
    ) -> Result<CollectionRecord, ClusterError> {
        unknown("coord.create_collection")
    }
    async fn drop_collection(&self, _: NameReq) -> Result<(), ClusterError> {
        unknown("coord.drop_collection")
    }
    async fn rename_collection(&self, _: RenameReq) -> Result<(), ClusterError> {
        unknown("coord.rename_collection")
    }
    async fn alter_collection(&self, _: AlterCollectionReq) -> Result<(), ClusterError> {
        unknown("coord.alter_collection")
    }
    async fn create_partition(&self, _: PartitionReq) -> Result<(), ClusterError> {
        unknown("coord.create_partition")
    }
    async fn drop_partition(&self, _: PartitionReq) -> Result<(), ClusterError> {
        unknown("coord.drop_partition")
    }
    async fn create_alias(&self, _: AliasReq) -> Result<(), ClusterError> {
        unknown("coord.create_alias")
    }
    async fn drop_alias(&self, _: NameReq) -> Result<(), ClusterError> {
        unknown("coord.drop_alias")
    }
    async fn alter_alias(&self, _: AliasReq) -> Result<(), ClusterError> {
        unknown("coord.alter_alias")
    }
    async fn create_index(&self, _: CreateIndexReq) -> Result<(), ClusterError> {
        unknown("coord.create_index")
    }
    async fn drop_index(&self, _: DropIndexReq) -> Result<(), ClusterError> {
        unknown("coord.drop_index")
    }
    async fn load_collection(&self, _: LoadReq) -> Result<(), ClusterError> {
        unknown("coord.load_collection")
    }
    async fn release_collection(&self, _: NameReq) -> Result<(), ClusterError> {
        unknown("coord.release_collection")
    }
    async fn describe_collection(&self, _: NameReq) -> Result<CollectionRecord, ClusterError> {
        unknown("coord.describe_collection")
    }
    async fn list_collections(&self, _: Empty) -> Result<Vec<CollectionRecord>, ClusterError> {
        unknown("coord.list_collections")
    }
    async fn index_progress(&self, _: NameReq) -> Result<Vec<IndexProgress>, ClusterError> {
        unknown("coord.index_progress")
    }
    async fn load_progress(&self, _: NameReq) -> Result<LoadProgress, ClusterError> {
        unknown("coord.load_progress")
    }
    async fn segments(&self, _: NameReq) -> Result<Vec<SegmentView>, ClusterError> {
        unknown("coord.segments")
    }
    async fn replicas(&self, _: NameReq) -> Result<Vec<ReplicaView>, ClusterError> {
        unknown("coord.replicas")
    }
    async fn watch_catalog(&self, _: WatchReq) -> Result<u64, ClusterError> {
        unknown("coord.watch_catalog")
    }
    async fn alloc_ts(&self, _: u32) -> Result<u64, ClusterError> {
        unknown("coord.alloc_ts")
    }
    async fn alloc_ids(&self, _: u32) -> Result<i64, ClusterError> {
        unknown("coord.alloc_ids")
    }
    async fn streaming_sync(&self, _: StreamingSyncReq) -> Result<StreamingSyncResp, ClusterError> {
        unknown("coord.streaming_sync")
    }
    async fn data_sync(&self, _: DataSyncReq) -> Result<DataSyncResp, ClusterError> {
        unknown("coord.data_sync")
    }
    async fn open_channel(&self, _: ChannelTermReq) -> Result<OpenChannelResp, ClusterError> {
        unknown("coord.open_channel")
    }
    async fn commit_checkpoint(&self, _: CommitCheckpointReq) -> Result<(), ClusterError> {
        unknown("coord.commit_checkpoint")
    }
    async fn security_op(&self, _: crate::security::SecurityOp) -> Result<bool, ClusterError> {
        unknown("coord.security_op")
    }
    async fn security_state(
        &self,
        _: Empty,
    ) -> Result<crate::security::SecurityState, ClusterError> {
        unknown("coord.security_state")
    }
}

// ---------------------------------------------------------------------------------------------
// Wiring.

/// What every node of a test reaches: one coordinator per query node (each with its own
/// target), the channel owner, and the query nodes by id.
struct Registry {
    coords: Mutex<HashMap<NodeId, Arc<FakeCoord>>>,
    owner: Arc<Owner>,
    queries: Mutex<HashMap<NodeId, Arc<dyn QueryApi>>>,
}

/// The other roles as query node `me` sees them.
struct TestNodes {
    me: NodeId,
    reg: Arc<Registry>,
}

impl Nodes for TestNodes {
    fn coord(&self) -> Arc<dyn CoordApi> {
        self.reg.coords.lock()[&self.me].clone()
    }
    fn streaming(&self, node: NodeId, _: &str) -> Result<Arc<dyn StreamingApi>, ClusterError> {
        if node == OWNER_NODE {
            Ok(self.reg.owner.clone())
        } else {
            Err(ClusterError::Unavailable(format!(
                "no streaming node {node}"
            )))
        }
    }
    fn query(&self, node: NodeId, addr: &str) -> Result<Arc<dyn QueryApi>, ClusterError> {
        self.reg
            .queries
            .lock()
            .get(&node)
            .cloned()
            .ok_or_else(|| ClusterError::Unavailable(format!("cannot connect to {addr}")))
    }
}

/// A local object store, a channel owner and query nodes.
pub(super) struct Cluster {
    pub _dir: tempfile::TempDir,
    pub objects: Arc<dyn ObjectStore>,
    pub owner: Arc<Owner>,
    reg: Arc<Registry>,
}

pub(super) struct TestNode {
    pub node: QueryNode,
    pub coord: Arc<FakeCoord>,
    pub metrics: Arc<Metrics>,
}

impl Cluster {
    pub async fn new() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let objects: Arc<dyn ObjectStore> =
            Arc::new(LocalObjectStore::new(dir.path().join("objects")).unwrap());
        let owner = Owner::open(objects.clone()).await;
        let reg = Arc::new(Registry {
            coords: Mutex::new(HashMap::new()),
            owner: owner.clone(),
            queries: Mutex::new(HashMap::new()),
        });
        Cluster {
            _dir: dir,
            objects,
            owner,
            reg,
        }
    }

    /// A started query node `id` with its own coordinator.
    pub fn node(&self, id: NodeId) -> TestNode {
        self.node_failing(id, 0)
    }

    /// A started query node whose coordinator fails its first `fails` syncs.
    pub fn node_failing(&self, id: NodeId, fails: usize) -> TestNode {
        let coord = FakeCoord::new();
        coord.fail_syncs.store(fails, Ordering::SeqCst);
        self.reg.coords.lock().insert(id, coord.clone());
        let nodes = Arc::new(TestNodes {
            me: id,
            reg: self.reg.clone(),
        });
        let mut config = Config::default();
        config.query.sync_wait_ms = 2000;
        config.query.retry_max_ms = 50;
        let metrics = Arc::new(Metrics::new());
        let node = QueryNode::new(
            nodes,
            self.objects.clone(),
            &config,
            id,
            format!("query-{id}:1"),
            Some(&metrics),
        );
        self.reg.queries.lock().insert(id, Arc::new(node.clone()));
        node.start();
        TestNode {
            node,
            coord,
            metrics,
        }
    }
}

/// A segment target for replica 1 with the shard's current delta objects.
pub(super) fn target(meta: &SegmentMeta, ck: &ShardCheckpoint) -> SegmentTarget {
    target_from(meta, ck, vec![])
}

pub(super) fn target_from(
    meta: &SegmentMeta,
    ck: &ShardCheckpoint,
    from: Vec<i64>,
) -> SegmentTarget {
    SegmentTarget {
        replica_id: 1,
        record: SegmentRecord {
            collection_id: CID,
            shard: 0,
            meta: meta.clone(),
            state: SegmentState::Flushed,
            compacted_from: from,
        },
        deltas: ck.deltas.clone(),
    }
}

/// Delegation of shard 0 in replica 1: `served` as (segment, node).
pub(super) fn delegation(
    version: u64,
    served: &[(i64, NodeId)],
    targets: Vec<TargetSegment>,
) -> Delegation {
    Delegation {
        collection_id: CID,
        shard: 0,
        replica_id: 1,
        version,
        channel: route(),
        served: served
            .iter()
            .map(|&(segment_id, node)| DistEntry {
                segment_id,
                node,
                addr: format!("query-{node}:1"),
            })
            .collect(),
        targets,
    }
}

pub(super) fn plain(ids: &[i64]) -> Vec<TargetSegment> {
    ids.iter()
        .map(|&segment_id| TargetSegment {
            segment_id,
            compacted_from: vec![],
        })
        .collect()
}

/// A rendered metric's value (`ferrovus_<name> <value>` line), 0 when absent.
pub(super) fn metric(m: &Metrics, name: &str) -> f64 {
    m.render()
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == format!("ferrovus_{name}")).then(|| v.parse().ok())?
        })
        .unwrap_or(0.0)
}
