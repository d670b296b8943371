//! What a query node holds: sealed segments loaded from the object store, their deletes
//! brought up to date by key from the channel's deltas, their indexes attached as they are
//! built; and the segments of one (collection, shard) as a [`SegmentSet`] read at a snapshot.
//! Every read goes through the same per-segment functions a shard uses ([`crate::read`]).

mod segment;
mod set;

pub use segment::SealedSegment;
pub use set::SegmentSet;
