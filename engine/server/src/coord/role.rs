//! `ferrovus run coordinator`: the [`Coordinator`] as a [`Role`] of the process skeleton.

use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::Mutex;

use super::{Coordinator, CoordinatorOptions};
use crate::api::{CoordApi, serve_coord};
use crate::node::{NodeError, Role, RoleContext, RoleKind, StopReason};

/// The coordinator role: serves `coord.*`, campaigns in the background (ready as `standby`
/// until elected), resigns on SIGTERM so a standby takes over at once.
#[derive(Default)]
pub struct CoordinatorRole {
    coord: Mutex<Option<Arc<Coordinator>>>,
}

impl CoordinatorRole {
    pub fn new() -> Self {
        Self::default()
    }

    /// The running coordinator (after `start`).
    pub fn coordinator(&self) -> Option<Arc<Coordinator>> {
        self.coord.lock().clone()
    }
}

#[async_trait]
impl Role for CoordinatorRole {
    fn kind(&self) -> RoleKind {
        RoleKind::Coordinator
    }

    async fn start(&self, ctx: &mut RoleContext) -> Result<(), NodeError> {
        let coord = Coordinator::start(CoordinatorOptions {
            meta: ctx.meta.clone(),
            objects: ctx.objects.clone(),
            coordination: ctx.coordination.clone(),
            addr: ctx.session.grpc_address.clone(),
            config: ctx.config.coordinator.clone(),
            core: ctx.config.core.clone(),
            metrics: Some(ctx.metrics.clone()),
            readiness: Some(ctx.readiness.clone()),
        });
        serve_coord(&mut ctx.rpc, coord.clone() as Arc<dyn CoordApi>);
        *self.coord.lock() = Some(coord);
        Ok(())
    }

    /// On SIGTERM the leader resigns (a standby takes over at once); when the session was
    /// lost, it only stops (etcd is likely unreachable; the lease expires).
    async fn drain(&self, reason: StopReason) {
        let coord = self.coord.lock().take();
        if let Some(c) = coord {
            c.shutdown(reason == StopReason::Shutdown).await;
        }
    }
}
