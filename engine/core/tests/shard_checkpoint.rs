//! Checkpoints against concurrent writes: everything acknowledged survives a crash right after
//! a checkpoint, whatever the checkpoint interleaved with.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use common::*;
use ferrovus_core::expr::Plan;
use ferrovus_core::shard::{Shard, ShardHooks};
use parking_lot::Mutex;
use tokio::sync::oneshot;

/// Blocks the first checkpoint just before it seals, until the test releases it.
struct BlockFirstSeal {
    entered: Mutex<Option<oneshot::Sender<()>>>,
    release: Mutex<Option<oneshot::Receiver<()>>>,
}

#[async_trait]
impl ShardHooks for BlockFirstSeal {
    async fn before_seal(&self) {
        let entered = self.entered.lock().take();
        if let Some(entered) = entered {
            let _ = entered.send(());
            let release = self.release.lock().take();
            if let Some(release) = release {
                let _ = release.await;
            }
        }
    }
}

fn live_ids(shard: &Shard) -> Vec<i64> {
    let (_, rows) = shard
        .query(&Plan::match_all(), &None, &[0], false, &HashSet::new())
        .value;
    ints(&rows.into_iter().map(|(pk, _)| pk).collect::<Vec<_>>())
}

/// A write to a new partition (a new growing segment) while a checkpoint allocates its segment
/// ids must not be truncated from the log without being sealed.
#[tokio::test]
async fn growing_segment_created_during_a_checkpoint_survives_a_crash() {
    let stores = Stores::new();
    let (entered_tx, entered_rx) = oneshot::channel();
    let (release_tx, release_rx) = oneshot::channel();
    let hooks = Arc::new(BlockFirstSeal {
        entered: Mutex::new(Some(entered_tx)),
        release: Mutex::new(Some(release_rx)),
    });
    let shard = Arc::new(stores.open(manual_config(), Some(hooks)).await);
    shard.write(insert(1, 0..10, 0), 0).await.unwrap();

    let flushing = {
        let shard = shard.clone();
        tokio::spawn(async move { shard.flush().await })
    };
    entered_rx.await.unwrap();
    // The checkpoint is between id allocation and sealing: write to a new partition.
    shard.write(insert(2, 10..20, 0), 0).await.unwrap();
    release_tx.send(()).unwrap();
    flushing.await.unwrap().unwrap();
    assert_eq!(live_ids(&shard), (0..20).collect::<Vec<_>>());

    // Crash: drop without another flush, then recover from the same stores.
    drop(shard);
    let shard = stores.open(manual_config(), None).await;
    assert_eq!(
        live_ids(&shard),
        (0..20).collect::<Vec<_>>(),
        "rows acknowledged during the checkpoint were lost"
    );
}
