//! The in-memory state of a shard: its segments (growing, sealed, and sealed ones released to
//! query nodes), the growing segment of each partition, the primary-key map that makes the
//! latest write of a key the only visible one, and the delete journal.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};

use super::journal::DeltaJournal;
use crate::delta::DeltaObjectMeta;
use crate::schema::CollectionSchema;
use crate::segment::{Segment, SegmentMeta};
use crate::value::PrimaryKey;
use crate::wal::WalRecord;

/// Where the current row of a primary key lives: segment handle and row offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RowLoc {
    pub handle: u64,
    pub row: u32,
}

#[derive(Debug)]
pub(crate) struct ShardState {
    /// Segments held in memory (growing, and sealed ones not released).
    pub segments: BTreeMap<u64, Segment>,
    /// Sealed segments served elsewhere: only their metadata stays (their keys stay in
    /// `pk_map`, so deletes of them are recognised and journaled).
    pub released: BTreeMap<u64, SegmentMeta>,
    /// Growing segment handle per partition.
    pub growing: HashMap<i64, u64>,
    pub next_handle: u64,
    pub pk_map: HashMap<PrimaryKey, RowLoc>,
    /// Next LSN to apply.
    pub next_lsn: u64,
    /// Highest applied write timestamp.
    pub applied_ts: u64,
    pub journal: DeltaJournal,
    /// Applied timestamp of the last committed checkpoint.
    pub checkpoint_ts: u64,
    /// Delta objects of the last committed checkpoint.
    pub delta_objects: Vec<DeltaObjectMeta>,
    /// Sealed segments some committed checkpoint lists (the catalogue knows them). A segment
    /// sealed in memory but not yet committed is not among them.
    pub committed: HashSet<i64>,
}

impl ShardState {
    pub fn new(next_lsn: u64) -> Self {
        ShardState {
            segments: BTreeMap::new(),
            released: BTreeMap::new(),
            growing: HashMap::new(),
            next_handle: 1,
            pk_map: HashMap::new(),
            next_lsn,
            applied_ts: 0,
            journal: DeltaJournal::default(),
            checkpoint_ts: 0,
            delta_objects: Vec::new(),
            committed: HashSet::new(),
        }
    }

    /// A fresh in-memory segment handle.
    pub fn alloc_handle(&mut self) -> u64 {
        let h = self.next_handle;
        self.next_handle += 1;
        h
    }

    /// The growing segment of a partition, created on first use.
    pub fn growing_for(&mut self, schema: &CollectionSchema, partition_id: i64) -> u64 {
        if let Some(h) = self.growing.get(&partition_id) {
            return *h;
        }
        let handle = self.alloc_handle();
        self.segments
            .insert(handle, Segment::growing(handle, partition_id, schema));
        self.growing.insert(partition_id, handle);
        handle
    }

    /// The partition of the segment `handle` names (held or released).
    pub fn partition_of(&self, handle: u64) -> Option<i64> {
        self.segments
            .get(&handle)
            .map(|s| s.partition_id)
            .or_else(|| self.released.get(&handle).map(|m| m.partition_id))
    }

    /// Mark the row at `loc` deleted at `ts` (crash recovery, compaction bookkeeping).
    pub fn mark_deleted(&mut self, loc: RowLoc, ts: u64) {
        if let Some(seg) = self.segments.get_mut(&loc.handle) {
            seg.deleted.mark(loc.row, ts);
        }
    }

    /// Apply one logged write (in log order).
    pub fn apply(&mut self, schema: &CollectionSchema, pk_index: usize, record: &WalRecord) {
        match record {
            WalRecord::Insert {
                partition_id,
                ts,
                rows,
            }
            | WalRecord::Upsert {
                partition_id,
                ts,
                rows,
            } => {
                let handle = self.growing_for(schema, *partition_id);
                let n = rows.num_rows();
                let base = self
                    .segments
                    .get(&handle)
                    .map_or(0, |s| s.data().num_rows());
                if let Some((_, pk_col)) = rows.columns.get(pk_index) {
                    for i in 0..n {
                        let Some(pk) = pk_col.primary_key(i) else {
                            continue;
                        };
                        let loc = RowLoc {
                            handle,
                            row: (base + i) as u32,
                        };
                        match self.pk_map.entry(pk) {
                            Entry::Occupied(mut e) => {
                                let old = e.insert(loc);
                                // An overwrite deletes the older row at the new row's timestamp.
                                if mark_superseded(&mut self.segments, &self.released, old, *ts) {
                                    self.journal.push(e.key().clone(), *ts);
                                }
                            }
                            Entry::Vacant(e) => {
                                e.insert(loc);
                            }
                        }
                    }
                }
                if let Some(seg) = self.segments.get_mut(&handle) {
                    seg.append(rows.columns.iter().map(|(_, c)| c), *ts);
                }
                self.applied_ts = self.applied_ts.max(*ts);
            }
            WalRecord::Delete { ts, pks } => {
                for pk in pks {
                    if let Some((pk, loc)) = self.pk_map.remove_entry(pk)
                        && mark_superseded(&mut self.segments, &self.released, loc, *ts)
                    {
                        self.journal.push(pk, *ts);
                    }
                }
                self.applied_ts = self.applied_ts.max(*ts);
            }
        }
    }
}

/// The current row of a key (at `loc`) is deleted or overwritten at `ts`: mark it. Returns
/// whether the row is in a sealed segment (held or released): such deletes are journaled.
fn mark_superseded(
    segments: &mut BTreeMap<u64, Segment>,
    released: &BTreeMap<u64, SegmentMeta>,
    loc: RowLoc,
    ts: u64,
) -> bool {
    match segments.get_mut(&loc.handle) {
        Some(seg) => {
            seg.deleted.mark(loc.row, ts);
            seg.is_sealed()
        }
        None => released.contains_key(&loc.handle),
    }
}
