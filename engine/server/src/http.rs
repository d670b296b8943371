//! The HTTP side port: `/healthz` (the process serves), `/readyz` (the role is ready: for
//! standalone, every role serves and the gRPC listener is up), `/metrics`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use parking_lot::RwLock;

use crate::metrics::Metrics;

#[derive(Debug, Default)]
pub struct Health {
    pub ready: AtomicBool,
    pub stopping: AtomicBool,
    pub reason: RwLock<String>,
    /// While ready: what `/readyz` says instead of `ready` (e.g. `standby` for a coordinator
    /// that is ready as a standby); empty for plain `ready`.
    pub ready_note: RwLock<String>,
}

#[derive(Clone)]
struct AppState {
    health: Arc<Health>,
    metrics: Arc<Metrics>,
}

pub fn router(health: Arc<Health>, metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_handler))
        .with_state(AppState { health, metrics })
}

async fn healthz() -> (StatusCode, &'static str) {
    (StatusCode::OK, "ok\n")
}

async fn readyz(State(s): State<AppState>) -> (StatusCode, String) {
    if s.health.stopping.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "stopping\n".into());
    }
    if s.health.ready.load(Ordering::SeqCst) {
        let note = s.health.ready_note.read();
        if note.is_empty() {
            (StatusCode::OK, "ready\n".into())
        } else {
            (StatusCode::OK, format!("{note}\n"))
        }
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", s.health.reason.read()),
        )
    }
}

async fn metrics_handler(
    State(s): State<AppState>,
) -> ([(axum::http::header::HeaderName, &'static str); 1], String) {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.render(),
    )
}
