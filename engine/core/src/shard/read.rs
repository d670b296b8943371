//! The per-shard half of search and query: every live row of the shard's segments.

use std::collections::HashSet;

use super::state::ShardState;
use super::{PreparedSearch, Shard, ShardHit};
use crate::error::Result;
use crate::expr::Plan;
use crate::request::MetricType;
use crate::segment::Segment;
use crate::value::PrimaryKey;
use crate::vindex::{self, Bitset};

impl Shard {
    /// Primary keys of live rows matching `plan` (for delete by filter).
    pub fn matching_pks(&self, plan: &Plan, partitions: &Option<HashSet<i64>>) -> Vec<PrimaryKey> {
        let st = self.inner.state.read();
        let mut out = Vec::new();
        for_each_live_match(&st, plan, partitions, |seg, row| {
            if let Some(pk) = seg.data().primary_key(self.inner.pk_index, row) {
                out.push(pk);
            }
        });
        out
    }

    /// Top `k` hits per query in this shard, best first, with output values.
    pub fn search(&self, req: &PreparedSearch<'_>) -> Result<Vec<Vec<ShardHit>>> {
        let st = self.inner.state.read();
        let mut per_query: Vec<Vec<(f32, u64, u32)>> = vec![Vec::new(); req.num_queries];
        let dim = self.inner.schema.fields[req.field_index].dim();
        let field_id = self.inner.schema.fields[req.field_index].field_id;
        for seg in st.segments.values() {
            if req
                .partitions
                .as_ref()
                .is_some_and(|p| !p.contains(&seg.partition_id))
            {
                continue;
            }
            if req.ignore_growing && !seg.is_sealed() {
                continue;
            }
            let d = seg.data();
            let n = d.num_rows();
            if n == 0 || seg.deleted.count() == n {
                continue;
            }
            let filter = allowed_rows(seg, req.plan);
            if filter.as_ref().is_some_and(|f| f.count_ones() == 0) {
                continue;
            }
            let results = match seg.indexes.get(&field_id) {
                Some((_, idx)) if idx.metric() == req.metric => {
                    idx.search(req.queries, req.k, req.ef, filter.as_ref())?
                }
                _ => {
                    let vectors = seg.vectors(req.field_index)?;
                    vindex::flat_search(
                        &vectors,
                        dim,
                        req.metric,
                        req.queries,
                        req.k,
                        filter.as_ref(),
                    )?
                }
            };
            for (q, hits) in results.into_iter().enumerate() {
                if let Some(list) = per_query.get_mut(q) {
                    list.extend(
                        hits.into_iter()
                            .map(|(off, score)| (score, seg.handle, off)),
                    );
                }
            }
        }
        let metric = req.metric;
        let mut out = Vec::with_capacity(req.num_queries);
        for mut list in per_query {
            if let Some(r) = req.radius {
                list.retain(|(s, _, _)| in_range(metric, *s, r, req.range_filter));
            }
            list.sort_by(|a, b| rank(metric, a.0, b.0));
            list.truncate(req.k);
            let hits = list
                .into_iter()
                .filter_map(|(score, h, off)| {
                    let seg = st.segments.get(&h)?;
                    let d = seg.data();
                    let pk = d.primary_key(self.inner.pk_index, off as usize)?;
                    let values = req
                        .output
                        .iter()
                        .map(|&fi| seg.value(fi, off as usize))
                        .collect();
                    Some(ShardHit { score, pk, values })
                })
                .collect();
            out.push(hits);
        }
        Ok(out)
    }

    /// Rows matching `plan`: (pk, output values), or only the count when `count_only`.
    pub fn query(
        &self,
        plan: &Plan,
        partitions: &Option<HashSet<i64>>,
        output: &[usize],
        count_only: bool,
    ) -> (usize, Vec<(PrimaryKey, Vec<crate::value::Value>)>) {
        let st = self.inner.state.read();
        if let Some(keys) = plan.primary_keys() {
            let mut rows = Vec::new();
            let mut seen = HashSet::new();
            for pk in keys {
                if !seen.insert(pk.clone()) {
                    continue;
                }
                if let Some(loc) = st.pk_map.get(&pk)
                    && let Some(seg) = st.segments.get(&loc.handle)
                {
                    if partitions
                        .as_ref()
                        .is_some_and(|p| !p.contains(&seg.partition_id))
                    {
                        continue;
                    }
                    let vals = if count_only {
                        Vec::new()
                    } else {
                        output
                            .iter()
                            .map(|&fi| seg.value(fi, loc.row as usize))
                            .collect()
                    };
                    rows.push((pk, vals));
                }
            }
            return (rows.len(), rows);
        }
        let mut count = 0;
        let mut rows = Vec::new();
        for_each_live_match(&st, plan, partitions, |seg, row| {
            count += 1;
            if !count_only && let Some(pk) = seg.data().primary_key(self.inner.pk_index, row) {
                rows.push((pk, output.iter().map(|&fi| seg.value(fi, row)).collect()));
            }
        });
        (count, rows)
    }
}

/// Call `f` for every live row of the selected partitions that matches `plan`.
fn for_each_live_match(
    st: &ShardState,
    plan: &Plan,
    partitions: &Option<HashSet<i64>>,
    mut f: impl FnMut(&Segment, usize),
) {
    let all = plan.is_match_all();
    for seg in st.segments.values() {
        if partitions
            .as_ref()
            .is_some_and(|p| !p.contains(&seg.partition_id))
        {
            continue;
        }
        let d = seg.data();
        for row in 0..d.num_rows() {
            if !seg.deleted.get(row) && (all || plan.eval(&d.row(row))) {
                f(seg, row);
            }
        }
    }
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

/// Rows of `seg` that are live and match `plan`; `None` when every row qualifies.
fn allowed_rows(seg: &Segment, plan: &Plan) -> Option<Bitset> {
    let d = seg.data();
    let n = d.num_rows();
    if seg.deleted.count() == 0 && plan.is_match_all() {
        return None;
    }
    let mut bits = Bitset::new(n);
    let all = plan.is_match_all();
    for row in 0..n {
        if !seg.deleted.get(row) && (all || plan.eval(&d.row(row))) {
            bits.set(row, true);
        }
    }
    Some(bits)
}
