//! [`StreamingApi`] on the channels this node serves. Every call first checks the channel is
//! served here at the request's term ([`Inner::serving`]); reads run on the blocking pool (they
//! scan or search in memory under the shard's read lock).

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use ferrovus_core::CoreError;
use ferrovus_core::delta::DeltaRead;
use ferrovus_core::read::PreparedSearch;
use ferrovus_core::wal::WalRecord;

use super::channel::OpenChannel;
use super::{Inner, StreamingNode, spec};
use crate::api::{
    ChannelQueryReq, ChannelQueryResp, ChannelReq, ChannelSearchReq, ChannelSearchResp,
    ChannelStats, ChannelStatsReq, DeltasReq, DeltasResp, StreamingApi, WriteReq,
};
use crate::rpc::ClusterError;

fn join_error(e: tokio::task::JoinError) -> ClusterError {
    ClusterError::Internal(format!("read task failed: {e}"))
}

impl Inner {
    /// A shard error of a channel request: a write refused because the channel is fenced or
    /// closed means the channel is not ours any more (retriable for the caller).
    fn channel_error(
        &self,
        req_channel: crate::api::ChannelId,
        term: u64,
        open: &OpenChannel,
        e: CoreError,
    ) -> ClusterError {
        if let Some(by) = open.shard.fenced_by() {
            let reason = format!("fenced by the channel owner of term {by}");
            self.lose(req_channel, term, &reason);
            return ClusterError::NotServing(format!(
                "channel {req_channel} at term {term}: {reason}"
            ));
        }
        match e {
            CoreError::Conflict(m) => {
                ClusterError::NotServing(format!("channel {req_channel} at term {term}: {m}"))
            }
            other => other.into(),
        }
    }

    async fn write(&self, req: WriteReq) -> Result<u64, ClusterError> {
        let open = self.serving(req.channel, req.term)?;
        spec::check_record(&open.schema, &req.record)?;
        let rows = match &req.record {
            WalRecord::Insert { rows, .. } | WalRecord::Upsert { rows, .. } => rows.num_rows(),
            WalRecord::Delete { .. } => 0,
        };
        match open.shard.write(req.record, req.bytes).await {
            Ok(ts) => {
                self.metrics.records_written.inc();
                self.metrics.rows_written.inc_by(rows as u64);
                Ok(ts)
            }
            Err(e) => Err(self.channel_error(req.channel, req.term, &open, e)),
        }
    }

    async fn search(&self, req: ChannelSearchReq) -> Result<ChannelSearchResp, ClusterError> {
        let open = self.serving(req.channel, req.term)?;
        let plan = spec::check_search(&open.schema, &req.spec)?;
        tokio::task::spawn_blocking(move || {
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
            let exclude: HashSet<i64> = req.exclude.iter().copied().collect();
            let read = open.shard.search(&prepared, &exclude)?;
            Ok(ChannelSearchResp {
                hits: spec::to_hits(read.value),
                snapshot: read.snapshot,
                sealed_searched: read.sealed_searched,
            })
        })
        .await
        .map_err(join_error)?
    }

    async fn query(&self, req: ChannelQueryReq) -> Result<ChannelQueryResp, ClusterError> {
        let open = self.serving(req.channel, req.term)?;
        let plan = spec::check_query(&open.schema, &req.spec)?;
        tokio::task::spawn_blocking(move || {
            let s = &req.spec;
            let exclude: HashSet<i64> = req.exclude.iter().copied().collect();
            let read = open.shard.query(
                &plan,
                &spec::partition_set(&s.partitions),
                &s.output,
                s.count_only,
                &exclude,
            );
            let (count, rows) = read.value;
            ChannelQueryResp {
                count,
                rows: if s.count_only {
                    Vec::new()
                } else {
                    spec::to_rows(rows, s.limit)
                },
                snapshot: read.snapshot,
                sealed_searched: read.sealed_searched,
            }
        })
        .await
        .map_err(join_error)
    }

    fn deltas(&self, req: DeltasReq) -> Result<DeltasResp, ClusterError> {
        let open = self.serving(req.channel, req.term)?;
        Ok(match open.shard.deltas_since(req.after_ts) {
            DeltaRead::Entries { entries, up_to } => DeltasResp::Entries { entries, up_to },
            DeltaRead::Gap { journal_start } => DeltasResp::Gap { journal_start },
        })
    }

    async fn flush(&self, req: ChannelReq) -> Result<Vec<i64>, ClusterError> {
        let open = self.serving(req.channel, req.term)?;
        let before: HashSet<i64> = sealed_ids(&open);
        if let Err(e) = open.shard.flush().await {
            return Err(self.channel_error(req.channel, req.term, &open, e));
        }
        // A lost or closed channel's checkpoint does nothing: that is not a flush.
        self.serving(req.channel, req.term)?;
        let mut sealed: Vec<i64> = sealed_ids(&open)
            .into_iter()
            .filter(|id| !before.contains(id))
            .collect();
        sealed.sort_unstable();
        tracing::info!(channel = %req.channel, term = req.term, sealed = ?sealed, "channel flushed");
        Ok(sealed)
    }

    fn stats(&self, req: ChannelStatsReq) -> Result<ChannelStats, ClusterError> {
        let open = self.serving(req.channel, req.term)?;
        Ok(ChannelStats {
            live_rows: open
                .shard
                .live_rows_in(&spec::partition_set(&req.partitions)),
            growing_rows: open.shard.growing_rows(),
            applied_ts: open.shard.applied_ts(),
        })
    }
}

fn sealed_ids(open: &Arc<OpenChannel>) -> HashSet<i64> {
    open.shard
        .sealed_segments()
        .iter()
        .map(|m| m.segment_id)
        .collect()
}

/// Counts the request in the metrics by outcome, and passes it on.
fn counted<T>(
    inner: &Inner,
    kind: &'static str,
    r: Result<T, ClusterError>,
) -> Result<T, ClusterError> {
    inner.metrics.request(kind, r.is_ok());
    r
}

#[async_trait]
impl StreamingApi for StreamingNode {
    async fn write(&self, req: WriteReq) -> Result<u64, ClusterError> {
        counted(&self.inner, "write", self.inner.write(req).await)
    }

    async fn search(&self, req: ChannelSearchReq) -> Result<ChannelSearchResp, ClusterError> {
        counted(&self.inner, "search", self.inner.search(req).await)
    }

    async fn query(&self, req: ChannelQueryReq) -> Result<ChannelQueryResp, ClusterError> {
        counted(&self.inner, "query", self.inner.query(req).await)
    }

    async fn deltas(&self, req: DeltasReq) -> Result<DeltasResp, ClusterError> {
        counted(&self.inner, "deltas", self.inner.deltas(req))
    }

    async fn flush(&self, req: ChannelReq) -> Result<Vec<i64>, ClusterError> {
        counted(&self.inner, "flush", self.inner.flush(req).await)
    }

    async fn stats(&self, req: ChannelStatsReq) -> Result<ChannelStats, ClusterError> {
        counted(&self.inner, "stats", self.inner.stats(req))
    }
}
