//! Delegator reads: one shard of one replica, whole. (1) The channel owner reads its growing
//! data and the sealed segments it still retains, except those this replica serves (and their
//! compaction sources), and answers the snapshot `R` it read at; (2) every query node serving
//! segments of the shard reads them at `R`, in parallel (this node in-process); (3) the reads
//! must cover every target segment exactly once, else a retriable error rather than a partial
//! answer; (4) the answers merge (top-k by score, or rows in key order).

use std::collections::BTreeMap;
use std::sync::Arc;

use ferrovus_core::read::{Scored, merge_hits};

use super::{Inner, coverage, spec};
use crate::api::{
    ChannelQueryReq, ChannelSearchReq, Delegation, Hit, NodeId, Row, SegmentsQueryReq,
    SegmentsSearchReq, ShardQueryReq, ShardQueryResp, ShardSearchReq,
};
use crate::rpc::ClusterError;

/// A hit ranked by the core's merge rule.
struct Ranked(Hit);

impl Scored for Ranked {
    fn score(&self) -> f32 {
        self.0.score
    }
}

/// The served segments of a delegation by node: (node, address, segment ids).
fn by_node(d: &Delegation) -> Vec<(NodeId, String, Vec<i64>)> {
    let mut nodes: BTreeMap<NodeId, (String, Vec<i64>)> = BTreeMap::new();
    for e in &d.served {
        nodes
            .entry(e.node)
            .or_insert_with(|| (e.addr.clone(), Vec::new()))
            .1
            .push(e.segment_id);
    }
    nodes
        .into_iter()
        .map(|(n, (addr, ids))| (n, addr, ids))
        .collect()
}

impl Inner {
    fn delegation(
        &self,
        collection_id: i64,
        shard: u32,
        replica_id: i64,
    ) -> Result<Arc<Delegation>, ClusterError> {
        self.current_target()
            .delegations
            .get(&(collection_id, shard, replica_id))
            .cloned()
            .ok_or_else(|| {
                ClusterError::NotServing(format!(
                    "query node {} does not lead shard {shard} of collection {collection_id} in \
                     replica {replica_id}",
                    self.node_id
                ))
            })
    }

    /// A worker's failure, as the proxy should see it: retriable (it retries another replica).
    fn worker_error(&self, node: NodeId, addr: &str, e: ClusterError) -> ClusterError {
        match e {
            ClusterError::NotServing(m) => {
                ClusterError::NotServing(format!("query node {node}: {m}"))
            }
            ClusterError::Unavailable(m) => {
                if node != self.node_id {
                    self.nodes.forget(addr);
                }
                ClusterError::Unavailable(format!("query node {node} at {addr}: {m}"))
            }
            other => ClusterError::Unavailable(format!("query node {node} at {addr}: {other}")),
        }
    }

    fn check_coverage(
        &self,
        d: &Delegation,
        served: &[i64],
        owner: &[i64],
    ) -> Result<(), ClusterError> {
        coverage::check(&d.targets, served, owner).map_err(|e| {
            tracing::warn!(
                collection_id = d.collection_id,
                shard = d.shard,
                replica_id = d.replica_id,
                version = d.version,
                error = %e,
                "shard read does not cover the shard exactly once"
            );
            ClusterError::NotServing(format!(
                "shard {} of collection {} in replica {} (distribution version {}): {e}",
                d.shard, d.collection_id, d.replica_id, d.version
            ))
        })
    }

    pub(super) async fn search_shard(
        self: &Arc<Self>,
        req: ShardSearchReq,
    ) -> Result<Vec<Vec<Hit>>, ClusterError> {
        let d = self.delegation(req.collection_id, req.shard, req.replica_id)?;
        if let Some(c) = self.current_target().collections.get(&req.collection_id) {
            spec::check_search(&c.schema, &req.spec)?;
        }
        let owner = self.owner(&d.channel)?;
        let from_owner = owner
            .search(ChannelSearchReq {
                channel: d.channel.channel,
                term: d.channel.term,
                spec: req.spec.clone(),
                exclude: coverage::owner_exclusions(&d),
            })
            .await
            .inspect_err(|e| self.forget_route(&d.channel, e))?;
        let snapshot = from_owner.snapshot;
        let calls = by_node(&d).into_iter().map(|(node, addr, ids)| {
            let r = SegmentsSearchReq {
                collection_id: req.collection_id,
                shard: req.shard,
                segment_ids: ids.clone(),
                snapshot,
                channel: d.channel.clone(),
                spec: req.spec.clone(),
            };
            async move {
                let answer = if node == self.node_id {
                    self.search_segments(r).await
                } else {
                    match self.nodes.query(node, &addr) {
                        Ok(q) => q.search_segments(r).await,
                        Err(e) => Err(e),
                    }
                };
                answer
                    .map(|hits| (ids, hits))
                    .map_err(|e| self.worker_error(node, &addr, e))
            }
        });
        let answers = futures::future::try_join_all(calls).await?;
        let served: Vec<i64> = answers.iter().flat_map(|(ids, _)| ids.clone()).collect();
        self.check_coverage(&d, &served, &from_owner.sealed_searched)?;

        let nq = req.spec.num_queries;
        let mut per_query: Vec<Vec<Vec<Ranked>>> = (0..nq).map(|_| Vec::new()).collect();
        let sources = std::iter::once(from_owner.hits).chain(answers.into_iter().map(|(_, h)| h));
        for hits in sources {
            for (lists, q) in per_query.iter_mut().zip(hits) {
                lists.push(q.into_iter().map(Ranked).collect());
            }
        }
        Ok(per_query
            .into_iter()
            .map(|lists| {
                merge_hits(req.spec.metric, lists, req.spec.k)
                    .into_iter()
                    .map(|r| r.0)
                    .collect()
            })
            .collect())
    }

    pub(super) async fn query_shard(
        self: &Arc<Self>,
        req: ShardQueryReq,
    ) -> Result<ShardQueryResp, ClusterError> {
        let d = self.delegation(req.collection_id, req.shard, req.replica_id)?;
        if let Some(c) = self.current_target().collections.get(&req.collection_id) {
            spec::check_query(&c.schema, &req.spec)?;
        }
        let owner = self.owner(&d.channel)?;
        let from_owner = owner
            .query(ChannelQueryReq {
                channel: d.channel.channel,
                term: d.channel.term,
                spec: req.spec.clone(),
                exclude: coverage::owner_exclusions(&d),
            })
            .await
            .inspect_err(|e| self.forget_route(&d.channel, e))?;
        let snapshot = from_owner.snapshot;
        let calls = by_node(&d).into_iter().map(|(node, addr, ids)| {
            let r = SegmentsQueryReq {
                collection_id: req.collection_id,
                shard: req.shard,
                segment_ids: ids.clone(),
                snapshot,
                channel: d.channel.clone(),
                spec: req.spec.clone(),
            };
            async move {
                let answer = if node == self.node_id {
                    self.query_segments(r).await
                } else {
                    match self.nodes.query(node, &addr) {
                        Ok(q) => q.query_segments(r).await,
                        Err(e) => Err(e),
                    }
                };
                answer
                    .map(|resp| (ids, resp))
                    .map_err(|e| self.worker_error(node, &addr, e))
            }
        });
        let answers = futures::future::try_join_all(calls).await?;
        let served: Vec<i64> = answers.iter().flat_map(|(ids, _)| ids.clone()).collect();
        self.check_coverage(&d, &served, &from_owner.sealed_searched)?;

        let mut count = from_owner.count;
        let mut rows: Vec<Row> = from_owner.rows;
        for (_, a) in answers {
            count += a.count;
            rows.extend(a.rows);
        }
        if req.spec.count_only {
            rows.clear();
        }
        rows.sort_by(|a, b| a.pk.cmp(&b.pk));
        rows.truncate(req.spec.limit.unwrap_or(usize::MAX));
        Ok(ShardQueryResp { count, rows })
    }
}
