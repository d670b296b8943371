//! What streaming nodes call: `streaming_sync` (report channels, learn assignments and which
//! retained segments to release), `open_channel` and `commit_checkpoint` (both checked
//! against the channel's current owner and term).

use std::collections::BTreeSet;
use std::sync::Arc;

use ferrovus_core::shard::ShardCheckpoint;

use super::catalog::{Catalog, ChannelRecord, CollectionState, Edit};
use super::gc::{GcJob, segment_objects};
use super::leader::Leader;
use crate::api::{
    ChannelAssignment, ChannelId, ChannelStatus, ChannelTermReq, CommitCheckpointReq, NodeId,
    OpenChannelResp, SegmentRecord, SegmentState, StreamingSyncReq, StreamingSyncResp,
};
use crate::rpc::ClusterError;
use crate::session::RoleKind;

fn missing_channel(ch: ChannelId) -> ClusterError {
    ClusterError::NotServing(format!("channel {ch} does not exist (collection dropped?)"))
}

/// `node` at `term` must be the channel's current owner.
/// The collection and record of `channel`, if `node` at `term` owns it.
fn owned_channel(
    cat: &Catalog,
    channel: ChannelId,
    node: NodeId,
    term: u64,
) -> Result<(&Arc<CollectionState>, &ChannelRecord), ClusterError> {
    let c = cat
        .get(channel.collection_id)
        .ok_or_else(|| missing_channel(channel))?;
    let ch = c
        .channel(channel.shard)
        .ok_or_else(|| missing_channel(channel))?;
    check_owner(ch, node, term)?;
    Ok((c, ch))
}

fn check_owner(ch: &ChannelRecord, node: NodeId, term: u64) -> Result<(), ClusterError> {
    if ch.term != term {
        return Err(ClusterError::WrongTerm {
            channel: ch.channel.to_string(),
            expected: ch.term,
            got: term,
        });
    }
    if ch.node != Some(node) {
        return Err(ClusterError::NotServing(format!(
            "channel {} is not assigned to node {node} at term {term}",
            ch.channel
        )));
    }
    Ok(())
}

impl Leader {
    /// A streaming node's long poll; abandoned midway (the node went away), the node is probed
    /// ([`super::liveness`]).
    pub async fn streaming_sync(
        &self,
        req: StreamingSyncReq,
    ) -> Result<StreamingSyncResp, ClusterError> {
        let watch = self.watch_sync(req.node);
        let out = self.streaming_sync_inner(req).await;
        watch.done();
        out
    }

    async fn streaming_sync_inner(
        &self,
        req: StreamingSyncReq,
    ) -> Result<StreamingSyncResp, ClusterError> {
        self.check()?;
        let changed = {
            let mut rt = self.rt.lock();
            let mut changed = rt.reported(RoleKind::Streaming, req.node, &req.addr, req.draining);
            if rt.channels.get(&req.node) != Some(&req.channels) {
                rt.channels.insert(req.node, req.channels.clone());
                changed = true;
            }
            changed
        };
        if changed {
            self.kick();
        }
        if req.known_version >= self.versions().targets {
            let known = req.known_version;
            self.wait_for(self.wait_time(req.wait_ms), |v| v.targets > known)
                .await?;
        }
        let version = self.versions().targets;
        let cat = self.snapshot();
        let channels = cat
            .collections
            .values()
            .flat_map(|c| &c.channels)
            .filter(|ch| ch.node == Some(req.node))
            .map(|ch| ChannelAssignment {
                channel: ch.channel,
                term: ch.term,
            })
            .collect();
        let release = self.releasable(&req.channels);
        Ok(StreamingSyncResp {
            version,
            channels,
            release,
        })
    }

    /// Retained sealed segments nobody needs in the owner's memory any more: every replica's
    /// delegator acknowledged a distribution that serves them (or a compaction result of
    /// them), or the collection is not loaded, or the segment left the catalogue.
    fn releasable(&self, statuses: &[ChannelStatus]) -> Vec<(ChannelId, Vec<i64>)> {
        let cat = self.snapshot();
        let rt = self.rt.lock();
        let mut out = Vec::new();
        for st in statuses.iter().filter(|s| !s.retained.is_empty()) {
            let ch = st.channel;
            let c = cat.get(ch.collection_id);
            let release: Vec<i64> = st
                .retained
                .iter()
                .copied()
                .filter(|sid| {
                    let Some(c) = c else { return true };
                    let Some(seg) = c.segments.get(sid) else {
                        return true;
                    };
                    if !c.is_live(seg) && seg.state == SegmentState::Flushed {
                        return true; // its partition was dropped
                    }
                    if !c.is_loaded() {
                        return true;
                    }
                    if !rt.settled {
                        return false;
                    }
                    let replacement: Vec<i64> = c
                        .live_segments(ch.shard)
                        .filter(|s| s.compacted_from.contains(sid))
                        .map(|s| s.id())
                        .collect();
                    c.replicas.keys().all(|rid| {
                        let key = (c.id(), ch.shard, *rid);
                        rt.serves_acked(key, *sid)
                            || replacement.iter().any(|r| rt.serves_acked(key, *r))
                    })
                })
                .collect();
            if !release.is_empty() {
                out.push((ch, release));
            }
        }
        out
    }

    /// The schema and the checkpoint a new owner recovers from; the checkpoint's segments are
    /// the shard's live catalogue segments (compaction results included, replaced ones not).
    pub async fn open_channel(&self, req: ChannelTermReq) -> Result<OpenChannelResp, ClusterError> {
        self.check()?;
        let cat = self.snapshot();
        let (c, ch) = owned_channel(&cat, req.channel, req.node, req.term)?;
        let segments: Vec<_> = c
            .live_segments(req.channel.shard)
            .map(|s| s.meta.clone())
            .collect();
        let checkpoint = match &ch.checkpoint {
            Some(ck) => Some(ShardCheckpoint {
                segments,
                ..ck.clone()
            }),
            None if segments.is_empty() => None,
            None => Some(ShardCheckpoint {
                segments,
                ..ShardCheckpoint::default()
            }),
        };
        tracing::info!(
            channel = %req.channel,
            node = req.node,
            term = req.term,
            segments = checkpoint.as_ref().map_or(0, |c| c.segments.len()),
            next_lsn = checkpoint.as_ref().map_or(0, |c| c.next_lsn),
            "channel opened"
        );
        Ok(OpenChannelResp {
            collection: c.record.clone(),
            checkpoint,
        })
    }

    /// Records the checkpoint (next LSN, applied timestamp, delta objects) and registers the
    /// segments it sealed, in one transaction, if `node` at `term` owns the channel. Delete
    /// logs the owner rewrote are taken over; a flushed segment the owner no longer lists (all
    /// its rows deleted, its files removed by the owner) leaves the catalogue.
    pub async fn commit_checkpoint(&self, req: CommitCheckpointReq) -> Result<(), ClusterError> {
        let g = self.lock().await?;
        let cat = self.snapshot();
        let (c, ch) = owned_channel(&cat, req.channel, req.node, req.term)?;
        let (cid, shard) = (req.channel.collection_id, req.channel.shard);
        let mut e = Edit::new(&cat);
        let mut record = ch.clone();
        record.checkpoint = Some(ShardCheckpoint {
            segments: Vec::new(),
            ..req.checkpoint.clone()
        });
        e.put_channel(record);
        let mut listed: BTreeSet<i64> = req
            .checkpoint
            .segments
            .iter()
            .map(|m| m.segment_id)
            .collect();
        let mut added = Vec::new();
        for meta in &req.new_segments {
            listed.insert(meta.segment_id);
            if c.segments.contains_key(&meta.segment_id) {
                continue;
            }
            added.push(meta.segment_id);
            e.put_segment(SegmentRecord {
                collection_id: cid,
                shard,
                meta: meta.clone(),
                state: SegmentState::Flushed,
                compacted_from: Vec::new(),
            });
        }
        for meta in &req.checkpoint.segments {
            if let Some(rec) = c.segments.get(&meta.segment_id)
                && rec.shard == shard
                && meta.deletes_version > rec.meta.deletes_version
            {
                let mut rec = rec.clone();
                rec.meta.deletes_key = meta.deletes_key.clone();
                rec.meta.deletes_version = meta.deletes_version;
                e.put_segment(rec);
            }
        }
        let mut garbage = Vec::new();
        let dead: Vec<&SegmentRecord> = c
            .segments
            .values()
            .filter(|s| {
                s.shard == shard
                    && s.state == SegmentState::Flushed
                    && s.compacted_from.is_empty()
                    && !listed.contains(&s.id())
            })
            .collect();
        for s in &dead {
            tracing::info!(channel = %req.channel, segment = s.id(), "segment with every row deleted removed");
            garbage.extend(segment_objects(s));
            e.delete_segment(cid, s.id());
        }
        self.commit(&g, e).await?;
        self.gc(GcJob::Objects(garbage));
        tracing::info!(
            channel = %req.channel,
            term = req.term,
            next_lsn = req.checkpoint.next_lsn,
            applied_ts = req.checkpoint.applied_ts,
            deltas = req.checkpoint.deltas.len(),
            new_segments = ?added,
            "checkpoint committed"
        );
        Ok(())
    }
}
