//! Calls to channel owners (streaming nodes): one per shard with the channel's term, retried
//! with refreshed routes; flush and row counts.

use std::sync::Arc;

use ferrovus_core::plan;
use futures::future::try_join_all;
use tokio::time::Instant;

use super::ClusterBackend;
use super::retry::Retry;
use crate::api::{
    ChannelId, ChannelReq, ChannelRoute, ChannelStatsReq, CollectionRecord, StreamingApi,
};
use crate::error::ApiResult;
use crate::rpc::ClusterError;

impl ClusterBackend {
    /// Call `op(owner, channel, term)` on the owner of shard `shard`'s channel. A retriable
    /// error (the owner moved, is recovering, or is unreachable) drops the routes and retries
    /// with fresh ones until `deadline`; the last error is answered after that.
    pub(super) async fn on_channel<T, F, Fut>(
        &self,
        op_name: &'static str,
        collection_id: i64,
        shard: u32,
        deadline: Instant,
        mut op: F,
    ) -> Result<T, ClusterError>
    where
        F: FnMut(Arc<dyn StreamingApi>, ChannelId, u64) -> Fut,
        Fut: Future<Output = Result<T, ClusterError>>,
    {
        let channel = ChannelId::new(collection_id, shard);
        let mut retry = Retry::until(deadline);
        loop {
            let Some(routes) = self.routes_or_pause(collection_id, &mut retry).await? else {
                continue;
            };
            let route = routes.channels.iter().find(|c| c.channel == channel);
            let result = match route {
                None => Err(ClusterError::NotServing(format!(
                    "channel {channel} has no owner yet"
                ))),
                Some(r) => match self.nodes.streaming(r.node, &r.addr) {
                    Ok(owner) => self.unless_moved(op(owner, channel, r.term), r).await,
                    Err(e) => Err(e),
                },
            };
            match result {
                Ok(v) => return Ok(v),
                Err(e) if e.is_retriable() => {
                    if let (ClusterError::Unavailable(_), Some(r)) = (&e, route) {
                        self.nodes.forget(&r.addr);
                    }
                    self.routes_failed(&routes);
                    tracing::debug!(op = op_name, %channel, error = %e, "channel call failed; retrying with fresh routes");
                    if !retry.pause().await {
                        tracing::warn!(op = op_name, %channel, error = %e, "channel call failed until the deadline");
                        return Err(e);
                    }
                    self.metrics.retried(op_name);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Waits for `call` to the owner named by `route`, unless the channel moves meanwhile: on
    /// every catalogue change the routes are fetched again, and a call to an owner that lost
    /// the channel (another node or a newer term) is abandoned as `Unavailable`, so the retry
    /// goes to the new owner at once instead of waiting for the RPC timeout of a node that is
    /// cut off. The old owner cannot acknowledge a write after the new one fenced its log.
    async fn unless_moved<T>(
        &self,
        call: impl Future<Output = Result<T, ClusterError>>,
        route: &ChannelRoute,
    ) -> Result<T, ClusterError> {
        let mut catalogue = self.coord_health.subscribe();
        catalogue.borrow_and_update();
        let mut call = std::pin::pin!(call);
        loop {
            tokio::select! {
                r = &mut call => return r,
                changed = catalogue.changed() => {
                    if changed.is_err() {
                        return call.await;
                    }
                    let now = match self.routes(route.channel.collection_id).await {
                        Ok(routes) => routes.channels.iter().find(|c| c.channel == route.channel).cloned(),
                        Err(_) => continue, // keep waiting for the call
                    };
                    if let Some(now) = now.filter(|c| (c.node, c.term) != (route.node, route.term)) {
                        self.metrics.retried("abandoned_on_move");
                        return Err(ClusterError::Unavailable(format!(
                            "channel {} moved from node {} (term {}) to node {} (term {}) during the call",
                            route.channel, route.node, route.term, now.node, now.term
                        )));
                    }
                }
            }
        }
    }

    /// Seal and persist every channel of the collection.
    pub(super) async fn flush_impl(&self, collection: &str) -> ApiResult<()> {
        let (rec, _) = self.record(collection).await?;
        let deadline = self.deadline();
        try_join_all(shards(&rec).map(|shard| {
            self.on_channel("flush", rec.id, shard, deadline, |owner, channel, term| async move {
                owner.flush(ChannelReq { channel, term }).await
            })
        }))
        .await?;
        Ok(())
    }

    /// Live rows of the collection (or of one partition), summed over its channels.
    pub(super) async fn row_count_impl(
        &self,
        collection: &str,
        partition: Option<&str>,
    ) -> ApiResult<usize> {
        self.with_record(collection, |rec| async move {
            let partitions = match partition {
                None => None,
                Some(p) => plan::partition_ids(&rec.partitions, &[p.to_string()])?,
            };
            let deadline = self.deadline();
            let stats = try_join_all(shards(&rec).map(|shard| {
                let partitions = partitions.clone();
                self.on_channel(
                    "stats",
                    rec.id,
                    shard,
                    deadline,
                    move |owner, channel, term| {
                        let req = ChannelStatsReq {
                            channel,
                            term,
                            partitions: partitions.clone(),
                        };
                        async move { owner.stats(req).await }
                    },
                )
            }))
            .await?;
            Ok(stats.iter().map(|s| s.live_rows).sum())
        })
        .await
    }
}

/// Every shard of a collection.
pub(super) fn shards(rec: &CollectionRecord) -> impl Iterator<Item = u32> + '_ {
    0..rec.num_shards.max(1)
}
