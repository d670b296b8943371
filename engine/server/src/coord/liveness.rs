//! Fast detection of a crashed streaming or query node, ahead of its session's expiry.
//!
//! Both roles keep one long poll (`streaming_sync` / `query_sync`) open at the leader at all
//! times. When such a call ends without an answer — its connection went away — the leader
//! probes the node's address at once: a refused connection means no process listens there any
//! more (a crashed process on a live host), and the node is declared lost now instead of after
//! its session TTL plus `node_loss_grace_ms`. Its channels move and its segments are placed
//! elsewhere at once. Anything less certain (a timeout, a name that does not resolve, a node
//! still accepting connections) changes nothing: the session's expiry decides, as before.
//!
//! Declaring a node lost early is safe even if the probe were wrong: a channel's new owner
//! fences the log in storage before it recovers (the old owner's appends and checkpoint
//! commits then fail), and a query node's segments are served by others before its
//! distribution is dropped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::leader::Leader;
use crate::api::NodeId;

/// How long a probe's connection attempt may take.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// Armed while a node's long poll is in progress; dropped armed (the call was abandoned),
/// it asks the leader to probe the node.
pub(super) struct SyncWatch {
    tx: mpsc::UnboundedSender<NodeId>,
    node: NodeId,
    armed: bool,
}

impl SyncWatch {
    pub(super) fn new(tx: mpsc::UnboundedSender<NodeId>, node: NodeId) -> Self {
        SyncWatch {
            tx,
            node,
            armed: true,
        }
    }

    /// The call is answering normally.
    pub(super) fn done(mut self) {
        self.armed = false;
    }
}

impl Drop for SyncWatch {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.tx.send(self.node);
        }
    }
}

/// What a probe of a node's address found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Probe {
    /// Something accepts connections there.
    Listening,
    /// The host refused: nothing listens on the port.
    Refused,
    /// No answer in time, or another error: unknown.
    Unknown,
}

pub(super) async fn probe(addr: &str) -> Probe {
    match tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Probe::Listening,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => Probe::Refused,
        _ => Probe::Unknown,
    }
}

impl Leader {
    /// Probes the nodes whose long polls were abandoned, until the term ends.
    pub(super) async fn probe_loop(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<NodeId>) {
        loop {
            let node = tokio::select! {
                _ = self.stopped() => return,
                n = rx.recv() => match n { Some(n) => n, None => return },
            };
            let leader = self.clone();
            tokio::spawn(async move { leader.probe_node(node).await });
        }
    }

    async fn probe_node(&self, node: NodeId) {
        let addr = {
            let rt = self.rt.lock();
            match rt.nodes.get(&node) {
                Some(n) if n.live => n.addr.clone(),
                _ => return,
            }
        };
        let found = probe(&addr).await;
        tracing::debug!(node, %addr, ?found, "probed a node whose long poll was abandoned");
        if found == Probe::Refused {
            let now = Instant::now();
            // Lost as of one grace period ago: its work moves now.
            let at = now.checked_sub(self.grace()).unwrap_or(now);
            tracing::info!(node, %addr, "node declared lost: its long poll broke off and its address refuses connections");
            self.node_lost(node, at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_closed_port_is_refused_and_an_open_one_listens() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = l.local_addr().unwrap().to_string();
        assert_eq!(probe(&open).await, Probe::Listening);
        drop(l);
        assert_eq!(probe(&open).await, Probe::Refused);
        assert_eq!(probe("not a host:1").await, Probe::Unknown);
    }

    #[test]
    fn an_abandoned_watch_reports_its_node_and_a_finished_one_does_not() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        SyncWatch::new(tx.clone(), 7).done();
        drop(SyncWatch::new(tx, 9));
        assert_eq!(rx.try_recv().ok(), Some(9));
        assert!(rx.try_recv().is_err());
    }
}
