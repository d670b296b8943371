//! Storage abstractions the core is written against. Implementations live in `ferrovus-storage`
//! (local filesystem, S3, redb, etcd); the core never names a concrete backend.

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::Result;

/// An object store: immutable blobs under `/`-separated keys (S3 semantics: whole-object put,
/// last writer wins, list by prefix). Keys never start with `/`.
#[async_trait]
pub trait ObjectStore: Send + Sync + std::fmt::Debug + 'static {
    /// Store `data` under `key`, durably, replacing any previous object. Returns once durable.
    async fn put(&self, key: &str, data: Bytes) -> Result<()>;
    /// Read a whole object. A missing key is `CoreError::NotFound`.
    async fn get(&self, key: &str) -> Result<Bytes>;
    /// Read `len` bytes from `offset`. A missing key is `CoreError::NotFound`.
    async fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Bytes>;
    /// Delete an object; deleting a missing key is not an error.
    async fn delete(&self, key: &str) -> Result<()>;
    /// All keys starting with `prefix`, sorted ascending.
    async fn list(&self, prefix: &str) -> Result<Vec<String>>;
    /// Whether `key` exists.
    async fn exists(&self, key: &str) -> Result<bool>;
    /// A local filesystem path for `key` when the store is local (lets indexes be memory-mapped).
    fn local_path(&self, _key: &str) -> Option<std::path::PathBuf> {
        None
    }
}

/// A versioned key-value entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    /// Revision at which this key was last modified (etcd `mod_revision` semantics; > 0).
    pub mod_revision: i64,
}

/// One operation in an atomic metadata transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaOp {
    Put { key: String, value: Vec<u8> },
    Delete { key: String },
}

/// A condition that must hold for a transaction to commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaCondition {
    /// The key's `mod_revision` equals this value; 0 means "the key does not exist".
    ModRevision { key: String, revision: i64 },
}

/// Metadata store: a small, strongly consistent KV store (etcd semantics).
#[async_trait]
pub trait MetaStore: Send + Sync + std::fmt::Debug + 'static {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>>;
    /// All entries whose key starts with `prefix`, sorted by key.
    async fn list(&self, prefix: &str) -> Result<Vec<KeyValue>>;
    /// Put unconditionally; returns the new revision.
    async fn put(&self, key: &str, value: Vec<u8>) -> Result<i64>;
    async fn delete(&self, key: &str) -> Result<()>;
    /// Atomically apply `ops` if every condition holds. Returns `Ok(false)` (and applies
    /// nothing) when a condition fails.
    async fn txn(&self, conditions: Vec<MetaCondition>, ops: Vec<MetaOp>) -> Result<bool>;

    /// Like [`MetaStore::list`], also returning the store revision the listing was taken at
    /// (0 when the store has no revisions to watch from).
    async fn list_at(&self, prefix: &str) -> Result<(Vec<KeyValue>, i64)> {
        Ok((self.list(prefix).await?, 0))
    }

    /// Every change under `prefix` from `revision` (inclusive), in revision order, or `None`
    /// when this store cannot be watched (callers then re-list). Pass the revision of a
    /// [`MetaStore::list_at`] plus one to follow a listing without a gap.
    async fn watch(&self, _prefix: &str, _revision: i64) -> Result<Option<Box<dyn MetaWatch>>> {
        Ok(None)
    }
}

/// One change seen by a [`MetaWatch`]: the key's new entry, or its deletion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaChange {
    Put(KeyValue),
    Delete { key: String, revision: i64 },
}

/// A stream of changes under a prefix (see [`MetaStore::watch`]). Dropping it cancels it.
#[async_trait]
pub trait MetaWatch: Send + std::fmt::Debug {
    /// The next batch of changes (all changes of one revision arrive together); `Ok(None)`
    /// when the store closed the stream. After an error or `None`, re-list and watch again.
    async fn next(&mut self) -> Result<Option<Vec<MetaChange>>>;
}

/// In-memory implementations of the storage traits, for unit tests and ephemeral databases.
pub mod memory {
    use std::collections::BTreeMap;

    use async_trait::async_trait;
    use bytes::Bytes;
    use parking_lot::Mutex;

    use super::{KeyValue, MetaCondition, MetaOp, MetaStore, ObjectStore};
    use crate::error::{CoreError, Result};

    #[derive(Debug, Default)]
    pub struct MemoryObjectStore {
        objects: Mutex<BTreeMap<String, Bytes>>,
    }

    #[async_trait]
    impl ObjectStore for MemoryObjectStore {
        async fn put(&self, key: &str, data: Bytes) -> Result<()> {
            self.objects.lock().insert(key.to_string(), data);
            Ok(())
        }
        async fn get(&self, key: &str) -> Result<Bytes> {
            self.objects
                .lock()
                .get(key)
                .cloned()
                .ok_or_else(|| CoreError::NotFound(key.to_string()))
        }
        async fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Bytes> {
            let b = self.get(key).await?;
            let start = (offset as usize).min(b.len());
            let end = (offset.saturating_add(len) as usize).min(b.len());
            Ok(b.slice(start..end))
        }
        async fn delete(&self, key: &str) -> Result<()> {
            self.objects.lock().remove(key);
            Ok(())
        }
        async fn list(&self, prefix: &str) -> Result<Vec<String>> {
            Ok(self
                .objects
                .lock()
                .keys()
                .filter(|k| k.starts_with(prefix))
                .cloned()
                .collect())
        }
        async fn exists(&self, key: &str) -> Result<bool> {
            Ok(self.objects.lock().contains_key(key))
        }
    }

    type Entries = BTreeMap<String, (Vec<u8>, i64)>;

    #[derive(Debug, Default)]
    pub struct MemoryMetaStore {
        /// (current revision, key → (value, mod revision)).
        inner: Mutex<(i64, Entries)>,
    }

    #[async_trait]
    impl MetaStore for MemoryMetaStore {
        async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
            Ok(self.inner.lock().1.get(key).map(|(v, r)| KeyValue {
                key: key.to_string(),
                value: v.clone(),
                mod_revision: *r,
            }))
        }
        async fn list(&self, prefix: &str) -> Result<Vec<KeyValue>> {
            Ok(self
                .inner
                .lock()
                .1
                .iter()
                .filter(|(k, _)| k.starts_with(prefix))
                .map(|(k, (v, r))| KeyValue {
                    key: k.clone(),
                    value: v.clone(),
                    mod_revision: *r,
                })
                .collect())
        }
        async fn put(&self, key: &str, value: Vec<u8>) -> Result<i64> {
            let mut g = self.inner.lock();
            g.0 += 1;
            let rev = g.0;
            g.1.insert(key.to_string(), (value, rev));
            Ok(rev)
        }
        async fn delete(&self, key: &str) -> Result<()> {
            let mut g = self.inner.lock();
            g.0 += 1;
            g.1.remove(key);
            Ok(())
        }
        async fn txn(&self, conditions: Vec<MetaCondition>, ops: Vec<MetaOp>) -> Result<bool> {
            let mut g = self.inner.lock();
            for c in &conditions {
                let MetaCondition::ModRevision { key, revision } = c;
                let cur = g.1.get(key).map_or(0, |(_, r)| *r);
                if cur != *revision {
                    return Ok(false);
                }
            }
            g.0 += 1;
            let rev = g.0;
            for op in ops {
                match op {
                    MetaOp::Put { key, value } => {
                        g.1.insert(key, (value, rev));
                    }
                    MetaOp::Delete { key } => {
                        g.1.remove(&key);
                    }
                }
            }
            Ok(true)
        }
    }
}
