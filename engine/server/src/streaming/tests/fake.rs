//! Test doubles of the roles around a streaming or data node: a fake coordinator (channel
//! assignments and terms, long-polling syncs, checkpoints checked against terms, data-node
//! tasks), an object store over a local directory that records the keys read, and helpers
//! to await what a node reports.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use ferrovus_core::request::Consistency;
use ferrovus_core::schema::{CollectionSchema, DataType, FieldSchema};
use ferrovus_core::shard::ShardCheckpoint;
use ferrovus_core::store::ObjectStore;
use ferrovus_core::value::{Column, PrimaryKey, RowBatch};
use ferrovus_core::wal::WalRecord;
use ferrovus_storage::LocalObjectStore;
use parking_lot::Mutex;
use tokio::sync::{Notify, watch};

use crate::api::*;
use crate::rpc::ClusterError;

pub const COLLECTION: i64 = 7;
pub const DIM: usize = 4;
/// How long a test waits for a condition before it fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

pub fn schema() -> CollectionSchema {
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

pub fn collection() -> CollectionRecord {
    CollectionRecord {
        id: COLLECTION,
        name: "c".into(),
        schema: schema(),
        num_shards: 2,
        partitions: vec![],
        aliases: vec![],
        indexes: vec![],
        consistency: Consistency::Strong,
        properties: BTreeMap::new(),
        created_ts: 1,
        load: None,
    }
}

pub fn vector(i: i64) -> Vec<f32> {
    (0..DIM)
        .map(|d| ((i + 1) as f32 * (d as f32 + 0.5)).sin())
        .collect()
}

pub fn batch(ids: impl IntoIterator<Item = i64>, tag: i64) -> RowBatch {
    let ids: Vec<i64> = ids.into_iter().collect();
    RowBatch {
        columns: vec![
            ("id".into(), Column::Int(ids.clone())),
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

pub fn insert(partition_id: i64, ids: impl IntoIterator<Item = i64>) -> WalRecord {
    WalRecord::Insert {
        partition_id,
        ts: 0,
        rows: batch(ids, 0),
    }
}

pub fn upsert(partition_id: i64, ids: impl IntoIterator<Item = i64>, tag: i64) -> WalRecord {
    WalRecord::Upsert {
        partition_id,
        ts: 0,
        rows: batch(ids, tag),
    }
}

pub fn delete(ids: impl IntoIterator<Item = i64>) -> WalRecord {
    WalRecord::Delete {
        ts: 0,
        pks: ids.into_iter().map(PrimaryKey::Int).collect(),
    }
}

pub fn ints<'a>(pks: impl IntoIterator<Item = &'a PrimaryKey>) -> Vec<i64> {
    let mut v: Vec<i64> = pks
        .into_iter()
        .map(|p| match p {
            PrimaryKey::Int(i) => *i,
            PrimaryKey::Str(s) => panic!("string key {s}"),
        })
        .collect();
    v.sort_unstable();
    v
}

/// A local-directory object store that records every key read.
#[derive(Debug)]
pub struct CountingStore {
    inner: LocalObjectStore,
    gets: Mutex<Vec<String>>,
    /// Reads of keys starting with one of these wait until it is removed.
    blocked: watch::Sender<Vec<String>>,
}

impl CountingStore {
    pub fn new(root: &Path) -> Arc<Self> {
        Arc::new(CountingStore {
            inner: LocalObjectStore::new(root).unwrap(),
            gets: Mutex::new(Vec::new()),
            blocked: watch::channel(Vec::new()).0,
        })
    }

    /// Reads of keys under `prefix` wait from now on (until [`CountingStore::unblock`]).
    pub fn block(&self, prefix: &str) {
        self.blocked.send_modify(|b| b.push(prefix.to_string()));
    }

    pub fn unblock(&self, prefix: &str) {
        self.blocked.send_modify(|b| b.retain(|p| p != prefix));
    }

    async fn gate(&self, key: &str) {
        let mut rx = self.blocked.subscribe();
        let _ = rx
            .wait_for(|b| !b.iter().any(|p| key.starts_with(p.as_str())))
            .await;
    }

    /// The keys read since the last call.
    pub fn take_gets(&self) -> Vec<String> {
        std::mem::take(&mut *self.gets.lock())
    }
}

#[async_trait]
impl ObjectStore for CountingStore {
    async fn put(&self, key: &str, data: Bytes) -> ferrovus_core::Result<()> {
        self.inner.put(key, data).await
    }
    async fn get(&self, key: &str) -> ferrovus_core::Result<Bytes> {
        self.gets.lock().push(key.to_string());
        self.gate(key).await;
        self.inner.get(key).await
    }
    async fn get_range(&self, key: &str, offset: u64, len: u64) -> ferrovus_core::Result<Bytes> {
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

/// A commit the fake coordinator accepted.
#[derive(Debug, Clone)]
pub struct Commit {
    pub channel: ChannelId,
    pub term: u64,
    pub checkpoint: ShardCheckpoint,
    pub new_segments: Vec<i64>,
}

#[derive(Debug, Default)]
struct State {
    version: u64,
    /// Channel → (owner, term).
    owners: HashMap<ChannelId, (NodeId, u64)>,
    checkpoints: HashMap<ChannelId, ShardCheckpoint>,
    /// Node → (channel → segments to release).
    release: HashMap<NodeId, Vec<(ChannelId, Vec<i64>)>>,
    commits: Vec<Commit>,
    /// Data nodes: tasks waiting for a node, cancellations, results.
    tasks: Vec<Task>,
    cancel: Vec<u64>,
    results: Vec<TaskResult>,
}

/// A coordinator for tests: the test assigns channels (with terms) and tasks; nodes sync,
/// open channels, commit checkpoints (refused unless owner and term match) and report.
pub struct FakeCoord {
    state: Mutex<State>,
    changed: Notify,
    ts: AtomicU64,
    ids: AtomicI64,
    /// Every streaming_sync request, by node (the latest).
    pub streaming_reports: watch::Sender<HashMap<NodeId, StreamingSyncReq>>,
    /// Every data_sync request (the latest).
    pub data_reports: watch::Sender<Option<DataSyncReq>>,
    /// While closed, `open_channel` waits.
    open_gate: watch::Sender<bool>,
    /// Nodes whose `streaming_sync` calls get no answer (cut off from the coordinator).
    frozen: watch::Sender<HashSet<NodeId>>,
}

impl Default for FakeCoord {
    fn default() -> Self {
        FakeCoord {
            state: Mutex::new(State::default()),
            changed: Notify::new(),
            ts: AtomicU64::new(1000),
            ids: AtomicI64::new(100),
            streaming_reports: watch::channel(HashMap::new()).0,
            data_reports: watch::channel(None).0,
            open_gate: watch::channel(true).0,
            frozen: watch::channel(HashSet::new()).0,
        }
    }
}

impl FakeCoord {
    pub fn new() -> Arc<Self> {
        Arc::new(FakeCoord::default())
    }

    fn bump(&self, f: impl FnOnce(&mut State)) {
        {
            let mut st = self.state.lock();
            f(&mut st);
            st.version += 1;
        }
        self.changed.notify_waiters();
    }

    /// Assign `channel` to `node` at `term` (moving it from any other node).
    pub fn assign(&self, channel: ChannelId, node: NodeId, term: u64) {
        self.bump(|st| {
            st.owners.insert(channel, (node, term));
        });
    }

    /// Nobody owns `channel` any more.
    pub fn unassign(&self, channel: ChannelId) {
        self.bump(|st| {
            st.owners.remove(&channel);
        });
    }

    /// Move the channel's term on without telling anybody (a coordinator that moved it while
    /// the old owner was unreachable).
    pub fn set_term_silently(&self, channel: ChannelId, node: NodeId, term: u64) {
        self.state.lock().owners.insert(channel, (node, term));
    }

    pub fn release(&self, node: NodeId, channel: ChannelId, segments: Vec<i64>) {
        self.bump(|st| {
            st.release
                .entry(node)
                .or_default()
                .push((channel, segments))
        });
    }

    pub fn close_open_gate(&self) {
        self.open_gate.send_replace(false);
    }

    pub fn open_open_gate(&self) {
        self.open_gate.send_replace(true);
    }

    /// `node`'s syncs get no answer from now on: it keeps the assignment it has.
    pub fn freeze(&self, node: NodeId) {
        self.frozen.send_modify(|f| {
            f.insert(node);
        });
    }

    pub fn commits(&self) -> Vec<Commit> {
        self.state.lock().commits.clone()
    }

    pub fn checkpoint(&self, channel: ChannelId) -> Option<ShardCheckpoint> {
        self.state.lock().checkpoints.get(&channel).cloned()
    }

    pub fn add_task(&self, task: Task) {
        self.bump(|st| st.tasks.push(task));
    }

    pub fn cancel_task(&self, id: u64) {
        self.bump(|st| st.cancel.push(id));
    }

    pub fn results(&self) -> Vec<TaskResult> {
        self.state.lock().results.clone()
    }

    /// Wait until the latest streaming report of `node` satisfies `f`.
    pub async fn until_streaming(&self, node: NodeId, f: impl Fn(&StreamingSyncReq) -> bool) {
        let mut rx = self.streaming_reports.subscribe();
        tokio::time::timeout(PATIENCE, rx.wait_for(|m| m.get(&node).is_some_and(&f)))
            .await
            .expect("the streaming node never reported what the test waits for")
            .unwrap();
    }

    /// Wait until the fake holds results satisfying `f`.
    pub async fn until_results(&self, f: impl Fn(&[TaskResult]) -> bool) -> Vec<TaskResult> {
        let mut rx = self.data_reports.subscribe();
        tokio::time::timeout(PATIENCE, async {
            loop {
                let r = self.results();
                if f(&r) {
                    return r;
                }
                let _ = rx.changed().await;
            }
        })
        .await
        .expect("the data node never reported what the test waits for")
    }

    /// Wait until the latest data report satisfies `f`.
    pub async fn until_data(&self, f: impl Fn(&DataSyncReq) -> bool) {
        let mut rx = self.data_reports.subscribe();
        tokio::time::timeout(PATIENCE, rx.wait_for(|r| r.as_ref().is_some_and(&f)))
            .await
            .expect("the data node never reported what the test waits for")
            .unwrap();
    }

    async fn long_poll(&self, known_version: u64, wait_ms: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(wait_ms);
        loop {
            let notified = self.changed.notified();
            if self.state.lock().version > known_version {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return;
            }
        }
    }
}

fn not_here(what: &str) -> ClusterError {
    ClusterError::Internal(format!("{what} is not part of the fake coordinator"))
}

fn wrong_term(channel: ChannelId, expected: u64, got: u64) -> ClusterError {
    ClusterError::WrongTerm {
        channel: channel.to_string(),
        expected,
        got,
    }
}

#[async_trait]
impl CoordApi for FakeCoord {
    async fn create_collection(
        &self,
        _: CreateCollectionReq,
    ) -> Result<CollectionRecord, ClusterError> {
        Err(not_here("create_collection"))
    }
    async fn drop_collection(&self, _: NameReq) -> Result<(), ClusterError> {
        Err(not_here("drop_collection"))
    }
    async fn rename_collection(&self, _: RenameReq) -> Result<(), ClusterError> {
        Err(not_here("rename_collection"))
    }
    async fn alter_collection(&self, _: AlterCollectionReq) -> Result<(), ClusterError> {
        Err(not_here("alter_collection"))
    }
    async fn create_partition(&self, _: PartitionReq) -> Result<(), ClusterError> {
        Err(not_here("create_partition"))
    }
    async fn drop_partition(&self, _: PartitionReq) -> Result<(), ClusterError> {
        Err(not_here("drop_partition"))
    }
    async fn create_alias(&self, _: AliasReq) -> Result<(), ClusterError> {
        Err(not_here("create_alias"))
    }
    async fn drop_alias(&self, _: NameReq) -> Result<(), ClusterError> {
        Err(not_here("drop_alias"))
    }
    async fn alter_alias(&self, _: AliasReq) -> Result<(), ClusterError> {
        Err(not_here("alter_alias"))
    }
    async fn create_index(&self, _: CreateIndexReq) -> Result<(), ClusterError> {
        Err(not_here("create_index"))
    }
    async fn drop_index(&self, _: DropIndexReq) -> Result<(), ClusterError> {
        Err(not_here("drop_index"))
    }
    async fn load_collection(&self, _: LoadReq) -> Result<(), ClusterError> {
        Err(not_here("load_collection"))
    }
    async fn release_collection(&self, _: NameReq) -> Result<(), ClusterError> {
        Err(not_here("release_collection"))
    }
    async fn describe_collection(&self, _: NameReq) -> Result<CollectionRecord, ClusterError> {
        Ok(collection())
    }
    async fn list_collections(&self, _: Empty) -> Result<Vec<CollectionRecord>, ClusterError> {
        Ok(vec![collection()])
    }
    async fn index_progress(&self, _: NameReq) -> Result<Vec<IndexProgress>, ClusterError> {
        Err(not_here("index_progress"))
    }
    async fn load_progress(&self, _: NameReq) -> Result<LoadProgress, ClusterError> {
        Err(not_here("load_progress"))
    }
    async fn segments(&self, _: NameReq) -> Result<Vec<SegmentView>, ClusterError> {
        Err(not_here("segments"))
    }
    async fn replicas(&self, _: NameReq) -> Result<Vec<ReplicaView>, ClusterError> {
        Err(not_here("replicas"))
    }
    async fn routes(&self, _: RoutesReq) -> Result<CollectionRoutes, ClusterError> {
        Err(not_here("routes"))
    }
    async fn watch_catalog(&self, _: WatchReq) -> Result<u64, ClusterError> {
        Err(not_here("watch_catalog"))
    }

    async fn alloc_ts(&self, count: u32) -> Result<u64, ClusterError> {
        Ok(self.ts.fetch_add(u64::from(count.max(1)), Ordering::SeqCst) + u64::from(count.max(1)))
    }

    async fn alloc_ids(&self, count: u32) -> Result<i64, ClusterError> {
        Ok(self.ids.fetch_add(i64::from(count), Ordering::SeqCst))
    }

    async fn streaming_sync(
        &self,
        req: StreamingSyncReq,
    ) -> Result<StreamingSyncResp, ClusterError> {
        let (node, known, wait) = (req.node, req.known_version, req.wait_ms);
        self.streaming_reports.send_modify(|m| {
            m.insert(node, req);
        });
        self.long_poll(known, wait).await;
        let mut frozen = self.frozen.subscribe();
        let _ = frozen.wait_for(|f| !f.contains(&node)).await;
        let mut st = self.state.lock();
        let mut channels: Vec<ChannelAssignment> = st
            .owners
            .iter()
            .filter(|(_, (n, _))| *n == node)
            .map(|(c, (_, term))| ChannelAssignment {
                channel: *c,
                term: *term,
            })
            .collect();
        channels.sort_by_key(|a| a.channel);
        Ok(StreamingSyncResp {
            version: st.version,
            channels,
            release: st.release.remove(&node).unwrap_or_default(),
        })
    }

    async fn query_sync(&self, _: QuerySyncReq) -> Result<QuerySyncResp, ClusterError> {
        Err(not_here("query_sync"))
    }

    async fn data_sync(&self, req: DataSyncReq) -> Result<DataSyncResp, ClusterError> {
        {
            let mut st = self.state.lock();
            st.results.extend(req.finished.iter().cloned());
        }
        let (slots, wait) = (req.slots, req.wait_ms);
        self.data_reports.send_replace(Some(req));
        let has_work = |st: &State| !st.cancel.is_empty() || (slots > 0 && !st.tasks.is_empty());
        let deadline = tokio::time::Instant::now() + Duration::from_millis(wait);
        loop {
            let notified = self.changed.notified();
            if has_work(&self.state.lock()) {
                break;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                break;
            }
        }
        let mut st = self.state.lock();
        let n = (slots as usize).min(st.tasks.len());
        Ok(DataSyncResp {
            tasks: st.tasks.drain(..n).collect(),
            cancel: std::mem::take(&mut st.cancel),
        })
    }

    async fn open_channel(&self, req: ChannelTermReq) -> Result<OpenChannelResp, ClusterError> {
        let mut gate = self.open_gate.subscribe();
        let _ = gate.wait_for(|open| *open).await;
        let st = self.state.lock();
        match st.owners.get(&req.channel) {
            Some((node, term)) if *node == req.node && *term == req.term => Ok(OpenChannelResp {
                collection: collection(),
                checkpoint: st.checkpoints.get(&req.channel).cloned(),
            }),
            Some((_, term)) => Err(wrong_term(req.channel, *term, req.term)),
            None => Err(ClusterError::NotServing(format!(
                "channel {} is not assigned",
                req.channel
            ))),
        }
    }

    async fn commit_checkpoint(&self, req: CommitCheckpointReq) -> Result<(), ClusterError> {
        let mut st = self.state.lock();
        match st.owners.get(&req.channel) {
            Some((node, term)) if *node == req.node && *term == req.term => {
                st.checkpoints.insert(req.channel, req.checkpoint.clone());
                st.commits.push(Commit {
                    channel: req.channel,
                    term: req.term,
                    checkpoint: req.checkpoint,
                    new_segments: req.new_segments.iter().map(|m| m.segment_id).collect(),
                });
                Ok(())
            }
            Some((_, term)) => Err(wrong_term(req.channel, *term, req.term)),
            None => Err(ClusterError::NotServing(format!(
                "channel {} is not assigned",
                req.channel
            ))),
        }
    }
    async fn security_op(&self, _: crate::security::SecurityOp) -> Result<bool, ClusterError> {
        Err(not_here("security_op"))
    }
    async fn security_state(
        &self,
        _: Empty,
    ) -> Result<crate::security::SecurityState, ClusterError> {
        Err(not_here("security_state"))
    }
}

/// The coordinator of a test; no other node is reachable.
pub struct TestNodes {
    pub coord: Arc<FakeCoord>,
}

impl Nodes for TestNodes {
    fn coord(&self) -> Arc<dyn CoordApi> {
        self.coord.clone()
    }
    fn streaming(&self, _: NodeId, addr: &str) -> Result<Arc<dyn StreamingApi>, ClusterError> {
        Err(ClusterError::Unavailable(format!(
            "no streaming node at {addr} in this test"
        )))
    }
    fn query(&self, _: NodeId, addr: &str) -> Result<Arc<dyn QueryApi>, ClusterError> {
        Err(ClusterError::Unavailable(format!(
            "no query node at {addr} in this test"
        )))
    }
}
