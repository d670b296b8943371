//! Worker reads: the sealed segments a delegator asks for, at the delegator's snapshot. Each
//! read first holds its segments (so a release waits for it), then brings the shard's delete
//! watermark up to the snapshot — one pull from the channel owner in flight per shard, the
//! reads that need it waiting for it — then reads on the blocking pool.

use std::sync::Arc;
use std::time::Duration;

use ferrovus_core::CoreError;
use ferrovus_core::read::PreparedSearch;

use super::hold::ShardHold;
use super::{Inner, spec};
use crate::api::{ChannelRoute, Hit, SegmentsQueryReq, SegmentsSearchReq, ShardQueryResp};
use crate::rpc::ClusterError;

/// Pulls tried before a read gives up on reaching its snapshot.
const PULL_ATTEMPTS: usize = 3;

/// A core read error as the delegator should see it: a segment that went away is `NotServing`,
/// deletes not caught up are `Unavailable` (both retriable).
fn read_error(e: CoreError) -> ClusterError {
    match e {
        CoreError::NotFound(m) => ClusterError::NotServing(m),
        CoreError::Conflict(m) => ClusterError::Unavailable(m),
        other => other.into(),
    }
}

fn join_error(e: tokio::task::JoinError) -> ClusterError {
    ClusterError::Internal(format!("read task failed: {e}"))
}

impl Inner {
    fn held_shard(
        &self,
        collection_id: i64,
        shard: u32,
        segment_ids: &[i64],
    ) -> Result<Arc<ShardHold>, ClusterError> {
        self.hold((collection_id, shard)).ok_or_else(|| {
            ClusterError::NotServing(format!(
                "segment {} of collection {collection_id} shard {shard} is not loaded on query \
                 node {}",
                segment_ids.first().copied().unwrap_or_default(),
                self.node_id
            ))
        })
    }

    /// Make every delete of the shard up to `snapshot` applied to its segments.
    pub(super) async fn catch_up(
        &self,
        hold: &ShardHold,
        snapshot: u64,
        route: &ChannelRoute,
    ) -> Result<(), ClusterError> {
        if hold.set.deltas_applied_up_to() >= snapshot {
            return Ok(());
        }
        let _pull = hold.pull.lock().await;
        let mut backoff = Duration::from_millis(10);
        for _ in 0..PULL_ATTEMPTS {
            let from = hold.set.deltas_applied_up_to();
            if from >= snapshot {
                return Ok(()); // the pull another read was waiting for covered it
            }
            let pulled = self.pull_deltas(route, from, hold).await?;
            let (n, up_to) = (pulled.entries.len(), pulled.up_to);
            let set = hold.set.clone();
            tokio::task::spawn_blocking(move || set.apply_deltas(&pulled.entries, up_to))
                .await
                .map_err(join_error)?;
            tracing::debug!(
                collection_id = hold.collection_id,
                shard = hold.shard,
                from,
                up_to,
                deltas = n,
                objects = pulled.objects_read,
                "deletes caught up"
            );
            if up_to >= snapshot {
                return Ok(());
            }
            // The owner answered below the snapshot it gave the delegator: a new owner still
            // replaying; give it a moment.
            tokio::time::sleep(backoff).await;
            backoff *= 4;
        }
        Err(ClusterError::Unavailable(format!(
            "the owner of channel {} has not applied timestamp {snapshot} yet (deletes here \
             are at {})",
            route.channel,
            hold.set.deltas_applied_up_to()
        )))
    }

    pub(super) async fn search_segments(
        &self,
        req: SegmentsSearchReq,
    ) -> Result<Vec<Vec<Hit>>, ClusterError> {
        let empty = || vec![Vec::new(); req.spec.num_queries];
        if req.segment_ids.is_empty() {
            return Ok(empty());
        }
        let hold = self.held_shard(req.collection_id, req.shard, &req.segment_ids)?;
        let guard = hold.acquire(&req.segment_ids, self.node_id)?;
        let plan = spec::check_search(&hold.schema, &req.spec)?;
        self.catch_up(&hold, req.snapshot, &req.channel).await?;
        if req.spec.k == 0 {
            return Ok(empty());
        }
        let set = hold.set.clone();
        let hits = tokio::task::spawn_blocking(move || {
            let _reading = guard;
            let s = &req.spec;
            let prepared = PreparedSearch {
                field_index: s.field_index,
                metric: s.metric,
                queries: &s.queries,
                num_queries: s.num_queries,
                k: s.k,
                ef: s.ef.max(s.k),
                plan: &plan,
                partitions: spec::partition_set(&s.partitions),
                output: &s.output,
                ignore_growing: s.ignore_growing,
                radius: s.radius,
                range_filter: s.range_filter,
            };
            set.search(&prepared, req.snapshot, &req.segment_ids)
        })
        .await
        .map_err(join_error)?
        .map_err(read_error)?;
        Ok(spec::to_hits(hits))
    }

    pub(super) async fn query_segments(
        &self,
        req: SegmentsQueryReq,
    ) -> Result<ShardQueryResp, ClusterError> {
        if req.segment_ids.is_empty() {
            return Ok(ShardQueryResp {
                count: 0,
                rows: Vec::new(),
            });
        }
        let hold = self.held_shard(req.collection_id, req.shard, &req.segment_ids)?;
        let guard = hold.acquire(&req.segment_ids, self.node_id)?;
        let plan = spec::check_query(&hold.schema, &req.spec)?;
        self.catch_up(&hold, req.snapshot, &req.channel).await?;
        let set = hold.set.clone();
        let (count, rows) = tokio::task::spawn_blocking(move || {
            let _reading = guard;
            let s = &req.spec;
            set.query(
                &plan,
                &spec::partition_set(&s.partitions),
                &s.output,
                s.count_only,
                req.snapshot,
                &req.segment_ids,
            )
            .map(|(count, rows)| {
                let rows = if s.count_only {
                    Vec::new()
                } else {
                    spec::to_rows(rows, s.limit)
                };
                (count, rows)
            })
        })
        .await
        .map_err(join_error)?
        .map_err(read_error)?;
        Ok(ShardQueryResp { count, rows })
    }
}
