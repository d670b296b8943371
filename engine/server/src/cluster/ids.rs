//! Auto ids: blocks allocated by the coordinator, handed out by this proxy.

use std::ops::Range;

use crate::api::CoordApi;
use crate::error::{ApiError, ApiResult};

/// The rest of the last block from the coordinator; a batch that does not fit gets a new block
/// (what is left of the old one is never used: ids are unique, not dense).
#[derive(Debug)]
pub(crate) struct IdBlocks {
    block: u32,
    left: tokio::sync::Mutex<Range<i64>>,
}

impl IdBlocks {
    pub fn new(block: u32) -> Self {
        IdBlocks {
            block: block.max(1),
            left: tokio::sync::Mutex::new(0..0),
        }
    }

    /// `n` consecutive unused ids; the first.
    pub async fn alloc(&self, coord: &dyn CoordApi, n: usize) -> ApiResult<i64> {
        let too_many = || ApiError::invalid("data", format!("too many rows in one batch: {n}"));
        let count = i64::try_from(n).map_err(|_| too_many())?;
        let mut left = self.left.lock().await;
        if left.end - left.start >= count {
            let first = left.start;
            left.start += count;
            return Ok(first);
        }
        let want = u32::try_from(n.max(self.block as usize)).map_err(|_| too_many())?;
        let first = coord.alloc_ids(want).await?;
        *left = first + count..first + i64::from(want);
        tracing::debug!(first, count = want, "auto id block allocated");
        Ok(first)
    }
}
