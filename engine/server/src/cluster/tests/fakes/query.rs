//! Delegators reading the channel owners' rows: exact scores, real filters, failures injected
//! per (replica, shard), queries held on demand.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use ferrovus_core::expr::{self, RowAccess};
use ferrovus_core::request::MetricType;
use ferrovus_core::value::{PrimaryKey, Value, ValueRef};
use parking_lot::Mutex;
use tokio::sync::watch;

use super::{FakeCoord, FakeStreaming, Result, StoredRow, unknown};
use crate::api::*;
use crate::rpc::ClusterError;

pub struct FakeQuery {
    coord: Arc<FakeCoord>,
    streaming: Arc<FakeStreaming>,
    /// Persistent failures by (replica, shard).
    failures: Mutex<HashMap<(i64, u32), ClusterError>>,
    /// Every call: (replica, shard).
    calls: Mutex<Vec<(i64, u32)>>,
    /// When set, queries say they entered and wait to be released.
    hold: Mutex<Option<Hold>>,
}

/// Holds queries inside a delegator: `entered` is notified when one arrives, which then waits
/// until [`Hold::release`].
#[derive(Clone)]
pub struct Hold {
    pub entered: Arc<tokio::sync::Notify>,
    open: Arc<watch::Sender<bool>>,
}

impl Default for Hold {
    fn default() -> Self {
        Hold {
            entered: Arc::default(),
            open: Arc::new(watch::Sender::new(false)),
        }
    }
}

impl Hold {
    /// Let every held query (and every later one) go on.
    pub fn release(&self) {
        self.open.send_replace(true);
    }

    async fn pass(&self) {
        self.entered.notify_one();
        let mut rx = self.open.subscribe();
        let _ = rx.wait_for(|open| *open).await;
    }
}

struct Row<'a>(&'a [Value]);

impl RowAccess for Row<'_> {
    fn get(&self, field_index: usize) -> ValueRef<'_> {
        self.0
            .get(field_index)
            .map_or(ValueRef::Null, Value::as_ref)
    }
}

fn score(metric: MetricType, a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    match metric {
        MetricType::L2 => a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum(),
        MetricType::Ip => dot,
        MetricType::Cosine => {
            let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
            let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
            dot / (na * nb).max(f32::MIN_POSITIVE)
        }
    }
}

impl FakeQuery {
    pub fn new(coord: Arc<FakeCoord>, streaming: Arc<FakeStreaming>) -> Self {
        FakeQuery {
            coord,
            streaming,
            failures: Mutex::default(),
            calls: Mutex::default(),
            hold: Mutex::default(),
        }
    }

    pub fn hold_queries(&self) -> Hold {
        let h = Hold::default();
        *self.hold.lock() = Some(h.clone());
        h
    }

    pub fn fail(&self, replica: i64, shard: u32, e: ClusterError) {
        self.failures.lock().insert((replica, shard), e);
    }

    pub fn heal(&self) {
        self.failures.lock().clear();
    }

    pub fn calls(&self) -> Vec<(i64, u32)> {
        self.calls.lock().clone()
    }

    fn enter(&self, replica: i64, shard: u32) -> Result<()> {
        self.calls.lock().push((replica, shard));
        match self.failures.lock().get(&(replica, shard)) {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// The matching rows of a shard, in key order.
    fn matching(
        &self,
        collection_id: i64,
        shard: u32,
        filter: &str,
        params: &HashMap<String, serde_json::Value>,
        partitions: &Option<Vec<i64>>,
    ) -> Result<Vec<(PrimaryKey, StoredRow)>> {
        let schema = self
            .coord
            .schema_of(collection_id)
            .ok_or_else(|| ClusterError::CollectionNotFound(collection_id.to_string()))?;
        let plan = expr::compile_str_with_params(filter, &schema, params)
            .map_err(|e| ClusterError::invalid("expr", e.to_string()))?;
        Ok(self
            .streaming
            .rows(ChannelId::new(collection_id, shard))
            .into_iter()
            .filter(|(_, r)| partitions.as_ref().is_none_or(|p| p.contains(&r.partition)))
            .filter(|(_, r)| plan.eval(&Row(&r.values)))
            .collect())
    }
}

#[async_trait]
impl QueryApi for FakeQuery {
    async fn search_shard(&self, req: ShardSearchReq) -> Result<Vec<Vec<Hit>>> {
        self.enter(req.replica_id, req.shard)?;
        let s = &req.spec;
        let rows = self.matching(
            req.collection_id,
            req.shard,
            &s.filter,
            &s.filter_params,
            &s.partitions,
        )?;
        let dim = s.queries.len() / s.num_queries.max(1);
        Ok(s.queries
            .chunks(dim.max(1))
            .map(|q| {
                let mut hits: Vec<Hit> = rows
                    .iter()
                    .filter_map(|(pk, r)| match r.values.get(s.field_index) {
                        Some(Value::FloatVector(v)) => Some(Hit {
                            score: score(s.metric, q, v),
                            pk: pk.clone(),
                            values: s.output.iter().map(|i| r.values[*i].clone()).collect(),
                        }),
                        _ => None,
                    })
                    .collect();
                hits.sort_by(|a, b| {
                    let o = a.score.total_cmp(&b.score);
                    if s.metric.higher_is_better() {
                        o.reverse()
                    } else {
                        o
                    }
                });
                hits.truncate(s.k);
                hits
            })
            .collect())
    }

    async fn query_shard(&self, req: ShardQueryReq) -> Result<ShardQueryResp> {
        self.enter(req.replica_id, req.shard)?;
        let hold = self.hold.lock().clone();
        if let Some(h) = hold {
            h.pass().await;
        }
        let s = &req.spec;
        let rows = self.matching(
            req.collection_id,
            req.shard,
            &s.filter,
            &s.filter_params,
            &s.partitions,
        )?;
        let count = rows.len();
        let rows = if s.count_only {
            vec![]
        } else {
            rows.into_iter()
                .take(s.limit.unwrap_or(usize::MAX))
                .map(|(pk, r)| crate::api::Row {
                    pk,
                    values: s.output.iter().map(|i| r.values[*i].clone()).collect(),
                })
                .collect()
        };
        Ok(ShardQueryResp { count, rows })
    }

    async fn search_segments(&self, _: SegmentsSearchReq) -> Result<Vec<Vec<Hit>>> {
        unknown("query.search_segments")
    }
    async fn query_segments(&self, _: SegmentsQueryReq) -> Result<ShardQueryResp> {
        unknown("query.query_segments")
    }
}
