//! Vector search of one segment at a snapshot, and merging of hit lists (per segment, per
//! shard).

use std::collections::HashSet;

use super::Visibility;
use crate::error::{CoreError, Result};
use crate::expr::Plan;
use crate::request::MetricType;
use crate::schema::CollectionSchema;
use crate::segment::Segment;
use crate::value::{PrimaryKey, Value};
use crate::vindex::{self, Bitset};

/// A search prepared against the schema (shared by all shards and segments).
pub struct PreparedSearch<'a> {
    pub field_index: usize,
    pub metric: MetricType,
    pub queries: &'a [f32],
    pub num_queries: usize,
    pub k: usize,
    pub ef: usize,
    pub plan: &'a Plan,
    pub partitions: Option<HashSet<i64>>,
    pub output: &'a [usize],
    pub ignore_growing: bool,
    pub radius: Option<f32>,
    pub range_filter: Option<f32>,
}

impl PreparedSearch<'_> {
    /// Whether the search reads `seg` at all (partition filter, `ignore_growing`).
    pub fn selects(&self, seg: &Segment) -> bool {
        self.partitions
            .as_ref()
            .is_none_or(|p| p.contains(&seg.partition_id))
            && (!self.ignore_growing || seg.is_sealed())
    }
}

/// One search hit with the requested output values already extracted.
#[derive(Debug, Clone)]
pub struct ShardHit {
    pub score: f32,
    pub pk: PrimaryKey,
    pub values: Vec<Value>,
}

/// A hit inside one segment (segment named by its holder's handle or id).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SegmentHit {
    pub score: f32,
    pub segment: u64,
    pub row: u32,
}

/// Anything ranked by a score.
pub trait Scored {
    fn score(&self) -> f32;
}

impl Scored for ShardHit {
    fn score(&self) -> f32 {
        self.score
    }
}

impl Scored for SegmentHit {
    fn score(&self) -> f32 {
        self.score
    }
}

/// The best `k` of several hit lists (each from one segment or one shard), best first. Equal
/// scores keep the order of the lists, so merging is deterministic.
pub fn merge_hits<H: Scored>(metric: MetricType, lists: Vec<Vec<H>>, k: usize) -> Vec<H> {
    let mut all: Vec<H> = lists.into_iter().flatten().collect();
    all.sort_by(|a, b| rank(metric, a.score(), b.score()));
    all.truncate(k);
    all
}

fn rank(metric: MetricType, a: f32, b: f32) -> std::cmp::Ordering {
    let o = a.partial_cmp(&b).unwrap_or(std::cmp::Ordering::Equal);
    if metric.higher_is_better() {
        o.reverse()
    } else {
        o
    }
}

/// Milvus range search: L2 keeps `range_filter <= d < radius`; IP/COSINE keep
/// `radius < s <= range_filter`.
fn in_range(metric: MetricType, s: f32, radius: f32, range_filter: Option<f32>) -> bool {
    if metric.higher_is_better() {
        s > radius && range_filter.is_none_or(|rf| s <= rf)
    } else {
        s < radius && range_filter.is_none_or(|rf| s >= rf)
    }
}

/// Top `k` hits of one segment per query at `snapshot`, best first, as `(score, row)`: rows
/// visible at the snapshot that match the filter (and the range, for a range search). Uses the
/// segment's index for the field when its metric matches, exact search otherwise.
pub fn search_segment(
    seg: &Segment,
    schema: &CollectionSchema,
    req: &PreparedSearch<'_>,
    snapshot: u64,
) -> Result<Vec<Vec<(f32, u32)>>> {
    let empty = || vec![Vec::new(); req.num_queries];
    let field = schema
        .fields
        .get(req.field_index)
        .ok_or_else(|| CoreError::Internal(format!("no field {}", req.field_index)))?;
    let vis = Visibility::new(seg, snapshot);
    if vis.none_visible() {
        return Ok(empty());
    }
    let filter = allowed_rows(seg, req.plan, &vis);
    if filter.as_ref().is_some_and(|f| f.count_ones() == 0) {
        return Ok(empty());
    }
    let mut results = match seg.indexes.get(&field.field_id) {
        Some((_, idx)) if idx.metric() == req.metric => {
            idx.search(req.queries, req.k, req.ef, filter.as_ref())?
        }
        _ => {
            let vectors = seg.vectors(req.field_index)?;
            vindex::flat_search(
                &vectors,
                field.dim(),
                req.metric,
                req.queries,
                req.k,
                filter.as_ref(),
            )?
        }
    };
    results.resize_with(req.num_queries, Vec::new);
    Ok(results
        .into_iter()
        .map(|hits| {
            hits.into_iter()
                .filter(|(_, s)| {
                    req.radius
                        .is_none_or(|r| in_range(req.metric, *s, r, req.range_filter))
                })
                .map(|(row, score)| (score, row))
                .collect()
        })
        .collect())
}

/// Rows of `seg` visible at the snapshot that match `plan`; `None` when every row qualifies.
fn allowed_rows(seg: &Segment, plan: &Plan, vis: &Visibility<'_>) -> Option<Bitset> {
    let d = seg.data();
    let n = d.num_rows();
    let all = plan.is_match_all();
    if all && vis.all_visible() {
        return None;
    }
    if all && vis.visible_count_fast().is_some() {
        // Only the delete bitmap matters: live = not deleted, word by word.
        let mut live = seg.deleted.to_bitset(n);
        live.negate();
        return Some(live);
    }
    let mut bits = Bitset::new(n);
    for row in 0..n {
        if vis.visible(row) && (all || plan.eval(&d.row(row))) {
            bits.set(row, true);
        }
    }
    Some(bits)
}
