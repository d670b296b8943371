//! The proxy's own metrics (`ferrovus_proxy_*`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use crate::metrics::Metrics;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabels {
    pub op: String,
}

/// Counters of the cluster conditions a proxy rides out.
#[derive(Debug, Clone, Default)]
pub struct ProxyMetrics {
    /// Attempts repeated after a retriable error, by operation (write, search, query, ...).
    pub retries: Family<OpLabels, Counter>,
    /// Routes dropped because a node said they were stale.
    pub route_refreshes: Counter,
    /// Times the whole cache was dropped (catalogue changes, DDL, stale answers).
    pub cache_drops: Counter,
    /// The last catalogue version seen.
    pub catalog_version: Gauge,
}

impl ProxyMetrics {
    pub fn register(&self, m: &Metrics) {
        m.register(
            "proxy_retries",
            "Cluster calls retried after a retriable error, by operation",
            self.retries.clone(),
        );
        m.register(
            "proxy_route_refreshes",
            "Collection routes dropped because a node answered they were stale",
            self.route_refreshes.clone(),
        );
        m.register(
            "proxy_cache_drops",
            "Times the proxy dropped its cached catalogue",
            self.cache_drops.clone(),
        );
        m.register(
            "proxy_catalog_version",
            "The last catalogue version the proxy saw",
            self.catalog_version.clone(),
        );
    }

    pub fn retried(&self, op: &str) {
        self.retries
            .get_or_create(&OpLabels { op: op.to_string() })
            .inc();
    }

    #[cfg(test)]
    pub fn retries_of(&self, op: &str) -> u64 {
        self.retries
            .get_or_create(&OpLabels { op: op.to_string() })
            .get()
    }
}
