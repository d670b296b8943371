//! The group-commit write pipeline: batches queued writes, assigns their timestamps, appends
//! them to the log as one object, applies them, acknowledges; schedules a checkpoint when the
//! growing segments are large enough.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::{mpsc, oneshot};

use super::Inner;
use super::checkpoint::checkpoint;
use crate::error::{CoreError, Result};
use crate::wal::WalRecord;

/// A queued write and where to acknowledge it.
pub(super) struct WriteReq {
    pub record: WalRecord,
    pub bytes: usize,
    pub ack: oneshot::Sender<Result<u64>>,
}

pub(super) async fn write_pipeline(inner: Arc<Inner>, mut rx: mpsc::Receiver<WriteReq>) {
    let max_bytes = inner.env.config.group_commit_max_bytes;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let mut bytes = batch[0].bytes;
        while bytes < max_bytes {
            match rx.try_recv() {
                Ok(r) => {
                    bytes += r.bytes;
                    batch.push(r);
                }
                Err(_) => break,
            }
        }
        let fenced_by = inner.fenced_by.load(Ordering::SeqCst);
        if fenced_by > 0 || inner.closed.load(Ordering::SeqCst) {
            for r in batch {
                let e = if fenced_by > 0 {
                    crate::wal::fenced(inner.wal.prefix(), inner.options.term, fenced_by)
                } else {
                    CoreError::Conflict("the shard is closed".into())
                };
                let _ = r.ack.send(Err(e));
            }
            continue;
        }
        let n = batch.len() as u32;
        let last_ts = match inner.env.tso.alloc(n).await {
            Ok(t) => t,
            Err(e) => {
                let msg = e.to_string();
                for r in batch {
                    let _ = r.ack.send(Err(CoreError::Storage(msg.clone())));
                }
                continue;
            }
        };
        let first_ts = last_ts + 1 - u64::from(n);
        for (i, r) in batch.iter_mut().enumerate() {
            let ts = first_ts + i as u64;
            match &mut r.record {
                WalRecord::Insert { ts: t, .. }
                | WalRecord::Delete { ts: t, .. }
                | WalRecord::Upsert { ts: t, .. } => *t = ts,
            }
        }
        let payloads: Vec<Vec<u8>> = batch.iter().map(|r| r.record.encode()).collect();
        let first_lsn = inner.state.read().next_lsn;
        let mut res = inner.wal.append_group(first_lsn, &payloads).await;
        // A channel owner acknowledges nothing a newer owner may have missed: after the put, no
        // newer term's fence may exist (docs/distributed.md, "Fencing").
        let mut apply = res.is_ok();
        if res.is_ok() && inner.options.term > 0 {
            match inner.wal.fenced_by().await {
                Ok(None) => {}
                Ok(Some(by)) => {
                    inner.fenced_by.store(by, Ordering::SeqCst);
                    inner.closed.store(true, Ordering::SeqCst);
                    tracing::warn!(
                        collection_id = inner.collection_id,
                        shard = inner.shard,
                        term = inner.options.term,
                        fenced_by = by,
                        "channel fenced by a newer owner: writes are refused"
                    );
                    res = Err(crate::wal::fenced(
                        inner.wal.prefix(),
                        inner.options.term,
                        by,
                    ));
                    apply = false;
                }
                // The group is in the log (a later replay applies it), so it is applied here
                // too; but it cannot be acknowledged.
                Err(e) => res = Err(e),
            }
        }
        {
            let mut st = inner.state.write();
            // LSNs are consumed even on failure: the object may exist although the put failed.
            st.next_lsn = first_lsn + u64::from(n);
            if apply {
                for r in &batch {
                    st.apply(&inner.schema, inner.pk_index, &r.record);
                }
            }
        }
        match res {
            Ok(()) => {
                inner.group_commits.fetch_add(1, Ordering::Relaxed);
                inner
                    .records_committed
                    .fetch_add(u64::from(n), Ordering::Relaxed);
                for (i, r) in batch.into_iter().enumerate() {
                    let _ = r.ack.send(Ok(first_ts + i as u64));
                }
            }
            Err(CoreError::Conflict(msg)) => {
                for r in batch {
                    let _ = r.ack.send(Err(CoreError::Conflict(msg.clone())));
                }
            }
            Err(e) => {
                tracing::error!(collection_id = inner.collection_id, shard = inner.shard, error = %e, "write-ahead log append failed");
                let msg = e.to_string();
                for r in batch {
                    let _ = r.ack.send(Err(CoreError::Storage(msg.clone())));
                }
            }
        }
        maybe_schedule_flush(&inner);
    }
}

fn maybe_schedule_flush(inner: &Arc<Inner>) {
    let (rows, bytes, journal) = {
        let st = inner.state.read();
        let (rows, bytes) = st
            .growing
            .values()
            .filter_map(|h| st.segments.get(h))
            .fold((0, 0), |(r, b), s| {
                (r + s.data().num_rows(), b + s.data().memory_bytes())
            });
        (rows, bytes, st.journal.len())
    };
    let cfg = &inner.env.config;
    // A long journal (many deletes of sealed rows) is persisted and trimmed by a checkpoint too.
    if (rows >= cfg.seal_rows || bytes >= cfg.seal_bytes || journal >= cfg.seal_rows)
        && !inner.flush_scheduled.swap(true, Ordering::SeqCst)
    {
        let inner = inner.clone();
        tokio::spawn(async move {
            if let Err(e) = checkpoint(&inner).await {
                tracing::error!(collection_id = inner.collection_id, shard = inner.shard, error = %e, "automatic flush failed");
            }
            inner.flush_scheduled.store(false, Ordering::SeqCst);
        });
    }
}
