//! Channel owners: rows per channel, terms checked, failures injected per channel.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use async_trait::async_trait;
use ferrovus_core::value::{PrimaryKey, Value, ValueRef};
use ferrovus_core::wal::WalRecord;
use parking_lot::Mutex;

use super::{Result, unknown};
use crate::api::*;
use crate::rpc::ClusterError;

/// A stored row: its partition and its values in schema order.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRow {
    pub partition: i64,
    pub values: Vec<Value>,
}

#[derive(Debug, Default)]
struct StreamingState {
    rows: HashMap<ChannelId, BTreeMap<PrimaryKey, StoredRow>>,
    /// The term each channel is at here (default 1).
    terms: HashMap<ChannelId, u64>,
    /// Errors the next calls on a channel answer, in order.
    failures: HashMap<ChannelId, VecDeque<ClusterError>>,
    /// Channels that fail every call.
    broken: HashMap<ChannelId, ClusterError>,
    ts: u64,
    writes: usize,
    flushes: HashSet<ChannelId>,
}

#[derive(Default)]
pub struct FakeStreaming {
    state: Mutex<StreamingState>,
}

impl FakeStreaming {
    pub fn set_term(&self, channel: ChannelId, term: u64) {
        self.state.lock().terms.insert(channel, term);
    }

    pub fn fail_next(&self, channel: ChannelId, e: ClusterError) {
        self.state
            .lock()
            .failures
            .entry(channel)
            .or_default()
            .push_back(e);
    }

    pub fn break_channel(&self, channel: ChannelId, e: ClusterError) {
        self.state.lock().broken.insert(channel, e);
    }

    pub fn rows(&self, channel: ChannelId) -> BTreeMap<PrimaryKey, StoredRow> {
        self.state
            .lock()
            .rows
            .get(&channel)
            .cloned()
            .unwrap_or_default()
    }

    pub fn writes(&self) -> usize {
        self.state.lock().writes
    }

    pub fn flushed(&self) -> HashSet<ChannelId> {
        self.state.lock().flushes.clone()
    }

    fn check(&self, st: &mut StreamingState, channel: ChannelId, term: u64) -> Result<()> {
        if let Some(e) = st.broken.get(&channel) {
            return Err(e.clone());
        }
        if let Some(e) = st.failures.get_mut(&channel).and_then(VecDeque::pop_front) {
            return Err(e);
        }
        let mine = st.terms.get(&channel).copied().unwrap_or(1);
        if mine != term {
            return Err(ClusterError::WrongTerm {
                channel: channel.to_string(),
                expected: mine,
                got: term,
            });
        }
        Ok(())
    }
}

fn owned(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Bool(b) => Value::Bool(b),
        ValueRef::Int(i) => Value::Int(i),
        ValueRef::Float(f) => Value::Float(f),
        ValueRef::Str(s) => Value::String(s.to_string()),
        ValueRef::Json(j) => Value::Json(j.clone()),
        ValueRef::FloatVector(v) => Value::FloatVector(v.to_vec()),
    }
}

#[async_trait]
impl StreamingApi for FakeStreaming {
    async fn write(&self, req: WriteReq) -> Result<u64> {
        let mut st = self.state.lock();
        self.check(&mut st, req.channel, req.term)?;
        st.writes += 1;
        st.ts += 1;
        let rows = st.rows.entry(req.channel).or_default();
        match req.record {
            WalRecord::Insert {
                partition_id,
                rows: batch,
                ..
            }
            | WalRecord::Upsert {
                partition_id,
                rows: batch,
                ..
            } => {
                for i in 0..batch.num_rows() {
                    // The test schemas' primary key is `id`.
                    let pk = batch
                        .column("id")
                        .and_then(|c| c.primary_key(i))
                        .ok_or_else(|| ClusterError::invalid("rows", "no key"))?;
                    let values = batch.columns.iter().map(|(_, c)| owned(c.get(i))).collect();
                    rows.insert(
                        pk,
                        StoredRow {
                            partition: partition_id,
                            values,
                        },
                    );
                }
            }
            WalRecord::Delete { pks, .. } => {
                for pk in pks {
                    rows.remove(&pk);
                }
            }
        }
        Ok(st.ts)
    }

    async fn search(&self, _: ChannelSearchReq) -> Result<ChannelSearchResp> {
        unknown("streaming.search")
    }
    async fn query(&self, _: ChannelQueryReq) -> Result<ChannelQueryResp> {
        unknown("streaming.query")
    }
    async fn deltas(&self, _: DeltasReq) -> Result<DeltasResp> {
        unknown("streaming.deltas")
    }

    async fn flush(&self, req: ChannelReq) -> Result<Vec<i64>> {
        let mut st = self.state.lock();
        self.check(&mut st, req.channel, req.term)?;
        st.flushes.insert(req.channel);
        Ok(vec![])
    }

    async fn stats(&self, req: ChannelStatsReq) -> Result<ChannelStats> {
        let mut st = self.state.lock();
        self.check(&mut st, req.channel, req.term)?;
        let live_rows = st.rows.get(&req.channel).map_or(0, |rows| {
            rows.values()
                .filter(|r| {
                    req.partitions
                        .as_ref()
                        .is_none_or(|p| p.contains(&r.partition))
                })
                .count()
        });
        Ok(ChannelStats {
            live_rows,
            growing_rows: live_rows,
            applied_ts: st.ts,
        })
    }
}
