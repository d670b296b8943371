//! The sync loop with the coordinator: `CoordApi::streaming_sync` as a long poll. Each call
//! reports every channel held (term, ready, applied timestamp, live rows, retained sealed
//! segments) and whether the node drains, and waits for an assignment newer than the one
//! applied. A change of what the node serves (a channel recovered, lost or closed, draining)
//! cuts the wait short so the coordinator learns it at once: every answer is a whole target
//! (the channels this node should own, and the retained segments to release now), so an
//! answer dropped that way loses nothing. Coordinator errors are retried with back-off.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::backoff::Backoff;
use super::channel::Channel;
use super::{Inner, Target};
use crate::api::{ChannelStatus, StreamingSyncReq, StreamingSyncResp};

impl Inner {
    /// What the node holds, as the coordinator wants it reported. Lost channels are left out:
    /// they are not held.
    fn report(&self, known_version: u64) -> StreamingSyncReq {
        let mut channels: Vec<ChannelStatus> = self
            .channels
            .read()
            .values()
            .filter_map(|c| {
                if let Some(o) = c.open() {
                    let retained = o.shard.retained_committed();
                    Some(ChannelStatus {
                        channel: c.id,
                        term: c.term,
                        ready: true,
                        applied_ts: o.shard.applied_ts(),
                        live_rows: o.shard.live_rows(),
                        retained,
                    })
                } else {
                    c.is_recovering().then(|| ChannelStatus {
                        channel: c.id,
                        term: c.term,
                        ready: false,
                        applied_ts: 0,
                        live_rows: 0,
                        retained: Vec::new(),
                    })
                }
            })
            .collect();
        channels.sort_by_key(|c| c.channel);
        StreamingSyncReq {
            node: self.node_id,
            addr: self.addr.clone(),
            known_version,
            wait_ms: self.config.sync_wait_ms,
            channels,
            draining: self.draining.load(Ordering::SeqCst),
        }
    }

    pub(super) async fn sync_loop(self: Arc<Self>) {
        let mut stop = self.stop.subscribe();
        let mut changes = self.changed.subscribe();
        let mut backoff = Backoff::new(Duration::from_millis(self.config.retry_max_ms));
        let coord = self.nodes.coord();
        tracing::info!(node_id = self.node_id, addr = %self.addr, "streaming node sync loop started");
        loop {
            if *stop.borrow() {
                break;
            }
            changes.borrow_and_update();
            self.update_gauges();
            let known = self.target.read().version;
            let req = self.report(known);
            tokio::select! {
                r = coord.streaming_sync(req) => match r {
                    Ok(resp) => {
                        backoff.reset();
                        self.apply(resp);
                    }
                    Err(e) => {
                        self.metrics.sync_errors.inc();
                        let wait = backoff.next_delay();
                        tracing::warn!(
                            node_id = self.node_id,
                            error = %e,
                            retry_in_ms = wait.as_millis() as u64,
                            "streaming_sync with the coordinator failed"
                        );
                        tokio::select! {
                            _ = tokio::time::sleep(wait) => {}
                            _ = stop.changed() => {}
                        }
                    }
                },
                // Something to report: cut the long poll short.
                _ = changes.changed() => {}
                _ = stop.changed() => {}
            }
        }
        tracing::info!(node_id = self.node_id, "streaming node sync loop stopped");
    }

    /// Converge on an assignment: open the channels that are new (or assigned at a new term),
    /// close the ones no longer assigned, release the retained segments served elsewhere now.
    pub(super) fn apply(self: &Arc<Self>, resp: StreamingSyncResp) {
        let wanted: HashMap<_, _> = resp.channels.iter().map(|a| (a.channel, a.term)).collect();
        let mut changed = false;
        let mut to_open = Vec::new();
        let mut to_close = Vec::new();
        {
            let mut channels = self.channels.write();
            channels.retain(|id, c| {
                if wanted.get(id) == Some(&c.term) {
                    return true;
                }
                to_close.push(c.clone());
                false
            });
            for (&id, &term) in &wanted {
                if let std::collections::hash_map::Entry::Vacant(e) = channels.entry(id) {
                    to_open.push(e.insert(Channel::new(id, term)).clone());
                }
            }
        }
        {
            let mut t = self.target.write();
            changed |= !t.received || t.channels != wanted;
            *t = Target {
                received: true,
                version: resp.version,
                channels: wanted,
            };
        }
        for c in to_close {
            c.close();
            tracing::info!(
                channel = %c.id,
                term = c.term,
                "channel closed: no longer assigned to this node (its data stays)"
            );
            changed = true;
        }
        for c in to_open {
            self.spawn_open(c);
            changed = true;
        }
        for (id, segments) in resp.release {
            let Some(open) = self.channel(id).and_then(|c| c.open()) else {
                continue;
            };
            let held: Vec<i64> = open
                .shard
                .sealed_segments()
                .iter()
                .map(|m| m.segment_id)
                .filter(|s| segments.contains(s))
                .collect();
            if held.is_empty() {
                continue;
            }
            match open.shard.release_sealed(&held) {
                Ok(()) => {
                    tracing::info!(channel = %id, segments = ?held, "retained sealed segments released: query nodes serve them");
                    changed = true;
                }
                Err(e) => {
                    tracing::error!(channel = %id, error = %e, "releasing sealed segments failed")
                }
            }
        }
        if changed {
            self.bump();
        }
    }
}
