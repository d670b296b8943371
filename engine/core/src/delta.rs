//! Deletes of sealed rows by primary key ("deltas"): `(pk, ts)` means every row with that key
//! and a timestamp below `ts` is deleted at `ts`. A channel owner journals them and persists
//! them at each checkpoint as immutable delta objects (`deltas/<cid>/<shard>/<to>-<from>`);
//! query nodes and recovery apply them to sealed segments by key, so a segment needs no
//! row-offset remapping when it is compacted or moves between nodes.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::codec::{Reader, Writer, frame, unframe};
use crate::error::{CoreError, Result};
use crate::store::ObjectStore;
use crate::value::PrimaryKey;

const DELTA_MAGIC: &[u8; 4] = b"FVDJ";
const DELTA_VERSION: u32 = 1;

/// One delete of a key at a timestamp.
pub type Delta = (PrimaryKey, u64);

/// A persisted delta object: the deletes with timestamps in `(from_ts, to_ts]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeltaObjectMeta {
    pub key: String,
    pub from_ts: u64,
    pub to_ts: u64,
    pub entries: usize,
}

/// The answer to "which deletes of sealed rows happened after `ts`?".
#[derive(Debug, Clone, PartialEq)]
pub enum DeltaRead {
    /// Every delete after the asked timestamp, in timestamp order, complete up to `up_to` (the
    /// channel's applied timestamp when it answered).
    Entries { entries: Vec<Delta>, up_to: u64 },
    /// The in-memory journal starts at `journal_start`, after the asked timestamp: read the
    /// persisted delta objects up to there first.
    Gap { journal_start: u64 },
}

/// Encode deltas (in timestamp order) as a checksummed delta object.
pub fn encode(entries: &[Delta]) -> Vec<u8> {
    let mut w = Writer::new();
    w.u64(entries.len() as u64);
    for (pk, ts) in entries {
        w.pk(pk);
        w.u64(*ts);
    }
    frame(DELTA_MAGIC, DELTA_VERSION, &w.buf)
}

pub fn decode(bytes: &[u8], what: &str) -> Result<Vec<Delta>> {
    let (version, body) = unframe(DELTA_MAGIC, bytes, what)?;
    if version != DELTA_VERSION {
        return Err(CoreError::corrupted(
            what,
            format!("unsupported delta format version {version}"),
        ));
    }
    let mut r = Reader::new(body, what);
    let n = r.u64()? as usize;
    let mut out = Vec::with_capacity(n.min(r.remaining() / 9));
    for _ in 0..n {
        let pk = r.pk()?;
        out.push((pk, r.u64()?));
    }
    if r.remaining() != 0 {
        return Err(CoreError::corrupted(what, "trailing bytes in delta object"));
    }
    Ok(out)
}

/// Every persisted delete with a timestamp after `after_ts`, in timestamp order, from the
/// delta objects of a checkpoint.
pub async fn read_deltas(
    objects: &dyn ObjectStore,
    metas: &[DeltaObjectMeta],
    after_ts: u64,
) -> Result<Vec<Delta>> {
    let mut metas: Vec<&DeltaObjectMeta> = metas.iter().filter(|m| m.to_ts > after_ts).collect();
    metas.sort_by_key(|m| m.from_ts);
    let mut out = Vec::new();
    for m in metas {
        let bytes = objects.get(&m.key).await?;
        out.extend(
            decode(&bytes, &m.key)?
                .into_iter()
                .filter(|(_, ts)| *ts > after_ts),
        );
    }
    out.sort_by_key(|(_, ts)| *ts);
    Ok(out)
}

/// Deltas by key, for applying many of them to every row of segments.
#[derive(Debug, Default)]
pub struct DeltaIndex {
    by_key: HashMap<PrimaryKey, Vec<u64>>,
}

impl DeltaIndex {
    pub fn new(deltas: impl IntoIterator<Item = Delta>) -> Self {
        let mut by_key: HashMap<PrimaryKey, Vec<u64>> = HashMap::new();
        for (pk, ts) in deltas {
            by_key.entry(pk).or_default().push(ts);
        }
        for v in by_key.values_mut() {
            v.sort_unstable();
        }
        DeltaIndex { by_key }
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// When a row with key `pk` written at `row_ts` is deleted by these deltas: the earliest
    /// delete of the key after the row was written, if any.
    pub fn delete_ts(&self, pk: &PrimaryKey, row_ts: u64) -> Option<u64> {
        let v = self.by_key.get(pk)?;
        v.get(v.partition_point(|t| *t <= row_ts)).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryObjectStore;

    fn int(i: i64) -> PrimaryKey {
        PrimaryKey::Int(i)
    }

    #[tokio::test]
    async fn objects_round_trip_and_read_after_a_timestamp() {
        let store = MemoryObjectStore::default();
        let a = vec![(int(1), 11), (PrimaryKey::Str("k".into()), 12)];
        let b = vec![(int(1), 21), (int(2), 25)];
        store.put("d/a", encode(&a).into()).await.unwrap();
        store.put("d/b", encode(&b).into()).await.unwrap();
        assert_eq!(decode(&encode(&a), "a").unwrap(), a);
        let metas = vec![
            DeltaObjectMeta {
                key: "d/b".into(),
                from_ts: 20,
                to_ts: 30,
                entries: 2,
            },
            DeltaObjectMeta {
                key: "d/a".into(),
                from_ts: 10,
                to_ts: 20,
                entries: 2,
            },
        ];
        let all = read_deltas(&store, &metas, 0).await.unwrap();
        assert_eq!(
            all.iter().map(|d| d.1).collect::<Vec<_>>(),
            vec![11, 12, 21, 25]
        );
        let late = read_deltas(&store, &metas, 12).await.unwrap();
        assert_eq!(late, b);
        let mut bad = encode(&b);
        bad[21] ^= 1;
        assert!(decode(&bad, "bad").is_err());
    }

    #[test]
    fn index_finds_the_earliest_delete_after_the_row() {
        let idx = DeltaIndex::new(vec![(int(1), 30), (int(1), 10), (int(2), 5)]);
        assert_eq!(idx.delete_ts(&int(1), 0), Some(10));
        assert_eq!(
            idx.delete_ts(&int(1), 10),
            Some(30),
            "not a delete of an older row"
        );
        assert_eq!(idx.delete_ts(&int(1), 30), None);
        assert_eq!(idx.delete_ts(&int(3), 0), None);
    }
}
