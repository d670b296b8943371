//! `ferrovus run query`: a [`QueryNode`] behind the role-process skeleton ([`crate::node`]).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;

use super::QueryNode;
use crate::api::{Nodes, RemoteNodes, serve_query};
use crate::node::{NodeError, Role, RoleContext, RoleKind, StopReason};

/// The query role: serves `query.*` on the internal RPC, syncs with the coordinator, reports
/// ready once registered and every assigned segment is loaded.
#[derive(Debug, Default)]
pub struct QueryRole {
    node: OnceLock<QueryNode>,
}

impl QueryRole {
    pub fn new() -> Self {
        QueryRole::default()
    }

    /// The node, once started.
    pub fn node(&self) -> Option<&QueryNode> {
        self.node.get()
    }
}

#[async_trait]
impl Role for QueryRole {
    fn kind(&self) -> RoleKind {
        RoleKind::Query
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
        let node = QueryNode::new(
            nodes,
            ctx.objects.clone(),
            &ctx.config,
            ctx.node_id,
            ctx.session.grpc_address.clone(),
            Some(&ctx.metrics),
        );
        serve_query(&mut ctx.rpc, Arc::new(node.clone()));
        ctx.readiness
            .set_not_ready("registering with the coordinator");
        // Mirror the node's status on /readyz.
        let readiness = ctx.readiness.clone();
        let mut changes = node.watch_changes();
        let watched = node.clone();
        tokio::spawn(async move {
            loop {
                match watched.status() {
                    Ok(()) => readiness.set_ready(),
                    Err(reason) => readiness.set_not_ready(reason),
                }
                if changes.changed().await.is_err() {
                    break;
                }
            }
        });
        node.start();
        self.node.set(node).map_err(|_| NodeError::Role {
            role: RoleKind::Query,
            message: "the query role was started twice".into(),
        })
    }

    async fn drain(&self, reason: StopReason) {
        if let Some(node) = self.node.get() {
            node.drain(reason).await;
        }
    }
}
