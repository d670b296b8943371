//! Channel assignment (pure planning; the reconciler persists it): every channel of every
//! collection belongs to a live streaming node, the least loaded (by channels) when it is
//! (re)assigned. A channel moves when its owner's session is gone past the grace, or its owner
//! drains; when the spread between the most and least loaded usable nodes reaches 2 (a node
//! joined), channels move from the former to the latter. Every (re)assignment increases the
//! channel's term.

use std::collections::BTreeMap;

use super::catalog::{Catalog, ChannelRecord};
use super::runtime::NodeView;
use crate::api::{ChannelId, NodeId};
use crate::session::RoleKind;

/// The channel records that change.
pub fn plan_channels(cat: &Catalog, view: &NodeView) -> Vec<ChannelRecord> {
    let usable = view.usable(RoleKind::Streaming);
    if usable.is_empty() {
        return Vec::new();
    }
    let mut load: BTreeMap<NodeId, usize> = usable.iter().map(|n| (*n, 0)).collect();
    let mut current: BTreeMap<ChannelId, ChannelRecord> = cat
        .collections
        .values()
        .flat_map(|c| c.channels.iter())
        .map(|ch| (ch.channel, ch.clone()))
        .collect();
    for ch in current.values() {
        if let Some(n) = ch.node
            && let Some(l) = load.get_mut(&n)
        {
            *l += 1;
        }
    }
    let mut changed: BTreeMap<ChannelId, ChannelRecord> = BTreeMap::new();
    let mut assign = |ch: &mut ChannelRecord, to: NodeId, load: &mut BTreeMap<NodeId, usize>| {
        if let Some(old) = ch.node
            && let Some(l) = load.get_mut(&old)
        {
            *l -= 1;
        }
        tracing::info!(channel = %ch.channel, from = ?ch.node, to, term = ch.term + 1, "channel assigned");
        ch.node = Some(to);
        ch.addr = view.addr(to);
        ch.term += 1;
        *load.entry(to).or_insert(0) += 1;
        changed.insert(ch.channel, ch.clone());
    };
    for ch in current.values_mut() {
        let keep = ch
            .node
            .is_some_and(|n| !view.is_gone(n) && !view.is_draining(n));
        if keep {
            continue;
        }
        let Some(to) = usable
            .iter()
            .copied()
            .min_by_key(|n| (load.get(n).copied().unwrap_or(0), *n))
        else {
            continue;
        };
        assign(ch, to, &mut load);
    }
    // Rebalance: move from the most to the least loaded while the spread is 2 or more.
    while let (Some((&hi, &hi_n)), Some((&lo, &lo_n))) = (
        load.iter()
            .max_by_key(|(n, l)| (**l, std::cmp::Reverse(**n))),
        load.iter().min_by_key(|(n, l)| (**l, **n)),
    ) {
        if hi_n < lo_n + 2 {
            break;
        }
        let Some(ch) = current.values_mut().rev().find(|ch| ch.node == Some(hi)) else {
            break;
        };
        assign(ch, lo, &mut load);
    }
    changed.into_values().collect()
}
