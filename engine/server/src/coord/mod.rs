//! The coordinator ([`Coordinator`], implementing [`CoordApi`]): the catalogue, timestamps and
//! ids, channel assignment, replica and segment placement, and data-node tasks (see
//! docs/distributed.md).
//!
//! **Leadership.** Any number of coordinators run; they campaign on
//! [`COORDINATOR_LEADER_KEY`](crate::session::COORDINATOR_LEADER_KEY) with this node's internal RPC address as the value. A standby
//! answers every call with `NotLeader { leader }`, is ready (`/readyz` 200, `standby`), and
//! keeps a warm copy of the catalogue by watching it, so a takeover decodes only what
//! changed. The leader writes only through a [`FencedStore`] (catalogue, TSO `tso/upper`, id
//! blocks `ids/next`): every write also compares the leader key's revision, so a deposed
//! leader cannot write even while it believes it leads. When leadership is lost (the
//! keep-alive failed, or a fenced write found the fence gone) the leader stops at once (calls
//! fail with `NotLeader`, long polls return), drops all its state and campaigns again.
//!
//! **One term** is a `Leader`: the catalogue (in memory, persisted; every
//! change is clone → change → one fenced transaction → swap), run-time state rebuilt from
//! sessions and node reports, and a reconciler that assigns channels, forms replicas, places
//! segments and delegators, publishes distributions and collects garbage.
//!
//! **Contracts other roles rely on** (beyond the message docs in [`crate::api`]):
//! * the catalogue version (`watch_catalog`) moves with every change a proxy caches:
//!   collection records (schemas, partitions, aliases, indexes, load state), channel owners
//!   and terms, replicas; not with segment registrations or checkpoints;
//! * a dropped partition disappears from the collection record at once: every read must
//!   filter to the record's partitions (its segments leave the catalogue shortly after);
//! * `routes` lists a shard's delegator while its node's session is alive (the delegator
//!   refuses a shard it does not lead yet); `Unavailable` while a channel has no owner;
//! * a `Delegation`'s `targets` are the shard's live segments (a compaction result with its
//!   `compacted_from`); `served` covers a result either itself or through its sources, never
//!   both; every `*_sync` answer is complete (what is missing must be released);
//! * after a takeover `query_sync` answers only once every live query node reported (or the
//!   settle timeout passed), so no answer is built from missing reports;
//! * nodes are known by their sessions: in standalone the in-process streaming, query and data
//!   nodes register sessions on the same `LocalCoordination` the coordinator watches.
//!
//! Files: [`catalog`] (records and keys), [`fence`], `leader` (a term), `election` (campaign,
//! standby, takeover), `ddl` / `indexes` / `load` / `views` (the catalogue API), `streaming` /
//! `query` / `datasync` (what nodes call), `assign` / `placement` / `dist` (planning),
//! `reconcile`, `tasks`, `gc`, `runtime`, `role` (`ferrovus run coordinator`).

mod assign;
pub mod catalog;
mod datasync;
mod ddl;
mod dist;
mod election;
pub mod fence;
mod gc;
pub mod import;
mod indexes;
mod leader;
mod liveness;
mod load;
mod metrics;
mod placement;
mod query;
mod reconcile;
mod role;
mod runtime;
mod security;
mod streaming;
mod tasks;
mod views;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ferrovus_core::CoreConfig;
use ferrovus_core::store::{MetaStore, ObjectStore};
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use catalog::{ChannelRecord, DroppedCollection, ReplicaRecord};
pub use fence::{FENCED_OUT, FencedStore, is_fenced_out};
pub use leader::{IDS_KEY, TSO_KEY};
pub use metrics::CoordMetrics;
pub use role::CoordinatorRole;

use crate::api::*;
use crate::config::CoordinatorConfig;
use crate::metrics::Metrics;
use crate::node::Readiness;
use crate::rpc::ClusterError;
use crate::session::Coordination;

use catalog::{Catalog, CatalogLoader};
use leader::Leader;

/// What a coordinator is built from.
pub struct CoordinatorOptions {
    /// The metadata store (unfenced; the leader wraps it).
    pub meta: Arc<dyn MetaStore>,
    /// For garbage collection.
    pub objects: Arc<dyn ObjectStore>,
    pub coordination: Arc<dyn Coordination>,
    /// This node's internal RPC address (`host:port`): the leader key's value.
    pub addr: String,
    pub config: CoordinatorConfig,
    /// Compaction thresholds.
    pub core: CoreConfig,
    /// Where the `ferrovus_coord_*` metrics are registered, if anywhere.
    pub metrics: Option<Arc<Metrics>>,
    /// Set ready as `standby` while standby, ready while leading.
    pub readiness: Option<Readiness>,
}

enum Mode {
    Standby,
    Leading(Arc<Leader>),
}

/// What the election loop and the API share.
struct Shared {
    meta: Arc<dyn MetaStore>,
    objects: Arc<dyn ObjectStore>,
    coordination: Arc<dyn Coordination>,
    addr: String,
    config: CoordinatorConfig,
    core: CoreConfig,
    metrics: Arc<CoordMetrics>,
    readiness: Option<Readiness>,
    mode: RwLock<Mode>,
    leading: watch::Sender<bool>,
    /// The current leader's address as observed on the leader key.
    leader_addr: RwLock<Option<String>>,
    loader: tokio::sync::Mutex<CatalogLoader>,
    /// The standby's warm copy of the catalogue.
    warm: RwLock<Arc<Catalog>>,
    /// `Some(resign)` once asked to stop.
    shutdown: watch::Sender<Option<bool>>,
}

/// A coordinator process's role object: leader or standby. See the module docs.
pub struct Coordinator {
    shared: Arc<Shared>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("addr", &self.shared.addr)
            .field("leading", &self.is_leader())
            .finish_non_exhaustive()
    }
}

impl Coordinator {
    /// Starts a coordinator: standby at once, campaigning in the background.
    pub fn start(opts: CoordinatorOptions) -> Arc<Coordinator> {
        let metrics = Arc::new(CoordMetrics::default());
        if let Some(m) = &opts.metrics {
            metrics.register(m);
        }
        let shared = Arc::new(Shared {
            meta: opts.meta,
            objects: opts.objects,
            coordination: opts.coordination,
            addr: opts.addr,
            config: opts.config,
            core: opts.core,
            metrics,
            readiness: opts.readiness,
            mode: RwLock::new(Mode::Standby),
            leading: watch::channel(false).0,
            leader_addr: RwLock::new(None),
            loader: tokio::sync::Mutex::new(CatalogLoader::default()),
            warm: RwLock::new(Arc::new(Catalog::default())),
            shutdown: watch::channel(None).0,
        });
        shared.set_standby();
        let task = tokio::spawn(shared.clone().run());
        Arc::new(Coordinator {
            shared,
            task: Mutex::new(Some(task)),
        })
    }

    /// The coordinator of standalone: the same coordinator over an in-process
    /// [`Coordination`] (a `LocalCoordination` shared with the other in-process roles, whose
    /// sessions it watches) and the embedded metadata store; no node-loss grace, no settling.
    /// Returns once it leads.
    pub async fn in_process(
        meta: Arc<dyn MetaStore>,
        objects: Arc<dyn ObjectStore>,
        coordination: Arc<dyn Coordination>,
        core: CoreConfig,
        metrics: Option<Arc<Metrics>>,
    ) -> Result<Arc<Coordinator>, ClusterError> {
        let coord = Coordinator::start(CoordinatorOptions {
            meta,
            objects,
            coordination,
            addr: "in-process".into(),
            config: CoordinatorConfig::standalone(),
            core,
            metrics,
            readiness: None,
        });
        coord.wait_leading(Duration::from_secs(60)).await?;
        Ok(coord)
    }

    pub fn is_leader(&self) -> bool {
        matches!(&*self.shared.mode.read(), Mode::Leading(l) if !l.is_stopped())
    }

    /// Waits until this coordinator leads (`Unavailable` after `timeout`).
    pub async fn wait_leading(&self, timeout: Duration) -> Result<(), ClusterError> {
        let mut rx = self.shared.leading.subscribe();
        match tokio::time::timeout(timeout, rx.wait_for(|l| *l)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(ClusterError::Unavailable(format!(
                "the coordinator did not become the leader within {timeout:?}"
            ))),
        }
    }

    /// The leader's address as last observed (this node's own while it leads).
    pub fn leader_address(&self) -> Option<String> {
        self.shared.leader_addr.read().clone()
    }

    /// The catalogue version of the standby's warm copy (or of the leader's catalogue).
    pub fn catalog_version(&self) -> u64 {
        match &*self.shared.mode.read() {
            Mode::Leading(l) => l.snapshot().version,
            Mode::Standby => self.shared.warm.read().version,
        }
    }

    /// Collections in the standby's warm copy (or the leader's catalogue), by name.
    pub fn catalog_names(&self) -> Vec<String> {
        let cat = match &*self.shared.mode.read() {
            Mode::Leading(l) => l.snapshot(),
            Mode::Standby => self.shared.warm.read().clone(),
        };
        cat.by_names().map(|c| c.record.name.clone()).collect()
    }

    /// Stops: a leader resigns (a standby takes over at once) when `resign`, else it just
    /// stops renewing (others take over when its lease expires, as after a crash).
    pub async fn shutdown(&self, resign: bool) {
        self.shared.shutdown.send_replace(Some(resign));
        let task = self.task.lock().take();
        if let Some(t) = task {
            let _ = t.await;
        }
    }

    /// The current term's state, for tests.
    #[cfg(test)]
    fn current(&self) -> Option<Arc<Leader>> {
        match &*self.shared.mode.read() {
            Mode::Leading(l) => Some(l.clone()),
            Mode::Standby => None,
        }
    }

    fn leader(&self) -> Result<Arc<Leader>, ClusterError> {
        match &*self.shared.mode.read() {
            Mode::Leading(l) if !l.is_stopped() => Ok(l.clone()),
            _ => Err(self.not_leader()),
        }
    }

    fn not_leader(&self) -> ClusterError {
        let leader = self
            .shared
            .leader_addr
            .read()
            .clone()
            .filter(|a| *a != self.shared.addr);
        ClusterError::NotLeader { leader }
    }

    fn map_err(&self, e: ClusterError) -> ClusterError {
        match e {
            ClusterError::NotLeader { leader: None } => self.not_leader(),
            e => e,
        }
    }
}

/// Every API call goes to the current term, or answers `NotLeader`.
macro_rules! to_leader {
    ($($m:ident($req:ty) -> $resp:ty;)*) => {
        #[async_trait]
        impl CoordApi for Coordinator {
            $(
                async fn $m(&self, req: $req) -> Result<$resp, ClusterError> {
                    let leader = self.leader()?;
                    leader.$m(req).await.map_err(|e| self.map_err(e))
                }
            )*
        }
    };
}

to_leader! {
    create_collection(CreateCollectionReq) -> CollectionRecord;
    drop_collection(NameReq) -> ();
    rename_collection(RenameReq) -> ();
    alter_collection(AlterCollectionReq) -> ();
    create_partition(PartitionReq) -> ();
    drop_partition(PartitionReq) -> ();
    create_alias(AliasReq) -> ();
    drop_alias(NameReq) -> ();
    alter_alias(AliasReq) -> ();
    create_index(CreateIndexReq) -> ();
    drop_index(DropIndexReq) -> ();
    load_collection(LoadReq) -> ();
    release_collection(NameReq) -> ();
    describe_collection(NameReq) -> CollectionRecord;
    list_collections(Empty) -> Vec<CollectionRecord>;
    index_progress(NameReq) -> Vec<IndexProgress>;
    load_progress(NameReq) -> LoadProgress;
    segments(NameReq) -> Vec<SegmentView>;
    replicas(NameReq) -> Vec<ReplicaView>;
    routes(RoutesReq) -> CollectionRoutes;
    watch_catalog(WatchReq) -> u64;
    alloc_ts(u32) -> u64;
    alloc_ids(u32) -> i64;
    streaming_sync(StreamingSyncReq) -> StreamingSyncResp;
    query_sync(QuerySyncReq) -> QuerySyncResp;
    data_sync(DataSyncReq) -> DataSyncResp;
    open_channel(ChannelTermReq) -> OpenChannelResp;
    commit_checkpoint(CommitCheckpointReq) -> ();
    security_op(crate::security::SecurityOp) -> bool;
    security_state(Empty) -> crate::security::SecurityState;
}
