//! The query node's API: as a delegator, whole-shard reads for one replica; as a worker, reads
//! of the sealed segments it holds, at the delegator's snapshot.

use serde::{Deserialize, Serialize};

use super::role_api;
use super::types::*;

role_api! {
    trait QueryApi, remote RemoteQuery, serve serve_query, prefix "query";

    /// Delegator: search one shard of one replica (growing + sealed, merged top-k).
    fn search_shard(ShardSearchReq) -> Vec<Vec<Hit>>;
    /// Delegator: query one shard of one replica.
    fn query_shard(ShardQueryReq) -> ShardQueryResp;
    /// Worker: search the given sealed segments at `snapshot`.
    fn search_segments(SegmentsSearchReq) -> Vec<Vec<Hit>>;
    /// Worker: query the given sealed segments at `snapshot`.
    fn query_segments(SegmentsQueryReq) -> ShardQueryResp;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardSearchReq {
    pub collection_id: i64,
    pub shard: u32,
    pub replica_id: i64,
    pub spec: SearchSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardQueryReq {
    pub collection_id: i64,
    pub shard: u32,
    pub replica_id: i64,
    pub spec: QuerySpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardQueryResp {
    pub count: usize,
    /// In primary-key order (at most `spec.limit`).
    pub rows: Vec<Row>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentsSearchReq {
    pub collection_id: i64,
    pub shard: u32,
    pub segment_ids: Vec<i64>,
    pub snapshot: u64,
    /// The channel owner, for pulling deletes up to `snapshot`.
    pub channel: ChannelRoute,
    pub spec: SearchSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentsQueryReq {
    pub collection_id: i64,
    pub shard: u32,
    pub segment_ids: Vec<i64>,
    pub snapshot: u64,
    pub channel: ChannelRoute,
    pub spec: QuerySpec,
}
