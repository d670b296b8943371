//! [`RedbMetaStore`]: the [`MetaStore`] for standalone mode, in one embedded redb file.
//!
//! Layout: table `kv` maps key → (value, mod_revision); table `meta` holds the global revision
//! counter under `revision`. Every mutation is one redb write transaction committed with
//! `Durability::Immediate` (fsynced before the call returns), so a crash loses nothing that was
//! acknowledged and never exposes a half-applied transaction. Revisions follow etcd: a put, a
//! delete of an existing key and a successful transaction with writes each advance the revision
//! by one, and every key a transaction writes gets that same revision; reads, deletes of missing
//! keys and transactions that fail (or have no ops) leave it alone.
//!
//! redb calls block, so they run on tokio's blocking pool; redb serialises write transactions.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use ferrovus_core::Result;
use ferrovus_core::store::{KeyValue, MetaCondition, MetaOp, MetaStore};
use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction,
};

use crate::error::{StorageError, StorageResult};
use crate::{validate_meta_key, validate_txn_ops};

const KV: TableDefinition<'_, &str, (&[u8], i64)> = TableDefinition::new("kv");
const META: TableDefinition<'_, &str, i64> = TableDefinition::new("meta");
const REVISION: &str = "revision";

/// A [`MetaStore`] in a redb database file. Cheap to clone; one instance per file per process.
#[derive(Clone)]
pub struct RedbMetaStore {
    db: Arc<Database>,
    path: Arc<PathBuf>,
}

impl fmt::Debug for RedbMetaStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbMetaStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

type R<T> = std::result::Result<T, redb::Error>;

fn begin_write(db: &Database) -> R<WriteTransaction> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    Ok(txn)
}

fn current_revision(txn: &WriteTransaction) -> R<i64> {
    Ok(txn
        .open_table(META)?
        .get(REVISION)?
        .map_or(0, |g| g.value()))
}

fn set_revision(txn: &WriteTransaction, revision: i64) -> R<()> {
    txn.open_table(META)?.insert(REVISION, revision)?;
    Ok(())
}

impl RedbMetaStore {
    /// Opens the database at `path`, creating it (and its parent directory) if needed. A file
    /// left by a crash is repaired on open.
    pub async fn open(path: impl AsRef<Path>) -> StorageResult<Self> {
        let path = path.as_ref().to_path_buf();
        tokio::task::spawn_blocking(move || Self::open_blocking(path)).await?
    }

    /// [`Self::open`] for non-async callers.
    pub fn open_blocking(path: impl AsRef<Path>) -> StorageResult<Self> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StorageError::io(dir, e))?;
        }
        let db = Database::create(&path).map_err(redb::Error::from)?;
        let init = || -> R<()> {
            let txn = begin_write(&db)?;
            txn.open_table(KV)?;
            txn.open_table(META)?;
            txn.commit()?;
            Ok(())
        };
        init()?;
        Ok(Self {
            db: Arc::new(db),
            path: Arc::new(path),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The store's current revision (0 for a new store).
    pub async fn revision(&self) -> StorageResult<i64> {
        self.blocking(|db| {
            Ok(db
                .begin_read()?
                .open_table(META)?
                .get(REVISION)?
                .map_or(0, |g| g.value()))
        })
        .await
    }

    async fn blocking<T, F>(&self, f: F) -> StorageResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> R<T> + Send + 'static,
    {
        let db = self.db.clone();
        Ok(tokio::task::spawn_blocking(move || f(&db)).await??)
    }
}

#[async_trait]
impl MetaStore for RedbMetaStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        validate_meta_key(key)?;
        let key = key.to_string();
        let kv = self
            .blocking(move |db| {
                let table = db.begin_read()?.open_table(KV)?;
                Ok(table.get(key.as_str())?.map(|g| {
                    let (value, mod_revision) = g.value();
                    KeyValue {
                        key,
                        value: value.to_vec(),
                        mod_revision,
                    }
                }))
            })
            .await?;
        Ok(kv)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<KeyValue>> {
        let prefix = prefix.to_string();
        let kvs = self
            .blocking(move |db| {
                let table = db.begin_read()?.open_table(KV)?;
                let mut out = Vec::new();
                for entry in table.range(prefix.as_str()..)? {
                    let (k, v) = entry?;
                    let key = k.value();
                    if !key.starts_with(prefix.as_str()) {
                        break; // keys are sorted: past the prefix
                    }
                    let (value, mod_revision) = v.value();
                    out.push(KeyValue {
                        key: key.to_string(),
                        value: value.to_vec(),
                        mod_revision,
                    });
                }
                Ok(out)
            })
            .await?;
        Ok(kvs)
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<i64> {
        validate_meta_key(key)?;
        let key = key.to_string();
        let rev = self
            .blocking(move |db| {
                let txn = begin_write(db)?;
                let rev = current_revision(&txn)? + 1;
                txn.open_table(KV)?
                    .insert(key.as_str(), (value.as_slice(), rev))?;
                set_revision(&txn, rev)?;
                txn.commit()?;
                Ok(rev)
            })
            .await?;
        Ok(rev)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        validate_meta_key(key)?;
        let key = key.to_string();
        self.blocking(move |db| {
            let txn = begin_write(db)?;
            let existed = txn.open_table(KV)?.remove(key.as_str())?.is_some();
            if existed {
                let rev = current_revision(&txn)? + 1;
                set_revision(&txn, rev)?;
                txn.commit()?;
            } else {
                txn.abort()?;
            }
            Ok(())
        })
        .await?;
        Ok(())
    }

    async fn txn(&self, conditions: Vec<MetaCondition>, ops: Vec<MetaOp>) -> Result<bool> {
        validate_txn_ops(&ops)?;
        for MetaCondition::ModRevision { key, .. } in &conditions {
            validate_meta_key(key)?;
        }
        let applied = self
            .blocking(move |db| {
                let txn = begin_write(db)?;
                let holds = {
                    let table = txn.open_table(KV)?;
                    let mut holds = true;
                    for MetaCondition::ModRevision { key, revision } in &conditions {
                        let current = table.get(key.as_str())?.map_or(0, |g| g.value().1);
                        if current != *revision {
                            holds = false;
                            break;
                        }
                    }
                    holds
                };
                if !holds || ops.is_empty() {
                    txn.abort()?;
                    return Ok(holds);
                }
                let rev = current_revision(&txn)? + 1;
                let mut changed = false;
                {
                    let mut table = txn.open_table(KV)?;
                    for op in &ops {
                        match op {
                            MetaOp::Put { key, value } => {
                                table.insert(key.as_str(), (value.as_slice(), rev))?;
                                changed = true;
                            }
                            MetaOp::Delete { key } => {
                                changed |= table.remove(key.as_str())?.is_some();
                            }
                        }
                    }
                }
                if changed {
                    set_revision(&txn, rev)?;
                    txn.commit()?;
                } else {
                    txn.abort()?;
                }
                Ok(true)
            })
            .await?;
        Ok(applied)
    }
}
