//! The reconciler: one task per leader that brings the catalogue and the published
//! distributions in line with the nodes, after every change (a kick) and at timer deadlines
//! (a lost node's grace, a task's timeout, the settle timeout). A round, under the catalogue
//! write lock:
//! 1. settle: after a takeover, wait until every live query node reported (or the settle
//!    timeout) before publishing distributions;
//! 2. channels ([`plan_channels`]) and replicas ([`plan_replicas`]), persisted;
//! 3. distributions ([`compute_dists`]), in memory;
//! 4. clean-up, persisted, objects collected in the background: sources of compactions every
//!    replica serves the result of (or of unloaded collections), segments of dropped
//!    partitions, index files of dropped indexes, dropped collections once their channels
//!    closed;
//! 5. tasks past their timeout are cancelled (and handed out again).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::assign::plan_channels;
use super::catalog::{Catalog, Edit, MAX_TXN_OPS};
use super::dist::compute_dists;
use super::gc::{GcJob, segment_objects};
use super::leader::{Leader, WriteGuard};
use super::placement::plan_replicas;
use super::runtime::NodeView;
use crate::rpc::ClusterError;
use crate::session::RoleKind;

/// The longest a reconciler sleeps without a kick.
const TICK: Duration = Duration::from_secs(1);
/// How long a dropped collection's objects wait for its channels to close.
const DROP_CLOSE_WAIT: Duration = Duration::from_secs(30);

impl Leader {
    pub(super) async fn reconcile_loop(self: Arc<Self>) {
        let mut backoff = Duration::from_millis(100);
        loop {
            if self.is_stopped() {
                return;
            }
            let wake = match self.reconcile().await {
                Ok(()) => {
                    backoff = Duration::from_millis(100);
                    self.next_wake()
                }
                Err(ClusterError::NotLeader { .. }) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "reconciliation failed; retrying");
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    Instant::now() + backoff
                }
            };
            tokio::select! {
                _ = self.stopped() => return,
                _ = self.kicked() => {}
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
        }
    }

    fn next_wake(&self) -> Instant {
        let now = Instant::now();
        let rt = self.rt.lock();
        let view = rt.view(now, self.grace());
        let timeout = Duration::from_millis(self.config.task_timeout_ms);
        let settle = (!rt.settled)
            .then(|| rt.took_over + Duration::from_millis(self.config.settle_timeout_ms));
        [
            Some(now + TICK),
            view.next_expiry(),
            rt.tasks.next_timeout(timeout),
            settle,
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(now + TICK)
    }

    /// One reconciliation round (see the module docs).
    pub async fn reconcile(&self) -> Result<(), ClusterError> {
        let g = self.lock().await?;
        let view = self.view();
        self.settle(&view);
        self.reconcile_channels(&g, &view).await?;
        self.reconcile_replicas(&g, &view).await?;
        self.publish_dists(&view);
        self.cleanup(&g, &view).await?;
        self.expire_tasks();
        Ok(())
    }

    fn settle(&self, view: &NodeView) {
        let mut rt = self.rt.lock();
        if rt.settled {
            return;
        }
        let all_reported = view
            .nodes
            .values()
            .filter(|n| n.role == RoleKind::Query && n.live)
            .all(|n| n.reported);
        let timed_out =
            view.now >= rt.took_over + Duration::from_millis(self.config.settle_timeout_ms);
        if all_reported || timed_out {
            rt.settled = true;
            drop(rt);
            tracing::info!(all_reported, "settled: distributions are published");
            self.set_settled();
        }
    }

    async fn reconcile_channels(
        &self,
        g: &WriteGuard<'_>,
        view: &NodeView,
    ) -> Result<(), ClusterError> {
        let changes = plan_channels(&self.snapshot(), view);
        for chunk in changes.chunks(MAX_TXN_OPS) {
            let mut e = Edit::new(&self.snapshot());
            for ch in chunk {
                e.put_channel(ch.clone());
            }
            self.commit(g, e).await?;
            self.metrics.channel_moves.inc_by(chunk.len() as u64);
        }
        Ok(())
    }

    async fn reconcile_replicas(
        &self,
        g: &WriteGuard<'_>,
        view: &NodeView,
    ) -> Result<(), ClusterError> {
        let plan = {
            let cat = self.snapshot();
            let rt = self.rt.lock();
            plan_replicas(&cat, view, &rt)
        };
        for chunk in plan.changed.chunks(MAX_TXN_OPS) {
            let mut e = Edit::new(&self.snapshot());
            for r in chunk {
                e.put_replica(r.clone());
            }
            self.commit(g, e).await?;
        }
        self.metrics.segment_moves.inc_by(plan.moves as u64);
        Ok(())
    }

    fn publish_dists(&self, view: &NodeView) {
        let cat = self.snapshot();
        let mut rt = self.rt.lock();
        if !rt.settled {
            return;
        }
        let mut changed = 0;
        let dists = compute_dists(&cat, &rt, view, || {
            changed += 1;
            self.touch()
        });
        let removed = rt.dists.keys().any(|k| !dists.contains_key(k));
        rt.dists = dists;
        rt.acks
            .retain(|k, _| cat.get(k.0).is_some_and(|c| c.replicas.contains_key(&k.2)));
        if removed {
            self.touch();
        }
        if changed > 0 {
            tracing::debug!(changed, "distributions published");
        }
    }

    async fn cleanup(&self, g: &WriteGuard<'_>, view: &NodeView) -> Result<(), ClusterError> {
        loop {
            let cat = self.snapshot();
            let (e, garbage) = self.cleanup_batch(&cat);
            if e.is_empty() {
                break;
            }
            self.commit(g, e).await?;
            self.gc(GcJob::Objects(garbage));
        }
        self.collect_dropped(view);
        Ok(())
    }

    /// At most [`MAX_TXN_OPS`] records to delete or update, and the objects that become
    /// garbage with them.
    fn cleanup_batch(&self, cat: &Catalog) -> (Edit, Vec<String>) {
        let mut e = Edit::new(cat);
        let mut garbage = Vec::new();
        let rt = self.rt.lock();
        'collections: for c in cat.collections.values() {
            for s in c.segments.values() {
                if e.len() >= MAX_TXN_OPS {
                    break 'collections;
                }
                // A compaction result every replica serves: its sources go.
                if !s.compacted_from.is_empty() && c.sources_present(s) && c.is_live(s) {
                    let done = !c.is_loaded()
                        || (rt.settled
                            && c.replicas
                                .keys()
                                .all(|rid| rt.serves_acked((c.id(), s.shard, *rid), s.id())));
                    if done {
                        for src in &s.compacted_from {
                            if let Some(old) = c.segments.get(src) {
                                tracing::info!(
                                    collection_id = c.id(),
                                    segment = src,
                                    replaced_by = s.id(),
                                    "replaced segment removed"
                                );
                                garbage.extend(segment_objects(old));
                                e.delete_segment(c.id(), *src);
                            }
                        }
                    }
                    continue;
                }
                if !c.partition_alive(s.meta.partition_id) {
                    tracing::info!(
                        collection_id = c.id(),
                        segment = s.id(),
                        partition = s.meta.partition_id,
                        "segment of a dropped partition removed"
                    );
                    garbage.extend(segment_objects(s));
                    e.delete_segment(c.id(), s.id());
                    continue;
                }
                let stale: Vec<String> = s
                    .meta
                    .indexes
                    .iter()
                    .filter(|i| !c.record.indexes.iter().any(|x| x.index_id == i.index_id))
                    .map(|i| i.key.clone())
                    .collect();
                if !stale.is_empty() {
                    let mut seg = s.clone();
                    seg.meta
                        .indexes
                        .retain(|i| c.record.indexes.iter().any(|x| x.index_id == i.index_id));
                    garbage.extend(stale);
                    e.put_segment(seg);
                }
            }
        }
        (e, garbage)
    }

    /// Starts collecting dropped collections whose channels no streaming node reports any
    /// more (or after a while).
    fn collect_dropped(&self, view: &NodeView) {
        let cat = self.snapshot();
        let mut rt = self.rt.lock();
        for (cid, d) in &cat.dropped {
            if rt.gc_started.contains(cid) {
                continue;
            }
            let seen = *rt.dropped_seen.entry(*cid).or_insert(view.now);
            let open = rt
                .channels
                .iter()
                .filter(|(n, _)| view.nodes.get(n).is_some_and(|s| s.live))
                .flat_map(|(_, sts)| sts)
                .any(|s| s.channel.collection_id == *cid);
            if open && view.now < seen + DROP_CLOSE_WAIT {
                continue;
            }
            rt.gc_started.insert(*cid);
            self.gc(GcJob::Collection(d.clone()));
        }
        rt.dropped_seen
            .retain(|cid, _| cat.dropped.contains_key(cid));
        rt.gc_started.retain(|cid| cat.dropped.contains_key(cid));
    }

    fn expire_tasks(&self) {
        let timeout = Duration::from_millis(self.config.task_timeout_ms);
        let expired = self.rt.lock().tasks.expire(Instant::now(), timeout);
        for r in &expired {
            tracing::warn!(task = r.task.id, node = r.node, what = %super::tasks::describe(&r.task), "task timed out: cancelled and handed out again");
            self.metrics.task_finished(r.key.kind(), "timeout");
        }
        if !expired.is_empty() {
            self.touch();
        }
        self.metrics
            .tasks_running
            .set(self.rt.lock().tasks.running.len() as i64);
    }
}
