//! Sessions, node ids and leader election: the [`Coordination`] trait, on etcd
//! ([`EtcdCoordination`], cluster) or in memory ([`LocalCoordination`], standalone).
//!
//! Metadata layout (under the cluster's key prefix, see docs/distributed.md):
//!
//! ```text
//! ids/node                       last node id handed out (decimal), advanced by compare-and-swap
//! session/<role>/<node_id>       SessionInfo as JSON, bound to the session's lease
//! coord/leader                   the coordinator leader's value, bound to the leader's lease
//! ```
//!
//! A **session** says "this process is alive at these addresses"; it disappears when the process
//! revokes it or its lease expires. A **leader** holds a key bound to a lease; its
//! [`Fence`] (the key's mod revision) goes into every write the leader makes
//! (`MetaStore::txn(vec![fence.condition()], ..)`), so a deposed leader's writes fail even if it
//! has not noticed yet.
//!
//! Both handles ([`Session`], [`LeaderGuard`]) expose a `lost` signal: for a leader it fires as
//! soon as one keep-alive fails (the leader must stop acting before its lease can have expired
//! for the others); for a session when the lease is known expired or could not be renewed
//! before it would expire. Dropping a handle without [`Session::revoke`] /
//! [`LeaderGuard::resign`] stops the keep-alive: others see it go when the lease expires, as after
//! a crash.

mod etcd;
mod keepalive;
mod local;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use ferrovus_core::CoreError;
use ferrovus_core::store::{MetaCondition, MetaOp, MetaStore};
use ferrovus_storage::StorageError;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::sync::{mpsc, watch};

pub use etcd::EtcdCoordination;
pub use local::LocalCoordination;

/// Key of the coordinator's leader election.
pub const COORDINATOR_LEADER_KEY: &str = "coord/leader";
/// Counter of node ids.
pub const NODE_ID_KEY: &str = "ids/node";
/// Prefix of all sessions; a role's are under `session/<role>/`.
pub const SESSION_PREFIX: &str = "session/";

#[derive(Debug, Error)]
pub enum SessionError {
    #[error("metadata store: {0}")]
    Storage(#[from] StorageError),
    #[error("metadata store: {0}")]
    Core(#[from] CoreError),
    #[error("corrupted {key}: {message}")]
    Corrupted { key: String, message: String },
    /// A lease could not be kept alive (e.g. the first keep-alive of a new leader failed).
    #[error("lease lost: {0}")]
    LeaseLost(String),
    /// Too many concurrent writers raced on a compare-and-swap.
    #[error("contention on {0}: gave up after repeated conflicts")]
    Contention(String),
    #[error("invalid {field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
}

/// The five cluster roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoleKind {
    Coordinator,
    Proxy,
    Streaming,
    Query,
    Data,
}

impl RoleKind {
    pub const ALL: [RoleKind; 5] = [
        RoleKind::Coordinator,
        RoleKind::Proxy,
        RoleKind::Streaming,
        RoleKind::Query,
        RoleKind::Data,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RoleKind::Coordinator => "coordinator",
            RoleKind::Proxy => "proxy",
            RoleKind::Streaming => "streaming",
            RoleKind::Query => "query",
            RoleKind::Data => "data",
        }
    }
}

impl fmt::Display for RoleKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RoleKind {
    type Err = SessionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RoleKind::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| SessionError::Invalid {
                field: "role",
                message: format!(
                    "unknown role {s:?} (expected one of coordinator, proxy, streaming, query, data)"
                ),
            })
    }
}

/// What a session advertises. Stored as JSON; fields added later must be `#[serde(default)]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub role: RoleKind,
    pub node_id: u64,
    /// `host:port` of the internal RPC server.
    pub grpc_address: String,
    /// `host:port` of the HTTP port (health, metrics).
    pub http_address: String,
    pub version: String,
    /// Process start, milliseconds since the Unix epoch.
    pub start_time_ms: u64,
}

impl SessionInfo {
    /// `session/<role>/<node_id>`.
    pub fn key(&self) -> String {
        session_key(self.role, self.node_id)
    }
}

pub fn session_key(role: RoleKind, node_id: u64) -> String {
    format!("{SESSION_PREFIX}{role}/{node_id}")
}

fn session_prefix(role: Option<RoleKind>) -> String {
    match role {
        Some(r) => format!("{SESSION_PREFIX}{r}/"),
        None => SESSION_PREFIX.to_string(),
    }
}

fn decode_session(key: &str, value: &[u8]) -> Result<SessionInfo, SessionError> {
    serde_json::from_slice(value).map_err(|e| SessionError::Corrupted {
        key: key.to_string(),
        message: e.to_string(),
    })
}

/// `(role, node id)` from a session key.
fn parse_session_key(key: &str) -> Option<(RoleKind, u64)> {
    let rest = key.strip_prefix(SESSION_PREFIX)?;
    let (role, id) = rest.split_once('/')?;
    Some((role.parse().ok()?, id.parse().ok()?))
}

/// A change of the set of live sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// A session appeared (or was re-written with new info).
    Added(SessionInfo),
    /// A session disappeared (revoked, or its lease expired).
    Removed { role: RoleKind, node_id: u64 },
}

/// The live sessions at the time of the call, then every change after it (no gap, no overlap).
#[derive(Debug)]
pub struct SessionWatch {
    pub initial: Vec<SessionInfo>,
    events: mpsc::UnboundedReceiver<SessionEvent>,
}

impl SessionWatch {
    /// The next change; `None` once the watch ended (the coordination backend was dropped).
    pub async fn next(&mut self) -> Option<SessionEvent> {
        self.events.recv().await
    }
}

/// The holder of a leader key: its value and the key's mod revision when it was acquired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderInfo {
    pub value: Vec<u8>,
    pub revision: i64,
}

/// A leader's fence: the leader key and its mod revision at election. While the leader holds the
/// key its revision does not change, so a transaction conditioned on it commits only if the
/// caller is still the leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub key: String,
    pub revision: i64,
}

impl Fence {
    /// `MetaCondition::ModRevision { key, revision }`: add it to every write of the leader.
    pub fn condition(&self) -> MetaCondition {
        MetaCondition::ModRevision {
            key: self.key.clone(),
            revision: self.revision,
        }
    }
}

/// Backend-specific release of a handle (revoke the lease / free the local slot).
#[async_trait]
trait Release: Send + Sync + fmt::Debug {
    async fn release(self: Box<Self>) -> Result<(), SessionError>;
}

/// Waits for a `lost` flag. A dropped sender counts as lost (the keep-alive is gone).
async fn wait_lost(rx: &watch::Receiver<bool>) {
    let mut rx = rx.clone();
    let _ = rx.wait_for(|lost| *lost).await;
}

/// A registered session. Drop it to stop renewing (the session then expires), or
/// [`Self::revoke`] it to remove it at once.
#[derive(Debug)]
pub struct Session {
    info: SessionInfo,
    lost: watch::Receiver<bool>,
    release: Box<dyn Release>,
}

impl Session {
    pub fn info(&self) -> &SessionInfo {
        &self.info
    }

    pub fn is_lost(&self) -> bool {
        *self.lost.borrow() || self.lost.has_changed().is_err()
    }

    /// Resolves when the session's lease is gone or could not be renewed in time: other nodes
    /// consider this node dead; it must stop serving (and typically exit to be restarted with a
    /// new node id).
    pub async fn lost(&self) {
        wait_lost(&self.lost).await
    }

    /// A receiver of the lost flag, to select on without borrowing the session.
    pub fn lost_signal(&self) -> watch::Receiver<bool> {
        self.lost.clone()
    }

    /// Removes the session now (others see it disappear at once).
    pub async fn revoke(self) -> Result<(), SessionError> {
        self.release.release().await
    }
}

/// Leadership of a key, held until [`Self::resign`], the guard is dropped (the lease then
/// expires), or the lease is lost ([`Self::lost`]).
#[derive(Debug)]
pub struct LeaderGuard {
    fence: Fence,
    value: Vec<u8>,
    lost: watch::Receiver<bool>,
    release: Box<dyn Release>,
}

impl LeaderGuard {
    pub fn fence(&self) -> &Fence {
        &self.fence
    }

    pub fn value(&self) -> &[u8] {
        &self.value
    }

    pub fn is_lost(&self) -> bool {
        *self.lost.borrow() || self.lost.has_changed().is_err()
    }

    /// Resolves as soon as a keep-alive of the leader's lease failed: stop acting as leader now
    /// (the lease may still be alive in the store for a moment, so no one else leads yet; writes
    /// fenced by [`Self::fence`] fail once someone does).
    pub async fn lost(&self) {
        wait_lost(&self.lost).await
    }

    pub fn lost_signal(&self) -> watch::Receiver<bool> {
        self.lost.clone()
    }

    /// Gives up leadership now: the key is deleted, a waiting candidate takes over at once.
    pub async fn resign(self) -> Result<(), SessionError> {
        self.release.release().await
    }
}

/// Sessions, node ids and leader election. See the module docs.
#[async_trait]
pub trait Coordination: Send + Sync + fmt::Debug + 'static {
    /// A node id never handed out before in this cluster, also across restarts (ids grow).
    async fn allocate_node_id(&self) -> Result<u64, SessionError>;

    /// Registers `info` as a live session, kept alive in the background until the returned
    /// handle is revoked or dropped.
    async fn register(&self, info: SessionInfo) -> Result<Session, SessionError>;

    /// Live sessions, of one role or all, ordered by (role, node id).
    async fn list_sessions(&self, role: Option<RoleKind>)
    -> Result<Vec<SessionInfo>, SessionError>;

    /// Live sessions now plus every later change.
    async fn watch_sessions(&self, role: Option<RoleKind>) -> Result<SessionWatch, SessionError>;

    /// Waits until this caller holds `key` (with `value`), then returns the guard. Cancelling the
    /// future gives up the candidacy.
    async fn campaign(&self, key: &str, value: Vec<u8>) -> Result<LeaderGuard, SessionError>;

    /// The current holder of `key`, if any.
    async fn current_leader(&self, key: &str) -> Result<Option<LeaderInfo>, SessionError>;

    /// The holder of `key`, kept current in the background (until every receiver is dropped).
    async fn watch_leader(
        &self,
        key: &str,
    ) -> Result<watch::Receiver<Option<LeaderInfo>>, SessionError>;
}

/// Allocates the next node id from the `ids/node` counter with compare-and-swap, so concurrent
/// allocations never return the same id and ids are never reused.
pub async fn allocate_node_id(meta: &dyn MetaStore) -> Result<u64, SessionError> {
    const ATTEMPTS: usize = 64;
    for _ in 0..ATTEMPTS {
        let current = meta.get(NODE_ID_KEY).await?;
        let (last, revision) = match current {
            None => (0u64, 0i64),
            Some(kv) => {
                let text = std::str::from_utf8(&kv.value).unwrap_or_default();
                let last = text
                    .trim()
                    .parse::<u64>()
                    .map_err(|_| SessionError::Corrupted {
                        key: NODE_ID_KEY.into(),
                        message: format!("not a node id: {:?}", String::from_utf8_lossy(&kv.value)),
                    })?;
                (last, kv.mod_revision)
            }
        };
        let next = last.checked_add(1).ok_or_else(|| SessionError::Corrupted {
            key: NODE_ID_KEY.into(),
            message: "node ids exhausted".into(),
        })?;
        let committed = meta
            .txn(
                vec![MetaCondition::ModRevision {
                    key: NODE_ID_KEY.into(),
                    revision,
                }],
                vec![MetaOp::Put {
                    key: NODE_ID_KEY.into(),
                    value: next.to_string().into_bytes(),
                }],
            )
            .await?;
        if committed {
            return Ok(next);
        }
    }
    Err(SessionError::Contention(NODE_ID_KEY.into()))
}

/// Lease timings of the etcd backend (`cluster.*` in the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoordinationConfig {
    /// TTL of a session's lease: how long a crashed node stays listed.
    pub session_ttl: Duration,
    /// TTL of a leader's lease: how long a crashed leader blocks a takeover.
    pub leader_ttl: Duration,
    /// Time between keep-alives (and the deadline of each).
    pub keepalive_interval: Duration,
}

impl Default for CoordinationConfig {
    fn default() -> Self {
        CoordinationConfig {
            session_ttl: Duration::from_secs(6),
            leader_ttl: Duration::from_secs(3),
            keepalive_interval: Duration::from_secs(1),
        }
    }
}

/// Milliseconds since the Unix epoch, for [`SessionInfo::start_time_ms`].
pub fn unix_time_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
