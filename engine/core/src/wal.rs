//! Write-ahead log of one shard (a "channel"), kept behind the [`ObjectStore`] abstraction so the
//! same code writes it to local disk (standalone) or to S3 (streaming nodes, Woodpecker-style).
//!
//! Each group commit is one immutable object `"{prefix}/{term:010}-{first_lsn:020}-{last_lsn:020}.log"`
//! (older data directories hold `"{first_lsn:020}-{last_lsn:020}.log"`, read as term 0) holding
//! framed records: `len u32 | crc32 u32 | lsn u64 | payload`. A put is atomic and
//! durable in both backends (local: temp file + fsync + rename + dir fsync), so an object is
//! either whole or absent; the per-record CRC still catches bit rot and a torn object left by a
//! backend without atomic rename. A damaged *last* object is a torn tail: it is truncated with a
//! warning (none of its records were acknowledged, since the ack follows the put). Damage in
//! any earlier object is corruption and an error, never silently skipped.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;

use crate::codec::{Reader, Writer};
use crate::error::{CoreError, Result};
use crate::keys::{self, WalKey};
use crate::store::ObjectStore;

/// Log objects a replay fetches at the same time.
const REPLAY_FETCHES: usize = 16;
use crate::value::{PrimaryKey, RowBatch};

/// What a shard writes to its log.
#[derive(Debug, Clone, PartialEq)]
pub enum WalRecord {
    /// Rows for one partition. Columns are in schema field order (`$meta` included when the
    /// dynamic field is enabled); every row gets timestamp `ts`.
    Insert {
        partition_id: i64,
        ts: u64,
        rows: RowBatch,
    },
    /// Delete of primary keys at `ts`.
    Delete { ts: u64, pks: Vec<PrimaryKey> },
    /// Upsert: delete of the batch's keys and insert of the rows, atomically at `ts`.
    Upsert {
        partition_id: i64,
        ts: u64,
        rows: RowBatch,
    },
}

impl WalRecord {
    pub fn ts(&self) -> u64 {
        match self {
            WalRecord::Insert { ts, .. }
            | WalRecord::Delete { ts, .. }
            | WalRecord::Upsert { ts, .. } => *ts,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        match self {
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
                w.u8(if matches!(self, WalRecord::Insert { .. }) {
                    1
                } else {
                    3
                });
                w.i64(*partition_id);
                w.u64(*ts);
                w.u32(rows.columns.len() as u32);
                for (name, col) in &rows.columns {
                    w.str(name);
                    w.column(col);
                }
            }
            WalRecord::Delete { ts, pks } => {
                w.u8(2);
                w.u64(*ts);
                w.u64(pks.len() as u64);
                for pk in pks {
                    w.pk(pk);
                }
            }
        }
        w.buf
    }

    pub fn decode(data: &[u8]) -> Result<Self> {
        let mut r = Reader::new(data, "wal record");
        let tag = r.u8()?;
        Ok(match tag {
            1 | 3 => {
                let partition_id = r.i64()?;
                let ts = r.u64()?;
                let n = r.u32()? as usize;
                let mut columns = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    let name = r.string()?;
                    columns.push((name, r.column()?));
                }
                let rows = RowBatch { columns };
                if tag == 1 {
                    WalRecord::Insert {
                        partition_id,
                        ts,
                        rows,
                    }
                } else {
                    WalRecord::Upsert {
                        partition_id,
                        ts,
                        rows,
                    }
                }
            }
            2 => {
                let ts = r.u64()?;
                let n = r.u64()? as usize;
                let mut pks = Vec::with_capacity(n.min(1 << 20));
                for _ in 0..n {
                    pks.push(r.pk()?);
                }
                WalRecord::Delete { ts, pks }
            }
            t => {
                return Err(CoreError::corrupted(
                    "wal record",
                    format!("unknown record type {t}"),
                ));
            }
        })
    }
}

/// The log of one channel, as written by the channel owner of one term.
#[derive(Debug, Clone)]
pub struct Wal {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    term: u64,
}

/// A log object found under the prefix.
#[derive(Debug, Clone)]
struct LogObject {
    term: u64,
    first: u64,
    last: u64,
    key: String,
}

/// One replayed entry.
#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry {
    pub lsn: u64,
    pub record: WalRecord,
}

impl Wal {
    /// The log under `prefix`, appended to under `term` (replay reads every term).
    pub fn new(store: Arc<dyn ObjectStore>, prefix: impl Into<String>, term: u64) -> Self {
        Wal {
            store,
            prefix: prefix.into(),
            term,
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn term(&self) -> u64 {
        self.term
    }

    /// Durably append a group of encoded records with consecutive LSNs starting at `first_lsn`.
    pub async fn append_group(&self, first_lsn: u64, payloads: &[Vec<u8>]) -> Result<()> {
        if payloads.is_empty() {
            return Ok(());
        }
        let last = first_lsn + payloads.len() as u64 - 1;
        let buf = encode_object(first_lsn, payloads);
        let key = keys::wal_object(&self.prefix, self.term, first_lsn, last);
        self.store.put(&key, Bytes::from(buf)).await
    }

    async fn objects(&self) -> Result<Vec<LogObject>> {
        let keys = self.store.list(&format!("{}/", self.prefix)).await?;
        let mut out = Vec::new();
        for key in keys {
            match keys::parse_wal_object(&key) {
                WalKey::Log { term, first, last } if first <= last => out.push(LogObject {
                    term,
                    first,
                    last,
                    key,
                }),
                WalKey::Other => {}
                WalKey::Log { .. } | WalKey::Malformed => {
                    return Err(CoreError::corrupted(
                        &key,
                        "unexpected object name in the log",
                    ));
                }
            }
        }
        out.sort_by_key(|o| (o.first, o.term, o.last));
        Ok(out)
    }

    /// The objects replay reads, in LSN order, each with the last LSN of it that counts. A term
    /// starts at the first LSN its owner wrote; records of older terms from there on were never
    /// acknowledged (the new owner fenced the old one before replaying) and are superseded.
    async fn effective_objects(&self) -> Result<Vec<(LogObject, u64)>> {
        let objects = self.objects().await?;
        let mut term_start: BTreeMap<u64, u64> = BTreeMap::new();
        for o in &objects {
            let s = term_start.entry(o.term).or_insert(o.first);
            *s = (*s).min(o.first);
        }
        Ok(objects
            .into_iter()
            .filter_map(|o| {
                let cut = term_start
                    .range(o.term + 1..)
                    .map(|(_, s)| *s)
                    .min()
                    .unwrap_or(u64::MAX);
                (o.first < cut).then(|| {
                    let last = o.last.min(cut.saturating_sub(1));
                    (o, last)
                })
            })
            .collect())
    }

    /// Read every record with `lsn >= from`, in LSN order over every term. Truncates a damaged
    /// tail object. Returns the records and the next LSN to write.
    pub async fn replay(&self, from: u64) -> Result<(Vec<LogEntry>, u64)> {
        use futures::stream::{self, StreamExt};
        let objects = self.effective_objects().await?;
        let mut entries = Vec::new();
        let mut next = from;
        let count = objects.len();
        // The objects are fetched REPLAY_FETCHES at a time (an object store's latency, not its
        // bandwidth, bounds a replay of many small group commits) and parsed in LSN order.
        let wanted = objects
            .into_iter()
            .enumerate()
            .filter(|(_, (_, last))| *last >= from)
            .map(|(i, (o, last))| {
                let store = self.store.clone();
                async move {
                    let data = store.get(&o.key).await;
                    (i, o, last, data)
                }
            });
        let mut fetched = stream::iter(wanted).buffered(REPLAY_FETCHES);
        while let Some((i, o, last, data)) = fetched.next().await {
            let data = data?;
            match parse_object(&data, o.first, o.last, &o.key) {
                Ok(recs) => {
                    for e in recs {
                        if e.lsn >= from && e.lsn <= last {
                            if e.lsn != next && next != from {
                                return Err(CoreError::corrupted(
                                    &o.key,
                                    format!("log gap: expected lsn {next}, found {}", e.lsn),
                                ));
                            }
                            next = e
                                .lsn
                                .checked_add(1)
                                .ok_or_else(|| CoreError::corrupted(&o.key, "lsn out of range"))?;
                            entries.push(e);
                        }
                    }
                }
                Err(e) if i + 1 == count => {
                    tracing::warn!(object = %o.key, error = %e, "truncating torn tail of the write-ahead log");
                    self.store.delete(&o.key).await?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok((entries, next))
    }

    /// Delete log objects whose records are all below `lsn` (after a checkpoint).
    pub async fn truncate_before(&self, lsn: u64) -> Result<usize> {
        let mut n = 0;
        for o in self.objects().await? {
            if o.last < lsn {
                self.store.delete(&o.key).await?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Fence the owners of older terms (a new channel owner, before it replays): write this
    /// term's fence, then drop older fences (the newest one fences every older term). Fails
    /// with `Conflict` when a newer term already fenced this one.
    pub async fn fence(&self) -> Result<()> {
        self.store
            .put(&keys::wal_fence(&self.prefix, self.term), Bytes::new())
            .await?;
        let mut newer = None;
        for key in self
            .store
            .list(&keys::wal_fences_prefix(&self.prefix))
            .await?
        {
            match keys::parse_wal_fence(&key) {
                Some(t) if t < self.term => self.store.delete(&key).await?,
                Some(t) if t > self.term => newer = newer.max(Some(t)),
                _ => {}
            }
        }
        match newer {
            Some(t) => Err(fenced(&self.prefix, self.term, t)),
            None => Ok(()),
        }
    }

    /// The newest term that fenced this log's owner, if newer than its own term.
    pub async fn fenced_by(&self) -> Result<Option<u64>> {
        let newest = self
            .store
            .list(&keys::wal_fences_prefix(&self.prefix))
            .await?
            .iter()
            .filter_map(|k| keys::parse_wal_fence(k))
            .max();
        Ok(newest.filter(|t| *t > self.term))
    }

    /// Remove the whole log, fences included (collection dropped).
    pub async fn destroy(&self) -> Result<()> {
        for key in self.store.list(&format!("{}/", self.prefix)).await? {
            self.store.delete(&key).await?;
        }
        Ok(())
    }
}

/// The error of an owner fenced by a newer term.
pub fn fenced(prefix: &str, term: u64, by: u64) -> CoreError {
    CoreError::Conflict(format!(
        "the log {prefix} of term {term} is fenced by the channel owner of term {by}"
    ))
}

/// The log object holding `payloads` with consecutive LSNs from `first_lsn`.
pub fn encode_object(first_lsn: u64, payloads: &[Vec<u8>]) -> Vec<u8> {
    let total: usize = payloads.iter().map(|p| p.len() + 16).sum();
    let mut buf = Vec::with_capacity(total);
    for (i, p) in payloads.iter().enumerate() {
        let lsn = first_lsn + i as u64;
        buf.extend_from_slice(&(p.len() as u32).to_le_bytes());
        buf.extend_from_slice(&record_crc(lsn, p).to_le_bytes());
        buf.extend_from_slice(&lsn.to_le_bytes());
        buf.extend_from_slice(p);
    }
    buf
}

fn record_crc(lsn: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&lsn.to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// Rewrite the checksum of every whole record of a log object (fuzzing: lets mutated payloads
/// reach the record decoder).
pub(crate) fn fix_record_checksums(data: &mut [u8]) {
    let mut at = 0usize;
    while let Some(header) = data.get(at..at.saturating_add(16)) {
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let mut lsn = [0u8; 8];
        lsn.copy_from_slice(&header[8..16]);
        let lsn = u64::from_le_bytes(lsn);
        let start = at + 16;
        let Some(payload) = start.checked_add(len).and_then(|end| data.get(start..end)) else {
            return;
        };
        let crc = record_crc(lsn, payload);
        data[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
        at = start + len;
    }
}

pub(crate) fn parse_object(data: &[u8], first: u64, last: u64, key: &str) -> Result<Vec<LogEntry>> {
    let mut r = Reader::new(data, key);
    let mut out = Vec::new();
    while r.remaining() > 0 {
        let at = r.position();
        let len = r.u32()? as usize;
        let crc = r.u32()?;
        let lsn = r.u64()?;
        let payload = r.take(len)?;
        if record_crc(lsn, payload) != crc {
            return Err(CoreError::corrupted(
                key,
                format!("record checksum mismatch at byte {at} (lsn {lsn})"),
            ));
        }
        out.push(LogEntry {
            lsn,
            record: WalRecord::decode(payload)?,
        });
    }
    let ok_range =
        out.first().map(|e| e.lsn) == Some(first) && out.last().map(|e| e.lsn) == Some(last);
    // `last - first + 1` overflows for a name claiming every LSN (0 to u64::MAX).
    let promised = last.checked_sub(first).and_then(|d| d.checked_add(1));
    if !ok_range || promised != Some(out.len() as u64) {
        return Err(CoreError::corrupted(
            key,
            "object does not hold the records its name promises",
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryObjectStore;
    use crate::value::Column;

    fn ins(ts: u64) -> WalRecord {
        WalRecord::Insert {
            partition_id: 7,
            ts,
            rows: RowBatch {
                columns: vec![
                    ("id".into(), Column::Int(vec![1, 2])),
                    (
                        "v".into(),
                        Column::FloatVector {
                            dim: 2,
                            data: vec![0.0, 1.0, 2.0, 3.0],
                        },
                    ),
                ],
            },
        }
    }

    #[tokio::test]
    async fn append_replay_truncate() {
        let store = Arc::new(MemoryObjectStore::default());
        let wal = Wal::new(store.clone(), "wal/1/0", 0);
        wal.append_group(
            0,
            &[
                ins(10).encode(),
                WalRecord::Delete {
                    ts: 11,
                    pks: vec![PrimaryKey::Int(1)],
                }
                .encode(),
            ],
        )
        .await
        .unwrap();
        wal.append_group(2, &[ins(12).encode()]).await.unwrap();
        let (entries, next) = wal.replay(0).await.unwrap();
        assert_eq!(next, 3);
        assert_eq!(entries.len(), 3);
        assert_eq!(
            entries[1].record,
            WalRecord::Delete {
                ts: 11,
                pks: vec![PrimaryKey::Int(1)]
            }
        );
        let (entries, next) = wal.replay(2).await.unwrap();
        assert_eq!((entries.len(), next), (1, 3));
        assert_eq!(wal.truncate_before(2).await.unwrap(), 1);
        let (entries, _) = wal.replay(0).await.unwrap();
        assert_eq!(entries[0].lsn, 2);
    }

    #[tokio::test]
    async fn torn_tail_is_truncated_but_middle_corruption_is_an_error() {
        let store = Arc::new(MemoryObjectStore::default());
        let wal = Wal::new(store.clone(), "wal/1/0", 0);
        wal.append_group(0, &[ins(1).encode()]).await.unwrap();
        wal.append_group(1, &[ins(2).encode()]).await.unwrap();
        // Tear the tail object: cut its last bytes.
        let keys = store.list("wal/1/0/").await.unwrap();
        let tail = store.get(&keys[1]).await.unwrap();
        store
            .put(&keys[1], tail.slice(..tail.len() - 5))
            .await
            .unwrap();
        let (entries, next) = wal.replay(0).await.unwrap();
        assert_eq!((entries.len(), next), (1, 1));
        assert_eq!(
            store.list("wal/1/0/").await.unwrap().len(),
            1,
            "torn tail removed"
        );

        // Now corrupt a middle object: replay must fail loudly.
        wal.append_group(1, &[ins(3).encode()]).await.unwrap();
        let keys = store.list("wal/1/0/").await.unwrap();
        let mut first = store.get(&keys[0]).await.unwrap().to_vec();
        let n = first.len();
        first[n - 3] ^= 0xff;
        store.put(&keys[0], Bytes::from(first)).await.unwrap();
        let err = wal.replay(0).await.unwrap_err().to_string();
        assert!(err.contains("checksum"), "{err}");
    }

    #[tokio::test]
    async fn replays_the_older_key_form_and_every_term_in_lsn_order() {
        let store = Arc::new(MemoryObjectStore::default());
        // An older data directory: `<first>-<last>.log` objects without a term.
        let t0 = Wal::new(store.clone(), "wal/1/0", 0);
        t0.append_group(0, &[ins(1).encode(), ins(2).encode()])
            .await
            .unwrap();
        for key in store.list("wal/1/0/").await.unwrap() {
            let bytes = store.get(&key).await.unwrap();
            store.delete(&key).await.unwrap();
            store
                .put(&format!("wal/1/0/{:020}-{:020}.log", 0, 1), bytes)
                .await
                .unwrap();
        }
        // The owner of term 1 continues at lsn 2.
        let t1 = Wal::new(store.clone(), "wal/1/0", 1);
        t1.append_group(2, &[ins(3).encode()]).await.unwrap();
        // Term 2 fences term 1, replays up to lsn 2 and writes from lsn 3 on. Term 1, not yet
        // aware, still puts [3, 4]; it never acknowledges it (the fence), and replay must
        // prefer term 2's records from lsn 3 on.
        let t2 = Wal::new(store.clone(), "wal/1/0", 2);
        t1.append_group(3, &[ins(30).encode(), ins(31).encode()])
            .await
            .unwrap();
        t2.append_group(3, &[ins(40).encode()]).await.unwrap();
        t2.append_group(4, &[ins(50).encode()]).await.unwrap();
        let (entries, next) = t2.replay(0).await.unwrap();
        let got: Vec<(u64, u64)> = entries.iter().map(|e| (e.lsn, e.record.ts())).collect();
        assert_eq!(got, vec![(0, 1), (1, 2), (2, 3), (3, 40), (4, 50)]);
        assert_eq!(next, 5);
        let keys = store.list("wal/1/0/").await.unwrap();
        assert!(
            keys.iter()
                .any(|k| k.ends_with(&format!("/0000000002-{:020}-{:020}.log", 4, 4))),
            "{keys:?}"
        );
        // Truncation spans the terms.
        assert_eq!(t2.truncate_before(3).await.unwrap(), 2);
        let (entries, _) = t2.replay(3).await.unwrap();
        assert_eq!(
            entries.iter().map(|e| e.record.ts()).collect::<Vec<_>>(),
            vec![40, 50]
        );
    }
}
