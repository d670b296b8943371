//! Delete marks of a segment: which rows are deleted, and since when (MVCC).
//!
//! A bitmap answers "deleted in the latest state" at the cost of one bit per row (the fast path
//! of every read); the timestamp of each mark answers "deleted at snapshot `R`" (`ts <= R`).
//! Marks keep the earliest timestamp: a row deleted at `T` stays deleted for every `R >= T`.
//!
//! Persisted as versioned, immutable "delete log" files. Format version 2 carries the
//! timestamps; version 1 (bitmap only) still decodes, its marks at timestamp 0 ("deleted since
//! always").

use std::collections::HashMap;

use crate::codec::{Reader, Writer, frame, unframe};
use crate::error::{CoreError, Result};
use crate::vindex::Bitset;

const DELETES_MAGIC: &[u8; 4] = b"FVDL";
/// Bitmap only (no timestamps).
const DELETES_V1: u32 = 1;
/// Bitmap, then the timestamp of every set bit in ascending row order.
const DELETES_V2: u32 = 2;

/// Deleted rows of one segment with the timestamp of each delete.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeleteMarks {
    words: Vec<u64>,
    count: usize,
    ts: HashMap<u32, u64>,
    max_ts: u64,
    /// Bumped on every change (lets a checkpoint tell whether the marks changed since persisted).
    generation: u64,
}

impl DeleteMarks {
    /// Mark `row` deleted at `ts`. A row already marked keeps the earlier timestamp. Returns
    /// whether anything changed.
    pub fn mark(&mut self, row: u32, ts: u64) -> bool {
        let w = row as usize / 64;
        if w >= self.words.len() {
            self.words.resize(w + 1, 0);
        }
        let bit = 1u64 << (row % 64);
        if self.words[w] & bit != 0 {
            match self.ts.get_mut(&row) {
                Some(t) if *t > ts => *t = ts,
                _ => return false,
            }
        } else {
            self.words[w] |= bit;
            self.count += 1;
            self.ts.insert(row, ts);
        }
        self.max_ts = self.max_ts.max(ts);
        self.generation += 1;
        true
    }

    /// Deleted in the latest state.
    #[inline]
    pub fn is_marked(&self, row: usize) -> bool {
        self.words
            .get(row / 64)
            .is_some_and(|w| w & (1u64 << (row % 64)) != 0)
    }

    /// Deleted at snapshot `snapshot` (a mark with `ts <= snapshot`).
    #[inline]
    pub fn deleted_at(&self, row: usize, snapshot: u64) -> bool {
        if !self.is_marked(row) {
            return false;
        }
        snapshot >= self.max_ts
            || u32::try_from(row)
                .ok()
                .and_then(|r| self.ts.get(&r))
                .is_none_or(|t| *t <= snapshot)
    }

    /// Timestamp of the delete of `row`, if it is marked.
    pub fn ts(&self, row: usize) -> Option<u64> {
        let r = u32::try_from(row).ok()?;
        if self.is_marked(row) {
            Some(self.ts.get(&r).copied().unwrap_or(0))
        } else {
            None
        }
    }

    /// Marked rows (latest state).
    pub fn count(&self) -> usize {
        self.count
    }

    /// The latest delete timestamp (0 when nothing is marked): at any snapshot at or after it,
    /// the bitmap alone is exact.
    pub fn max_ts(&self) -> u64 {
        self.max_ts
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Marked rows as a bitset of `rows` bits (set = deleted in the latest state).
    pub fn to_bitset(&self, rows: usize) -> Bitset {
        Bitset::from_words(rows, self.words.clone())
    }

    /// Marked rows in ascending order with their timestamps.
    pub fn iter(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.words
            .iter()
            .enumerate()
            .flat_map(|(wi, &word)| {
                let mut w = word;
                std::iter::from_fn(move || {
                    (w != 0).then(|| {
                        let t = w.trailing_zeros() as usize;
                        w &= w - 1;
                        (wi * 64 + t) as u32
                    })
                })
            })
            .map(|r| (r, self.ts.get(&r).copied().unwrap_or(0)))
    }

    /// Encode as a version-2 delete log for a segment of `rows` rows.
    pub fn encode(&self, rows: usize) -> Vec<u8> {
        let mut w = Writer::new();
        w.u64(rows as u64);
        w.u64(self.words.len() as u64);
        for x in &self.words {
            w.u64(*x);
        }
        for (_, ts) in self.iter() {
            w.u64(ts);
        }
        frame(DELETES_MAGIC, DELETES_V2, &w.buf)
    }

    /// Decode a delete log (version 1 or 2) of a segment of `rows` rows.
    pub fn decode(bytes: &[u8], rows: usize, what: &str) -> Result<Self> {
        let (version, body) = unframe(DELETES_MAGIC, bytes, what)?;
        if version != DELETES_V1 && version != DELETES_V2 {
            return Err(CoreError::corrupted(
                what,
                format!("unsupported delete-log version {version}"),
            ));
        }
        let mut r = Reader::new(body, what);
        let n = r.u64()? as usize;
        if n != rows {
            return Err(CoreError::corrupted(
                what,
                format!("delete log is for {n} rows, segment has {rows}"),
            ));
        }
        let words = r.u64()? as usize;
        if words > rows / 64 + 1 {
            return Err(CoreError::corrupted(
                what,
                "delete log longer than its segment",
            ));
        }
        let mut raw = Vec::with_capacity(words);
        for _ in 0..words {
            raw.push(r.u64()?);
        }
        let bits = Bitset::from_words(rows, raw);
        let mut marks = DeleteMarks::default();
        for row in bits.iter_ones() {
            let ts = if version == DELETES_V2 { r.u64()? } else { 0 };
            marks.mark(row as u32, ts);
        }
        if r.remaining() != 0 {
            return Err(CoreError::corrupted(what, "trailing bytes in delete log"));
        }
        marks.generation = 0;
        Ok(marks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_keep_the_earliest_timestamp_and_answer_per_snapshot() {
        let mut m = DeleteMarks::default();
        assert!(m.mark(3, 20));
        assert!(
            !m.mark(3, 30),
            "a later delete of a deleted row changes nothing"
        );
        assert!(m.mark(3, 10), "an earlier one wins");
        m.mark(130, 40);
        assert_eq!(m.count(), 2);
        assert_eq!(m.max_ts(), 40);
        assert!(!m.deleted_at(3, 9) && m.deleted_at(3, 10) && m.deleted_at(3, u64::MAX));
        assert!(!m.deleted_at(130, 39) && m.deleted_at(130, 40));
        assert!(!m.deleted_at(4, u64::MAX) && !m.is_marked(4));
        assert_eq!((m.ts(3), m.ts(4)), (Some(10), None));
    }

    #[test]
    fn version_2_round_trip() {
        let mut m = DeleteMarks::default();
        m.mark(3, 11);
        m.mark(130, 12);
        m.mark(199, 5);
        let back = DeleteMarks::decode(&m.encode(200), 200, "d").unwrap();
        assert_eq!(
            back.iter().collect::<Vec<_>>(),
            vec![(3, 11), (130, 12), (199, 5)]
        );
        assert_eq!((back.count(), back.max_ts()), (3, 12));
        assert!(DeleteMarks::decode(&m.encode(200), 100, "d").is_err());
        let mut bad = m.encode(200);
        let n = bad.len();
        bad[n - 6] ^= 1;
        assert!(DeleteMarks::decode(&bad, 200, "d").is_err());
    }

    #[test]
    fn version_1_files_still_decode_as_deleted_since_always() {
        // A version-1 delete log as the previous release wrote it: rows, words, the bitmap.
        let mut w = Writer::new();
        w.u64(200);
        w.u64(3);
        w.u64(1 << 3);
        w.u64(1 << 2); // row 66
        w.u64(0);
        let v1 = frame(DELETES_MAGIC, DELETES_V1, &w.buf);
        let m = DeleteMarks::decode(&v1, 200, "v1").unwrap();
        assert_eq!(m.iter().collect::<Vec<_>>(), vec![(3, 0), (66, 0)]);
        assert!(m.deleted_at(3, 0) && m.deleted_at(66, 1) && !m.deleted_at(4, 0));
        // Re-encoded, it becomes version 2 with the same meaning.
        let again = DeleteMarks::decode(&m.encode(200), 200, "v2").unwrap();
        assert_eq!(again.iter().collect::<Vec<_>>(), vec![(3, 0), (66, 0)]);
    }
}
