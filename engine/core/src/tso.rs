//! Hybrid timestamps (physical milliseconds << 18 | logical counter, as Milvus' TSO) and
//! monotonic ID allocation, both persisted ahead of use so a restart never goes backwards.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use parking_lot::Mutex;

use crate::error::{CoreError, Result};
use crate::store::MetaStore;

pub const LOGICAL_BITS: u32 = 18;
const LOGICAL_MASK: u64 = (1 << LOGICAL_BITS) - 1;
/// How far ahead of the clock the persisted upper bound is kept.
const SAVE_WINDOW_MS: u64 = 3_000;

pub fn compose(physical_ms: u64, logical: u64) -> u64 {
    (physical_ms << LOGICAL_BITS) | (logical & LOGICAL_MASK)
}

pub fn physical_ms(ts: u64) -> u64 {
    ts >> LOGICAL_BITS
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[derive(Debug, Default)]
struct TsoState {
    physical: u64,
    logical: u64,
    /// Persisted bound: no timestamp at or beyond `saved_until` ms is handed out before it is
    /// persisted further.
    saved_until: u64,
}

/// Timestamp oracle. One per database (standalone) or per active coordinator (cluster).
#[derive(Debug)]
pub struct TimestampOracle {
    state: Mutex<TsoState>,
    meta: Arc<dyn MetaStore>,
    key: String,
}

impl TimestampOracle {
    /// Load the persisted bound and start strictly after it.
    pub async fn open(meta: Arc<dyn MetaStore>, key: impl Into<String>) -> Result<Self> {
        let key = key.into();
        let saved = match meta.get(&key).await? {
            Some(kv) => parse_u64(&kv.value, &key)?,
            None => 0,
        };
        let physical = now_ms().max(saved + 1);
        let saved_until = physical + SAVE_WINDOW_MS;
        meta.put(&key, saved_until.to_string().into_bytes()).await?;
        Ok(TimestampOracle {
            state: Mutex::new(TsoState {
                physical,
                logical: 0,
                saved_until,
            }),
            meta,
            key,
        })
    }

    /// Allocate `count` consecutive timestamps; returns the last one.
    pub async fn alloc(&self, count: u32) -> Result<u64> {
        let count = u64::from(count.max(1));
        loop {
            let need_save = {
                let mut s = self.state.lock();
                let now = now_ms();
                if now > s.physical {
                    s.physical = now;
                    s.logical = 0;
                }
                if s.logical + count > LOGICAL_MASK {
                    s.physical += 1;
                    s.logical = 0;
                }
                if s.physical < s.saved_until {
                    s.logical += count;
                    return Ok(compose(s.physical, s.logical));
                }
                s.physical + SAVE_WINDOW_MS
            };
            self.meta
                .put(&self.key, need_save.to_string().into_bytes())
                .await?;
            let mut s = self.state.lock();
            s.saved_until = s.saved_until.max(need_save);
        }
    }

    /// The latest timestamp handed out (not a new allocation).
    pub fn last(&self) -> u64 {
        let s = self.state.lock();
        compose(s.physical, s.logical)
    }
}

/// Monotonic 64-bit ID allocator persisted in blocks (used for auto_id keys, segment and
/// collection ids).
#[derive(Debug)]
pub struct IdAllocator {
    state: tokio::sync::Mutex<(i64, i64)>, // (next, end of persisted block)
    meta: Arc<dyn MetaStore>,
    key: String,
    block: i64,
}

impl IdAllocator {
    pub async fn open(
        meta: Arc<dyn MetaStore>,
        key: impl Into<String>,
        start: i64,
    ) -> Result<Self> {
        let key = key.into();
        let next = match meta.get(&key).await? {
            Some(kv) => parse_u64(&kv.value, &key)? as i64,
            None => start,
        };
        Ok(IdAllocator {
            state: tokio::sync::Mutex::new((next, next)),
            meta,
            key,
            block: 100_000,
        })
    }

    /// Allocate `count` ids; returns the first (they are `first..first+count`).
    pub async fn alloc(&self, count: u32) -> Result<i64> {
        let count = i64::from(count);
        let mut s = self.state.lock().await;
        if s.0 + count > s.1 {
            let end = s.0 + count + self.block;
            self.meta
                .put(&self.key, end.to_string().into_bytes())
                .await?;
            s.1 = end;
        }
        let first = s.0;
        s.0 += count;
        Ok(first)
    }
}

/// Where a shard gets write timestamps: the local [`TimestampOracle`] in standalone, the
/// coordinator in a cluster.
#[async_trait]
pub trait TsoSource: Send + Sync + std::fmt::Debug {
    /// Allocate `count` consecutive timestamps; returns the last one.
    async fn alloc(&self, count: u32) -> Result<u64>;
}

/// Where a shard gets segment ids (and the proxy auto ids): the local [`IdAllocator`] in
/// standalone, the coordinator's id blocks in a cluster.
#[async_trait]
pub trait IdSource: Send + Sync + std::fmt::Debug {
    /// Allocate `count` ids; returns the first (they are `first..first+count`).
    async fn alloc(&self, count: u32) -> Result<i64>;
}

#[async_trait]
impl TsoSource for TimestampOracle {
    async fn alloc(&self, count: u32) -> Result<u64> {
        TimestampOracle::alloc(self, count).await
    }
}

#[async_trait]
impl IdSource for IdAllocator {
    async fn alloc(&self, count: u32) -> Result<i64> {
        IdAllocator::alloc(self, count).await
    }
}

fn parse_u64(v: &[u8], key: &str) -> Result<u64> {
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .ok_or_else(|| CoreError::corrupted(key, "not an unsigned integer"))
}
