//! Finding the other roles: the leading coordinator and the streaming / query node at an
//! address. [`LocalNodes`] hands out the role objects of this process (standalone);
//! [`RemoteNodes`] hands out RPC clients (cluster), and its coordinator client follows the
//! leader across takeovers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use parking_lot::Mutex;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{
    Caller, CoordApi, NodeId, QueryApi, RemoteCoord, RemoteQuery, RemoteStreaming, StreamingApi,
};
use crate::rpc::{ClusterError, RpcPool};
use crate::session::{COORDINATOR_LEADER_KEY, Coordination};

/// Where the other roles are.
pub trait Nodes: Send + Sync + 'static {
    /// The leading coordinator.
    fn coord(&self) -> Arc<dyn CoordApi>;
    /// The streaming node `node` at `addr`.
    fn streaming(&self, node: NodeId, addr: &str) -> Result<Arc<dyn StreamingApi>, ClusterError>;
    /// The query node `node` at `addr`.
    fn query(&self, node: NodeId, addr: &str) -> Result<Arc<dyn QueryApi>, ClusterError>;
    /// Forget a connection that failed (the next call reconnects).
    fn forget(&self, _addr: &str) {}
}

/// Every role in this process (standalone): calls go straight to the role objects.
pub struct LocalNodes {
    pub coord: Arc<dyn CoordApi>,
    pub streaming: Arc<dyn StreamingApi>,
    pub query: Arc<dyn QueryApi>,
}

impl Nodes for LocalNodes {
    fn coord(&self) -> Arc<dyn CoordApi> {
        self.coord.clone()
    }
    fn streaming(&self, _: NodeId, _: &str) -> Result<Arc<dyn StreamingApi>, ClusterError> {
        Ok(self.streaming.clone())
    }
    fn query(&self, _: NodeId, _: &str) -> Result<Arc<dyn QueryApi>, ClusterError> {
        Ok(self.query.clone())
    }
}

/// The other roles over the internal RPC.
pub struct RemoteNodes {
    pool: RpcPool,
    coord: Arc<dyn CoordApi>,
}

impl RemoteNodes {
    pub fn new(pool: RpcPool, coordination: Arc<dyn Coordination>, retry_for: Duration) -> Self {
        let caller = LeaderCaller::new(coordination, pool.clone(), retry_for);
        RemoteNodes {
            pool,
            coord: Arc::new(RemoteCoord::new(caller)),
        }
    }
}

impl Nodes for RemoteNodes {
    fn coord(&self) -> Arc<dyn CoordApi> {
        self.coord.clone()
    }
    fn streaming(&self, _: NodeId, addr: &str) -> Result<Arc<dyn StreamingApi>, ClusterError> {
        Ok(Arc::new(RemoteStreaming::new(self.pool.get(addr)?)))
    }
    fn query(&self, _: NodeId, addr: &str) -> Result<Arc<dyn QueryApi>, ClusterError> {
        Ok(Arc::new(RemoteQuery::new(self.pool.get(addr)?)))
    }
    fn forget(&self, addr: &str) {
        self.pool.forget(addr);
    }
}

/// Calls whoever leads the coordinators. The leader key's value is the leader's internal RPC
/// address (`host:port`, UTF-8). While there is no leader, or the one called is not (or no
/// longer) the leader or unreachable, the call is retried with back-off for up to `retry_for`,
/// so a coordinator takeover costs callers latency, not errors.
pub struct LeaderCaller {
    coordination: Arc<dyn Coordination>,
    pool: RpcPool,
    retry_for: Duration,
    leader: Mutex<Option<String>>,
}

impl LeaderCaller {
    pub fn new(coordination: Arc<dyn Coordination>, pool: RpcPool, retry_for: Duration) -> Self {
        LeaderCaller {
            coordination,
            pool,
            retry_for,
            leader: Mutex::new(None),
        }
    }

    async fn leader_addr(&self) -> Result<String, ClusterError> {
        if let Some(a) = self.leader.lock().clone() {
            return Ok(a);
        }
        let info = self
            .coordination
            .current_leader(COORDINATOR_LEADER_KEY)
            .await
            .map_err(|e| ClusterError::Unavailable(format!("looking up the coordinator: {e}")))?
            .ok_or_else(|| ClusterError::Unavailable("no coordinator is leading".into()))?;
        let addr = String::from_utf8(info.value).map_err(|_| {
            ClusterError::Internal("the coordinator leader key does not hold an address".into())
        })?;
        *self.leader.lock() = Some(addr.clone());
        Ok(addr)
    }
}

#[async_trait]
impl Caller for LeaderCaller {
    async fn call<Req, Resp>(&self, method: &'static str, req: &Req) -> Result<Resp, ClusterError>
    where
        Req: Serialize + Send + Sync,
        Resp: DeserializeOwned + Send,
    {
        let deadline = Instant::now() + self.retry_for;
        let mut backoff = Duration::from_millis(20);
        loop {
            let attempt = async {
                let addr = self.leader_addr().await?;
                let client = self.pool.get(&addr)?;
                let r = client.call(method, req).await;
                if r.is_err() {
                    *self.leader.lock() = None;
                }
                r
            };
            match attempt.await {
                Err(e @ (ClusterError::Unavailable(_) | ClusterError::NotLeader { .. }))
                    if Instant::now() + backoff < deadline =>
                {
                    tracing::debug!(method, error = %e, "coordinator call retried");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(500));
                }
                other => return other,
            }
        }
    }
}
