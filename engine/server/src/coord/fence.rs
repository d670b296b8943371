//! [`FencedStore`]: the leader's view of the metadata store. Every put, delete and transaction
//! also compares the leader key's revision ([`Fence::condition`]), so a coordinator that was
//! deposed (its lease expired, someone else leads) cannot write even while it still believes it
//! leads. The catalogue, the [`TimestampOracle`](ferrovus_core::tso::TimestampOracle) and the
//! [`IdAllocator`](ferrovus_core::tso::IdAllocator) of a leader all write through it.
//!
//! Every fenced write also puts [`WRITER_KEY`] = the writer's fence revision in the same
//! transaction, so the metadata's revision history says which leadership term made each write
//! (`etcdctl watch --rev=1 coord/writer` replays it; the partition tests audit it against the
//! history of the leader key).

use std::sync::Arc;

use async_trait::async_trait;
use ferrovus_core::CoreError;
use ferrovus_core::store::{KeyValue, MetaCondition, MetaOp, MetaStore, MetaWatch};
use tokio::sync::watch;

use crate::rpc::ClusterError;
use crate::session::Fence;

/// The key every fenced transaction also writes: the fence revision of its writer (decimal).
pub const WRITER_KEY: &str = "coord/writer";

/// The text of the error a fenced-out write fails with (a `CoreError::Conflict`).
pub const FENCED_OUT: &str = "this coordinator is no longer the leader (its fence is gone)";

fn fenced_out() -> CoreError {
    CoreError::Conflict(FENCED_OUT.into())
}

/// Whether `e` is the error of a write refused because the writer no longer leads.
pub fn is_fenced_out(e: &CoreError) -> bool {
    matches!(e, CoreError::Conflict(m) if m == FENCED_OUT)
}

/// A store error as the coordinator answers it: a fenced-out write is `NotLeader`.
pub fn store_error(e: CoreError) -> ClusterError {
    if is_fenced_out(&e) {
        ClusterError::NotLeader { leader: None }
    } else {
        ClusterError::from(e)
    }
}

/// A [`MetaStore`] whose writes are conditioned on the leader's fence. Once a write found the
/// fence gone the store is *deposed*: every later write fails at once, and
/// [`FencedStore::deposed`] resolves (the leader steps down).
#[derive(Debug)]
pub struct FencedStore {
    inner: Arc<dyn MetaStore>,
    fence: Fence,
    deposed: watch::Sender<bool>,
}

impl FencedStore {
    pub fn new(inner: Arc<dyn MetaStore>, fence: Fence) -> Arc<Self> {
        Arc::new(FencedStore {
            inner,
            fence,
            deposed: watch::channel(false).0,
        })
    }

    pub fn fence(&self) -> &Fence {
        &self.fence
    }

    /// The unfenced store underneath (reads).
    pub fn inner(&self) -> &Arc<dyn MetaStore> {
        &self.inner
    }

    pub fn is_deposed(&self) -> bool {
        *self.deposed.borrow()
    }

    /// Resolves once a write found that this leader's fence is gone.
    pub async fn deposed(&self) {
        let mut rx = self.deposed.subscribe();
        let _ = rx.wait_for(|d| *d).await;
    }

    /// Marks the store deposed (the leader lost its lease): every later write fails.
    pub fn depose(&self) {
        self.deposed.send_replace(true);
    }

    async fn fenced_txn(
        &self,
        conditions: Vec<MetaCondition>,
        ops: Vec<MetaOp>,
    ) -> Result<bool, CoreError> {
        if self.is_deposed() {
            return Err(fenced_out());
        }
        let mut all = Vec::with_capacity(conditions.len() + 1);
        all.push(self.fence.condition());
        all.extend(conditions);
        let mut ops = ops;
        ops.push(MetaOp::Put {
            key: WRITER_KEY.to_string(),
            value: self.fence.revision.to_string().into_bytes(),
        });
        if self.inner.txn(all, ops).await? {
            return Ok(true);
        }
        // The fence or one of the caller's conditions failed: find out which.
        let holds = self
            .inner
            .get(&self.fence.key)
            .await?
            .is_some_and(|kv| kv.mod_revision == self.fence.revision);
        if holds {
            Ok(false)
        } else {
            tracing::warn!(
                key = %self.fence.key,
                revision = self.fence.revision,
                "a fenced write failed: this coordinator no longer leads"
            );
            self.depose();
            Err(fenced_out())
        }
    }
}

#[async_trait]
impl MetaStore for FencedStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, CoreError> {
        self.inner.get(key).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<KeyValue>, CoreError> {
        self.inner.list(prefix).await
    }

    async fn list_at(&self, prefix: &str) -> Result<(Vec<KeyValue>, i64), CoreError> {
        self.inner.list_at(prefix).await
    }

    async fn watch(
        &self,
        prefix: &str,
        revision: i64,
    ) -> Result<Option<Box<dyn MetaWatch>>, CoreError> {
        self.inner.watch(prefix, revision).await
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<i64, CoreError> {
        let op = MetaOp::Put {
            key: key.to_string(),
            value,
        };
        if !self.fenced_txn(vec![], vec![op]).await? {
            return Err(fenced_out());
        }
        // A transaction does not report the revision it wrote: read it back.
        Ok(self
            .inner
            .get(key)
            .await?
            .map(|kv| kv.mod_revision)
            .unwrap_or_default())
    }

    async fn delete(&self, key: &str) -> Result<(), CoreError> {
        let op = MetaOp::Delete {
            key: key.to_string(),
        };
        if !self.fenced_txn(vec![], vec![op]).await? {
            return Err(fenced_out());
        }
        Ok(())
    }

    async fn txn(
        &self,
        conditions: Vec<MetaCondition>,
        ops: Vec<MetaOp>,
    ) -> Result<bool, CoreError> {
        self.fenced_txn(conditions, ops).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrovus_core::store::memory::MemoryMetaStore;

    #[tokio::test]
    async fn writes_fail_once_the_fence_moved_and_the_store_stays_deposed() {
        let raw: Arc<dyn MetaStore> = Arc::new(MemoryMetaStore::default());
        let rev = raw.put("coord/leader", b"a".to_vec()).await.unwrap();
        let f = FencedStore::new(
            raw.clone(),
            Fence {
                key: "coord/leader".into(),
                revision: rev,
            },
        );
        let r = f.put("k", b"1".to_vec()).await.unwrap();
        assert_eq!(raw.get("k").await.unwrap().unwrap().mod_revision, r);
        // The write names its writer's term, in the same revision.
        let writer = raw.get(WRITER_KEY).await.unwrap().unwrap();
        assert_eq!(
            (writer.value, writer.mod_revision),
            (rev.to_string().into_bytes(), r)
        );
        // A failed caller condition is not a lost fence.
        let cond = MetaCondition::ModRevision {
            key: "k".into(),
            revision: 0,
        };
        assert!(!f.txn(vec![cond], vec![]).await.unwrap());
        assert!(!f.is_deposed());
        // Someone else takes the key.
        raw.put("coord/leader", b"b".to_vec()).await.unwrap();
        let e = f.put("k", b"2".to_vec()).await.unwrap_err();
        assert!(is_fenced_out(&e), "{e}");
        assert!(f.is_deposed());
        assert_eq!(raw.get("k").await.unwrap().unwrap().value, b"1");
        assert!(matches!(
            store_error(f.delete("k").await.unwrap_err()),
            ClusterError::NotLeader { .. }
        ));
        f.deposed().await; // resolves
        assert_eq!(f.get("k").await.unwrap().unwrap().value, b"1", "reads work");
    }
}
