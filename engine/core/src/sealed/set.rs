//! The sealed segments of one (collection, shard) on a query node, read at a snapshot.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use parking_lot::RwLock;

use super::SealedSegment;
use crate::delta::Delta;
use crate::error::{CoreError, Result};
use crate::expr::Plan;
use crate::read::{self, PreparedSearch, SegmentHit, ShardHit};
use crate::schema::CollectionSchema;
use crate::shard::Rows;
use crate::value::PrimaryKey;
use crate::vindex::VectorIndex;

#[derive(Debug, Default)]
struct SetState {
    segments: BTreeMap<i64, SealedSegment>,
    /// Every delete of the shard's sealed rows up to here is applied to every segment.
    deltas_applied_up_to: u64,
}

/// Sealed segments of one shard, with one delete watermark.
#[derive(Debug)]
pub struct SegmentSet {
    collection_id: i64,
    shard: usize,
    schema: Arc<CollectionSchema>,
    pk_index: usize,
    state: RwLock<SetState>,
}

impl SegmentSet {
    pub fn new(collection_id: i64, shard: usize, schema: Arc<CollectionSchema>) -> Self {
        let pk_index = schema.fields.iter().position(|f| f.is_primary).unwrap_or(0);
        SegmentSet {
            collection_id,
            shard,
            schema,
            pk_index,
            state: RwLock::new(SetState::default()),
        }
    }

    pub fn collection_id(&self) -> i64 {
        self.collection_id
    }

    pub fn shard(&self) -> usize {
        self.shard
    }

    /// Every delete of the shard's sealed rows up to this timestamp is applied.
    pub fn deltas_applied_up_to(&self) -> u64 {
        self.state.read().deltas_applied_up_to
    }

    /// Add (or replace) a segment. It must already carry every delete of its rows up to the
    /// set's watermark: its own delete log covers up to its `base_ts`; apply the deltas in
    /// `(base_ts, deltas_applied_up_to]` before inserting it.
    pub fn insert(&self, segment: SealedSegment) {
        self.state.write().segments.insert(segment.id(), segment);
    }

    /// Remove segments (released, or replaced by a compacted one); returns those removed.
    pub fn remove(&self, segment_ids: &[i64]) -> Vec<SealedSegment> {
        let mut st = self.state.write();
        segment_ids
            .iter()
            .filter_map(|id| st.segments.remove(id))
            .collect()
    }

    pub fn segment_ids(&self) -> Vec<i64> {
        self.state.read().segments.keys().copied().collect()
    }

    pub fn contains(&self, segment_id: i64) -> bool {
        self.state.read().segments.contains_key(&segment_id)
    }

    /// Call `f` with every held segment, under the read lock (statistics, reports).
    pub fn for_each_segment(&self, mut f: impl FnMut(&SealedSegment)) {
        for seg in self.state.read().segments.values() {
            f(seg);
        }
    }

    pub fn memory_bytes(&self) -> usize {
        self.state
            .read()
            .segments
            .values()
            .map(SealedSegment::memory_bytes)
            .sum()
    }

    /// Rows of segments whose vectors (of some field) live only in an attached index.
    pub fn vectors_in_index_rows(&self) -> usize {
        self.state
            .read()
            .segments
            .values()
            .filter(|s| s.vectors_in_index())
            .map(SealedSegment::num_rows)
            .sum()
    }

    /// Apply the channel's deletes by key to every segment, and raise the watermark to
    /// `up_to` (the deltas are complete up to there).
    pub fn apply_deltas(&self, deltas: &[Delta], up_to: u64) {
        let mut st = self.state.write();
        for seg in st.segments.values_mut() {
            seg.apply_deltas(deltas);
        }
        st.deltas_applied_up_to = st.deltas_applied_up_to.max(up_to);
    }

    /// Attach an index to a segment, atomically for readers.
    pub fn attach_index(
        &self,
        segment_id: i64,
        field_id: i64,
        index_id: i64,
        index: Arc<VectorIndex>,
    ) -> Result<()> {
        let mut st = self.state.write();
        let seg = st
            .segments
            .get_mut(&segment_id)
            .ok_or_else(|| not_loaded(segment_id))?;
        seg.attach_index(field_id, index_id, index)
    }

    pub fn detach_index(&self, segment_id: i64, field_id: i64) {
        if let Some(seg) = self.state.write().segments.get_mut(&segment_id) {
            seg.detach_index(field_id);
        }
    }

    /// Top `k` hits per query over `segment_ids` at `snapshot`, best first.
    pub fn search(
        &self,
        req: &PreparedSearch<'_>,
        snapshot: u64,
        segment_ids: &[i64],
    ) -> Result<Vec<Vec<ShardHit>>> {
        let st = self.state.read();
        let segs = select(&st, snapshot, segment_ids)?;
        let mut per_query: Vec<Vec<Vec<SegmentHit>>> = vec![Vec::new(); req.num_queries];
        for (i, seg) in segs.iter().enumerate() {
            if !req.selects(seg.segment()) {
                continue;
            }
            let results = read::search_segment(seg.segment(), &self.schema, req, snapshot)?;
            for (lists, hits) in per_query.iter_mut().zip(results) {
                lists.push(
                    hits.into_iter()
                        .map(|(score, row)| SegmentHit {
                            score,
                            segment: i as u64,
                            row,
                        })
                        .collect(),
                );
            }
        }
        Ok(per_query
            .into_iter()
            .map(|lists| {
                read::merge_hits(req.metric, lists, req.k)
                    .into_iter()
                    .filter_map(|h| {
                        let seg = segs.get(h.segment as usize)?.segment();
                        let row = h.row as usize;
                        Some(ShardHit {
                            score: h.score,
                            pk: seg.data().primary_key(self.pk_index, row)?,
                            values: read::row_values(seg, row, req.output),
                        })
                    })
                    .collect()
            })
            .collect())
    }

    /// Rows of `segment_ids` matching `plan` at `snapshot` (or only their count).
    pub fn query(
        &self,
        plan: &Plan,
        partitions: &Option<HashSet<i64>>,
        output: &[usize],
        count_only: bool,
        snapshot: u64,
        segment_ids: &[i64],
    ) -> Result<(usize, Rows)> {
        if let Some(keys) = plan.primary_keys() {
            let out: &[usize] = if count_only { &[] } else { output };
            let rows = self.get(&keys, partitions, out, snapshot, segment_ids)?;
            return Ok((rows.len(), rows));
        }
        let st = self.state.read();
        let segs = select(&st, snapshot, segment_ids)?;
        let mut count = 0;
        let mut rows = Vec::new();
        for seg in segs.iter().map(|s| s.segment()) {
            if partitions
                .as_ref()
                .is_some_and(|p| !p.contains(&seg.partition_id))
            {
                continue;
            }
            if count_only {
                count += read::count_visible_matches(seg, plan, snapshot);
                continue;
            }
            read::for_each_visible_match(seg, plan, snapshot, |row| {
                count += 1;
                if let Some(pk) = seg.data().primary_key(self.pk_index, row) {
                    rows.push((pk, read::row_values(seg, row, output)));
                }
            });
        }
        Ok((count, rows))
    }

    /// The rows of the given keys visible at `snapshot` in `segment_ids` (each key once).
    pub fn get(
        &self,
        pks: &[PrimaryKey],
        partitions: &Option<HashSet<i64>>,
        output: &[usize],
        snapshot: u64,
        segment_ids: &[i64],
    ) -> Result<Rows> {
        let st = self.state.read();
        let segs = select(&st, snapshot, segment_ids)?;
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for pk in pks {
            if !seen.insert(pk) {
                continue;
            }
            for s in &segs {
                let seg = s.segment();
                if partitions
                    .as_ref()
                    .is_some_and(|p| !p.contains(&seg.partition_id))
                {
                    continue;
                }
                if let Some(row) = read::visible_row(seg, s.rows_of(pk), snapshot) {
                    out.push((pk.clone(), read::row_values(seg, row, output)));
                    break;
                }
            }
        }
        Ok(out)
    }
}

fn not_loaded(segment_id: i64) -> CoreError {
    CoreError::NotFound(format!("segment {segment_id} is not loaded here"))
}

/// The segments a read at `snapshot` covers; an error if one is not held or the deletes are not
/// applied up to the snapshot yet.
fn select<'a>(
    st: &'a SetState,
    snapshot: u64,
    segment_ids: &[i64],
) -> Result<Vec<&'a SealedSegment>> {
    if st.deltas_applied_up_to < snapshot {
        return Err(CoreError::Conflict(format!(
            "deletes are applied up to {}, the read is at {snapshot}: catch up first",
            st.deltas_applied_up_to
        )));
    }
    segment_ids
        .iter()
        .map(|id| st.segments.get(id).ok_or_else(|| not_loaded(*id)))
        .collect()
}
