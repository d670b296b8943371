//! The channel's delete journal: `(pk, ts)` for every write that deleted or overwrote a key
//! whose current row was in a sealed segment, in timestamp order. Query nodes pull it to bring
//! their sealed segments' deletes up to a snapshot; each checkpoint persists its new entries as
//! one delta object and trims it to the entries newer than the previous checkpoint.

use std::collections::VecDeque;

use crate::delta::{Delta, DeltaRead};
use crate::value::PrimaryKey;

#[derive(Debug, Default)]
pub(crate) struct DeltaJournal {
    /// In timestamp order.
    entries: VecDeque<Delta>,
    /// The journal holds every entry with a timestamp after `start`.
    start: u64,
    /// Entries at or before this timestamp are persisted in delta objects.
    persisted_up_to: u64,
}

impl DeltaJournal {
    /// An empty journal that holds every entry after `start` (entries up to it are persisted).
    pub fn new(start: u64) -> Self {
        DeltaJournal {
            entries: VecDeque::new(),
            start,
            persisted_up_to: start,
        }
    }

    pub fn push(&mut self, pk: PrimaryKey, ts: u64) {
        self.entries.push_back((pk, ts));
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
    pub fn start(&self) -> u64 {
        self.start
    }

    pub fn persisted_up_to(&self) -> u64 {
        self.persisted_up_to
    }

    /// Entries after `after_ts`, complete up to `applied_ts`, or the gap when the journal no
    /// longer reaches back to `after_ts`.
    pub fn since(&self, after_ts: u64, applied_ts: u64) -> DeltaRead {
        if after_ts < self.start {
            return DeltaRead::Gap {
                journal_start: self.start,
            };
        }
        let from = self.entries.partition_point(|(_, ts)| *ts <= after_ts);
        DeltaRead::Entries {
            entries: self.entries.range(from..).cloned().collect(),
            up_to: applied_ts.max(after_ts),
        }
    }

    /// Entries not yet persisted with a timestamp at or before `up_to`.
    pub fn unpersisted(&self, up_to: u64) -> Vec<Delta> {
        self.entries
            .iter()
            .filter(|(_, ts)| *ts > self.persisted_up_to && *ts <= up_to)
            .cloned()
            .collect()
    }

    /// Entries up to `up_to` are persisted now.
    pub fn mark_persisted(&mut self, up_to: u64) {
        self.persisted_up_to = self.persisted_up_to.max(up_to);
    }

    /// Drop the entries at or before `ts` (persisted ones only), so the journal starts there.
    pub fn trim(&mut self, ts: u64) {
        let ts = ts.min(self.persisted_up_to);
        if ts <= self.start {
            return;
        }
        while self.entries.front().is_some_and(|(_, t)| *t <= ts) {
            self.entries.pop_front();
        }
        self.start = ts;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts_of(r: DeltaRead) -> Vec<u64> {
        match r {
            DeltaRead::Entries { entries, .. } => entries.into_iter().map(|e| e.1).collect(),
            DeltaRead::Gap { journal_start } => panic!("gap at {journal_start}"),
        }
    }

    #[test]
    fn since_persist_trim() {
        let mut j = DeltaJournal::new(5);
        for ts in [6, 8, 9] {
            j.push(PrimaryKey::Int(ts as i64), ts);
        }
        assert_eq!(ts_of(j.since(5, 9)), vec![6, 8, 9]);
        assert_eq!(ts_of(j.since(8, 9)), vec![9]);
        assert_eq!(j.since(4, 9), DeltaRead::Gap { journal_start: 5 });
        assert_eq!(
            j.since(9, 12),
            DeltaRead::Entries {
                entries: vec![],
                up_to: 12
            }
        );
        assert_eq!(j.unpersisted(8).len(), 2);
        j.mark_persisted(8);
        assert_eq!(j.unpersisted(100).len(), 1);
        j.trim(100); // only persisted entries go
        assert_eq!((j.start(), j.len()), (8, 1));
        assert_eq!(j.since(7, 9), DeltaRead::Gap { journal_start: 8 });
        assert_eq!(ts_of(j.since(8, 9)), vec![9]);
    }
}
