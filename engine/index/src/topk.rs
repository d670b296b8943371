//! Candidate ordering and bounded top-k selection ("lower is better" distances).

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// A (distance, id) pair ordered by distance, then id; NaN sorts after every number.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cand {
    pub d: f32,
    pub id: u32,
}

impl PartialEq for Cand {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Cand {}
impl PartialOrd for Cand {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Cand {
    #[inline]
    fn cmp(&self, o: &Self) -> Ordering {
        self.d.total_cmp(&o.d).then(self.id.cmp(&o.id))
    }
}

/// Keeps the `k` smallest candidates seen.
pub(crate) struct TopK {
    k: usize,
    heap: BinaryHeap<Cand>,
}

impl TopK {
    /// `cap_hint` bounds the pre-allocation (e.g. the row count), so a huge `k` is harmless.
    pub(crate) fn new(k: usize, cap_hint: usize) -> TopK {
        TopK {
            k,
            heap: BinaryHeap::with_capacity(k.min(cap_hint).saturating_add(1)),
        }
    }

    /// Current admission threshold: a candidate must be below this to enter.
    #[inline]
    pub(crate) fn threshold(&self) -> f32 {
        if self.heap.len() < self.k {
            f32::INFINITY
        } else {
            self.heap.peek().map_or(f32::INFINITY, |c| c.d)
        }
    }

    #[inline]
    pub(crate) fn push(&mut self, d: f32, id: u32) {
        if self.k == 0 {
            return;
        }
        if self.heap.len() < self.k {
            self.heap.push(Cand { d, id });
        } else if let Some(mut top) = self.heap.peek_mut() {
            let c = Cand { d, id };
            if c < *top {
                *top = c;
            }
        }
    }

    /// Results, best first.
    pub(crate) fn into_sorted(self) -> Vec<Cand> {
        self.heap.into_sorted_vec()
    }
}
