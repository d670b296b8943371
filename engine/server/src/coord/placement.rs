//! Replica membership, segment placement and delegator choice (pure planning over a catalogue
//! snapshot, the nodes and the published distributions; the reconciler persists the result).
//!
//! * Membership: nodes whose session is gone leave their replicas; a live query node that is
//!   in no replica of a loaded collection joins the replica of it with the fewest nodes.
//! * Placement: every placeable segment (see [`CollectionState::is_placeable`]) is placed on
//!   one node of each replica, the least loaded by rows; placements on nodes that left, or that
//!   drain, move. When nothing is moving in a replica (every placed segment is served by its
//!   node), one segment moves from the most to the least loaded node if that narrows the gap:
//!   the new node loads it, the distribution switches once its load is reported, then the old
//!   node no longer has it as a target and releases it.
//! * Delegators: one per (shard, replica), a usable node of the replica with the fewest
//!   delegations overall; rebalanced inside a replica when the spread reaches 2.

use std::collections::{BTreeMap, BTreeSet};

use super::catalog::{Catalog, CollectionState, ReplicaRecord};
use super::runtime::{NodeView, Runtime};
use crate::api::NodeId;
use crate::session::RoleKind;

/// Rows placed on each query node over all loaded collections.
pub fn node_rows(cat: &Catalog) -> BTreeMap<NodeId, usize> {
    let mut rows = BTreeMap::new();
    for c in cat.collections.values() {
        for r in c.replicas.values() {
            for (sid, n) in &r.placement {
                let seg_rows = c.segments.get(sid).map_or(0, |s| s.meta.num_rows);
                *rows.entry(*n).or_insert(0) += seg_rows;
            }
        }
    }
    rows
}

fn node_delegations(cat: &Catalog) -> BTreeMap<NodeId, usize> {
    let mut out = BTreeMap::new();
    for c in cat.collections.values() {
        for r in c.replicas.values() {
            for n in r.leaders.values() {
                *out.entry(*n).or_insert(0) += 1;
            }
        }
    }
    out
}

fn least<'a>(
    nodes: impl IntoIterator<Item = &'a NodeId>,
    load: &BTreeMap<NodeId, usize>,
) -> Option<NodeId> {
    nodes
        .into_iter()
        .min_by_key(|n| (load.get(n).copied().unwrap_or(0), **n))
        .copied()
}

/// What changed in one round.
#[derive(Debug, Default)]
pub struct ReplicaPlan {
    /// Replica records to write.
    pub changed: Vec<ReplicaRecord>,
    /// Segments moved from one live node to another (rebalance, draining).
    pub moves: usize,
}

/// Membership, placement and delegators of every loaded collection.
pub fn plan_replicas(cat: &Catalog, view: &NodeView, rt: &Runtime) -> ReplicaPlan {
    let mut rows = node_rows(cat);
    let mut delegs = node_delegations(cat);
    let usable = view.usable(RoleKind::Query);
    let mut plan = ReplicaPlan::default();
    for c in cat.collections.values().filter(|c| c.is_loaded()) {
        let mut reps: Vec<ReplicaRecord> = c.replicas.values().cloned().collect();
        if reps.is_empty() {
            continue;
        }
        for r in &mut reps {
            r.nodes.retain(|n| !view.is_gone(*n));
        }
        for n in &usable {
            if reps.iter().any(|r| r.nodes.contains(n)) {
                continue;
            }
            if let Some(r) = reps
                .iter_mut()
                .min_by_key(|r| (r.nodes.len(), r.replica_id))
            {
                tracing::info!(collection = %c.record.name, replica = r.replica_id, node = n, "query node joins replica");
                r.nodes.push(*n);
            }
        }
        for r in &mut reps {
            place(c, r, view, rt, &mut rows, &mut plan.moves);
            choose_delegators(c, r, view, &mut delegs);
        }
        for r in reps {
            if c.replicas.get(&r.replica_id) != Some(&r) {
                plan.changed.push(r);
            }
        }
    }
    plan
}

fn place(
    c: &CollectionState,
    r: &mut ReplicaRecord,
    view: &NodeView,
    rt: &Runtime,
    rows: &mut BTreeMap<NodeId, usize>,
    moves: &mut usize,
) {
    let cid = c.id();
    let seg_rows = |sid: &i64| c.segments.get(sid).map_or(0, |s| s.meta.num_rows);
    let candidates: Vec<NodeId> = r
        .nodes
        .iter()
        .copied()
        .filter(|n| view.is_usable(*n))
        .collect();
    // Drop placements that no longer hold: segment gone or not placeable, node left the
    // replica, or node draining (while another node can take it).
    let before: Vec<(i64, NodeId)> = r.placement.iter().map(|(s, n)| (*s, *n)).collect();
    for (sid, n) in before {
        let keep = c.segments.get(&sid).is_some_and(|s| c.is_placeable(s))
            && r.nodes.contains(&n)
            && (!view.is_draining(n) || candidates.is_empty());
        if !keep {
            r.placement.remove(&sid);
            if let Some(v) = rows.get_mut(&n) {
                *v = v.saturating_sub(seg_rows(&sid));
            }
            if view.is_draining(n) && c.segments.contains_key(&sid) {
                *moves += 1;
            }
        }
    }
    if candidates.is_empty() {
        return;
    }
    for s in c.segments.values() {
        if r.placement.contains_key(&s.id()) || !c.is_placeable(s) {
            continue;
        }
        if let Some(n) = least(&candidates, rows) {
            r.placement.insert(s.id(), n);
            *rows.entry(n).or_insert(0) += s.meta.num_rows;
        }
    }
    // Rebalance one segment when nothing is in flight in this replica.
    let in_flight = r.placement.iter().any(|(sid, n)| {
        let shard = c.segments.get(sid).map_or(0, |s| s.shard);
        rt.dists
            .get(&(cid, shard, r.replica_id))
            .is_none_or(|d| d.served.get(sid) != Some(n))
    });
    if in_flight || candidates.len() < 2 {
        return;
    }
    let mut local: BTreeMap<NodeId, usize> = candidates.iter().map(|n| (*n, 0)).collect();
    for (sid, n) in &r.placement {
        if let Some(v) = local.get_mut(n) {
            *v += seg_rows(sid);
        }
    }
    let (Some((&hi, &hi_rows)), Some((&lo, &lo_rows))) = (
        local
            .iter()
            .max_by_key(|(n, v)| (**v, std::cmp::Reverse(**n))),
        local.iter().min_by_key(|(n, v)| (**v, **n)),
    ) else {
        return;
    };
    let gap = hi_rows - lo_rows;
    // The segment whose move narrows the gap most (0 < rows < gap), never a replaced source.
    let pick = r
        .placement
        .iter()
        .filter(|(sid, n)| {
            **n == hi
                && c.segments
                    .get(sid)
                    .is_some_and(|s| c.is_live(s) && s.meta.num_rows > 0 && s.meta.num_rows < gap)
        })
        .min_by_key(|(sid, _)| (seg_rows(sid) as i64 * 2 - gap as i64).abs())
        .map(|(sid, _)| *sid);
    if let Some(sid) = pick {
        tracing::info!(collection = %c.record.name, replica = r.replica_id, segment = sid, from = hi, to = lo, "segment moves (rebalance)");
        r.placement.insert(sid, lo);
        let n = seg_rows(&sid);
        if let Some(v) = rows.get_mut(&hi) {
            *v = v.saturating_sub(n);
        }
        *rows.entry(lo).or_insert(0) += n;
        *moves += 1;
    }
}

fn choose_delegators(
    c: &CollectionState,
    r: &mut ReplicaRecord,
    view: &NodeView,
    delegs: &mut BTreeMap<NodeId, usize>,
) {
    let candidates: BTreeSet<NodeId> = r
        .nodes
        .iter()
        .copied()
        .filter(|n| view.is_usable(*n))
        .collect();
    let release = |delegs: &mut BTreeMap<NodeId, usize>, n: NodeId| {
        if let Some(v) = delegs.get_mut(&n) {
            *v = v.saturating_sub(1);
        }
    };
    r.leaders.retain(|shard, _| *shard < c.record.num_shards);
    for shard in 0..c.record.num_shards {
        let current = r.leaders.get(&shard).copied();
        // A leader that is merely in its grace period keeps its shard; one that left the
        // replica or drains (with a replacement available) hands it over.
        let keep = current.is_some_and(|n| {
            r.nodes.contains(&n) && (!view.is_draining(n) || candidates.is_empty())
        });
        if keep {
            continue;
        }
        if let Some(old) = current {
            release(delegs, old);
            r.leaders.remove(&shard);
        }
        if let Some(n) = least(&candidates, delegs) {
            tracing::info!(collection = %c.record.name, replica = r.replica_id, shard, node = n, previous = ?current, "delegator chosen");
            r.leaders.insert(shard, n);
            *delegs.entry(n).or_insert(0) += 1;
        }
    }
    // Spread inside the replica.
    loop {
        let mut local: BTreeMap<NodeId, Vec<u32>> =
            candidates.iter().map(|n| (*n, Vec::new())).collect();
        for (shard, n) in &r.leaders {
            if let Some(v) = local.get_mut(n) {
                v.push(*shard);
            }
        }
        let (Some((hi, hi_shards)), Some((lo, lo_shards))) = (
            local
                .iter()
                .max_by_key(|(n, v)| (v.len(), std::cmp::Reverse(**n))),
            local.iter().min_by_key(|(n, v)| (v.len(), **n)),
        ) else {
            return;
        };
        if hi_shards.len() < lo_shards.len() + 2 {
            return;
        }
        let (hi, lo) = (*hi, *lo);
        let Some(&shard) = hi_shards.last() else {
            return;
        };
        tracing::info!(collection = %c.record.name, replica = r.replica_id, shard, from = hi, to = lo, "delegator moves (rebalance)");
        r.leaders.insert(shard, lo);
        release(delegs, hi);
        *delegs.entry(lo).or_insert(0) += 1;
    }
}
