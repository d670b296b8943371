//! The in-memory state of a shard: its segments, the growing segment of each partition, and the
//! primary-key map that makes the latest write of a key the only visible one.

use std::collections::{BTreeMap, HashMap};

use crate::schema::CollectionSchema;
use crate::segment::{DeleteBits, Segment, SegmentData, SegmentKind};
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
        self.segments.insert(
            handle,
            Segment {
                handle,
                partition_id,
                kind: SegmentKind::Growing(SegmentData::empty(schema)),
                deleted: DeleteBits::default(),
                indexes: HashMap::new(),
                raw_vectors: HashMap::new(),
            },
        );
        self.growing.insert(partition_id, handle);
        handle
    }

    pub fn mark_deleted(&mut self, loc: RowLoc) {
        if let Some(seg) = self.segments.get_mut(&loc.handle) {
            seg.deleted.set(loc.row as usize);
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
                            self.mark_deleted(old);
                        }
                    }
                }
                if let Some(Segment {
                    kind: SegmentKind::Growing(data),
                    ..
                }) = self.segments.get_mut(&handle)
                {
                    data.append(rows.columns.iter().map(|(_, c)| c), *ts);
                }
                self.applied_ts = self.applied_ts.max(*ts);
            }
            WalRecord::Delete { ts, pks } => {
                for pk in pks {
                    if let Some(loc) = self.pk_map.remove(pk) {
                        self.mark_deleted(loc);
                    }
                }
                self.applied_ts = self.applied_ts.max(*ts);
            }
        }
    }
}
