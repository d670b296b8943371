//! Prometheus metrics and the operator's HTTP endpoints (`/healthz`, `/readyz`, `/metrics`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Reconcile metrics.
pub struct Metrics {
    /// Reconciliations started.
    pub reconciliations: Counter,
    /// Reconciliations that returned an error.
    pub failures: Counter,
    /// Duration of reconciliations, in seconds.
    pub duration: Histogram,
    /// Writes (applies, creates, deletes, status patches) sent to the API server.
    pub writes: Counter,
    /// 1 while this replica holds the leader lease.
    pub leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            reconciliations: Counter::default(),
            failures: Counter::default(),
            duration: Histogram::new([0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
            writes: Counter::default(),
            leader: Gauge::default(),
        }
    }
}

impl Metrics {
    /// Registers every metric (prefix `ferrovus_operator_`).
    pub fn register(self: &Arc<Self>, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("ferrovus_operator");
        r.register(
            "reconciliations",
            "Reconciliations of MilvusCluster resources",
            self.reconciliations.clone(),
        );
        r.register(
            "reconcile_errors",
            "Reconciliations that failed and were retried with backoff",
            self.failures.clone(),
        );
        r.register(
            "reconcile_duration_seconds",
            "Duration of one reconciliation",
            self.duration.clone(),
        );
        r.register(
            "api_writes",
            "Writes sent to the Kubernetes API",
            self.writes.clone(),
        );
        r.register(
            "leader",
            "1 while this replica is the leader",
            self.leader.clone(),
        );
    }

    /// Records one finished reconciliation.
    pub fn observe(&self, elapsed: Duration, failed: bool) {
        self.reconciliations.inc();
        if failed {
            self.failures.inc();
        }
        self.duration.observe(elapsed.as_secs_f64());
    }
}

/// Shared state of the HTTP endpoints.
pub struct Health {
    /// Metrics registry rendered at `/metrics`.
    pub registry: Registry,
    /// Set once the process has initialised (client built, CRD found).
    pub ready: AtomicBool,
}

/// Router serving `/healthz` (process alive), `/readyz` (initialised; a
/// standby replica is ready as standby) and `/metrics`.
pub fn router(health: Arc<Health>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(health)
}

async fn readyz(State(h): State<Arc<Health>>) -> impl IntoResponse {
    if h.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting")
    }
}

async fn metrics(State(h): State<Arc<Health>>) -> impl IntoResponse {
    let mut text = String::new();
    match encode(&mut text, &h.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain")],
            e.to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_render() {
        let m = Arc::new(Metrics::default());
        let mut registry = Registry::default();
        m.register(&mut registry);
        m.observe(Duration::from_millis(20), false);
        m.observe(Duration::from_millis(20), true);
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("ferrovus_operator_reconciliations_total 2"),
            "{text}"
        );
        assert!(
            text.contains("ferrovus_operator_reconcile_errors_total 1"),
            "{text}"
        );
        assert!(
            text.contains("ferrovus_operator_reconcile_duration_seconds_count 2"),
            "{text}"
        );
    }

    async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn endpoints_answer() {
        let m = Arc::new(Metrics::default());
        let mut registry = Registry::default();
        m.register(&mut registry);
        let health = Arc::new(Health {
            registry,
            ready: AtomicBool::new(false),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(axum::serve(listener, router(health.clone())).into_future());
        assert!(http_get(addr, "/healthz").await.starts_with("HTTP/1.1 200"));
        assert!(http_get(addr, "/readyz").await.starts_with("HTTP/1.1 503"));
        health.ready.store(true, Ordering::Relaxed);
        assert!(http_get(addr, "/readyz").await.starts_with("HTTP/1.1 200"));
        let metrics = http_get(addr, "/metrics").await;
        assert!(
            metrics.contains("ferrovus_operator_reconciliations_total"),
            "{metrics}"
        );
    }
}
