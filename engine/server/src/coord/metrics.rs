//! The coordinator's Prometheus metrics (`ferrovus_coord_*`).

use std::sync::atomic::AtomicI64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use crate::metrics::Metrics;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TaskLabels {
    pub kind: String,
    pub outcome: String,
}

/// Counters and gauges of one coordinator process (leader or standby).
#[derive(Debug, Default)]
pub struct CoordMetrics {
    /// 1 while this process leads.
    pub leader: Gauge<i64, AtomicI64>,
    /// Times this process became the leader.
    pub elections: Counter,
    pub catalog_version: Gauge<i64, AtomicI64>,
    pub collections: Gauge<i64, AtomicI64>,
    pub segments: Gauge<i64, AtomicI64>,
    pub unassigned_channels: Gauge<i64, AtomicI64>,
    pub tasks_running: Gauge<i64, AtomicI64>,
    pub tasks_finished: Family<TaskLabels, Counter>,
    pub channel_moves: Counter,
    pub segment_moves: Counter,
    /// Catalogue changes a standby applied from its watch.
    pub standby_changes: Counter,
}

impl CoordMetrics {
    pub fn register(&self, m: &Metrics) {
        m.register(
            "coord_leader",
            "1 while this coordinator leads",
            self.leader.clone(),
        );
        m.register(
            "coord_standby_catalog_changes",
            "Catalogue changes this coordinator applied from its watch while standby",
            self.standby_changes.clone(),
        );
        m.register(
            "coord_elections",
            "Times this coordinator became the leader",
            self.elections.clone(),
        );
        m.register(
            "coord_catalog_version",
            "Catalogue version (proxy-visible changes)",
            self.catalog_version.clone(),
        );
        m.register(
            "coord_collections",
            "Collections in the catalogue",
            self.collections.clone(),
        );
        m.register(
            "coord_segments",
            "Sealed segments in the catalogue",
            self.segments.clone(),
        );
        m.register(
            "coord_unassigned_channels",
            "Channels without a live streaming node",
            self.unassigned_channels.clone(),
        );
        m.register(
            "coord_tasks_running",
            "Data-node tasks handed out and not finished",
            self.tasks_running.clone(),
        );
        m.register(
            "coord_tasks_finished",
            "Data-node tasks finished, by kind and outcome",
            self.tasks_finished.clone(),
        );
        m.register(
            "coord_channel_moves",
            "Channel (re)assignments",
            self.channel_moves.clone(),
        );
        m.register(
            "coord_segment_moves",
            "Segment placements changed to another query node",
            self.segment_moves.clone(),
        );
    }

    pub fn task_finished(&self, kind: &str, outcome: &str) {
        self.tasks_finished
            .get_or_create(&TaskLabels {
                kind: kind.into(),
                outcome: outcome.into(),
            })
            .inc();
    }
}
