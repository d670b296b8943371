//! The primary keys and row timestamps of a sealed segment, as a small object of its own
//! (`segments/<cid>/<shard>/<sid>/pks`): what a channel owner needs to know which keys a sealed
//! segment holds (its primary-key map) and what a query node needs to apply deletes by key,
//! without reading the segment's whole data file.

use crate::codec::{Reader, Writer, frame, unframe};
use crate::error::{CoreError, Result};
use crate::segment::SegmentData;
use crate::value::{Column, PrimaryKey};

const PKS_MAGIC: &[u8; 4] = b"FVPK";
const PKS_VERSION: u32 = 1;

/// Row `i` of the segment has key `keys[i]` and timestamp `timestamps[i]`.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentPks {
    /// `Column::Int` or `Column::VarChar`.
    pub keys: Column,
    pub timestamps: Vec<u64>,
}

impl SegmentPks {
    /// The keys of a segment's rows (`pk_index`: the primary key's column).
    pub fn from_data(data: &SegmentData, pk_index: usize) -> Result<Self> {
        let keys = data
            .columns
            .get(pk_index)
            .filter(|c| matches!(c, Column::Int(_) | Column::VarChar(_)))
            .cloned()
            .ok_or_else(|| CoreError::Internal("segment has no primary key column".into()))?;
        Ok(SegmentPks {
            keys,
            timestamps: data.timestamps.clone(),
        })
    }

    pub fn len(&self) -> usize {
        self.timestamps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.timestamps.is_empty()
    }

    pub fn pk(&self, row: usize) -> Option<PrimaryKey> {
        self.keys.primary_key(row)
    }

    pub fn encode(&self, segment_id: i64) -> Vec<u8> {
        let mut w = Writer::new();
        w.i64(segment_id);
        w.column(&self.keys);
        w.u64(self.timestamps.len() as u64);
        for t in &self.timestamps {
            w.u64(*t);
        }
        frame(PKS_MAGIC, PKS_VERSION, &w.buf)
    }

    /// Decode a pks object; `rows` is the row count the segment's metadata promises.
    pub fn decode(bytes: &[u8], rows: usize, what: &str) -> Result<(i64, Self)> {
        let (version, body) = unframe(PKS_MAGIC, bytes, what)?;
        if version != PKS_VERSION {
            return Err(CoreError::corrupted(
                what,
                format!("unsupported primary-key file version {version}"),
            ));
        }
        let mut r = Reader::new(body, what);
        let segment_id = r.i64()?;
        let keys = r.column()?;
        if !matches!(keys, Column::Int(_) | Column::VarChar(_)) {
            return Err(CoreError::corrupted(what, "primary keys of a wrong type"));
        }
        let n = r.u64()? as usize;
        if n != rows || keys.len() != rows || n.saturating_mul(8) != r.remaining() {
            return Err(CoreError::corrupted(
                what,
                format!("primary-key file is not for {rows} rows"),
            ));
        }
        let mut timestamps = Vec::with_capacity(n);
        for _ in 0..n {
            timestamps.push(r.u64()?);
        }
        Ok((segment_id, SegmentPks { keys, timestamps }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_checks() {
        let p = SegmentPks {
            keys: Column::VarChar(vec!["a".into(), "b".into()]),
            timestamps: vec![5, 7],
        };
        let bytes = p.encode(12);
        assert_eq!(SegmentPks::decode(&bytes, 2, "p").unwrap(), (12, p.clone()));
        assert_eq!(p.pk(1), Some(PrimaryKey::Str("b".into())));
        assert!(SegmentPks::decode(&bytes, 3, "p").is_err());
        let mut bad = bytes.clone();
        bad[22] ^= 1;
        assert!(SegmentPks::decode(&bad, 2, "p").is_err());
    }
}
