//! `ferrovus run data`: a [`DataNode`] behind the role-process skeleton ([`crate::node`]).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;

use super::DataNode;
use crate::api::{Nodes, RemoteNodes};
use crate::node::{NodeError, Role, RoleContext, RoleKind, StopReason};
use crate::streaming::mirror_readiness;

/// The data role: serves no API of its own (only `node.info`), takes tasks from the
/// coordinator, ready once the coordinator answered.
#[derive(Debug, Default)]
pub struct DataRole {
    node: OnceLock<DataNode>,
}

impl DataRole {
    pub fn new() -> Self {
        DataRole::default()
    }

    /// The node, once started.
    pub fn node(&self) -> Option<&DataNode> {
        self.node.get()
    }
}

#[async_trait]
impl Role for DataRole {
    fn kind(&self) -> RoleKind {
        RoleKind::Data
    }

    async fn start(&self, ctx: &mut RoleContext) -> Result<(), NodeError> {
        let retry_for = Duration::from_millis(ctx.config.cluster.leader_ttl_ms.saturating_mul(2));
        let nodes: Arc<dyn Nodes> = Arc::new(RemoteNodes::new(
            ctx.clients.clone(),
            ctx.coordination.clone(),
            retry_for,
        ));
        let node = DataNode::new(
            nodes,
            ctx.objects.clone(),
            &ctx.config,
            ctx.node_id,
            ctx.session.grpc_address.clone(),
            Some(&ctx.metrics),
        );
        ctx.readiness
            .set_not_ready("registering with the coordinator");
        let watched = node.clone();
        mirror_readiness(ctx.readiness.clone(), node.watch_changes(), move || {
            watched.status()
        });
        node.start();
        self.node.set(node).map_err(|_| NodeError::Role {
            role: RoleKind::Data,
            message: "the data role was started twice".into(),
        })
    }

    async fn drain(&self, reason: StopReason) {
        if let Some(node) = self.node.get() {
            node.drain(reason).await;
        }
    }
}
