//! `ferrovus run streaming`: a [`StreamingNode`] behind the role-process skeleton
//! ([`crate::node`]).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;

use super::StreamingNode;
use crate::api::{Nodes, RemoteNodes, serve_streaming};
use crate::node::{NodeError, Readiness, Role, RoleContext, RoleKind, StopReason};

/// The streaming role: serves `streaming.*` on the internal RPC, syncs with the coordinator,
/// reports ready once registered and every assigned channel is recovered.
#[derive(Debug, Default)]
pub struct StreamingRole {
    node: OnceLock<StreamingNode>,
}

impl StreamingRole {
    pub fn new() -> Self {
        StreamingRole::default()
    }

    /// The node, once started.
    pub fn node(&self) -> Option<&StreamingNode> {
        self.node.get()
    }
}

/// Mirror a node's status on `/readyz` for as long as the node lives.
pub(crate) fn mirror_readiness(
    readiness: Readiness,
    mut changes: tokio::sync::watch::Receiver<u64>,
    status: impl Fn() -> Result<(), String> + Send + 'static,
) {
    tokio::spawn(async move {
        loop {
            match status() {
                Ok(()) => readiness.set_ready(),
                Err(reason) => readiness.set_not_ready(reason),
            }
            if changes.changed().await.is_err() {
                break;
            }
        }
    });
}

#[async_trait]
impl Role for StreamingRole {
    fn kind(&self) -> RoleKind {
        RoleKind::Streaming
    }

    async fn start(&self, ctx: &mut RoleContext) -> Result<(), NodeError> {
        // Coordinator calls ride out a leader takeover (a crashed leader is replaced once its
        // lease expires).
        let retry_for = Duration::from_millis(ctx.config.cluster.leader_ttl_ms.saturating_mul(2));
        let nodes: Arc<dyn Nodes> = Arc::new(RemoteNodes::new(
            ctx.clients.clone(),
            ctx.coordination.clone(),
            retry_for,
        ));
        let node = StreamingNode::new(
            nodes,
            ctx.objects.clone(),
            &ctx.config,
            ctx.node_id,
            ctx.session.grpc_address.clone(),
            Some(&ctx.metrics),
        );
        serve_streaming(&mut ctx.rpc, Arc::new(node.clone()));
        ctx.readiness
            .set_not_ready("registering with the coordinator");
        let watched = node.clone();
        mirror_readiness(ctx.readiness.clone(), node.watch_changes(), move || {
            watched.status()
        });
        node.start();
        self.node.set(node).map_err(|_| NodeError::Role {
            role: RoleKind::Streaming,
            message: "the streaming role was started twice".into(),
        })
    }

    async fn drain(&self, reason: StopReason) {
        if let Some(node) = self.node.get() {
            node.drain(reason).await;
        }
    }
}
