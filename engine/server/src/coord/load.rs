//! Loading and releasing collections, and load progress. Loading records the load spec and
//! `replica_number` replica groups of live query nodes (each node in at most one group of the
//! collection) in one transaction; the reconciler then places segments and delegators, and
//! query nodes learn it through `query_sync`.

use std::collections::BTreeMap;

use ferrovus_core::CoreError;

use super::catalog::{Edit, ReplicaRecord};
use super::ddl::not_found;
use super::fence::store_error;
use super::leader::Leader;
use super::placement::node_rows;
use crate::api::{LoadProgress, LoadReq, LoadSpec, LoadStateKind, NameReq};
use crate::rpc::ClusterError;
use crate::session::RoleKind;

impl Leader {
    pub async fn load_collection(&self, req: LoadReq) -> Result<(), ClusterError> {
        let LoadReq {
            name,
            replica_number: n,
        } = req;
        if n == 0 {
            return Err(ClusterError::invalid(
                "replica_number",
                "replica_number must be at least 1",
            ));
        }
        let g = self.lock().await?;
        let cat = self.snapshot();
        let c = cat.resolve(&name).ok_or_else(|| not_found(&name))?;
        let missing: Vec<String> = c
            .record
            .schema
            .vector_fields()
            .filter(|f| !c.record.indexes.iter().any(|s| s.field_id == f.field_id))
            .map(|f| f.name.clone())
            .collect();
        if !missing.is_empty() {
            return Err(CoreError::invalid(
                "index",
                format!(
                    "there is no vector index on field: [{}], please create index firstly",
                    missing.join(", ")
                ),
            )
            .into());
        }
        if let Some(spec) = &c.record.load {
            if spec.replica_number == n {
                return Ok(());
            }
            return Err(ClusterError::invalid(
                "replica_number",
                format!(
                    "can't change the replica number for loaded collection: loaded with {} \
                     replicas, requested {n}; release it first",
                    spec.replica_number
                ),
            ));
        }
        let view = self.view();
        let mut nodes = view.usable(RoleKind::Query);
        if nodes.len() < n as usize {
            return Err(ClusterError::invalid(
                "replica_number",
                format!(
                    "no enough nodes to create replicas: replica_number {n} needs {n} query \
                     nodes, {} available",
                    nodes.len()
                ),
            ));
        }
        // Least-loaded nodes first, dealt round-robin into the groups.
        let rows = node_rows(&cat);
        nodes.sort_by_key(|id| (rows.get(id).copied().unwrap_or(0), *id));
        let first = self.ids.alloc(n).await.map_err(store_error)?;
        let mut groups: Vec<ReplicaRecord> = (0..i64::from(n))
            .map(|i| ReplicaRecord {
                replica_id: first + i,
                collection_id: c.id(),
                nodes: Vec::new(),
                placement: BTreeMap::new(),
                leaders: BTreeMap::new(),
            })
            .collect();
        for (i, node) in nodes.into_iter().enumerate() {
            groups[i % n as usize].nodes.push(node);
        }
        let mut record = c.record.clone();
        record.load = Some(LoadSpec { replica_number: n });
        let mut e = Edit::new(&cat);
        e.put_collection(record);
        for r in groups {
            tracing::info!(collection = %c.record.name, replica = r.replica_id, nodes = ?r.nodes, "replica created");
            e.put_replica(r);
        }
        self.commit(&g, e).await?;
        tracing::info!(collection = %c.record.name, replicas = n, "collection loading");
        Ok(())
    }

    pub async fn release_collection(&self, req: NameReq) -> Result<(), ClusterError> {
        let g = self.lock().await?;
        let cat = self.snapshot();
        let c = cat.resolve(&req.name).ok_or_else(|| not_found(&req.name))?;
        if !c.is_loaded() {
            return Ok(());
        }
        let mut record = c.record.clone();
        record.load = None;
        let mut e = Edit::new(&cat);
        e.put_collection(record);
        for rid in c.replicas.keys() {
            e.delete_replica(c.id(), *rid);
        }
        self.commit(&g, e).await?;
        tracing::info!(collection = %c.record.name, "collection released");
        Ok(())
    }

    /// `Loaded` once every replica's delegators serve every live segment (a compaction result
    /// counts as served while its sources are) and acknowledged their distribution, and every
    /// channel is open at its current term; else `Loading` with the share done.
    pub async fn load_progress(&self, req: NameReq) -> Result<LoadProgress, ClusterError> {
        self.check()?;
        let cat = self.snapshot();
        let c = cat.resolve(&req.name).ok_or_else(|| not_found(&req.name))?;
        if !c.is_loaded() {
            return Ok(LoadProgress {
                state: LoadStateKind::NotLoad,
                percent: 0,
            });
        }
        let rt = self.rt.lock();
        let (mut done, mut total) = (0usize, 0usize);
        for ch in &c.channels {
            total += 1;
            let open = ch.node.is_some_and(|n| {
                rt.channels.get(&n).is_some_and(|sts| {
                    sts.iter()
                        .any(|s| s.channel == ch.channel && s.term == ch.term && s.ready)
                })
            });
            done += usize::from(open);
        }
        for rid in c.replicas.keys() {
            for shard in 0..c.record.num_shards {
                let dist = rt.dists.get(&(c.id(), shard, *rid));
                total += 1;
                let acked = dist.is_some_and(|d| {
                    rt.acks
                        .get(&(c.id(), shard, *rid))
                        .is_some_and(|(node, _)| *node == d.leader)
                });
                done += usize::from(acked);
                for s in c.live_segments(shard) {
                    total += 1;
                    let covered = dist.is_some_and(|d| {
                        d.served.contains_key(&s.id())
                            || (!s.compacted_from.is_empty()
                                && s.compacted_from.iter().all(|src| {
                                    d.served.contains_key(src) || !c.segments.contains_key(src)
                                })
                                && c.sources_present(s))
                    });
                    done += usize::from(covered);
                }
            }
        }
        if done < total {
            // A live query node's memory budget refused a segment of this collection: say so
            // instead of reporting a load that cannot finish.
            let refused = rt.refused.iter().find_map(|(node, refused)| {
                let live = rt.nodes.get(node).is_some_and(|n| n.live);
                refused
                    .iter()
                    .find(|r| live && r.collection_id == c.id())
                    .map(|r| r.reason.clone())
            });
            if let Some(reason) = refused {
                return Err(ClusterError::MemoryLimit(reason));
            }
        }
        Ok(if done >= total {
            LoadProgress {
                state: LoadStateKind::Loaded,
                percent: 100,
            }
        } else {
            LoadProgress {
                state: LoadStateKind::Loading,
                percent: (done * 100 / total.max(1)).min(99) as u32,
            }
        })
    }
}
