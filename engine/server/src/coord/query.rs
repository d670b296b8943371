//! `query_sync`: a query node reports what it has loaded and which distribution versions its
//! delegations applied, and learns every segment it should hold and every delegation it leads.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::leader::Leader;
use crate::api::{
    CollectionRecord, Delegation, DistEntry, QuerySyncReq, QuerySyncResp, SegmentTarget,
};
use crate::rpc::ClusterError;
use crate::session::RoleKind;

impl Leader {
    /// A query node's long poll; abandoned midway (the node went away), the node is probed
    /// ([`super::liveness`]).
    pub async fn query_sync(&self, req: QuerySyncReq) -> Result<QuerySyncResp, ClusterError> {
        let watch = self.watch_sync(req.node);
        let out = self.query_sync_inner(req).await;
        watch.done();
        out
    }

    async fn query_sync_inner(&self, req: QuerySyncReq) -> Result<QuerySyncResp, ClusterError> {
        self.check()?;
        let (changed, acked) = {
            let mut rt = self.rt.lock();
            let mut changed = rt.reported(RoleKind::Query, req.node, &req.addr, req.draining);
            let loaded: BTreeMap<(i64, i64), _> = req
                .loaded
                .iter()
                .map(|l| ((l.collection_id, l.segment_id), l.clone()))
                .collect();
            if rt.loaded.get(&req.node) != Some(&loaded) {
                rt.loaded.insert(req.node, loaded);
                changed = true;
            }
            if req.refused.is_empty() {
                rt.refused.remove(&req.node);
            } else {
                rt.refused.insert(req.node, req.refused.clone());
            }
            let mut acked = false;
            for a in &req.delegations {
                let key = (a.collection_id, a.shard, a.replica_id);
                let v = (req.node, a.version);
                if rt.acks.get(&key) != Some(&v) {
                    rt.acks.insert(key, v);
                    acked = true;
                }
            }
            (changed, acked)
        };
        if changed || acked {
            self.kick();
        }
        if acked {
            // Retained segments may be releasable now.
            self.touch();
        }
        // After a takeover, answer only once distributions are published: an answer built
        // from incomplete reports would make delegators drop segments.
        let settle = Duration::from_millis(self.config.settle_timeout_ms);
        if !self.versions().settled {
            self.wait_for(settle + Duration::from_secs(1), |v| v.settled)
                .await?;
        }
        if req.known_version >= self.versions().targets {
            let known = req.known_version;
            self.wait_for(self.wait_time(req.wait_ms), |v| v.targets > known)
                .await?;
        }
        Ok(self.query_targets(req.node))
    }

    /// Everything node `node` should hold and lead, at the current version.
    fn query_targets(&self, node: u64) -> QuerySyncResp {
        let version = self.versions().targets;
        let cat = self.snapshot();
        let rt = self.rt.lock();
        let addr = |n: u64| rt.nodes.get(&n).map(|s| s.addr.clone()).unwrap_or_default();
        let mut collections: BTreeMap<i64, CollectionRecord> = BTreeMap::new();
        let mut segments = Vec::new();
        let mut delegations = Vec::new();
        for c in cat.collections.values().filter(|c| c.is_loaded()) {
            let cid = c.id();
            for r in c.replicas.values() {
                let mut mine: BTreeSet<i64> = r
                    .placement
                    .iter()
                    .filter(|(_, n)| **n == node)
                    .map(|(s, _)| *s)
                    .collect();
                // Segments it still serves while their new node loads them.
                for shard in 0..c.record.num_shards {
                    if let Some(d) = rt.dists.get(&(cid, shard, r.replica_id)) {
                        mine.extend(
                            d.served
                                .iter()
                                .filter(|(_, n)| **n == node)
                                .map(|(s, _)| *s),
                        );
                    }
                }
                for sid in mine {
                    let Some(seg) = c.segments.get(&sid) else {
                        continue;
                    };
                    let deltas = c
                        .channel(seg.shard)
                        .and_then(|ch| ch.checkpoint.as_ref())
                        .map(|ck| ck.deltas.clone())
                        .unwrap_or_default();
                    segments.push(SegmentTarget {
                        replica_id: r.replica_id,
                        record: seg.clone(),
                        deltas,
                    });
                    collections.entry(cid).or_insert_with(|| c.record.clone());
                }
                for (shard, leader) in &r.leaders {
                    if *leader != node {
                        continue;
                    }
                    let Some(d) = rt.dists.get(&(cid, *shard, r.replica_id)) else {
                        continue;
                    };
                    delegations.push(Delegation {
                        collection_id: cid,
                        shard: *shard,
                        replica_id: r.replica_id,
                        version: d.version,
                        channel: d.channel.clone(),
                        served: d
                            .served
                            .iter()
                            .map(|(s, n)| DistEntry {
                                segment_id: *s,
                                node: *n,
                                addr: addr(*n),
                            })
                            .collect(),
                        targets: d.targets.clone(),
                    });
                    collections.entry(cid).or_insert_with(|| c.record.clone());
                }
            }
        }
        QuerySyncResp {
            version,
            collections: collections.into_values().collect(),
            segments,
            delegations,
        }
    }
}
