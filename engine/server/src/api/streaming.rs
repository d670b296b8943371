//! The streaming node's API: the channels it owns (writes, growing-side reads, the delete
//! journal, flush). Every call names the channel's term; a node that does not own the channel
//! at that term answers `WrongTerm` or `NotServing` (retriable after a route refresh).

use ferrovus_core::delta::Delta;
use ferrovus_core::wal::WalRecord;
use serde::{Deserialize, Serialize};

use super::role_api;
use super::types::*;

role_api! {
    trait StreamingApi, remote RemoteStreaming, serve serve_streaming, prefix "streaming";

    /// Append a record durably and apply it; returns its timestamp.
    fn write(WriteReq) -> u64;
    /// Search the growing data and the retained sealed segments not in `exclude`.
    fn search(ChannelSearchReq) -> ChannelSearchResp;
    fn query(ChannelQueryReq) -> ChannelQueryResp;
    /// Deletes of sealed rows (by key) after `after_ts`.
    fn deltas(DeltasReq) -> DeltasResp;
    /// Seal and persist the growing data; returns the ids of the sealed segments.
    fn flush(ChannelReq) -> Vec<i64>;
    /// Live rows (optionally of some partitions) for statistics.
    fn stats(ChannelStatsReq) -> ChannelStats;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WriteReq {
    pub channel: ChannelId,
    pub term: u64,
    #[serde(with = "wal_record")]
    pub record: WalRecord,
    /// Approximate payload size (group-commit sizing).
    pub bytes: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelReq {
    pub channel: ChannelId,
    pub term: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelSearchReq {
    pub channel: ChannelId,
    pub term: u64,
    pub spec: SearchSpec,
    /// Sealed segments served elsewhere (and the segments they were compacted from).
    pub exclude: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelSearchResp {
    /// Per query, best first, at most `spec.k`.
    pub hits: Vec<Vec<Hit>>,
    /// The snapshot read (the channel's applied timestamp).
    pub snapshot: u64,
    /// Retained sealed segments that were searched.
    pub sealed_searched: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelQueryReq {
    pub channel: ChannelId,
    pub term: u64,
    pub spec: QuerySpec,
    pub exclude: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelQueryResp {
    pub count: usize,
    /// In primary-key order (at most `spec.limit`).
    pub rows: Vec<Row>,
    pub snapshot: u64,
    pub sealed_searched: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeltasReq {
    pub channel: ChannelId,
    pub term: u64,
    pub after_ts: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum DeltasResp {
    /// Every delete after `after_ts`, complete up to `up_to`.
    Entries { entries: Vec<Delta>, up_to: u64 },
    /// The journal starts at `journal_start`: read the persisted delta objects first.
    Gap { journal_start: u64 },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelStatsReq {
    pub channel: ChannelId,
    pub term: u64,
    pub partitions: Option<Vec<i64>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelStats {
    pub live_rows: usize,
    pub growing_rows: usize,
    pub applied_ts: u64,
}
