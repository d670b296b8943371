//! The sync loop with the coordinator: `CoordApi::query_sync` as a long poll. Each call reports
//! what the node holds (every loaded segment with its attached index ids and row counts, the
//! delegation versions applied, whether it drains) and waits for a target newer than the one
//! applied; a change here (a load finished, a segment released, an index attached, draining)
//! cuts the wait short so the coordinator learns it at once. Coordinator errors are retried
//! with back-off.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::load::{FIRST_BACKOFF, next_backoff};
use super::{DelegationKey, Inner, SegKey, ShardKey, Target};
use crate::api::{DelegationAck, LoadedSegment, QuerySyncReq, QuerySyncResp, RefusedLoad};

/// The shortest time between two syncs that bring nothing new.
const MIN_POLL: Duration = Duration::from_millis(100);

impl Inner {
    /// What the node holds, as the coordinator wants it reported.
    async fn report(self: &Arc<Self>, known_version: u64) -> QuerySyncReq {
        let me = self.clone();
        // Deleted-row counts take the sets' read locks: off the runtime.
        let loaded = tokio::task::spawn_blocking(move || {
            let holds: Vec<_> = me.holds.read().values().cloned().collect();
            let mut loaded = Vec::new();
            for h in holds {
                let deleted = h.deleted_rows();
                for (sid, s) in h.serving() {
                    loaded.push(LoadedSegment {
                        collection_id: h.collection_id,
                        shard: h.shard,
                        segment_id: sid,
                        indexes: s.indexes.values().copied().collect(),
                        rows: s.rows,
                        deleted_rows: deleted.get(&sid).copied().unwrap_or(0),
                    });
                }
            }
            loaded.sort_by_key(|l| (l.collection_id, l.shard, l.segment_id));
            loaded
        })
        .await
        .unwrap_or_default();
        let target = self.current_target();
        let mut delegations: Vec<DelegationAck> = target
            .delegations
            .values()
            .map(|d| DelegationAck {
                collection_id: d.collection_id,
                shard: d.shard,
                replica_id: d.replica_id,
                version: d.version,
            })
            .collect();
        delegations.sort_by_key(|d| (d.collection_id, d.shard, d.replica_id));
        QuerySyncReq {
            node: self.node_id,
            addr: self.addr.clone(),
            known_version,
            wait_ms: self.config.sync_wait_ms,
            loaded,
            delegations,
            draining: self.draining.load(Ordering::SeqCst),
            refused: self
                .refusals()
                .into_iter()
                .map(|(collection_id, segment_id, reason)| RefusedLoad {
                    collection_id,
                    segment_id,
                    reason,
                })
                .collect(),
        }
    }

    pub(super) async fn sync_loop(self: Arc<Self>) {
        let mut stop = self.stop.subscribe();
        let mut changes = self.changed.subscribe();
        let mut backoff = FIRST_BACKOFF;
        let coord = self.nodes.coord();
        tracing::info!(node_id = self.node_id, addr = %self.addr, "query node sync loop started");
        loop {
            if *stop.borrow() {
                break;
            }
            changes.borrow_and_update();
            let known = self.current_target().version;
            let req = self.report(known).await;
            let started = Instant::now();
            tokio::select! {
                r = coord.query_sync(req) => match r {
                    Ok(resp) => {
                        backoff = FIRST_BACKOFF;
                        let unchanged = resp.version == known;
                        self.apply(resp);
                        // A coordinator that answers at once with nothing new must not make
                        // this a busy loop.
                        changes.borrow_and_update(); // (the target's own change)
                        let pause = MIN_POLL.saturating_sub(started.elapsed());
                        if unchanged && !pause.is_zero() {
                            tokio::select! {
                                _ = tokio::time::sleep(pause) => {}
                                _ = changes.changed() => {}
                                _ = stop.changed() => {}
                            }
                        }
                    }
                    Err(e) => {
                        self.metrics.sync_errors.inc();
                        tracing::warn!(
                            node_id = self.node_id,
                            error = %e,
                            retry_in_ms = backoff.as_millis() as u64,
                            "query_sync with the coordinator failed"
                        );
                        tokio::select! {
                            _ = tokio::time::sleep(backoff) => {}
                            _ = stop.changed() => {}
                        }
                        backoff = next_backoff(backoff, self.config.retry_max_ms);
                    }
                },
                // Something to report: cut the long poll short.
                _ = changes.changed() => {}
                _ = stop.changed() => {}
            }
        }
        tracing::info!(node_id = self.node_id, "query node sync loop stopped");
    }

    /// Converge on a new target: load what is new, release what is gone (after the reads in
    /// flight on it), bring indexes up to date, take the delegations.
    fn apply(self: &Arc<Self>, resp: QuerySyncResp) {
        let old = self.current_target();
        let mut target = Target {
            received: true,
            version: resp.version,
            ..Target::default()
        };
        for c in resp.collections {
            target.collections.insert(c.id, Arc::new(c));
        }
        for s in resp.segments {
            let key: SegKey = (s.record.collection_id, s.record.shard, s.record.id());
            target.segments.insert(key, Arc::new(s));
        }
        for d in resp.delegations {
            let key: DelegationKey = (d.collection_id, d.shard, d.replica_id);
            target.delegations.insert(key, Arc::new(d));
        }
        log_changes(self.node_id, &old, &target);
        let target = Arc::new(target);
        *self.target.write() = target.clone();

        // The shard's delta object listing, for catch-ups.
        let mut deltas_by_shard: HashMap<ShardKey, &Vec<_>> = HashMap::new();
        for ((cid, shard, _), s) in &target.segments {
            deltas_by_shard.entry((*cid, *shard)).or_insert(&s.deltas);
        }
        let holds: Vec<_> = self.holds.read().values().cloned().collect();
        for h in &holds {
            if let Some(d) = deltas_by_shard.get(&(h.collection_id, h.shard)) {
                h.set_deltas((*d).clone());
            }
        }

        // Loads no longer wanted stop; new segments load.
        self.loads.lock().retain(|key, h| {
            let keep = target.segments.contains_key(key);
            if !keep {
                h.abort();
                tracing::info!(
                    collection_id = key.0,
                    shard = key.1,
                    segment_id = key.2,
                    "segment load cancelled: no longer assigned"
                );
            }
            keep
        });
        let mut wanted: Vec<SegKey> = target.segments.keys().copied().collect();
        wanted.sort_unstable();
        for key in wanted {
            self.spawn_load(key);
        }

        // Held segments no longer wanted are released once their reads finished.
        for h in &holds {
            for (sid, _) in h.serving() {
                let key = (h.collection_id, h.shard, sid);
                if target.segments.contains_key(&key) || !h.start_release(sid) {
                    continue;
                }
                let me = self.clone();
                let h = h.clone();
                tokio::spawn(async move {
                    let seg = h.release(sid).await;
                    tracing::info!(
                        collection_id = key.0,
                        shard = key.1,
                        segment_id = sid,
                        rows = seg.as_ref().map(|s| s.num_rows()),
                        "segment released"
                    );
                    // Assigned again while it was being released: load it again.
                    if me.current_target().segments.contains_key(&key) {
                        me.spawn_load(key);
                    }
                    me.drop_idle_holds();
                    me.update_gauges();
                    me.bump();
                });
            }
        }
        self.reconcile_indexes(None);
        self.drop_idle_holds();
        self.update_gauges();
        self.bump();
    }

    /// Forget shards with nothing held or assigned (their watermark goes with them).
    fn drop_idle_holds(&self) {
        let target = self.current_target();
        let assigned: HashSet<ShardKey> = target.segments.keys().map(|k| (k.0, k.1)).collect();
        self.holds
            .write()
            .retain(|key, h| assigned.contains(key) || !h.is_empty());
    }

    /// Ready when registered with the coordinator, not draining and every assigned segment
    /// loaded; else why not.
    pub(super) fn status(&self) -> Result<(), String> {
        if self.draining.load(Ordering::SeqCst) {
            return Err("draining: handing segments and delegations off".into());
        }
        let target = self.current_target();
        if !target.received {
            return Err("not registered with the coordinator yet".into());
        }
        let serving: HashSet<SegKey> = self
            .holds
            .read()
            .values()
            .flat_map(|h| {
                h.serving()
                    .into_iter()
                    .map(|(sid, _)| (h.collection_id, h.shard, sid))
            })
            .collect();
        let missing = target
            .segments
            .keys()
            .filter(|k| !serving.contains(k))
            .count();
        if missing > 0 {
            return Err(format!(
                "loading segments: {missing} of {} assigned segments not loaded yet",
                target.segments.len()
            ));
        }
        Ok(())
    }
}

fn log_changes(node: u64, old: &Target, new: &Target) {
    let gained = new
        .segments
        .keys()
        .filter(|k| !old.segments.contains_key(k))
        .count();
    let lost = old
        .segments
        .keys()
        .filter(|k| !new.segments.contains_key(k))
        .count();
    if gained > 0 || lost > 0 || old.version != new.version {
        tracing::info!(
            node_id = node,
            version = new.version,
            segments = new.segments.len(),
            assigned = gained,
            unassigned = lost,
            delegations = new.delegations.len(),
            "query node target"
        );
    }
    for (k, d) in &new.delegations {
        match old.delegations.get(k) {
            None => tracing::info!(
                node_id = node,
                collection_id = k.0,
                shard = k.1,
                replica_id = k.2,
                version = d.version,
                channel_owner = d.channel.node,
                term = d.channel.term,
                served = d.served.len(),
                "delegation taken"
            ),
            Some(o) if o.version != d.version => tracing::debug!(
                collection_id = k.0,
                shard = k.1,
                replica_id = k.2,
                version = d.version,
                served = d.served.len(),
                "delegation updated"
            ),
            Some(_) => {}
        }
    }
    for k in old
        .delegations
        .keys()
        .filter(|k| !new.delegations.contains_key(k))
    {
        tracing::info!(
            node_id = node,
            collection_id = k.0,
            shard = k.1,
            replica_id = k.2,
            "delegation given up"
        );
    }
}
