//! What the leader learns at run time and never persists (a new leader rebuilds it from
//! sessions and the nodes' next reports): which nodes are alive, what streaming nodes hold,
//! what query nodes have loaded and which distributions their delegators applied, the published
//! distributions, and the data-node tasks.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::api::{ChannelId, ChannelRoute, ChannelStatus, LoadedSegment, NodeId, TargetSegment};
use crate::session::RoleKind;

use super::tasks::Tasks;

/// A node the leader knows of (from its session, or from a report before its session shows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeState {
    pub role: RoleKind,
    pub addr: String,
    /// Its session is registered.
    pub live: bool,
    /// When its session disappeared.
    pub lost_at: Option<Instant>,
    /// It asked to hand its work off (SIGTERM).
    pub draining: bool,
    /// It has reported since this leader took over.
    pub reported: bool,
}

/// (collection, shard, replica).
pub type DistKey = (i64, u32, i64);

/// A published distribution of one shard in one replica.
#[derive(Debug, Clone, PartialEq)]
pub struct Dist {
    pub leader: NodeId,
    pub leader_addr: String,
    pub version: u64,
    pub channel: ChannelRoute,
    /// Served segment → the node serving it.
    pub served: BTreeMap<i64, NodeId>,
    /// Served segment → the version since which it has been served without interruption.
    pub since: BTreeMap<i64, u64>,
    pub targets: Vec<TargetSegment>,
}

/// The run-time state of a leader.
#[derive(Debug)]
pub struct Runtime {
    pub nodes: BTreeMap<NodeId, NodeState>,
    /// Streaming nodes' last channel reports.
    pub channels: BTreeMap<NodeId, Vec<ChannelStatus>>,
    /// Query nodes' loaded segments, by (collection, segment).
    pub loaded: BTreeMap<NodeId, BTreeMap<(i64, i64), LoadedSegment>>,
    /// Segment loads each query node refused (its memory budget), from its last report.
    pub refused: BTreeMap<NodeId, Vec<crate::api::RefusedLoad>>,
    /// The distribution version each delegator last applied: (node, version).
    pub acks: BTreeMap<DistKey, (NodeId, u64)>,
    pub dists: BTreeMap<DistKey, Dist>,
    pub tasks: Tasks,
    pub took_over: Instant,
    /// Distributions are published (every live query node reported, or the settle timeout
    /// passed).
    pub settled: bool,
    /// Dropped collections being collected.
    pub gc_started: BTreeSet<i64>,
    /// When this leader first saw each dropped collection.
    pub dropped_seen: BTreeMap<i64, Instant>,
}

impl Runtime {
    pub fn new(took_over: Instant, first_task_id: u64) -> Self {
        Runtime {
            nodes: BTreeMap::new(),
            channels: BTreeMap::new(),
            loaded: BTreeMap::new(),
            refused: BTreeMap::new(),
            acks: BTreeMap::new(),
            dists: BTreeMap::new(),
            tasks: Tasks::new(first_task_id),
            took_over,
            settled: false,
            gc_started: BTreeSet::new(),
            dropped_seen: BTreeMap::new(),
        }
    }

    /// A session appeared.
    pub fn session_added(&mut self, role: RoleKind, id: NodeId, addr: String) -> bool {
        let n = self.nodes.entry(id).or_insert_with(|| NodeState {
            role,
            addr: addr.clone(),
            live: false,
            lost_at: None,
            draining: false,
            reported: false,
        });
        let changed = !n.live || n.addr != addr;
        n.live = true;
        n.lost_at = None;
        n.addr = addr;
        n.role = role;
        changed
    }

    /// A session disappeared at `now`.
    pub fn session_removed(&mut self, id: NodeId, now: Instant) -> bool {
        match self.nodes.get_mut(&id) {
            Some(n) if n.live => {
                n.live = false;
                n.lost_at = Some(now);
                true
            }
            _ => false,
        }
    }

    /// A node's report (sync call): remembers its address and draining flag.
    pub fn reported(&mut self, role: RoleKind, id: NodeId, addr: &str, draining: bool) -> bool {
        let n = self.nodes.entry(id).or_insert_with(|| NodeState {
            role,
            addr: addr.to_string(),
            live: false,
            lost_at: None,
            draining: false,
            reported: false,
        });
        let changed = n.draining != draining || !n.reported;
        n.draining = draining;
        n.reported = true;
        if !addr.is_empty() {
            n.addr = addr.to_string();
        }
        changed
    }

    pub fn view(&self, now: Instant, grace: Duration) -> NodeView {
        NodeView {
            nodes: self.nodes.clone(),
            now,
            grace,
            took_over: self.took_over,
        }
    }

    /// The node serving-ready copy of `segment` on `node`, if it reported one.
    pub fn has_loaded(&self, node: NodeId, cid: i64, sid: i64) -> bool {
        self.loaded
            .get(&node)
            .is_some_and(|m| m.contains_key(&(cid, sid)))
    }

    /// The largest deleted-row count any query node reported for a segment.
    pub fn deleted_rows(&self, cid: i64, sid: i64) -> usize {
        self.loaded
            .values()
            .filter_map(|m| m.get(&(cid, sid)))
            .map(|l| l.deleted_rows)
            .max()
            .unwrap_or(0)
    }

    /// Sealed segments a streaming node retains for `channel` (the current owner's report).
    pub fn retained(&self, owner: NodeId, channel: ChannelId) -> BTreeSet<i64> {
        self.channels
            .get(&owner)
            .into_iter()
            .flatten()
            .filter(|c| c.channel == channel)
            .flat_map(|c| c.retained.iter().copied())
            .collect()
    }

    /// Whether the delegator of `key` acknowledged a distribution that serves `segment`.
    pub fn serves_acked(&self, key: DistKey, segment: i64) -> bool {
        let Some(d) = self.dists.get(&key) else {
            return false;
        };
        let Some(since) = d.since.get(&segment) else {
            return false;
        };
        self.acks
            .get(&key)
            .is_some_and(|(node, v)| *node == d.leader && v >= since)
    }
}

/// A snapshot of the nodes for planning.
#[derive(Debug, Clone)]
pub struct NodeView {
    pub nodes: BTreeMap<NodeId, NodeState>,
    pub now: Instant,
    pub grace: Duration,
    pub took_over: Instant,
}

impl NodeView {
    /// Nodes of `role` that can take new work: session live, not draining.
    pub fn usable(&self, role: RoleKind) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.role == role && n.live && !n.draining)
            .map(|(id, _)| *id)
            .collect()
    }

    pub fn is_usable(&self, id: NodeId) -> bool {
        self.nodes.get(&id).is_some_and(|n| n.live && !n.draining)
    }

    /// The node's work must move: its session is gone for longer than the grace (a node the
    /// catalogue names but this leader never saw counts from the takeover).
    pub fn is_gone(&self, id: NodeId) -> bool {
        match self.nodes.get(&id) {
            Some(n) if n.live => false,
            Some(n) => n.lost_at.is_none_or(|t| t + self.grace <= self.now),
            None => self.took_over + self.grace <= self.now,
        }
    }

    pub fn is_draining(&self, id: NodeId) -> bool {
        self.nodes.get(&id).is_some_and(|n| n.draining)
    }

    pub fn addr(&self, id: NodeId) -> String {
        self.nodes
            .get(&id)
            .map(|n| n.addr.clone())
            .unwrap_or_default()
    }

    /// The earliest future instant at which a lost node becomes gone.
    pub fn next_expiry(&self) -> Option<Instant> {
        let pending = self
            .nodes
            .values()
            .filter(|n| !n.live)
            .filter_map(|n| n.lost_at)
            .map(|t| t + self.grace)
            .filter(|t| *t > self.now);
        let takeover = Some(self.took_over + self.grace).filter(|t| *t > self.now);
        pending.chain(takeover).min()
    }
}
