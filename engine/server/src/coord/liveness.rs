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

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::mpsc;

use super::leader::Leader;
use crate::api::NodeId;

/// How long a probe's connection attempt may take.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// A node without a long poll in progress for this long is probed.
const SILENT_AFTER: Duration = Duration::from_millis(1500);
/// Delays before each probe of one suspect (ms).
const PROBE_SCHEDULE_MS: [u64; 5] = [0, 150, 300, 600, 1000];

/// The long polls in progress per node, and since when a node has had none.
#[derive(Debug, Default)]
pub(super) struct Polls {
    state: Mutex<PollsState>,
}

#[derive(Debug, Default)]
struct PollsState {
    nodes: HashMap<NodeId, PollState>,
    /// Nodes with a probe running (one at a time per node).
    probing: HashSet<NodeId>,
}

#[derive(Debug)]
struct PollState {
    pending: u32,
    idle_since: Instant,
}

impl Polls {
    /// Nodes that have had no long poll in progress for longer than `idle` (a live node always
    /// has one, but for the moment between two polls), not already being probed.
    fn silent(&self, idle: Duration, now: Instant) -> Vec<NodeId> {
        let st = self.state.lock();
        st.nodes
            .iter()
            .filter(|(id, p)| {
                p.pending == 0
                    && now.duration_since(p.idle_since) > idle
                    && !st.probing.contains(id)
            })
            .map(|(id, _)| *id)
            .collect()
    }

    /// Marks `node` as being probed; false if it already is.
    fn start_probe(&self, node: NodeId) -> bool {
        self.state.lock().probing.insert(node)
    }

    fn end_probe(&self, node: NodeId, forget: bool) {
        let mut st = self.state.lock();
        st.probing.remove(&node);
        if forget {
            st.nodes.remove(&node);
        } else if let Some(p) = st.nodes.get_mut(&node) {
            // Not proven dead: suspect it again only after another idle period.
            p.idle_since = Instant::now();
        }
    }
}

/// Armed while a node's long poll is in progress; dropped armed (the call was abandoned),
/// it asks the leader to probe the node.
pub(super) struct SyncWatch {
    tx: mpsc::UnboundedSender<NodeId>,
    polls: Arc<Polls>,
    node: NodeId,
    armed: bool,
}

impl SyncWatch {
    pub(super) fn new(tx: mpsc::UnboundedSender<NodeId>, polls: Arc<Polls>, node: NodeId) -> Self {
        polls
            .state
            .lock()
            .nodes
            .entry(node)
            .or_insert_with(|| PollState {
                pending: 0,
                idle_since: Instant::now(),
            })
            .pending += 1;
        SyncWatch {
            tx,
            polls,
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
        if let Some(p) = self.polls.state.lock().nodes.get_mut(&self.node) {
            p.pending = p.pending.saturating_sub(1);
            if p.pending == 0 {
                p.idle_since = Instant::now();
            }
        }
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
    /// Probes the nodes whose long polls were abandoned, and the nodes that have gone silent
    /// (no long poll in progress for [`SILENT_AFTER`]), until the term ends.
    pub(super) async fn probe_loop(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<NodeId>) {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let nodes = tokio::select! {
                _ = self.stopped() => return,
                n = rx.recv() => match n { Some(n) => vec![n], None => return },
                _ = tick.tick() => self.polls.silent(SILENT_AFTER, Instant::now()),
            };
            for node in nodes {
                if !self.polls.start_probe(node) {
                    continue;
                }
                let leader = self.clone();
                tokio::spawn(async move {
                    let gone = leader.probe_node(node).await;
                    leader.polls.end_probe(node, gone);
                });
            }
        }
    }

    /// Probes `node`; true when it is gone (declared lost now, or not live any more).
    async fn probe_node(&self, node: NodeId) -> bool {
        // A process being killed may still complete handshakes on its listening socket for a
        // moment after its connections broke (the kernel answers for the backlog): probe a few
        // times over ~2 s before concluding anything.
        for delay_ms in PROBE_SCHEDULE_MS {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            let addr = {
                let rt = self.rt.lock();
                match rt.nodes.get(&node) {
                    Some(n) if n.live => n.addr.clone(),
                    _ => return true,
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
                return true;
            }
        }
        false
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
        let polls = Arc::new(Polls::default());
        SyncWatch::new(tx.clone(), polls.clone(), 7).done();
        drop(SyncWatch::new(tx, polls.clone(), 9));
        assert_eq!(rx.try_recv().ok(), Some(9));
        assert!(rx.try_recv().is_err());
        // Neither has a poll in progress: both are silent once the idle period has passed.
        let later = Instant::now() + Duration::from_secs(2);
        let mut silent = polls.silent(Duration::from_secs(1), later);
        silent.sort_unstable();
        assert_eq!(silent, vec![7, 9]);
        assert!(polls.start_probe(7) && !polls.start_probe(7));
        assert_eq!(polls.silent(Duration::from_secs(1), later), vec![9]);
    }
}
