//! `data_sync`: a data node reports finished and running tasks and gets new ones (at most its
//! free slots). Results change the catalogue: an index is recorded on its segment; a compaction
//! result becomes a new flushed segment with `compacted_from`, its sources turn `Compacted`
//! (served until every replica serves the result, then removed by the reconciler). A result
//! that no longer fits the catalogue (segment gone, index dropped, source already replaced) is
//! discarded with its files.

use std::time::Instant;

use super::catalog::Edit;
use super::fence::store_error;
use super::gc::{GcJob, segment_objects};
use super::leader::Leader;
use super::tasks::{Running, TaskKey, candidates, describe};
use crate::api::{
    DataSyncReq, DataSyncResp, NodeId, SegmentRecord, SegmentState, Task, TaskKind, TaskOutput,
    TaskResult,
};
use crate::rpc::ClusterError;
use crate::session::RoleKind;
use ferrovus_core::segment::{SegmentIndexMeta, SegmentMeta};

fn output_objects(m: &SegmentMeta) -> Vec<String> {
    let mut out = vec![m.data_key.clone()];
    out.extend(m.pks_key.clone());
    out.extend(m.deletes_key.clone());
    out.extend(m.indexes.iter().map(|i| i.key.clone()));
    out
}

impl Leader {
    pub async fn data_sync(&self, req: DataSyncReq) -> Result<DataSyncResp, ClusterError> {
        self.check()?;
        self.rt
            .lock()
            .reported(RoleKind::Data, req.node, &req.addr, req.draining);
        let had_results = !req.finished.is_empty();
        for r in req.finished {
            self.apply_result(req.node, r).await?;
        }
        let mut cancel = {
            let mut rt = self.rt.lock();
            let mut cancel = rt.tasks.cancel.remove(&req.node).unwrap_or_default();
            for p in &req.running {
                match rt.tasks.running.get_mut(&p.id) {
                    Some(t) if t.node == req.node => t.fraction = p.fraction.clamp(0.0, 1.0),
                    _ => cancel.push(p.id),
                }
            }
            cancel.sort_unstable();
            cancel.dedup();
            cancel
        };
        if req.draining {
            return Ok(DataSyncResp {
                tasks: Vec::new(),
                cancel,
            });
        }
        let deadline = Instant::now() + self.wait_time(req.wait_ms);
        loop {
            let seen = self.versions().targets;
            let tasks = self.hand_out(req.node, req.slots).await?;
            if !tasks.is_empty() || !cancel.is_empty() || had_results || Instant::now() >= deadline
            {
                return Ok(DataSyncResp { tasks, cancel });
            }
            self.wait_for(deadline.saturating_duration_since(Instant::now()), |v| {
                v.targets > seen
            })
            .await?;
            cancel.extend(
                self.rt
                    .lock()
                    .tasks
                    .cancel
                    .remove(&req.node)
                    .unwrap_or_default(),
            );
        }
    }

    /// Up to `slots` new tasks for `node`, marked running.
    async fn hand_out(&self, node: NodeId, slots: u32) -> Result<Vec<Task>, ClusterError> {
        if slots == 0 {
            return Ok(Vec::new());
        }
        let cat = self.snapshot();
        let now = Instant::now();
        let picked = {
            let rt = self.rt.lock();
            if !rt.nodes.get(&node).is_some_and(|n| n.live) {
                return Ok(Vec::new()); // not a registered node (yet)
            }
            candidates(&cat, &rt, &self.core, now, rt.settled, slots as usize)
        };
        if picked.is_empty() {
            return Ok(Vec::new());
        }
        let compactions = picked
            .iter()
            .filter(|c| matches!(c.key, TaskKey::Compaction { .. }))
            .count() as u32;
        let mut next_target = if compactions > 0 {
            self.ids.alloc(compactions).await.map_err(store_error)?
        } else {
            0
        };
        let mut out = Vec::new();
        let mut rt = self.rt.lock();
        for mut c in picked {
            // Another data node may have taken it while the ids were allocated.
            if rt.tasks.running.values().any(|r| r.key == c.key) {
                continue;
            }
            if let TaskKind::Compaction {
                target_segment_id, ..
            } = &mut c.task.kind
            {
                *target_segment_id = next_target;
                next_target += 1;
            }
            let task = rt.tasks.start(node, c.key, c.task, now);
            tracing::info!(task = task.id, node, what = %describe(&task), "task handed out");
            out.push(task);
        }
        self.metrics
            .tasks_running
            .set(rt.tasks.running.len() as i64);
        Ok(out)
    }

    async fn apply_result(&self, node: NodeId, r: TaskResult) -> Result<(), ClusterError> {
        let Some(running) = self.rt.lock().tasks.finish(r.id, node) else {
            tracing::info!(task = r.id, node, "result of an unknown task ignored");
            if let Ok(out) = &r.outcome {
                self.gc(GcJob::Objects(match out {
                    TaskOutput::Index { .. } => Vec::new(), // may be a live index file
                    TaskOutput::Compacted { segment } => output_objects(segment),
                }));
            }
            return Ok(());
        };
        let kind = running.key.kind();
        let what = describe(&running.task);
        match r.outcome {
            Err(msg) => {
                tracing::warn!(task = r.id, node, %what, error = %msg, "task failed; retried later");
                let retry = std::time::Duration::from_millis(self.config.task_retry_ms);
                self.rt
                    .lock()
                    .tasks
                    .failed(running.key, Instant::now(), retry);
                self.metrics.task_finished(kind, "failed");
                self.touch();
            }
            Ok(out) => {
                let applied = match out {
                    TaskOutput::Index {
                        segment_id,
                        field_id,
                        index_id,
                        key,
                    } => {
                        self.record_index(&running, segment_id, field_id, index_id, key)
                            .await?
                    }
                    TaskOutput::Compacted { segment } => {
                        self.record_compaction(&running, segment).await?
                    }
                };
                self.rt.lock().tasks.succeeded(&running.key);
                self.metrics
                    .task_finished(kind, if applied { "done" } else { "discarded" });
                tracing::info!(task = r.id, node, %what, applied, "task done");
            }
        }
        Ok(())
    }

    async fn record_index(
        &self,
        running: &Running,
        segment_id: i64,
        field_id: i64,
        index_id: i64,
        key: String,
    ) -> Result<bool, ClusterError> {
        let g = self.lock().await?;
        let cat = self.snapshot();
        let cid = running.task.collection.id;
        let expected = matches!(&running.key, TaskKey::Index { segment_id: s, index_id: i, .. } if *s == segment_id && *i == index_id);
        let seg = cat.get(cid).and_then(|c| {
            let spec_ok = c
                .record
                .indexes
                .iter()
                .any(|s| s.index_id == index_id && s.field_id == field_id);
            c.segments
                .get(&segment_id)
                .filter(|s| spec_ok && c.is_live(s))
        });
        let Some(seg) = seg.filter(|_| expected) else {
            self.gc(GcJob::Objects(vec![key]));
            return Ok(false);
        };
        let mut seg = seg.clone();
        seg.meta.indexes.retain(|i| i.field_id != field_id);
        seg.meta.indexes.push(SegmentIndexMeta {
            field_id,
            index_id,
            key,
        });
        let mut e = Edit::new(&cat);
        e.put_segment(seg);
        self.commit(&g, e).await?;
        Ok(true)
    }

    async fn record_compaction(
        &self,
        running: &Running,
        segment: SegmentMeta,
    ) -> Result<bool, ClusterError> {
        let TaskKind::Compaction {
            partition_id,
            sources,
            target_segment_id,
            ..
        } = &running.task.kind
        else {
            self.gc(GcJob::Objects(output_objects(&segment)));
            return Ok(false);
        };
        let g = self.lock().await?;
        let cat = self.snapshot();
        let cid = running.task.collection.id;
        let shard = running.task.shard;
        let valid = cat.get(cid).filter(|c| {
            segment.segment_id == *target_segment_id
                && segment.partition_id == *partition_id
                && c.partition_alive(*partition_id)
                && !c.segments.contains_key(target_segment_id)
                && sources.iter().all(|m| {
                    c.segments
                        .get(&m.segment_id)
                        .is_some_and(|s| s.state == SegmentState::Flushed && s.shard == shard)
                })
        });
        let Some(c) = valid else {
            tracing::info!(
                target = segment.segment_id,
                "compaction result no longer applies; discarded"
            );
            self.gc(GcJob::Objects(output_objects(&segment)));
            return Ok(false);
        };
        let mut e = Edit::new(&cat);
        if segment.num_rows == 0 {
            // Every row was deleted: the sources simply go.
            let mut garbage = output_objects(&segment);
            for m in sources {
                if let Some(s) = c.segments.get(&m.segment_id) {
                    garbage.extend(segment_objects(s));
                }
                e.delete_segment(cid, m.segment_id);
            }
            self.commit(&g, e).await?;
            self.gc(GcJob::Objects(garbage));
            return Ok(true);
        }
        for m in sources {
            if let Some(s) = c.segments.get(&m.segment_id) {
                let mut s = s.clone();
                s.state = SegmentState::Compacted;
                e.put_segment(s);
            }
        }
        e.put_segment(SegmentRecord {
            collection_id: cid,
            shard,
            meta: segment,
            state: SegmentState::Flushed,
            compacted_from: sources.iter().map(|m| m.segment_id).collect(),
        });
        self.commit(&g, e).await?;
        Ok(true)
    }
}
