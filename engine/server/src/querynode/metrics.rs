//! The query node's Prometheus metrics (`ferrovus_querynode_*`).

use std::sync::atomic::AtomicI64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use crate::metrics::Metrics;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct OutcomeLabels {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ReadLabels {
    /// `search` or `query`.
    pub kind: &'static str,
    /// `shard` (as the delegator) or `segments` (as a worker).
    pub level: &'static str,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct QueryMetrics {
    pub segments_targeted: Gauge<i64, AtomicI64>,
    pub segments_loaded: Gauge<i64, AtomicI64>,
    pub segments_loading: Gauge<i64, AtomicI64>,
    pub rows_loaded: Gauge<i64, AtomicI64>,
    pub memory_bytes: Gauge<i64, AtomicI64>,
    pub segment_loads: Family<OutcomeLabels, Counter>,
    pub index_loads: Family<OutcomeLabels, Counter>,
    pub reads: Family<ReadLabels, Counter>,
    pub read_errors: Family<ReadLabels, Counter>,
    pub delta_pulls: Counter,
    pub sync_errors: Counter,
    pub loads_refused: Counter,
}

impl QueryMetrics {
    /// Fresh metrics, registered on `registry` when given.
    pub fn new(registry: Option<&Metrics>) -> Self {
        let m = QueryMetrics::default();
        if let Some(r) = registry {
            r.register(
                "querynode_segments_targeted",
                "Sealed segments the coordinator assigned to this query node",
                m.segments_targeted.clone(),
            );
            r.register(
                "querynode_segments_loaded",
                "Sealed segments loaded and serving",
                m.segments_loaded.clone(),
            );
            r.register(
                "querynode_segments_loading",
                "Sealed segments being loaded now",
                m.segments_loading.clone(),
            );
            r.register(
                "querynode_rows_loaded",
                "Rows (live and deleted) of the loaded sealed segments",
                m.rows_loaded.clone(),
            );
            r.register(
                "querynode_memory_bytes",
                "Approximate bytes held by loaded segments and their indexes",
                m.memory_bytes.clone(),
            );
            r.register(
                "querynode_segment_loads",
                "Segment load attempts by outcome",
                m.segment_loads.clone(),
            );
            r.register(
                "querynode_index_loads",
                "Index load attempts by outcome",
                m.index_loads.clone(),
            );
            r.register(
                "querynode_reads",
                "Reads served, by kind (search, query) and level (shard, segments)",
                m.reads.clone(),
            );
            r.register(
                "querynode_read_errors",
                "Reads that failed, by kind and level",
                m.read_errors.clone(),
            );
            r.register(
                "querynode_delta_pulls",
                "Delete catch-ups pulled from channel owners (and delta objects)",
                m.delta_pulls.clone(),
            );
            r.register(
                "querynode_loads_refused",
                "Segment loads refused by the memory budget (query.memory_budget_mb)",
                m.loads_refused.clone(),
            );
            r.register(
                "querynode_sync_errors",
                "Failed query_sync calls to the coordinator",
                m.sync_errors.clone(),
            );
        }
        m
    }

    pub fn read(&self, kind: &'static str, level: &'static str, ok: bool) {
        let labels = ReadLabels { kind, level };
        if ok {
            self.reads.get_or_create(&labels).inc();
        } else {
            self.read_errors.get_or_create(&labels).inc();
        }
    }

    pub fn outcome(ok: bool) -> OutcomeLabels {
        OutcomeLabels {
            outcome: if ok { "ok" } else { "error" },
        }
    }
}
