//! Test support: an in-memory coordinator over `LocalCoordination`, fake nodes (sessions and
//! sync calls), and awaiting conditions.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ferrovus_core::CoreConfig;
use ferrovus_core::request::Consistency;
use ferrovus_core::schema::{CollectionSchema, DataType, FieldSchema};
use ferrovus_core::segment::SegmentMeta;
use ferrovus_core::shard::ShardCheckpoint;
use ferrovus_core::store::memory::{MemoryMetaStore, MemoryObjectStore};
use ferrovus_core::store::{KeyValue, MetaCondition, MetaOp, MetaStore, ObjectStore};

use crate::api::*;
use crate::config::CoordinatorConfig;
use crate::coord::{Coordinator, CoordinatorOptions};
use crate::session::{Coordination, LocalCoordination, RoleKind, Session, SessionInfo};

/// A metadata store whose writes can be made to fail (a network error on the way to etcd).
#[derive(Debug, Default)]
pub struct FlakyMeta {
    pub inner: MemoryMetaStore,
    pub fail_writes: AtomicBool,
}

impl FlakyMeta {
    fn check(&self) -> ferrovus_core::Result<()> {
        if self.fail_writes.load(Ordering::SeqCst) {
            return Err(ferrovus_core::CoreError::Storage(
                "injected metadata failure".into(),
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl MetaStore for FlakyMeta {
    async fn get(&self, key: &str) -> ferrovus_core::Result<Option<KeyValue>> {
        self.inner.get(key).await
    }
    async fn list(&self, prefix: &str) -> ferrovus_core::Result<Vec<KeyValue>> {
        self.inner.list(prefix).await
    }
    async fn put(&self, key: &str, value: Vec<u8>) -> ferrovus_core::Result<i64> {
        self.check()?;
        self.inner.put(key, value).await
    }
    async fn delete(&self, key: &str) -> ferrovus_core::Result<()> {
        self.check()?;
        self.inner.delete(key).await
    }
    async fn txn(
        &self,
        conditions: Vec<MetaCondition>,
        ops: Vec<MetaOp>,
    ) -> ferrovus_core::Result<bool> {
        self.check()?;
        self.inner.txn(conditions, ops).await
    }
}

/// A coordinator with its stores and coordination.
pub struct Harness {
    pub meta: Arc<FlakyMeta>,
    pub objects: Arc<MemoryObjectStore>,
    pub coordination: Arc<LocalCoordination>,
    pub coord: Arc<Coordinator>,
    sessions: parking_lot::Mutex<BTreeMap<u64, Session>>,
}

pub fn fast_config() -> CoordinatorConfig {
    CoordinatorConfig {
        node_loss_grace_ms: 0,
        settle_timeout_ms: 0,
        ..CoordinatorConfig::default()
    }
}

pub fn small_core() -> CoreConfig {
    CoreConfig {
        compaction_small_rows: 100,
        compaction_deleted_ratio: 0.2,
        ..CoreConfig::default()
    }
}

impl Harness {
    pub async fn new() -> Harness {
        Harness::with(fast_config(), small_core()).await
    }

    pub async fn with(config: CoordinatorConfig, core: CoreConfig) -> Harness {
        let meta = Arc::new(FlakyMeta::default());
        let objects = Arc::new(MemoryObjectStore::default());
        let coordination = Arc::new(LocalCoordination::new(meta.clone()));
        let coord = Coordinator::start(CoordinatorOptions {
            meta: meta.clone(),
            objects: objects.clone(),
            coordination: coordination.clone(),
            addr: "coord-a:19531".into(),
            config,
            core,
            metrics: None,
            readiness: None,
        });
        coord.wait_leading(Duration::from_secs(10)).await.unwrap();
        Harness {
            meta,
            objects,
            coordination,
            coord,
            sessions: parking_lot::Mutex::new(BTreeMap::new()),
        }
    }

    /// Registers a node's session (`addr` = `node-<id>:19531`).
    pub async fn join(&self, role: RoleKind, id: u64) {
        let s = self
            .coordination
            .register(SessionInfo {
                role,
                node_id: id,
                grpc_address: addr(id),
                http_address: format!("node-{id}:9091"),
                version: "test".into(),
                start_time_ms: 0,
            })
            .await
            .unwrap();
        self.sessions.lock().insert(id, s);
        let coord = self.coord.clone();
        eventually("the leader saw the session", || {
            let coord = coord.clone();
            async move {
                let l = coord.current()?;
                let rt = l.rt.lock();
                rt.nodes.get(&id).is_some_and(|n| n.live).then_some(())
            }
        })
        .await;
    }

    /// The node's session disappears (crash or exit).
    pub fn leave(&self, id: u64) {
        self.sessions.lock().remove(&id);
    }

    pub async fn create(&self, name: &str, shards: u32) -> CollectionRecord {
        self.coord
            .create_collection(CreateCollectionReq {
                schema: schema(name),
                num_shards: shards,
                consistency: Consistency::Bounded,
                properties: BTreeMap::new(),
            })
            .await
            .unwrap()
    }

    pub async fn index(&self, name: &str) {
        let params = [("index_type", "HNSW"), ("metric_type", "L2")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.coord
            .create_index(CreateIndexReq {
                collection: name.into(),
                field_name: "v".into(),
                index_name: String::new(),
                params,
            })
            .await
            .unwrap();
    }

    pub async fn load(&self, name: &str, replicas: u32) {
        self.coord
            .load_collection(LoadReq {
                name: name.into(),
                replica_number: replicas,
            })
            .await
            .unwrap();
    }

    /// Waits until every channel of `cid` is assigned; returns the routes.
    pub async fn routes(&self, cid: i64) -> CollectionRoutes {
        let coord = self.coord.clone();
        eventually("channels assigned", move || {
            let coord = coord.clone();
            async move { coord.routes(RoutesReq { collection_id: cid }).await.ok() }
        })
        .await
    }

    /// A streaming node's sync that answers at once.
    pub async fn ssync(&self, node: u64, channels: Vec<ChannelStatus>) -> StreamingSyncResp {
        self.coord
            .streaming_sync(StreamingSyncReq {
                node,
                addr: addr(node),
                known_version: 0,
                wait_ms: 0,
                channels,
                draining: false,
            })
            .await
            .unwrap()
    }

    /// A query node's sync that answers at once.
    pub async fn qsync(
        &self,
        node: u64,
        loaded: &[(i64, u32, i64)],
        delegations: Vec<DelegationAck>,
    ) -> QuerySyncResp {
        self.coord
            .query_sync(QuerySyncReq {
                node,
                addr: addr(node),
                known_version: 0,
                wait_ms: 0,
                loaded: loaded
                    .iter()
                    .map(|(cid, shard, sid)| LoadedSegment {
                        collection_id: *cid,
                        shard: *shard,
                        segment_id: *sid,
                        indexes: vec![],
                        rows: 10,
                        deleted_rows: 0,
                    })
                    .collect(),
                delegations,
                draining: false,
                refused: vec![],
            })
            .await
            .unwrap()
    }

    /// Commits a checkpoint of `shard` sealing `new` segments (ids, rows) in the default
    /// partition, as the channel's owner.
    pub async fn seal(&self, c: &CollectionRecord, shard: u32, new: &[(i64, usize)]) {
        let routes = self.routes(c.id).await;
        let route = routes.channels[shard as usize].clone();
        let pid = c.partitions[0].id;
        let metas: Vec<SegmentMeta> = new
            .iter()
            .map(|(sid, rows)| {
                let mut m = SegmentMeta::new(
                    *sid,
                    pid,
                    *rows,
                    ferrovus_core::keys::segment_data(c.id, shard as usize, *sid),
                );
                m.base_ts = 10;
                m
            })
            .collect();
        let mut all: Vec<SegmentMeta> = self
            .coord
            .open_channel(ChannelTermReq {
                channel: route.channel,
                term: route.term,
                node: route.node,
            })
            .await
            .unwrap()
            .checkpoint
            .map(|c| c.segments)
            .unwrap_or_default();
        all.extend(metas.iter().cloned());
        self.coord
            .commit_checkpoint(CommitCheckpointReq {
                channel: route.channel,
                term: route.term,
                node: route.node,
                checkpoint: ShardCheckpoint {
                    next_lsn: 5,
                    segments: all,
                    applied_ts: 20,
                    deltas: vec![],
                },
                new_segments: metas,
            })
            .await
            .unwrap();
    }

    pub fn objects(&self) -> &dyn ObjectStore {
        &*self.objects
    }
}

pub fn addr(id: u64) -> String {
    format!("node-{id}:19531")
}

pub fn schema(name: &str) -> CollectionSchema {
    CollectionSchema {
        name: name.into(),
        description: String::new(),
        fields: vec![
            FieldSchema::new("id", DataType::Int64).primary(false),
            FieldSchema::new("v", DataType::FloatVector).with_dim(4),
        ],
        enable_dynamic_field: false,
    }
}

/// Awaits a condition (polled; fails the test after 10 s).
pub async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A query node that loads whatever it is told at once and acknowledges every delegation it
/// receives (one `step` = one sync).
#[derive(Debug, Clone)]
pub struct FakeQuery {
    pub node: u64,
    pub loaded: Vec<(i64, u32, i64)>,
    pub acks: Vec<DelegationAck>,
    pub last: Option<QuerySyncResp>,
}

impl FakeQuery {
    pub fn new(node: u64) -> Self {
        FakeQuery {
            node,
            loaded: Vec::new(),
            acks: Vec::new(),
            last: None,
        }
    }

    /// Steps until an answer satisfies `done` (fails the test after 10 s).
    pub async fn step_until(
        &mut self,
        h: &Harness,
        what: &str,
        done: impl Fn(&QuerySyncResp) -> bool,
    ) -> QuerySyncResp {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = self.step(h).await;
            if done(&r) {
                return r;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Reports, then loads the targets and applies the delegations of the answer.
    pub async fn step(&mut self, h: &Harness) -> QuerySyncResp {
        let resp = h.qsync(self.node, &self.loaded, self.acks.clone()).await;
        self.loaded = resp
            .segments
            .iter()
            .map(|t| (t.record.collection_id, t.record.shard, t.record.id()))
            .collect();
        self.loaded.sort_unstable();
        self.loaded.dedup();
        self.acks = resp
            .delegations
            .iter()
            .map(|d| DelegationAck {
                collection_id: d.collection_id,
                shard: d.shard,
                replica_id: d.replica_id,
                version: d.version,
            })
            .collect();
        self.last = Some(resp.clone());
        resp
    }
}

/// A streaming node status: every channel of `routes` it owns, open and ready.
pub fn ready_channels(
    routes: &CollectionRoutes,
    node: u64,
    retained: &[i64],
) -> Vec<ChannelStatus> {
    routes
        .channels
        .iter()
        .filter(|c| c.node == node)
        .map(|c| ChannelStatus {
            channel: c.channel,
            term: c.term,
            ready: true,
            applied_ts: 20,
            live_rows: 0,
            retained: retained.to_vec(),
        })
        .collect()
}
