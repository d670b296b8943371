//! The coordinator's API: DDL and the catalogue, timestamps and ids, routes, and the
//! long-polling `*_sync` calls through which streaming, query and data nodes learn what they
//! should hold and report what they hold.

use std::collections::BTreeMap;

use ferrovus_core::delta::DeltaObjectMeta;
use ferrovus_core::request::{Consistency, IndexSpec};
use ferrovus_core::schema::CollectionSchema;
use ferrovus_core::segment::SegmentMeta;
use ferrovus_core::shard::ShardCheckpoint;
use serde::{Deserialize, Serialize};

use super::role_api;
use super::types::*;
use crate::security::{SecurityOp, SecurityState};

role_api! {
    /// Served by the leading coordinator; a standby answers `NotLeader` with the leader's address.
    trait CoordApi, remote RemoteCoord, serve serve_coord, prefix "coord";

    // ---- DDL (every change is one fenced catalogue transaction) ----
    fn create_collection(CreateCollectionReq) -> CollectionRecord;
    /// Dropping a missing collection succeeds (as in Milvus).
    fn drop_collection(NameReq) -> ();
    fn rename_collection(RenameReq) -> ();
    fn alter_collection(AlterCollectionReq) -> ();
    fn create_partition(PartitionReq) -> ();
    fn drop_partition(PartitionReq) -> ();
    fn create_alias(AliasReq) -> ();
    fn drop_alias(NameReq) -> ();
    fn alter_alias(AliasReq) -> ();
    fn create_index(CreateIndexReq) -> ();
    fn drop_index(DropIndexReq) -> ();
    /// Creates `replica_number` replica groups (or checks they exist) and places segments; it
    /// returns at once: progress is `load_progress`.
    fn load_collection(LoadReq) -> ();
    fn release_collection(NameReq) -> ();

    // ---- catalogue reads (name or alias) ----
    fn describe_collection(NameReq) -> CollectionRecord;
    fn list_collections(Empty) -> Vec<CollectionRecord>;
    fn index_progress(NameReq) -> Vec<IndexProgress>;
    fn load_progress(NameReq) -> LoadProgress;
    fn segments(NameReq) -> Vec<SegmentView>;
    fn replicas(NameReq) -> Vec<ReplicaView>;
    fn routes(RoutesReq) -> CollectionRoutes;
    /// Long poll: answers when the catalogue version is past `after` or after `wait_ms`.
    fn watch_catalog(WatchReq) -> u64;

    // ---- timestamps and ids ----
    /// Allocates `count` timestamps; returns the last.
    fn alloc_ts(u32) -> u64;
    /// Allocates `count` ids; returns the first.
    fn alloc_ids(u32) -> i64;

    // ---- nodes ----
    fn streaming_sync(StreamingSyncReq) -> StreamingSyncResp;
    fn query_sync(QuerySyncReq) -> QuerySyncResp;
    fn data_sync(DataSyncReq) -> DataSyncResp;
    /// A streaming node opening a channel it was assigned at `term`: the schema, and the
    /// checkpoint to recover from (its `segments` are the shard's live catalogue segments).
    fn open_channel(ChannelTermReq) -> OpenChannelResp;
    /// Commit a channel checkpoint and the segments it sealed; refused unless `term` is the
    /// channel's current term and `node` its owner.
    fn commit_checkpoint(CommitCheckpointReq) -> ();

    // ---- users, roles and grants ----
    /// Apply one change (passwords arrive hashed); whether anything changed. The catalogue
    /// version moves with every change.
    fn security_op(SecurityOp) -> bool;
    /// Every user (with its password hash), role and grant: what proxies check requests against.
    fn security_state(Empty) -> SecurityState;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Empty {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NameReq {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateCollectionReq {
    pub schema: CollectionSchema,
    pub num_shards: u32,
    pub consistency: Consistency,
    pub properties: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenameReq {
    pub old_name: String,
    pub new_name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlterCollectionReq {
    pub name: String,
    pub properties: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionReq {
    pub collection: String,
    pub partition: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AliasReq {
    pub alias: String,
    pub collection: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateIndexReq {
    pub collection: String,
    pub field_name: String,
    pub index_name: String,
    pub params: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DropIndexReq {
    pub collection: String,
    pub field_name: String,
    pub index_name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadReq {
    pub name: String,
    pub replica_number: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoutesReq {
    pub collection_id: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatchReq {
    pub after: u64,
    pub wait_ms: u64,
}

/// Build progress of one index over the collection's sealed segments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexProgress {
    pub spec: IndexSpec,
    pub indexed_rows: usize,
    pub total_rows: usize,
    /// Segments waiting for a build.
    pub pending_segments: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LoadStateKind {
    NotLoad,
    Loading,
    Loaded,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadProgress {
    pub state: LoadStateKind,
    /// 0..=100.
    pub percent: u32,
}

/// A sealed segment and the query nodes that serve it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentView {
    pub record: SegmentRecord,
    pub nodes: Vec<NodeId>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicaView {
    pub replica_id: i64,
    pub collection_id: i64,
    pub nodes: Vec<NodeId>,
    pub leaders: Vec<ShardLeader>,
    /// Channel owners, per shard.
    pub channels: Vec<ChannelRoute>,
}

// ---- streaming nodes ----

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelStatus {
    pub channel: ChannelId,
    pub term: u64,
    /// Recovered and serving.
    pub ready: bool,
    pub applied_ts: u64,
    pub live_rows: usize,
    /// Sealed segments still held in memory (searched on the growing side).
    pub retained: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamingSyncReq {
    pub node: NodeId,
    pub addr: String,
    /// The target version the node last applied; the call waits up to `wait_ms` for a newer one.
    pub known_version: u64,
    pub wait_ms: u64,
    pub channels: Vec<ChannelStatus>,
    /// The node is draining (SIGTERM): move its channels away.
    #[serde(default)]
    pub draining: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelAssignment {
    pub channel: ChannelId,
    pub term: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamingSyncResp {
    pub version: u64,
    /// Every channel this node should own; channels it owns and that are missing here must be
    /// closed (without deleting anything).
    pub channels: Vec<ChannelAssignment>,
    /// Retained sealed segments every replica now serves (or nobody needs): drop from memory.
    pub release: Vec<(ChannelId, Vec<i64>)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelTermReq {
    pub channel: ChannelId,
    pub term: u64,
    pub node: NodeId,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenChannelResp {
    pub collection: CollectionRecord,
    pub checkpoint: Option<ShardCheckpoint>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommitCheckpointReq {
    pub channel: ChannelId,
    pub term: u64,
    pub node: NodeId,
    pub checkpoint: ShardCheckpoint,
    /// Segments sealed by this checkpoint (also in `checkpoint.segments`).
    pub new_segments: Vec<SegmentMeta>,
}

// ---- query nodes ----

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadedSegment {
    pub collection_id: i64,
    pub shard: u32,
    pub segment_id: i64,
    /// Index ids attached.
    pub indexes: Vec<i64>,
    pub rows: usize,
    pub deleted_rows: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DelegationAck {
    pub collection_id: i64,
    pub shard: u32,
    pub replica_id: i64,
    pub version: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuerySyncReq {
    pub node: NodeId,
    pub addr: String,
    pub known_version: u64,
    pub wait_ms: u64,
    pub loaded: Vec<LoadedSegment>,
    /// Delegations the node serves, with the version of the distribution it applied.
    pub delegations: Vec<DelegationAck>,
    #[serde(default)]
    pub draining: bool,
    /// Targeted segments the node refused to load (its memory budget).
    #[serde(default)]
    pub refused: Vec<RefusedLoad>,
}

/// A segment load a query node refused, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefusedLoad {
    pub collection_id: i64,
    pub segment_id: i64,
    pub reason: String,
}

/// A segment this node should hold for a replica.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentTarget {
    pub replica_id: i64,
    pub record: SegmentRecord,
    /// Delta objects of the shard (deletes after the segment's `base_ts` are in these up to
    /// the channel's last checkpoint; the rest comes from the channel owner).
    pub deltas: Vec<DeltaObjectMeta>,
}

/// One segment of a delegator's distribution: which node of the replica serves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DistEntry {
    pub segment_id: i64,
    pub node: NodeId,
    pub addr: String,
}

/// A live segment of the shard the delegator must cover.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetSegment {
    pub segment_id: i64,
    pub compacted_from: Vec<i64>,
}

/// This node leads (delegates) `shard` of `collection_id` in `replica_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delegation {
    pub collection_id: i64,
    pub shard: u32,
    pub replica_id: i64,
    pub version: u64,
    pub channel: ChannelRoute,
    /// Served segments (loaded by a node of the replica): never two that overlap (a compaction
    /// result and one of its sources).
    pub served: Vec<DistEntry>,
    /// Every live segment of the shard.
    pub targets: Vec<TargetSegment>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuerySyncResp {
    pub version: u64,
    /// Collections referenced by `segments` and `delegations` (schemas, indexes).
    pub collections: Vec<CollectionRecord>,
    /// Every segment this node should hold; loaded segments missing here are released.
    pub segments: Vec<SegmentTarget>,
    pub delegations: Vec<Delegation>,
}

// ---- data nodes ----

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TaskKind {
    /// Build `spec` over one sealed segment and write it to `index_key`.
    IndexBuild {
        segment: Box<SegmentMeta>,
        field_id: i64,
        spec: IndexSpec,
        index_key: String,
    },
    /// Merge `sources` (with their deletes up to `snapshot_ts`: own delete logs plus `deltas`)
    /// into a new segment `target_segment_id` with `base_ts = snapshot_ts`.
    Compaction {
        partition_id: i64,
        sources: Vec<SegmentMeta>,
        deltas: Vec<DeltaObjectMeta>,
        snapshot_ts: u64,
        target_segment_id: i64,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub id: u64,
    pub collection: CollectionRecord,
    pub shard: u32,
    pub kind: TaskKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TaskOutput {
    Index {
        segment_id: i64,
        field_id: i64,
        index_id: i64,
        key: String,
    },
    /// The new segment's metadata (data, pks, delete log keys written).
    Compacted { segment: SegmentMeta },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskResult {
    pub id: u64,
    pub outcome: Result<TaskOutput, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskProgress {
    pub id: u64,
    /// 0.0..=1.0
    pub fraction: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataSyncReq {
    pub node: NodeId,
    pub addr: String,
    pub wait_ms: u64,
    /// Free task slots.
    pub slots: u32,
    pub running: Vec<TaskProgress>,
    pub finished: Vec<TaskResult>,
    #[serde(default)]
    pub draining: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataSyncResp {
    /// New tasks for this node (at most `slots`).
    pub tasks: Vec<Task>,
    /// Running tasks the coordinator no longer wants (cancelled, reassigned).
    pub cancel: Vec<u64>,
}
