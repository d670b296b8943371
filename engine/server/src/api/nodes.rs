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
use crate::session::{COORDINATOR_LEADER_KEY, Coordination, LeaderInfo};
use tokio::sync::watch;

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
///
/// The caller follows the leader key with a watch: a call in flight to a coordinator that is
/// replaced as leader (or whose key is gone) is abandoned at once and sent to the new leader,
/// instead of waiting for the RPC timeout of a coordinator that is cut off (no answer, no
/// refusal). The deposed coordinator cannot have committed anything after the new election:
/// its writes are fenced.
pub struct LeaderCaller {
    coordination: Arc<dyn Coordination>,
    pool: RpcPool,
    retry_for: Duration,
    leader: Mutex<Option<String>>,
    watched: tokio::sync::OnceCell<watch::Receiver<Option<LeaderInfo>>>,
}

fn addr_of(info: &LeaderInfo) -> Option<String> {
    String::from_utf8(info.value.clone()).ok()
}

/// The leader's address, or the error of a leader key that does not hold one.
fn leader_addr_of(info: &LeaderInfo) -> Result<String, ClusterError> {
    addr_of(info).ok_or_else(|| {
        ClusterError::Internal("the coordinator leader key does not hold an address".into())
    })
}

impl LeaderCaller {
    pub fn new(coordination: Arc<dyn Coordination>, pool: RpcPool, retry_for: Duration) -> Self {
        LeaderCaller {
            coordination,
            pool,
            retry_for,
            leader: Mutex::new(None),
            watched: tokio::sync::OnceCell::new(),
        }
    }

    /// The leader key, followed in the background from the first call on; `None` while the
    /// watch cannot be set up (calls then work without it and try again next time).
    async fn watch(&self) -> Option<watch::Receiver<Option<LeaderInfo>>> {
        let r = self
            .watched
            .get_or_try_init(|| self.coordination.watch_leader(COORDINATOR_LEADER_KEY))
            .await;
        match r {
            Ok(rx) => Some(rx.clone()),
            Err(e) => {
                tracing::debug!(error = %e, "cannot watch the coordinator leader key yet");
                None
            }
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
        let addr = leader_addr_of(&info)?;
        *self.leader.lock() = Some(addr.clone());
        Ok(addr)
    }
}

/// Resolves once the watched leader is no longer `addr` (another leader, or none).
async fn replaced(rx: Option<watch::Receiver<Option<LeaderInfo>>>, addr: &str) {
    let Some(mut rx) = rx else {
        return std::future::pending().await;
    };
    let moved = rx
        .wait_for(|l| l.as_ref().and_then(addr_of).as_deref() != Some(addr))
        .await
        .is_ok();
    if !moved {
        // The watch ended (shutting down): never abandon a call for that.
        std::future::pending::<()>().await;
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
                let watched = self.watch().await;
                let current = watched.as_ref().and_then(|rx| rx.borrow().clone());
                let addr = match current {
                    Some(info) => leader_addr_of(&info)?,
                    None => self.leader_addr().await?,
                };
                let client = self.pool.get(&addr)?;
                let r = tokio::select! {
                    r = client.call(method, req) => r,
                    () = replaced(watched, &addr) => Err(ClusterError::Unavailable(format!(
                        "coord.{method}: the coordinator at {addr} was replaced as leader"
                    ))),
                };
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
