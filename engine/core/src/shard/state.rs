//! The in-memory state of a shard: its segments, the growing segment of each partition, and the
//! primary-key map that makes the latest write of a key the only visible one.

use std::collections::{BTreeMap, HashMap};

use crate::schema::CollectionSchema;
use crate::segment::Segment;
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
    pub segments: BTreeMap<u64, Segment>,
    /// Growing segment handle per partition.
    pub growing: HashMap<i64, u64>,
    pub next_handle: u64,
    pub pk_map: HashMap<PrimaryKey, RowLoc>,
    /// Next LSN to apply.
    pub next_lsn: u64,
    /// Highest applied write timestamp.
    pub applied_ts: u64,
}

impl ShardState {
    pub fn new(next_lsn: u64) -> Self {
        ShardState {
            segments: BTreeMap::new(),
            growing: HashMap::new(),
            next_handle: 1,
            pk_map: HashMap::new(),
            next_lsn,
            applied_ts: 0,
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

    /// Mark the row at `loc` deleted at `ts`.
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
                        let loc = RowLoc {
                            handle,
                            row: (base + i) as u32,
                        };
                        if let Some(pk) = pk_col.primary_key(i)
                            && let Some(old) = self.pk_map.insert(pk, loc)
                        {
                            // An overwrite deletes the older row at the new row's timestamp.
                            self.mark_deleted(old, *ts);
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
                    if let Some(loc) = self.pk_map.remove(pk) {
                        self.mark_deleted(loc, *ts);
                    }
                }
                self.applied_ts = self.applied_ts.max(*ts);
            }
        }
    }
}
