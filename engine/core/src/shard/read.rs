//! The per-shard half of search, query and get: the shard's segments read at the shard's
//! applied timestamp, through the per-segment reads every segment holder shares
//! ([`crate::read`]).

use std::collections::HashSet;

use super::Shard;
use super::state::ShardState;
use crate::error::Result;
use crate::expr::Plan;
use crate::read::{self, PreparedSearch, SegmentHit, ShardHit};
use crate::segment::Segment;
use crate::value::{PrimaryKey, Value};

/// The result of a shard read, the snapshot (the shard's applied timestamp) it was read at, and
/// the sealed segments it covered.
#[derive(Debug, Clone)]
pub struct ShardRead<T> {
    pub value: T,
    pub snapshot: u64,
    /// Ids of the sealed segments held here that the read covered: every one not excluded (one
    /// of a partition the read does not select counts as covered: it holds no candidate).
    pub sealed_searched: Vec<i64>,
}

/// Segments a read covers: growing ones and held sealed ones not in `exclude`.
fn covered<'a>(
    st: &'a ShardState,
    exclude: &'a HashSet<i64>,
) -> impl Iterator<Item = &'a Segment> + 'a {
    st.segments
        .values()
        .filter(|s| s.segment_id().is_none_or(|id| !exclude.contains(&id)))
}

fn sealed_ids<'a>(segments: impl Iterator<Item = &'a Segment>) -> Vec<i64> {
    segments.filter_map(Segment::segment_id).collect()
}

/// Rows as (primary key, output values).
pub type Rows = Vec<(PrimaryKey, Vec<Value>)>;

fn in_partitions(seg: &Segment, partitions: &Option<HashSet<i64>>) -> bool {
    partitions
        .as_ref()
        .is_none_or(|p| p.contains(&seg.partition_id))
}

impl Shard {
    /// Primary keys of visible rows matching `plan` (for delete by filter).
    pub fn matching_pks(
        &self,
        plan: &Plan,
        partitions: &Option<HashSet<i64>>,
    ) -> ShardRead<Vec<PrimaryKey>> {
        let st = self.inner.state.read();
        let snapshot = st.applied_ts;
        let mut out = Vec::new();
        for seg in st.segments.values() {
            if in_partitions(seg, partitions) {
                read::for_each_visible_match(seg, plan, snapshot, |row| {
                    out.extend(seg.data().primary_key(self.inner.pk_index, row));
                });
            }
        }
        ShardRead {
            value: out,
            snapshot,
            sealed_searched: sealed_ids(st.segments.values()),
        }
    }

    /// Top `k` hits per query in this shard's growing and held sealed segments, except the
    /// sealed segments in `exclude` (served elsewhere), best first, with output values.
    pub fn search(
        &self,
        req: &PreparedSearch<'_>,
        exclude: &HashSet<i64>,
    ) -> Result<ShardRead<Vec<Vec<ShardHit>>>> {
        let st = self.inner.state.read();
        let snapshot = st.applied_ts;
        let mut per_query: Vec<Vec<Vec<SegmentHit>>> = vec![Vec::new(); req.num_queries];
        for seg in covered(&st, exclude).filter(|s| req.selects(s)) {
            let results = read::search_segment(seg, &self.inner.schema, req, snapshot)?;
            for (lists, hits) in per_query.iter_mut().zip(results) {
                lists.push(
                    hits.into_iter()
                        .map(|(score, row)| SegmentHit {
                            score,
                            segment: seg.handle,
                            row,
                        })
                        .collect(),
                );
            }
        }
        let value = per_query
            .into_iter()
            .map(|lists| {
                read::merge_hits(req.metric, lists, req.k)
                    .into_iter()
                    .filter_map(|h| resolve_hit(&st, self.inner.pk_index, req.output, h))
                    .collect()
            })
            .collect();
        Ok(ShardRead {
            value,
            snapshot,
            sealed_searched: sealed_ids(covered(&st, exclude)),
        })
    }

    /// Rows matching `plan` (except in the sealed segments in `exclude`): (pk, output values),
    /// or only the count when `count_only`.
    pub fn query(
        &self,
        plan: &Plan,
        partitions: &Option<HashSet<i64>>,
        output: &[usize],
        count_only: bool,
        exclude: &HashSet<i64>,
    ) -> ShardRead<(usize, Rows)> {
        if let Some(keys) = plan.primary_keys() {
            let out: &[usize] = if count_only { &[] } else { output };
            let got = self.get(&keys, partitions, out, exclude);
            return ShardRead {
                value: (got.value.len(), got.value),
                snapshot: got.snapshot,
                sealed_searched: got.sealed_searched,
            };
        }
        let st = self.inner.state.read();
        let snapshot = st.applied_ts;
        let mut count = 0;
        let mut rows = Vec::new();
        for seg in covered(&st, exclude) {
            if !in_partitions(seg, partitions) {
                continue;
            }
            if count_only {
                count += read::count_visible_matches(seg, plan, snapshot);
                continue;
            }
            read::for_each_visible_match(seg, plan, snapshot, |row| {
                count += 1;
                if let Some(pk) = seg.data().primary_key(self.inner.pk_index, row) {
                    rows.push((pk, read::row_values(seg, row, output)));
                }
            });
        }
        ShardRead {
            value: (count, rows),
            snapshot,
            sealed_searched: sealed_ids(covered(&st, exclude)),
        }
    }

    /// The visible rows of the given primary keys (each key once, in the given order), except
    /// rows of released segments and of the sealed segments in `exclude` (served elsewhere).
    pub fn get(
        &self,
        pks: &[PrimaryKey],
        partitions: &Option<HashSet<i64>>,
        output: &[usize],
        exclude: &HashSet<i64>,
    ) -> ShardRead<Rows> {
        let st = self.inner.state.read();
        let snapshot = st.applied_ts;
        let mut rows = Vec::new();
        let mut seen = HashSet::new();
        for pk in pks {
            if !seen.insert(pk) {
                continue;
            }
            let Some(loc) = st.pk_map.get(pk) else {
                continue;
            };
            let Some(seg) = st.segments.get(&loc.handle) else {
                continue;
            };
            if seg.segment_id().is_some_and(|id| exclude.contains(&id)) {
                continue;
            }
            if in_partitions(seg, partitions)
                && let Some(row) = read::visible_row(seg, [loc.row as usize], snapshot)
            {
                rows.push((pk.clone(), read::row_values(seg, row, output)));
            }
        }
        ShardRead {
            value: rows,
            snapshot,
            sealed_searched: sealed_ids(covered(&st, exclude)),
        }
    }
}

fn resolve_hit(
    st: &ShardState,
    pk_index: usize,
    output: &[usize],
    h: SegmentHit,
) -> Option<ShardHit> {
    let seg = st.segments.get(&h.segment)?;
    let row = h.row as usize;
    Some(ShardHit {
        score: h.score,
        pk: seg.data().primary_key(pk_index, row)?,
        values: read::row_values(seg, row, output),
    })
}
