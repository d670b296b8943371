//! Distributions: for each (shard, replica) of a loaded collection, which node of the replica
//! serves which segment, as published to the shard's delegator.
//!
//! A segment is *served* only once a live node of the replica reported it loaded: its
//! placement node if that one has it, else the node that served it before (a move in
//! progress), else any node of the replica holding it. A compaction result replaces its
//! sources in one step: it is served (and its sources no longer) as soon as it can be, its
//! sources stay served until then — the served list never holds a result together with one of
//! its sources. `targets` lists every live segment of the shard. A distribution gets a new
//! version whenever any of this changes; `since` remembers from which version each segment has
//! been served without interruption, so an acknowledgement of version ≥ `since` proves the
//! delegator serves it.

use std::collections::BTreeMap;

use super::catalog::Catalog;
use super::runtime::{Dist, DistKey, NodeView, Runtime};
use crate::api::NodeId;

/// The distributions of every loaded collection; unchanged ones keep their version,
/// `next_version` numbers the others.
pub fn compute_dists(
    cat: &Catalog,
    rt: &Runtime,
    view: &NodeView,
    mut next_version: impl FnMut() -> u64,
) -> BTreeMap<DistKey, Dist> {
    let mut out = BTreeMap::new();
    for c in cat.collections.values().filter(|c| c.is_loaded()) {
        let cid = c.id();
        for r in c.replicas.values() {
            for shard in 0..c.record.num_shards {
                let Some(&leader) = r.leaders.get(&shard) else {
                    continue;
                };
                let Some(channel) = c.channel(shard).and_then(|ch| ch.route()) else {
                    continue;
                };
                let key = (cid, shard, r.replica_id);
                let prev = rt.dists.get(&key);
                let holds = |n: NodeId, sid: i64| {
                    r.nodes.contains(&n)
                        && view.nodes.get(&n).is_some_and(|s| s.live)
                        && rt.has_loaded(n, cid, sid)
                };
                let servable = |sid: i64| -> Option<NodeId> {
                    if let Some(&n) = r.placement.get(&sid)
                        && holds(n, sid)
                    {
                        return Some(n);
                    }
                    if let Some(&n) = prev.and_then(|p| p.served.get(&sid))
                        && holds(n, sid)
                    {
                        return Some(n);
                    }
                    r.nodes.iter().copied().find(|n| holds(*n, sid))
                };
                let mut served = BTreeMap::new();
                for s in c.live_segments(shard) {
                    if s.compacted_from.is_empty() || !c.sources_present(s) {
                        if let Some(n) = servable(s.id()) {
                            served.insert(s.id(), n);
                        }
                        continue;
                    }
                    match servable(s.id()).filter(|_| c.is_placeable(s)) {
                        Some(n) => {
                            served.insert(s.id(), n);
                        }
                        None => {
                            for src in &s.compacted_from {
                                if c.segments.contains_key(src)
                                    && let Some(n) = servable(*src)
                                {
                                    served.insert(*src, n);
                                }
                            }
                        }
                    }
                }
                let targets = c.targets(shard);
                let leader_addr = view.addr(leader);
                let same = prev.is_some_and(|p| {
                    p.leader == leader
                        && p.leader_addr == leader_addr
                        && p.channel == channel
                        && p.served == served
                        && p.targets == targets
                });
                if same {
                    if let Some(p) = prev {
                        out.insert(key, p.clone());
                    }
                    continue;
                }
                let version = next_version();
                let since = served
                    .keys()
                    .map(|sid| {
                        let kept = prev.and_then(|p| p.since.get(sid)).copied();
                        (*sid, kept.unwrap_or(version))
                    })
                    .collect();
                out.insert(
                    key,
                    Dist {
                        leader,
                        leader_addr,
                        version,
                        channel,
                        served,
                        since,
                        targets,
                    },
                );
            }
        }
    }
    out
}
