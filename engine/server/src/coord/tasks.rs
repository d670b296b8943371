//! Data-node work: which index builds and compactions the catalogue calls for
//! ([`candidates`]), and the bookkeeping of the tasks handed out ([`Tasks`]: running, failed
//! with back-off, cancelled). Tasks are not persisted: what is missing is always derived from
//! the catalogue, so a task lost with its node (or with a deposed leader) is simply handed out
//! again.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use ferrovus_core::CoreConfig;
use ferrovus_core::delta::DeltaObjectMeta;
use ferrovus_core::keys;
use ferrovus_core::request::IndexSpec;
use ferrovus_core::segment::SegmentMeta;

use super::catalog::{Catalog, CollectionState, has_index};
use super::runtime::Runtime;
use crate::api::{CollectionRecord, NodeId, Task, TaskKind};

/// What a task does, to find duplicates: one task per key at a time.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TaskKey {
    Index {
        collection_id: i64,
        segment_id: i64,
        index_id: i64,
    },
    Compaction {
        collection_id: i64,
        shard: u32,
        partition_id: i64,
    },
}

impl TaskKey {
    pub fn kind(&self) -> &'static str {
        match self {
            TaskKey::Index { .. } => "index",
            TaskKey::Compaction { .. } => "compaction",
        }
    }
}

/// A task handed to a data node.
#[derive(Debug, Clone)]
pub struct Running {
    pub node: NodeId,
    pub key: TaskKey,
    pub task: Task,
    pub started: Instant,
    pub fraction: f32,
}

impl Running {
    /// Sources of a compaction.
    pub fn sources(&self) -> Vec<i64> {
        match &self.task.kind {
            TaskKind::Compaction { sources, .. } => sources.iter().map(|m| m.segment_id).collect(),
            TaskKind::IndexBuild { .. } => vec![],
        }
    }
}

/// The tasks of a leader.
#[derive(Debug)]
pub struct Tasks {
    next_id: u64,
    pub running: BTreeMap<u64, Running>,
    /// Failures in a row and when the key may be handed out again.
    failures: HashMap<TaskKey, (u32, Instant)>,
    /// Tasks to cancel, per node (told at its next sync).
    pub cancel: BTreeMap<NodeId, Vec<u64>>,
}

impl Tasks {
    /// Task ids start at `first_id` (the leader's first timestamp: ids never repeat across
    /// leaders).
    pub fn new(first_id: u64) -> Self {
        Tasks {
            next_id: first_id,
            running: BTreeMap::new(),
            failures: HashMap::new(),
            cancel: BTreeMap::new(),
        }
    }

    fn busy(&self) -> (BTreeSet<&TaskKey>, BTreeSet<i64>) {
        let keys = self.running.values().map(|r| &r.key).collect();
        let compacting = self.running.values().flat_map(Running::sources).collect();
        (keys, compacting)
    }

    fn may_start(&self, key: &TaskKey, now: Instant) -> bool {
        self.failures.get(key).is_none_or(|(_, at)| *at <= now)
    }

    pub fn start(&mut self, node: NodeId, key: TaskKey, mut task: Task, now: Instant) -> Task {
        let id = self.next_id;
        self.next_id += 1;
        task.id = id;
        self.running.insert(
            id,
            Running {
                node,
                key,
                task: task.clone(),
                started: now,
                fraction: 0.0,
            },
        );
        task
    }

    /// Removes a finished task reported by `node`; `None` if unknown or someone else's.
    pub fn finish(&mut self, id: u64, node: NodeId) -> Option<Running> {
        match self.running.get(&id) {
            Some(r) if r.node == node => self.running.remove(&id),
            _ => None,
        }
    }

    pub fn failed(&mut self, key: TaskKey, now: Instant, retry: Duration) {
        let e = self.failures.entry(key).or_insert((0, now));
        e.0 = e.0.saturating_add(1);
        let factor = 1u32 << (e.0 - 1).min(4);
        e.1 = now + retry * factor;
    }

    pub fn succeeded(&mut self, key: &TaskKey) {
        self.failures.remove(key);
    }

    /// Forgets the tasks of a node that went away (they are handed out again).
    pub fn drop_node(&mut self, node: NodeId) -> Vec<Running> {
        let ids: Vec<u64> = self
            .running
            .iter()
            .filter(|(_, r)| r.node == node)
            .map(|(id, _)| *id)
            .collect();
        self.cancel.remove(&node);
        ids.iter()
            .filter_map(|id| self.running.remove(id))
            .collect()
    }

    /// Cancels the tasks running longer than `timeout` (handed out again; the node is told).
    pub fn expire(&mut self, now: Instant, timeout: Duration) -> Vec<Running> {
        let ids: Vec<u64> = self
            .running
            .iter()
            .filter(|(_, r)| r.started + timeout <= now)
            .map(|(id, _)| *id)
            .collect();
        let mut out = Vec::new();
        for id in ids {
            if let Some(r) = self.running.remove(&id) {
                self.cancel.entry(r.node).or_default().push(id);
                out.push(r);
            }
        }
        out
    }

    /// The earliest instant a running task times out.
    pub fn next_timeout(&self, timeout: Duration) -> Option<Instant> {
        self.running.values().map(|r| r.started + timeout).min()
    }
}

/// A task the catalogue calls for (its id is given when handed out; a compaction's target
/// segment id is allocated then).
#[derive(Debug, Clone)]
pub struct Candidate {
    pub key: TaskKey,
    pub task: Task,
}

fn index_candidates(
    c: &CollectionState,
    busy: &BTreeSet<&TaskKey>,
    rt: &Runtime,
    now: Instant,
    out: &mut Vec<Candidate>,
    limit: usize,
) {
    let specs: Vec<&IndexSpec> = c.built_specs().collect();
    if specs.is_empty() {
        return;
    }
    for s in c.segments.values().filter(|s| c.is_live(s)) {
        for spec in &specs {
            if out.len() >= limit {
                return;
            }
            if has_index(s, spec) {
                continue;
            }
            let key = TaskKey::Index {
                collection_id: c.id(),
                segment_id: s.id(),
                index_id: spec.index_id,
            };
            if busy.contains(&key) || !rt.tasks.may_start(&key, now) {
                continue;
            }
            let index_key = keys::segment_index(
                c.id(),
                s.shard as usize,
                s.id(),
                spec.field_id,
                spec.index_id,
            );
            out.push(Candidate {
                key,
                task: Task {
                    id: 0,
                    collection: c.record.clone(),
                    shard: s.shard,
                    kind: TaskKind::IndexBuild {
                        segment: Box::new(s.meta.clone()),
                        field_id: spec.field_id,
                        spec: (*spec).clone(),
                        index_key,
                    },
                },
            });
        }
    }
}

/// Segments of one (shard, partition) to compact, at the channel's last checkpoint.
struct Group<'a> {
    shard: u32,
    partition_id: i64,
    segments: Vec<&'a SegmentMeta>,
    snapshot_ts: u64,
    deltas: &'a [DeltaObjectMeta],
}

fn compaction_groups<'a>(
    c: &'a CollectionState,
    rt: &Runtime,
    compacting: &BTreeSet<i64>,
    core: &CoreConfig,
) -> Vec<Group<'a>> {
    let mut out = Vec::new();
    for ch in &c.channels {
        let Some(ckpt) = &ch.checkpoint else {
            continue;
        };
        let shard = ch.channel.shard;
        let retained = ch
            .node
            .map(|n| rt.retained(n, ch.channel))
            .unwrap_or_default();
        let mut by_partition: BTreeMap<i64, Vec<&SegmentMeta>> = BTreeMap::new();
        for s in c.live_segments(shard) {
            let m = &s.meta;
            // Settled (its own sources gone), not held by the channel owner, not in a running
            // compaction, and covered by the snapshot.
            if c.sources_present(s)
                || retained.contains(&m.segment_id)
                || compacting.contains(&m.segment_id)
                || m.base_ts > ckpt.applied_ts
            {
                continue;
            }
            let small = m.num_rows < core.compaction_small_rows;
            let deleted = rt.deleted_rows(c.id(), m.segment_id);
            let dirty = m.num_rows > 0
                && deleted as f64 / m.num_rows as f64 > core.compaction_deleted_ratio;
            if small || dirty {
                by_partition.entry(m.partition_id).or_default().push(m);
            }
        }
        for (partition_id, segments) in by_partition {
            let single_dirty = segments.len() == 1 && {
                let m = segments[0];
                m.num_rows > 0
                    && rt.deleted_rows(c.id(), m.segment_id) as f64 / m.num_rows as f64
                        > core.compaction_deleted_ratio
            };
            if segments.len() >= 2 || single_dirty {
                out.push(Group {
                    shard,
                    partition_id,
                    segments,
                    snapshot_ts: ckpt.applied_ts,
                    deltas: &ckpt.deltas,
                });
            }
        }
    }
    out
}

/// Up to `limit` tasks the catalogue calls for that are not running (nor backing off after a
/// failure): index builds first (they gate loading), then compactions (only when
/// `compactions` — the leader has settled and knows what streaming and query nodes hold).
pub fn candidates(
    cat: &Catalog,
    rt: &Runtime,
    core: &CoreConfig,
    now: Instant,
    compactions: bool,
    limit: usize,
) -> Vec<Candidate> {
    let (busy, compacting) = rt.tasks.busy();
    let mut out = Vec::new();
    for c in cat.collections.values() {
        index_candidates(c, &busy, rt, now, &mut out, limit);
        if out.len() >= limit {
            return out;
        }
    }
    if !compactions {
        return out;
    }
    for c in cat.collections.values() {
        for g in compaction_groups(c, rt, &compacting, core) {
            if out.len() >= limit {
                return out;
            }
            let key = TaskKey::Compaction {
                collection_id: c.id(),
                shard: g.shard,
                partition_id: g.partition_id,
            };
            if busy.contains(&key) || !rt.tasks.may_start(&key, now) {
                continue;
            }
            out.push(Candidate {
                key,
                task: Task {
                    id: 0,
                    collection: c.record.clone(),
                    shard: g.shard,
                    kind: TaskKind::Compaction {
                        partition_id: g.partition_id,
                        sources: g.segments.into_iter().cloned().collect(),
                        deltas: g.deltas.to_vec(),
                        snapshot_ts: g.snapshot_ts,
                        target_segment_id: 0,
                    },
                },
            });
        }
    }
    out
}

/// The record a task was built from (for logs).
pub fn describe(task: &Task) -> String {
    let c: &CollectionRecord = &task.collection;
    match &task.kind {
        TaskKind::IndexBuild { segment, spec, .. } => format!(
            "index {} of segment {} ({}/{})",
            spec.index_name, segment.segment_id, c.name, task.shard
        ),
        TaskKind::Compaction {
            sources,
            target_segment_id,
            ..
        } => format!(
            "compaction of {:?} into {} ({}/{})",
            sources.iter().map(|s| s.segment_id).collect::<Vec<_>>(),
            target_segment_id,
            c.name,
            task.shard
        ),
    }
}
