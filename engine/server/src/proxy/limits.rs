//! Limits that refuse instead of queueing without bound: concurrent requests per process, and
//! per-collection rates of inserted bytes and searched queries (Milvus' `proxy.maxTaskNum` and
//! `quotaAndLimits.dml.insertRate.collection` / `dql.searchRate.collection`, per process).
//!
//! A refusal is a Milvus status a client understands: TOO_MANY_REQUESTS (4) for concurrency,
//! RATE_LIMIT (8) for rates (pymilvus backs off and retries it), counted under its code in
//! `ferrovus_rpc_requests_total` like every answer.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::LimitsConfig;
use crate::error::ApiError;

/// Health and handshake calls are never refused: a saturated server must still say so.
const EXEMPT: &[&str] = &["Connect", "GetVersion", "CheckHealth", "GetComponentStates"];

pub(super) struct Limits {
    concurrent: Option<(Arc<Semaphore>, usize)>,
    insert_bytes: Option<RateLimiter>,
    search_queries: Option<RateLimiter>,
}

impl Limits {
    pub fn new(cfg: &LimitsConfig) -> Self {
        let rate = |r: f64, unit: &'static str| (r > 0.0).then(|| RateLimiter::new(r, unit));
        Limits {
            concurrent: (cfg.max_concurrent_requests > 0).then(|| {
                (
                    Arc::new(Semaphore::new(cfg.max_concurrent_requests)),
                    cfg.max_concurrent_requests,
                )
            }),
            insert_bytes: rate(cfg.insert_mb_per_second * 1024.0 * 1024.0, "bytes"),
            search_queries: rate(cfg.search_queries_per_second, "queries"),
        }
    }

    /// A slot for one request of `method` (held until it is answered), or TOO_MANY_REQUESTS.
    pub fn enter(&self, method: &str) -> Result<Option<OwnedSemaphorePermit>, ApiError> {
        let Some((sem, max)) = &self.concurrent else {
            return Ok(None);
        };
        if EXEMPT.contains(&method) {
            return Ok(None);
        }
        sem.clone()
            .try_acquire_owned()
            .map(Some)
            .map_err(|_| ApiError::TooManyRequests { limit: *max })
    }

    /// Charge an insert or upsert of `bytes` to `collection`.
    pub fn charge_insert(&self, collection: &str, bytes: usize) -> Result<(), ApiError> {
        match &self.insert_bytes {
            Some(r) => r.charge("insert", collection, bytes as f64),
            None => Ok(()),
        }
    }

    /// Charge a search of `queries` vectors to `collection`.
    pub fn charge_search(&self, collection: &str, queries: i64) -> Result<(), ApiError> {
        match &self.search_queries {
            Some(r) => r.charge("search", collection, queries.max(1) as f64),
            None => Ok(()),
        }
    }
}

/// Token buckets per collection: `rate` per second, a burst of one second's worth. A request
/// passes when the bucket holds its cost; one larger than a second's worth passes when the
/// bucket is full and takes it below zero, so it is slowed down, never refused forever.
struct RateLimiter {
    rate: f64,
    unit: &'static str,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    fn new(rate: f64, unit: &'static str) -> Self {
        RateLimiter {
            rate,
            unit,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn charge(&self, what: &'static str, collection: &str, amount: f64) -> Result<(), ApiError> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock();
        let (tokens, last) = buckets
            .entry(collection.to_string())
            .or_insert((self.rate, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.rate).min(self.rate);
        *last = now;
        if *tokens < amount.min(self.rate) {
            return Err(ApiError::RateLimited {
                what,
                collection: collection.to_string(),
                limit: format!("{} {} per second", self.rate, self.unit),
            });
        }
        *tokens -= amount;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrovus_proto::codes;

    #[test]
    fn concurrency_is_bounded_and_health_calls_are_exempt() {
        let l = Limits::new(&LimitsConfig {
            max_concurrent_requests: 2,
            ..LimitsConfig::default()
        });
        let a = l.enter("Search").unwrap();
        let _b = l.enter("Insert").unwrap();
        let e = l.enter("Query").unwrap_err();
        assert_eq!(e.code(), codes::TOO_MANY_REQUESTS);
        assert!(e.to_string().contains('2'), "{e}");
        assert!(l.enter("CheckHealth").is_ok());
        drop(a);
        assert!(
            l.enter("Query").is_ok(),
            "a finished request frees its slot"
        );
    }

    #[test]
    fn rates_are_per_collection_and_refill() {
        let l = Limits::new(&LimitsConfig {
            search_queries_per_second: 10.0,
            ..LimitsConfig::default()
        });
        // a burst of one second's worth passes, then the bucket is empty
        l.charge_search("a", 10).unwrap();
        let e = l.charge_search("a", 1).unwrap_err();
        assert_eq!(e.code(), codes::RATE_LIMIT);
        assert!(e.to_string().contains("collection=a"), "{e}");
        // another collection has its own budget
        l.charge_search("b", 5).unwrap();
        // it refills with time
        std::thread::sleep(std::time::Duration::from_millis(250));
        l.charge_search("a", 1).unwrap();
        // no limit configured: nothing is refused
        let open = Limits::new(&LimitsConfig::default());
        for _ in 0..1000 {
            open.charge_insert("a", 1 << 20).unwrap();
        }
    }
}
