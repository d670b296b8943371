//! Loading a targeted segment and joining it to its shard's set.
//!
//! A segment is loaded whole before it serves: its data file, own delete log and keys
//! (`SealedSegment::load`), the indexes the collection still defines, then every delete after
//! its `base_ts` — the delta objects the coordinator listed, then the channel owner's journal.
//! It joins the set under the shard's watermark lock, first catching up to the set's watermark
//! if that moved ahead meanwhile: the `SegmentSet::insert` contract (a segment joins carrying
//! every delete up to the set's watermark). Only then is it reported as loaded.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrovus_core::sealed::SealedSegment;

use super::hold::ShardHold;
use super::metrics::QueryMetrics;
use super::{Inner, SegKey, ShardKey, deltas, indexes};
use crate::api::{ChannelRoute, RoutesReq, StreamingApi};
use crate::rpc::ClusterError;

/// First back-off after a failed attempt (doubling up to `query.retry_max_ms`).
pub(super) const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// The next back-off.
pub(super) fn next_backoff(d: Duration, max_ms: u64) -> Duration {
    (d * 2).min(Duration::from_millis(max_ms.max(1)))
}

impl Inner {
    /// Load a targeted segment in the background (retrying with back-off until it is loaded or
    /// no longer targeted). Does nothing if it is loading or held already.
    pub(super) fn spawn_load(self: &Arc<Self>, key: SegKey) {
        let mut loads = self.loads.lock();
        if loads.contains_key(&key) || self.hold((key.0, key.1)).is_some_and(|h| h.holds(key.2)) {
            return;
        }
        let me = self.clone();
        let task = tokio::spawn(async move {
            let mut backoff = FIRST_BACKOFF;
            loop {
                let started = Instant::now();
                match me.load_segment(key).await {
                    Ok(()) => break,
                    Err(e) => {
                        me.metrics
                            .segment_loads
                            .get_or_create(&QueryMetrics::outcome(false))
                            .inc();
                        tracing::warn!(
                            collection_id = key.0,
                            shard = key.1,
                            segment_id = key.2,
                            error = %e,
                            elapsed_ms = started.elapsed().as_millis() as u64,
                            retry_in_ms = backoff.as_millis() as u64,
                            "loading segment failed"
                        );
                        tokio::time::sleep(backoff).await;
                        backoff = next_backoff(backoff, me.config.retry_max_ms);
                    }
                }
            }
            me.loads.lock().remove(&key);
            me.update_gauges();
            me.bump();
        });
        loads.insert(key, task.abort_handle());
        drop(loads);
        self.update_gauges();
    }

    /// The hold of a shard, created on first use.
    fn hold_or_create(
        &self,
        key: ShardKey,
        schema: &Arc<ferrovus_core::schema::CollectionSchema>,
    ) -> Arc<ShardHold> {
        if let Some(h) = self.hold(key) {
            return h;
        }
        self.holds
            .write()
            .entry(key)
            .or_insert_with(|| Arc::new(ShardHold::new(key.0, key.1, schema.clone())))
            .clone()
    }

    /// The channel owner of a shard: from a delegation this node holds, else from the
    /// coordinator's routes (cached until a call on them fails).
    pub(super) async fn channel_route(&self, key: ShardKey) -> Result<ChannelRoute, ClusterError> {
        if let Some(d) = self
            .current_target()
            .delegations
            .values()
            .find(|d| (d.collection_id, d.shard) == key)
        {
            return Ok(d.channel.clone());
        }
        if let Some(r) = self.routes.lock().get(&key) {
            return Ok(r.clone());
        }
        let routes = self
            .nodes
            .coord()
            .routes(RoutesReq {
                collection_id: key.0,
            })
            .await?;
        let mut cache = self.routes.lock();
        for r in routes.channels {
            cache.insert((r.channel.collection_id, r.channel.shard), r);
        }
        cache.get(&key).cloned().ok_or_else(|| {
            ClusterError::Unavailable(format!(
                "the coordinator has no owner for channel {}/{}",
                key.0, key.1
            ))
        })
    }

    /// The streaming API of a channel owner; a failure of `call` on it drops the cached route
    /// and connection.
    pub(super) fn owner(
        &self,
        route: &ChannelRoute,
    ) -> Result<Arc<dyn StreamingApi>, ClusterError> {
        self.nodes.streaming(route.node, &route.addr)
    }

    pub(super) fn forget_route(&self, route: &ChannelRoute, err: &ClusterError) {
        if matches!(
            err,
            ClusterError::Unavailable(_)
                | ClusterError::WrongTerm { .. }
                | ClusterError::NotServing(_)
        ) {
            self.routes
                .lock()
                .remove(&(route.channel.collection_id, route.channel.shard));
            if matches!(err, ClusterError::Unavailable(_)) {
                self.nodes.forget(&route.addr);
            }
        }
    }

    /// Deletes of a shard after `after` (delta objects, then the owner's journal).
    pub(super) async fn pull_deltas(
        &self,
        route: &ChannelRoute,
        after: u64,
        hold: &ShardHold,
    ) -> Result<deltas::Pulled, ClusterError> {
        let owner = self.owner(route)?;
        let r = deltas::pull(&*self.objects, &*owner, route, after, &hold.deltas()).await;
        if let Err(e) = &r {
            self.forget_route(route, e);
        }
        self.metrics.delta_pulls.inc();
        r
    }

    /// One attempt at loading a segment; `Ok` also when it is no longer targeted.
    async fn load_segment(self: &Arc<Self>, key: SegKey) -> Result<(), ClusterError> {
        let (cid, shard, sid) = key;
        let _permit = self
            .load_permits
            .acquire()
            .await
            .map_err(|_| ClusterError::Unavailable("the query node is stopping".into()))?;
        let target = self.current_target();
        let Some(seg_target) = target.segments.get(&key).cloned() else {
            return Ok(()); // no longer wanted
        };
        let Some(coll) = target.collections.get(&cid).cloned() else {
            // Retried at the next target (the coordinator sends the record with it).
            tracing::warn!(
                collection_id = cid,
                segment_id = sid,
                "segment assigned without its collection record; not loading it"
            );
            return Ok(());
        };
        let meta = &seg_target.record.meta;
        tracing::info!(
            collection_id = cid,
            shard,
            segment_id = sid,
            rows = meta.num_rows,
            indexes = meta.indexes.len(),
            "loading segment"
        );
        let schema = Arc::new(coll.schema.clone());
        self.reserve(key, super::budget::predicted_bytes(&schema, meta))?;
        let loaded = self.load_reserved(key, &seg_target, &coll, schema).await;
        self.unreserve(key);
        loaded
    }

    /// The rest of [`Self::load_segment`], with the segment's memory reserved.
    async fn load_reserved(
        self: &Arc<Self>,
        key: SegKey,
        seg_target: &crate::api::SegmentTarget,
        coll: &crate::api::CollectionRecord,
        schema: Arc<ferrovus_core::schema::CollectionSchema>,
    ) -> Result<(), ClusterError> {
        let (cid, shard, sid) = key;
        let started = Instant::now();
        let meta = &seg_target.record.meta;
        let mut seg = SealedSegment::load(&*self.objects, &schema, meta).await?;

        // Indexes the collection still defines; one that fails to load is retried later by
        // the index reconciliation (the segment serves from its vectors until then).
        let mut attached = BTreeMap::new();
        for im in indexes::wanted(seg_target, coll) {
            match indexes::load_index(&*self.objects, &im.key).await {
                Ok(idx) => match seg.attach_index(im.field_id, im.index_id, Arc::new(idx)) {
                    Ok(()) => {
                        attached.insert(im.field_id, im.index_id);
                    }
                    Err(e) => tracing::warn!(
                        segment_id = sid,
                        index_id = im.index_id,
                        error = %e,
                        "index does not fit the segment"
                    ),
                },
                Err(e) => tracing::warn!(
                    segment_id = sid,
                    index_id = im.index_id,
                    key = %im.key,
                    error = %e,
                    "loading index failed; the segment serves without it for now"
                ),
            }
        }

        // Deletes after the segment's base timestamp.
        let hold = self.hold_or_create((cid, shard), &schema);
        hold.set_deltas(seg_target.deltas.clone());
        let route = self.channel_route((cid, shard)).await?;
        let pulled = self.pull_deltas(&route, meta.base_ts, &hold).await?;
        seg.apply_deltas(&pulled.entries);
        let mut reached = pulled.up_to;
        let mut delta_count = pulled.entries.len();

        // Join, with the watermark held still.
        let _pull = hold.pull.lock().await;
        if !self.current_target().segments.contains_key(&key) {
            return Ok(());
        }
        let watermark = hold.set.deltas_applied_up_to();
        if reached < watermark {
            let more = self.pull_deltas(&route, reached, &hold).await?;
            seg.apply_deltas(&more.entries);
            delta_count += more.entries.len();
            reached = more.up_to;
            if reached < watermark {
                return Err(ClusterError::Unavailable(format!(
                    "the owner of channel {}/{shard} answered deletes up to {reached}, the \
                     segments here are at {watermark}",
                    cid
                )));
            }
        }
        let rows = seg.num_rows();
        let deleted = seg.segment().deleted.count();
        let set = hold.set.clone();
        tokio::task::spawn_blocking(move || {
            let was_empty = set.segment_ids().is_empty();
            set.insert(seg);
            // A set that held nothing takes the new segment's watermark.
            if was_empty {
                set.apply_deltas(&[], reached);
            }
        })
        .await
        .map_err(|e| ClusterError::Internal(format!("joining segment {sid}: {e}")))?;
        hold.add(sid, rows, attached.clone());
        drop(_pull);
        self.update_gauges();

        self.metrics
            .segment_loads
            .get_or_create(&QueryMetrics::outcome(true))
            .inc();
        tracing::info!(
            collection_id = cid,
            shard,
            segment_id = sid,
            rows,
            deleted_rows = deleted,
            deltas_applied = delta_count,
            delta_objects_read = pulled.objects_read,
            deletes_up_to = reached,
            indexes = ?attached.values().collect::<Vec<_>>(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "segment loaded"
        );
        // Indexes recorded while it loaded.
        self.reconcile_indexes(Some(key));
        Ok(())
    }
}
