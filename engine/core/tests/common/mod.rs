//! Helpers for shard-level tests: in-memory stores that outlive a shard (so a test can drop a
//! shard without flushing, as a crash would, and open it again), a small schema and writes.

#![allow(dead_code)]

use std::sync::Arc;

use ferrovus_core::CoreConfig;
use ferrovus_core::schema::{CollectionSchema, DataType, FieldSchema};
use ferrovus_core::shard::{MetaCheckpointStore, Shard, ShardEnv, ShardHooks, ShardOptions};
use ferrovus_core::store::memory::{MemoryMetaStore, MemoryObjectStore};
use ferrovus_core::tso::{IdAllocator, TimestampOracle};
use ferrovus_core::value::{Column, PrimaryKey, RowBatch};
use ferrovus_core::wal::WalRecord;
use parking_lot::RwLock;

pub const DIM: usize = 4;
pub const COLLECTION: i64 = 7;

/// Stores shared by every incarnation of a shard.
pub struct Stores {
    pub meta: Arc<MemoryMetaStore>,
    pub objects: Arc<MemoryObjectStore>,
}

impl Stores {
    pub fn new() -> Self {
        Stores {
            meta: Arc::new(MemoryMetaStore::default()),
            objects: Arc::new(MemoryObjectStore::default()),
        }
    }

    pub async fn env(&self, config: CoreConfig, hooks: Option<Arc<dyn ShardHooks>>) -> ShardEnv {
        let tso = TimestampOracle::open(self.meta.clone(), "tso/upper")
            .await
            .unwrap();
        let ids = IdAllocator::open(self.meta.clone(), "ids/next", 1_000)
            .await
            .unwrap();
        ShardEnv {
            objects: self.objects.clone(),
            meta: self.meta.clone(),
            tso: Arc::new(tso),
            ids: Arc::new(ids),
            config: Arc::new(config),
            checkpoints: Arc::new(MetaCheckpointStore::new(self.meta.clone())),
            hooks,
        }
    }

    /// Open shard 0 of the test collection.
    pub async fn open(&self, config: CoreConfig, hooks: Option<Arc<dyn ShardHooks>>) -> Shard {
        self.open_with(config, hooks, ShardOptions::default()).await
    }

    /// Open shard 0 of the test collection with explicit options.
    pub async fn open_with(
        &self,
        config: CoreConfig,
        hooks: Option<Arc<dyn ShardHooks>>,
        options: ShardOptions,
    ) -> Shard {
        let env = self.env(config, hooks).await;
        Shard::open_with(
            COLLECTION,
            0,
            Arc::new(schema()),
            Arc::new(RwLock::new(Vec::new())),
            env,
            options,
        )
        .await
        .unwrap()
    }
}

/// A config that never seals or compacts on its own.
pub fn manual_config() -> CoreConfig {
    CoreConfig {
        seal_rows: usize::MAX,
        seal_bytes: usize::MAX,
        compaction_small_rows: 0,
        compaction_deleted_ratio: 1.0,
        ..CoreConfig::default()
    }
}

pub fn schema() -> CollectionSchema {
    CollectionSchema {
        name: "c".into(),
        description: String::new(),
        fields: vec![
            FieldSchema::new("id", DataType::Int64).primary(false),
            FieldSchema::new("tag", DataType::Int64),
            FieldSchema::new("v", DataType::FloatVector).with_dim(DIM as u32),
        ],
        enable_dynamic_field: false,
    }
    .validate_and_normalize()
    .unwrap()
}

pub fn vector(i: i64) -> Vec<f32> {
    (0..DIM)
        .map(|d| ((i + 1) as f32 * (d as f32 + 0.5)).sin())
        .collect()
}

/// Rows `ids` with `tag` in schema order.
pub fn batch(ids: impl IntoIterator<Item = i64>, tag: i64) -> RowBatch {
    let ids: Vec<i64> = ids.into_iter().collect();
    RowBatch {
        columns: vec![
            ("id".into(), Column::Int(ids.clone())),
            ("tag".into(), Column::Int(vec![tag; ids.len()])),
            (
                "v".into(),
                Column::FloatVector {
                    dim: DIM,
                    data: ids.iter().flat_map(|i| vector(*i)).collect(),
                },
            ),
        ],
    }
}

pub fn insert(partition_id: i64, ids: impl IntoIterator<Item = i64>, tag: i64) -> WalRecord {
    WalRecord::Insert {
        partition_id,
        ts: 0,
        rows: batch(ids, tag),
    }
}

pub fn upsert(partition_id: i64, ids: impl IntoIterator<Item = i64>, tag: i64) -> WalRecord {
    WalRecord::Upsert {
        partition_id,
        ts: 0,
        rows: batch(ids, tag),
    }
}

pub fn delete(ids: impl IntoIterator<Item = i64>) -> WalRecord {
    WalRecord::Delete {
        ts: 0,
        pks: ids.into_iter().map(PrimaryKey::Int).collect(),
    }
}

pub fn int(pk: &PrimaryKey) -> i64 {
    match pk {
        PrimaryKey::Int(i) => *i,
        PrimaryKey::Str(_) => panic!("string key"),
    }
}

pub fn ints(pks: &[PrimaryKey]) -> Vec<i64> {
    let mut v: Vec<i64> = pks
        .iter()
        .map(|p| match p {
            PrimaryKey::Int(i) => *i,
            PrimaryKey::Str(_) => panic!("string key"),
        })
        .collect();
    v.sort_unstable();
    v
}
