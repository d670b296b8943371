//! Prometheus metrics (`ferrovus_*`), served on the HTTP port's `/metrics`.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcLabels {
    pub method: String,
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabels {
    pub method: String,
}

pub struct Metrics {
    registry: Mutex<Registry>,
    requests: Family<RpcLabels, Counter>,
    latency: Family<MethodLabels, Histogram>,
    rows_inserted: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ferrovus");
        let requests = Family::<RpcLabels, Counter>::default();
        let latency = Family::<MethodLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ])
        });
        let rows_inserted: Counter<u64, AtomicU64> = Counter::default();
        registry.register(
            "rpc_requests",
            "Milvus RPCs handled, by method and Milvus status code",
            requests.clone(),
        );
        registry.register(
            "rpc_duration_seconds",
            "Milvus RPC latency by method",
            latency.clone(),
        );
        registry.register(
            "rows_inserted",
            "Rows acknowledged by Insert and Upsert",
            rows_inserted.clone(),
        );
        Metrics {
            registry: Mutex::new(registry),
            requests,
            latency,
            rows_inserted,
        }
    }

    pub fn observe(&self, method: &str, code: i32, elapsed: Duration) {
        self.requests
            .get_or_create(&RpcLabels {
                method: method.to_string(),
                code: code.to_string(),
            })
            .inc();
        self.latency
            .get_or_create(&MethodLabels {
                method: method.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Register a role's own metric as `ferrovus_<name>` (a role keeps a clone to update it).
    pub fn register(
        &self,
        name: &str,
        help: &str,
        metric: impl prometheus_client::registry::Metric,
    ) {
        self.registry.lock().register(name, help, metric);
    }

    pub fn rows_inserted(&self, n: usize) {
        self.rows_inserted.inc_by(n as u64);
    }

    /// Prometheus text exposition (the roles update their metrics as they go).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry.lock());
        out
    }
}
