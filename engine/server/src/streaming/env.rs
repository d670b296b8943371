//! What a channel's shard gets from the coordinator instead of local services: write
//! timestamps ([`CoordTso`]), segment ids fetched in blocks ([`CoordIds`]), and checkpoints
//! ([`CoordCheckpoints`]): loaded from the `open_channel` answer, committed through
//! `CoordApi::commit_checkpoint`, which the coordinator checks against the channel's term.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ferrovus_core::CoreError;
use ferrovus_core::segment::SegmentMeta;
use ferrovus_core::shard::{CheckpointStore, ShardCheckpoint};
use ferrovus_core::tso::{IdSource, TsoSource};
use parking_lot::Mutex;
use tokio::sync::watch;

use super::backoff::Backoff;
use crate::api::{ChannelId, CommitCheckpointReq, CoordApi, NodeId, Nodes};
use crate::rpc::ClusterError;

/// A coordinator error as the core sees it (the core maps it on to its own callers).
fn core_error(what: &str, e: ClusterError) -> CoreError {
    match e {
        e @ (ClusterError::Unavailable(_) | ClusterError::NotLeader { .. }) => {
            CoreError::Storage(format!("{what}: the coordinator is unavailable: {e}"))
        }
        other => CoreError::from(other),
    }
}

/// Write timestamps from the coordinator's TSO (one call per group commit). The coordinator is
/// looked up at each call (`nodes` may be wired after the node is built, as in standalone).
pub(super) struct CoordTso {
    pub nodes: Arc<dyn Nodes>,
}

impl std::fmt::Debug for CoordTso {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CoordTso")
    }
}

#[async_trait]
impl TsoSource for CoordTso {
    async fn alloc(&self, count: u32) -> ferrovus_core::Result<u64> {
        self.nodes
            .coord()
            .alloc_ts(count.max(1))
            .await
            .map_err(|e| core_error("allocating timestamps", e))
    }
}

/// Ids from the coordinator, fetched `block` at a time (ids are never reused; a block a node
/// does not use up is simply skipped).
pub(super) struct CoordIds {
    nodes: Arc<dyn Nodes>,
    block: u32,
    /// `[next, end)` of the current block.
    range: tokio::sync::Mutex<(i64, i64)>,
}

impl CoordIds {
    pub fn new(nodes: Arc<dyn Nodes>, block: u32) -> Self {
        CoordIds {
            nodes,
            block: block.max(1),
            range: tokio::sync::Mutex::new((0, 0)),
        }
    }
}

impl std::fmt::Debug for CoordIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoordIds")
            .field("block", &self.block)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl IdSource for CoordIds {
    async fn alloc(&self, count: u32) -> ferrovus_core::Result<i64> {
        let mut range = self.range.lock().await;
        let want = i64::from(count);
        if range.1 - range.0 < want {
            let n = count.max(self.block);
            let first = self
                .nodes
                .coord()
                .alloc_ids(n)
                .await
                .map_err(|e| core_error("allocating segment ids", e))?;
            *range = (first, first + i64::from(n));
        }
        let first = range.0;
        range.0 += want;
        Ok(first)
    }
}

/// Whether a failed commit may succeed if sent again (the coordinator is unreachable, changing
/// leader, or its metadata store failed), as opposed to a refusal: the channel is not ours at
/// this term any more.
fn commit_retriable(e: &ClusterError) -> bool {
    matches!(
        e,
        ClusterError::Unavailable(_)
            | ClusterError::NotLeader { .. }
            | ClusterError::Internal(_)
            | ClusterError::Storage(_)
    )
}

/// Called when the coordinator refuses a commit: the channel was lost at this term.
pub(super) type OnLost = Box<dyn Fn(String) + Send + Sync>;

/// A channel's checkpoints: the one `open_channel` answered (the shard recovers from it) and
/// every commit after, through the coordinator. A commit the coordinator could not answer is
/// sent again (the same checkpoint: committing it twice is harmless) until it answers or the
/// channel closes; a refused one means the channel moved on: `on_lost` is called and the
/// checkpoint fails, so the shard neither truncates its log nor deletes anything.
pub(super) struct CoordCheckpoints {
    pub coord: Arc<dyn CoordApi>,
    pub channel: ChannelId,
    pub term: u64,
    pub node: NodeId,
    pub current: Mutex<Option<ShardCheckpoint>>,
    pub retry_max: Duration,
    /// Becomes true when the channel closes here: stop retrying.
    pub closed: watch::Receiver<bool>,
    pub on_lost: OnLost,
}

impl std::fmt::Debug for CoordCheckpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoordCheckpoints")
            .field("channel", &self.channel)
            .field("term", &self.term)
            .finish_non_exhaustive()
    }
}

impl CoordCheckpoints {
    fn check_channel(&self, collection_id: i64, shard: usize) -> ferrovus_core::Result<()> {
        if collection_id != self.channel.collection_id || shard != self.channel.shard as usize {
            return Err(CoreError::Internal(format!(
                "the checkpoint store of channel {} was asked for {collection_id}/{shard}",
                self.channel
            )));
        }
        Ok(())
    }
}

#[async_trait]
impl CheckpointStore for CoordCheckpoints {
    async fn load(
        &self,
        collection_id: i64,
        shard: usize,
    ) -> ferrovus_core::Result<Option<ShardCheckpoint>> {
        self.check_channel(collection_id, shard)?;
        Ok(self.current.lock().clone())
    }

    async fn commit(
        &self,
        collection_id: i64,
        shard: usize,
        term: u64,
        checkpoint: &ShardCheckpoint,
        new_segments: &[SegmentMeta],
    ) -> ferrovus_core::Result<()> {
        self.check_channel(collection_id, shard)?;
        let req = CommitCheckpointReq {
            channel: self.channel,
            term,
            node: self.node,
            checkpoint: checkpoint.clone(),
            new_segments: new_segments.to_vec(),
        };
        let mut closed = self.closed.clone();
        let mut backoff = Backoff::new(self.retry_max);
        loop {
            if *closed.borrow() {
                return Err(CoreError::Conflict(format!(
                    "channel {} closed on this node before its checkpoint was committed",
                    self.channel
                )));
            }
            match self.coord.commit_checkpoint(req.clone()).await {
                Ok(()) => {
                    tracing::debug!(
                        channel = %self.channel,
                        term,
                        next_lsn = checkpoint.next_lsn,
                        segments = checkpoint.segments.len(),
                        new_segments = new_segments.len(),
                        "checkpoint committed at the coordinator"
                    );
                    *self.current.lock() = Some(checkpoint.clone());
                    return Ok(());
                }
                Err(e) if commit_retriable(&e) => {
                    let wait = backoff.next_delay();
                    tracing::warn!(
                        channel = %self.channel,
                        term,
                        error = %e,
                        retry_in_ms = wait.as_millis() as u64,
                        "committing a checkpoint failed; retrying"
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = closed.changed() => {}
                    }
                }
                Err(e) => {
                    let reason = format!("the coordinator refused its checkpoint: {e}");
                    (self.on_lost)(reason.clone());
                    return Err(CoreError::Conflict(format!(
                        "channel {} at term {term}: {reason}",
                        self.channel
                    )));
                }
            }
        }
    }

    async fn remove(&self, _collection_id: i64, _shard: usize) -> ferrovus_core::Result<()> {
        // The coordinator owns the channel record and drops it with the collection.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_not_retried() {
        for e in [
            ClusterError::Unavailable("x".into()),
            ClusterError::NotLeader { leader: None },
            ClusterError::Internal("etcd".into()),
            ClusterError::Storage("etcd".into()),
        ] {
            assert!(commit_retriable(&e), "{e}");
        }
        for e in [
            ClusterError::WrongTerm {
                channel: "1/0".into(),
                expected: 3,
                got: 2,
            },
            ClusterError::NotServing("moved".into()),
            ClusterError::Conflict("owner".into()),
            ClusterError::CollectionNotFound("c".into()),
        ] {
            assert!(!commit_retriable(&e), "{e}");
        }
    }
}
