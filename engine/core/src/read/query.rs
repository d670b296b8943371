//! Filtered query, count and get by primary key over one segment at a snapshot.

use super::Visibility;
use crate::expr::Plan;
use crate::segment::Segment;
use crate::value::Value;

/// Call `f` with every row of `seg` visible at `snapshot` that matches `plan`, in row order.
pub fn for_each_visible_match(seg: &Segment, plan: &Plan, snapshot: u64, mut f: impl FnMut(usize)) {
    let vis = Visibility::new(seg, snapshot);
    if vis.none_visible() {
        return;
    }
    let d = seg.data();
    let all = plan.is_match_all();
    for row in 0..d.num_rows() {
        if vis.visible(row) && (all || plan.eval(&d.row(row))) {
            f(row);
        }
    }
}

/// Number of rows of `seg` visible at `snapshot` that match `plan`.
pub fn count_visible_matches(seg: &Segment, plan: &Plan, snapshot: u64) -> usize {
    if plan.is_match_all()
        && let Some(n) = Visibility::new(seg, snapshot).visible_count_fast()
    {
        return n;
    }
    let mut n = 0;
    for_each_visible_match(seg, plan, snapshot, |_| n += 1);
    n
}

/// The first of `candidates` (rows holding some primary key) visible at `snapshot`. At most one
/// version of a key is visible at any snapshot, so this is the key's row if it has one here.
pub fn visible_row(
    seg: &Segment,
    candidates: impl IntoIterator<Item = usize>,
    snapshot: u64,
) -> Option<usize> {
    let vis = Visibility::new(seg, snapshot);
    let n = seg.data().num_rows();
    candidates.into_iter().find(|&r| r < n && vis.visible(r))
}

/// Values of the `output` columns (schema field indexes) of one row.
pub fn row_values(seg: &Segment, row: usize, output: &[usize]) -> Vec<Value> {
    output.iter().map(|&fi| seg.value(fi, row)).collect()
}
