//! An in-memory coordinator: the catalogue, routes (channel terms, replica delegators), a
//! catalogue version with long polls, timestamps and ids; calls are counted.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use ferrovus_core::collection::PartitionMeta;
use ferrovus_core::request::MetricType;
use parking_lot::Mutex;
use tokio::sync::watch;

use super::{Result, unknown};
use crate::api::*;
use crate::rpc::ClusterError;

/// The leader node of replica `r` (replica ids are 1, 2, ...).
pub fn delegator_node(replica: i64) -> NodeId {
    10 + replica as u64
}

pub const STREAMING_NODE: NodeId = 1;

#[derive(Debug, Default)]
struct CoordState {
    collections: BTreeMap<i64, CollectionRecord>,
    security: crate::security::SecurityState,
    next_id: i64,
    ts: u64,
    next_auto_id: i64,
    /// Channel terms, as the routes report them.
    terms: HashMap<ChannelId, u64>,
    /// Replica groups a load creates.
    replicas: u32,
    /// The address routes give for every node (default: a name per node).
    node_addr: Option<String>,
    /// Route lookups answered `Unavailable` before the next succeeds (a channel not assigned
    /// yet).
    routes_unavailable: usize,
}

pub struct FakeCoord {
    state: Mutex<CoordState>,
    version: watch::Sender<u64>,
    calls: Mutex<HashMap<&'static str, usize>>,
}

impl Default for FakeCoord {
    fn default() -> Self {
        FakeCoord {
            state: Mutex::new(CoordState {
                next_id: 1000,
                next_auto_id: 1,
                ..CoordState::default()
            }),
            version: watch::Sender::new(1),
            calls: Mutex::default(),
        }
    }
}

impl FakeCoord {
    fn called(&self, method: &'static str) {
        *self.calls.lock().entry(method).or_default() += 1;
    }

    pub fn calls(&self, method: &str) -> usize {
        self.calls.lock().get(method).copied().unwrap_or(0)
    }

    /// A catalogue change made elsewhere (another proxy).
    pub fn bump_version(&self) -> u64 {
        self.version.send_modify(|v| *v += 1);
        *self.version.borrow()
    }

    pub fn version(&self) -> u64 {
        *self.version.borrow()
    }

    /// Routes name this address for every node (the fakes served over RPC on one port).
    pub fn set_node_addr(&self, addr: &str) {
        self.state.lock().node_addr = Some(addr.to_string());
    }

    /// Load creates this many replica groups.
    /// The next `n` route lookups answer `Unavailable` ("no streaming node yet").
    pub fn fail_routes(&self, n: usize) {
        self.state.lock().routes_unavailable = n;
    }

    pub fn set_replicas(&self, n: u32) {
        self.state.lock().replicas = n;
    }

    /// Move a channel to a new term (the routes say so from now on).
    pub fn set_term(&self, channel: ChannelId, term: u64) {
        self.state.lock().terms.insert(channel, term);
    }

    /// Add a partition behind the proxy's back (no version change).
    pub fn add_partition_silently(&self, collection_id: i64, name: &str) {
        let mut st = self.state.lock();
        let id = st.next_id;
        st.next_id += 1;
        if let Some(c) = st.collections.get_mut(&collection_id) {
            c.partitions.push(PartitionMeta {
                id,
                name: name.into(),
                created_ts: 0,
            });
        }
    }

    pub fn schema_of(&self, collection_id: i64) -> Option<ferrovus_core::schema::CollectionSchema> {
        let st = self.state.lock();
        st.collections.get(&collection_id).map(|c| c.schema.clone())
    }

    pub fn record(&self, name: &str) -> Option<CollectionRecord> {
        let st = self.state.lock();
        find(&st, name).cloned()
    }

    fn change<T>(&self, f: impl FnOnce(&mut CoordState) -> Result<T>) -> Result<T> {
        let r = f(&mut self.state.lock());
        if r.is_ok() {
            self.version.send_modify(|v| *v += 1);
        }
        r
    }

    fn with_collection<T>(
        &self,
        name: &str,
        f: impl FnOnce(&mut CollectionRecord) -> Result<T>,
    ) -> Result<T> {
        self.change(|st| {
            let id = find(st, name)
                .map(|c| c.id)
                .ok_or_else(|| ClusterError::CollectionNotFound(name.into()))?;
            f(st.collections.get_mut(&id).expect("found above"))
        })
    }
}

fn find<'a>(st: &'a CoordState, name: &str) -> Option<&'a CollectionRecord> {
    st.collections
        .values()
        .find(|c| c.name == name || c.aliases.iter().any(|a| a == name))
}

#[async_trait]
impl CoordApi for FakeCoord {
    async fn create_collection(&self, req: CreateCollectionReq) -> Result<CollectionRecord> {
        self.called("create_collection");
        let schema = req
            .schema
            .validate_and_normalize()
            .map_err(ClusterError::from)?;
        self.change(|st| {
            if let Some(c) = find(st, &schema.name) {
                return Ok(c.clone());
            }
            let id = st.next_id;
            st.next_id += 2;
            let rec = CollectionRecord {
                id,
                name: schema.name.clone(),
                schema,
                num_shards: req.num_shards.max(1),
                partitions: vec![PartitionMeta {
                    id: id + 1,
                    name: "_default".into(),
                    created_ts: 0,
                }],
                aliases: vec![],
                indexes: vec![],
                consistency: req.consistency,
                properties: req.properties,
                created_ts: 0,
                load: None,
            };
            st.collections.insert(id, rec.clone());
            Ok(rec)
        })
    }

    async fn drop_collection(&self, req: NameReq) -> Result<()> {
        self.called("drop_collection");
        self.change(|st| {
            if let Some(id) = find(st, &req.name).map(|c| c.id) {
                st.collections.remove(&id);
            }
            Ok(())
        })
    }

    async fn rename_collection(&self, req: RenameReq) -> Result<()> {
        self.with_collection(&req.old_name, |c| {
            c.name = req.new_name.clone();
            c.schema.name = req.new_name;
            Ok(())
        })
    }

    async fn alter_collection(&self, req: AlterCollectionReq) -> Result<()> {
        self.with_collection(&req.name, |c| {
            c.properties.extend(req.properties);
            Ok(())
        })
    }

    async fn create_partition(&self, req: PartitionReq) -> Result<()> {
        self.called("create_partition");
        let id = {
            let mut st = self.state.lock();
            st.next_id += 1;
            st.next_id
        };
        self.with_collection(&req.collection, |c| {
            c.partitions.push(PartitionMeta {
                id,
                name: req.partition,
                created_ts: 0,
            });
            Ok(())
        })
    }

    async fn drop_partition(&self, req: PartitionReq) -> Result<()> {
        self.with_collection(&req.collection, |c| {
            c.partitions.retain(|p| p.name != req.partition);
            Ok(())
        })
    }

    async fn create_alias(&self, req: AliasReq) -> Result<()> {
        self.with_collection(&req.collection, |c| {
            c.aliases.push(req.alias);
            Ok(())
        })
    }

    async fn drop_alias(&self, req: NameReq) -> Result<()> {
        self.change(|st| {
            for c in st.collections.values_mut() {
                c.aliases.retain(|a| *a != req.name);
            }
            Ok(())
        })
    }

    async fn alter_alias(&self, req: AliasReq) -> Result<()> {
        self.drop_alias(NameReq {
            name: req.alias.clone(),
        })
        .await?;
        self.create_alias(req).await
    }

    async fn create_index(&self, req: CreateIndexReq) -> Result<()> {
        self.with_collection(&req.collection, |c| {
            let field = c
                .schema
                .field(&req.field_name)
                .ok_or_else(|| ClusterError::invalid("field_name", "no such field"))?
                .clone();
            let metric = match req.params.get("metric_type") {
                Some(m) => MetricType::parse(m).map_err(ClusterError::from)?,
                None => MetricType::L2,
            };
            c.indexes.push(ferrovus_core::request::IndexSpec {
                index_id: 1,
                index_name: if req.index_name.is_empty() {
                    req.field_name.clone()
                } else {
                    req.index_name
                },
                field_id: field.field_id,
                field_name: field.name,
                index_type: ferrovus_core::request::IndexType::Hnsw,
                metric,
                m: 16,
                ef_construction: 200,
                params: req.params,
            });
            Ok(())
        })
    }

    async fn drop_index(&self, req: DropIndexReq) -> Result<()> {
        self.with_collection(&req.collection, |c| {
            c.indexes.retain(|i| i.field_name != req.field_name);
            Ok(())
        })
    }

    async fn load_collection(&self, req: LoadReq) -> Result<()> {
        self.called("load_collection");
        self.with_collection(&req.name, |c| {
            c.load = Some(LoadSpec {
                replica_number: req.replica_number,
            });
            Ok(())
        })
    }

    async fn release_collection(&self, req: NameReq) -> Result<()> {
        self.with_collection(&req.name, |c| {
            c.load = None;
            Ok(())
        })
    }

    async fn describe_collection(&self, req: NameReq) -> Result<CollectionRecord> {
        self.called("describe_collection");
        self.record(&req.name)
            .ok_or(ClusterError::CollectionNotFound(req.name))
    }

    async fn list_collections(&self, _: Empty) -> Result<Vec<CollectionRecord>> {
        Ok(self.state.lock().collections.values().cloned().collect())
    }

    async fn index_progress(&self, req: NameReq) -> Result<Vec<IndexProgress>> {
        let c = self
            .record(&req.name)
            .ok_or(ClusterError::CollectionNotFound(req.name))?;
        Ok(c.indexes
            .into_iter()
            .map(|spec| IndexProgress {
                spec,
                indexed_rows: 5,
                total_rows: 8,
                pending_segments: 1,
            })
            .collect())
    }

    async fn load_progress(&self, req: NameReq) -> Result<LoadProgress> {
        let c = self
            .record(&req.name)
            .ok_or(ClusterError::CollectionNotFound(req.name))?;
        Ok(match c.load {
            None => LoadProgress {
                state: LoadStateKind::NotLoad,
                percent: 0,
            },
            Some(_) => LoadProgress {
                state: LoadStateKind::Loading,
                percent: 40,
            },
        })
    }

    async fn segments(&self, _: NameReq) -> Result<Vec<SegmentView>> {
        unknown("coord.segments")
    }

    async fn replicas(&self, req: NameReq) -> Result<Vec<ReplicaView>> {
        let c = self
            .record(&req.name)
            .ok_or(ClusterError::CollectionNotFound(req.name))?;
        let routes = self
            .routes(RoutesReq {
                collection_id: c.id,
            })
            .await?;
        Ok(routes
            .replicas
            .into_iter()
            .map(|r| ReplicaView {
                replica_id: r.replica_id,
                collection_id: c.id,
                nodes: r.nodes,
                leaders: r.leaders,
                channels: routes.channels.clone(),
            })
            .collect())
    }

    async fn routes(&self, req: RoutesReq) -> Result<CollectionRoutes> {
        self.called("routes");
        let mut st = self.state.lock();
        if st.routes_unavailable > 0 {
            st.routes_unavailable -= 1;
            return Err(ClusterError::Unavailable(
                "channel has no streaming node yet".into(),
            ));
        }
        let c = st
            .collections
            .get(&req.collection_id)
            .ok_or_else(|| ClusterError::CollectionNotFound(req.collection_id.to_string()))?;
        let channels = c
            .channels()
            .map(|channel| ChannelRoute {
                channel,
                node: STREAMING_NODE,
                addr: st.node_addr.clone().unwrap_or_else(|| "streaming-1".into()),
                term: st.terms.get(&channel).copied().unwrap_or(1),
            })
            .collect();
        let replicas = match &c.load {
            None => vec![],
            Some(_) => (1..=i64::from(st.replicas.max(1)))
                .map(|r| ReplicaRoute {
                    replica_id: r,
                    nodes: vec![delegator_node(r)],
                    leaders: (0..c.num_shards)
                        .map(|shard| ShardLeader {
                            shard,
                            node: delegator_node(r),
                            addr: st
                                .node_addr
                                .clone()
                                .unwrap_or_else(|| format!("query-{}", delegator_node(r))),
                        })
                        .collect(),
                })
                .collect(),
        };
        Ok(CollectionRoutes {
            collection_id: c.id,
            channels,
            replicas,
        })
    }

    async fn watch_catalog(&self, req: WatchReq) -> Result<u64> {
        let mut rx = self.version.subscribe();
        let _ = tokio::time::timeout(
            Duration::from_millis(req.wait_ms),
            rx.wait_for(|v| *v > req.after),
        )
        .await;
        Ok(*rx.borrow())
    }

    async fn alloc_ts(&self, count: u32) -> Result<u64> {
        let mut st = self.state.lock();
        st.ts += u64::from(count);
        Ok(st.ts)
    }

    async fn alloc_ids(&self, count: u32) -> Result<i64> {
        self.called("alloc_ids");
        let mut st = self.state.lock();
        let first = st.next_auto_id;
        st.next_auto_id += i64::from(count);
        Ok(first)
    }

    async fn streaming_sync(&self, _: StreamingSyncReq) -> Result<StreamingSyncResp> {
        unknown("coord.streaming_sync")
    }
    async fn query_sync(&self, _: QuerySyncReq) -> Result<QuerySyncResp> {
        unknown("coord.query_sync")
    }
    async fn data_sync(&self, _: DataSyncReq) -> Result<DataSyncResp> {
        unknown("coord.data_sync")
    }
    async fn open_channel(&self, _: ChannelTermReq) -> Result<OpenChannelResp> {
        unknown("coord.open_channel")
    }
    async fn commit_checkpoint(&self, _: CommitCheckpointReq) -> Result<()> {
        unknown("coord.commit_checkpoint")
    }
    async fn security_op(&self, op: crate::security::SecurityOp) -> Result<bool> {
        self.called("security_op");
        self.change(|st| st.security.apply(op).map_err(ClusterError::Security))
    }
    async fn security_state(&self, _: Empty) -> Result<crate::security::SecurityState> {
        self.called("security_state");
        Ok(self.state.lock().security.clone())
    }
}
