//! The streaming node's Prometheus metrics (`ferrovus_streaming_*`). Write rate is
//! `rate(ferrovus_streaming_records_written)`; the mean group-commit size is
//! `rate(ferrovus_streaming_group_commit_records) / rate(ferrovus_streaming_group_commits)`.

use std::sync::atomic::AtomicI64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use crate::metrics::Metrics;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct StateLabels {
    /// `ready` or `recovering`.
    pub state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct KindLabels {
    /// `write`, `search`, `query`, `deltas`, `flush`, `stats`.
    pub kind: &'static str,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct StreamingMetrics {
    pub channels: Family<StateLabels, Gauge<i64, AtomicI64>>,
    pub growing_rows: Gauge<i64, AtomicI64>,
    pub live_rows: Gauge<i64, AtomicI64>,
    pub retained_segments: Gauge<i64, AtomicI64>,
    pub records_written: Counter,
    pub rows_written: Counter,
    pub group_commits: Counter,
    pub group_commit_records: Counter,
    pub replayed_records: Counter,
    pub channels_opened: Counter,
    pub channels_lost: Counter,
    pub requests: Family<KindLabels, Counter>,
    pub request_errors: Family<KindLabels, Counter>,
    pub sync_errors: Counter,
}

impl StreamingMetrics {
    /// Fresh metrics, registered on `registry` when given.
    pub fn new(registry: Option<&Metrics>) -> Self {
        let m = StreamingMetrics::default();
        if let Some(r) = registry {
            r.register(
                "streaming_channels",
                "Channels assigned to this streaming node, by state (ready, recovering)",
                m.channels.clone(),
            );
            r.register(
                "streaming_growing_rows",
                "Rows in growing segments (not sealed yet)",
                m.growing_rows.clone(),
            );
            r.register(
                "streaming_live_rows",
                "Live rows of the channels served here",
                m.live_rows.clone(),
            );
            r.register(
                "streaming_retained_segments",
                "Sealed segments held in memory until query nodes serve them",
                m.retained_segments.clone(),
            );
            r.register(
                "streaming_records_written",
                "Write records (insert, upsert, delete) acknowledged",
                m.records_written.clone(),
            );
            r.register(
                "streaming_rows_written",
                "Rows inserted or upserted and acknowledged",
                m.rows_written.clone(),
            );
            r.register(
                "streaming_group_commits",
                "Group commits (one log object each) acknowledged",
                m.group_commits.clone(),
            );
            r.register(
                "streaming_group_commit_records",
                "Records in the acknowledged group commits",
                m.group_commit_records.clone(),
            );
            r.register(
                "streaming_replayed_records",
                "Log records replayed while recovering channels",
                m.replayed_records.clone(),
            );
            r.register(
                "streaming_channels_opened",
                "Channels recovered and opened",
                m.channels_opened.clone(),
            );
            r.register(
                "streaming_channels_lost",
                "Channels lost while served (refused checkpoint, fenced by a newer owner)",
                m.channels_lost.clone(),
            );
            r.register(
                "streaming_requests",
                "Channel requests served, by kind",
                m.requests.clone(),
            );
            r.register(
                "streaming_request_errors",
                "Channel requests that failed, by kind",
                m.request_errors.clone(),
            );
            r.register(
                "streaming_sync_errors",
                "Failed streaming_sync calls to the coordinator",
                m.sync_errors.clone(),
            );
        }
        m
    }

    pub fn request(&self, kind: &'static str, ok: bool) {
        let labels = KindLabels { kind };
        if ok {
            self.requests.get_or_create(&labels).inc();
        } else {
            self.request_errors.get_or_create(&labels).inc();
        }
    }
}
