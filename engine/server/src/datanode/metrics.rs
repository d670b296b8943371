//! The data node's Prometheus metrics (`ferrovus_datanode_*`).

use std::sync::atomic::AtomicI64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;

use crate::metrics::Metrics;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct TaskLabels {
    /// `index_build` or `compaction`.
    pub kind: &'static str,
    /// `ok` or `error`.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct KindLabels {
    pub kind: &'static str,
}

#[derive(Clone, Debug)]
pub(crate) struct DataMetrics {
    pub running: Gauge<i64, AtomicI64>,
    pub tasks: Family<TaskLabels, Counter>,
    pub task_seconds: Family<KindLabels, Histogram>,
    pub cancelled: Counter,
    pub reported: Counter,
    pub sync_errors: Counter,
}

impl DataMetrics {
    /// Fresh metrics, registered on `registry` when given.
    pub fn new(registry: Option<&Metrics>) -> Self {
        let m = DataMetrics {
            running: Gauge::default(),
            tasks: Family::default(),
            task_seconds: Family::new_with_constructor(|| {
                Histogram::new([
                    0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0,
                ])
            }),
            cancelled: Counter::default(),
            reported: Counter::default(),
            sync_errors: Counter::default(),
        };
        if let Some(r) = registry {
            r.register(
                "datanode_tasks_running",
                "Tasks (index builds, compactions) running on this data node",
                m.running.clone(),
            );
            r.register(
                "datanode_tasks",
                "Tasks finished, by kind and outcome",
                m.tasks.clone(),
            );
            r.register(
                "datanode_task_duration_seconds",
                "How long tasks ran, by kind",
                m.task_seconds.clone(),
            );
            r.register(
                "datanode_tasks_cancelled",
                "Running tasks the coordinator cancelled",
                m.cancelled.clone(),
            );
            r.register(
                "datanode_results_reported",
                "Task results the coordinator acknowledged",
                m.reported.clone(),
            );
            r.register(
                "datanode_sync_errors",
                "Failed data_sync calls to the coordinator",
                m.sync_errors.clone(),
            );
        }
        m
    }

    pub fn finished(&self, kind: &'static str, ok: bool, seconds: f64) {
        let outcome = if ok { "ok" } else { "error" };
        self.tasks
            .get_or_create(&TaskLabels { kind, outcome })
            .inc();
        self.task_seconds
            .get_or_create(&KindLabels { kind })
            .observe(seconds);
    }
}
