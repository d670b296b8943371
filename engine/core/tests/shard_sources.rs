//! A shard takes its timestamps and segment ids from whatever sources its environment names
//! (a coordinator in a cluster), not from a concrete oracle.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use async_trait::async_trait;
use common::*;
use ferrovus_core::Result;
use ferrovus_core::request::IndexSpec;
use ferrovus_core::shard::Shard;
use ferrovus_core::tso::{IdSource, TsoSource};
use parking_lot::RwLock;

#[derive(Debug)]
struct CountingTso(AtomicU64);

#[async_trait]
impl TsoSource for CountingTso {
    async fn alloc(&self, count: u32) -> Result<u64> {
        Ok(self.0.fetch_add(u64::from(count), Ordering::SeqCst) + u64::from(count))
    }
}

#[derive(Debug)]
struct BlockIds(AtomicI64);

#[async_trait]
impl IdSource for BlockIds {
    async fn alloc(&self, count: u32) -> Result<i64> {
        Ok(self.0.fetch_add(i64::from(count), Ordering::SeqCst))
    }
}

#[tokio::test]
async fn shard_uses_the_injected_timestamp_and_id_sources() {
    let stores = Stores::new();
    let mut env = stores.env(manual_config(), None).await;
    env.tso = Arc::new(CountingTso(AtomicU64::new(1_000)));
    env.ids = Arc::new(BlockIds(AtomicI64::new(5_000_000)));
    let shard = Shard::open(
        COLLECTION,
        0,
        Arc::new(schema()),
        Arc::new(RwLock::new(Vec::<IndexSpec>::new())),
        env,
    )
    .await
    .unwrap();
    assert_eq!(shard.write(insert(1, 0..3, 0), 0).await.unwrap(), 1_001);
    assert_eq!(shard.write(delete([1]), 0).await.unwrap(), 1_002);
    shard.flush().await.unwrap();
    let infos = shard.segment_infos();
    assert_eq!(infos.len(), 1);
    assert!(
        infos[0].sealed && infos[0].segment_id >= 5_000_000,
        "{infos:?}"
    );
}
