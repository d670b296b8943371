//! Reads of one segment at a snapshot — search, query, count, get by primary key — shared by
//! every holder of segments: a shard (growing and retained sealed segments) and a query node's
//! segment set ([`crate::sealed`]). One implementation, so both sides agree on what a snapshot
//! sees.
//!
//! Visibility (MVCC): at snapshot `R` a row is visible iff `row_ts <= R` and it has no delete
//! mark with `ts <= R`. [`LATEST`] reads the latest state. When `R` is at or after the
//! segment's largest row timestamp and its latest delete, the check is the delete bitmap alone,
//! as fast as a read without timestamps.

mod query;
mod search;
#[cfg(test)]
mod tests;

pub use query::{count_visible_matches, for_each_visible_match, row_values, visible_row};
pub use search::{PreparedSearch, Scored, SegmentHit, ShardHit, merge_hits, search_segment};

use crate::segment::Segment;

/// The snapshot that sees every applied write.
pub const LATEST: u64 = u64::MAX;

/// Which rows of one segment a snapshot sees, with the fast paths decided once per read.
pub struct Visibility<'a> {
    seg: &'a Segment,
    snapshot: u64,
    /// Every row's timestamp is `<= snapshot`.
    rows_all_in: bool,
    /// Every delete mark's timestamp is `<= snapshot` (the bitmap alone is exact).
    marks_all_in: bool,
}

impl<'a> Visibility<'a> {
    pub fn new(seg: &'a Segment, snapshot: u64) -> Self {
        Visibility {
            seg,
            snapshot,
            rows_all_in: snapshot >= seg.max_row_ts(),
            marks_all_in: snapshot >= seg.deleted.max_ts(),
        }
    }

    /// Every row is visible (no per-row check needed).
    pub fn all_visible(&self) -> bool {
        self.rows_all_in && self.seg.deleted.count() == 0
    }

    /// No row is visible.
    pub fn none_visible(&self) -> bool {
        let n = self.seg.data().num_rows();
        n == 0 || (self.rows_all_in && self.marks_all_in && self.seg.deleted.count() == n)
    }

    /// The exact number of visible rows when it is known without a scan.
    pub fn visible_count_fast(&self) -> Option<usize> {
        (self.rows_all_in && self.marks_all_in)
            .then(|| self.seg.data().num_rows() - self.seg.deleted.count())
    }

    #[inline]
    pub fn visible(&self, row: usize) -> bool {
        if !self.rows_all_in
            && self
                .seg
                .data()
                .timestamps
                .get(row)
                .is_none_or(|ts| *ts > self.snapshot)
        {
            return false;
        }
        if self.marks_all_in {
            !self.seg.deleted.is_marked(row)
        } else {
            !self.seg.deleted.deleted_at(row, self.snapshot)
        }
    }
}
