//! [`LocalCoordination`]: the single-process [`Coordination`] of standalone. Sessions and
//! leadership live in memory (a process is its only member: a candidate leads as soon as the key
//! is free, a session is never lost); node ids and the leader key go to the metadata store, so
//! ids are never reused across restarts and a leader's [`Fence`] works in `MetaStore::txn`
//! exactly as on etcd.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use ferrovus_core::store::MetaStore;
use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};

use super::{
    Coordination, Fence, LeaderGuard, LeaderInfo, Release, RoleKind, Session, SessionError,
    SessionEvent, SessionInfo, SessionWatch, allocate_node_id,
};

#[derive(Debug)]
struct LeaderSlot {
    /// One permit: the holder leads; candidates queue on it.
    seat: Arc<Semaphore>,
    current: watch::Sender<Option<LeaderInfo>>,
}

#[derive(Debug, Default)]
struct State {
    sessions: BTreeMap<(RoleKind, u64), SessionInfo>,
    watchers: Vec<(Option<RoleKind>, mpsc::UnboundedSender<SessionEvent>)>,
    leaders: HashMap<String, LeaderSlot>,
}

impl State {
    fn notify(&mut self, role: RoleKind, event: SessionEvent) {
        self.watchers.retain(|(filter, tx)| {
            if filter.is_some_and(|f| f != role) {
                return !tx.is_closed();
            }
            tx.send(event.clone()).is_ok()
        });
    }

    fn slot(&mut self, key: &str) -> &mut LeaderSlot {
        self.leaders
            .entry(key.to_string())
            .or_insert_with(|| LeaderSlot {
                seat: Arc::new(Semaphore::new(1)),
                current: watch::channel(None).0,
            })
    }
}

/// In-process [`Coordination`] over a metadata store (redb in standalone). Cheap to clone.
#[derive(Debug, Clone)]
pub struct LocalCoordination {
    meta: Arc<dyn MetaStore>,
    state: Arc<Mutex<State>>,
}

impl LocalCoordination {
    pub fn new(meta: Arc<dyn MetaStore>) -> Self {
        LocalCoordination {
            meta,
            state: Arc::default(),
        }
    }
}

#[derive(Debug)]
struct LocalSessionRelease {
    state: Arc<Mutex<State>>,
    role: RoleKind,
    node_id: u64,
    _lost: watch::Sender<bool>,
}

impl Drop for LocalSessionRelease {
    fn drop(&mut self) {
        let mut st = self.state.lock();
        if st.sessions.remove(&(self.role, self.node_id)).is_some() {
            st.notify(
                self.role,
                SessionEvent::Removed {
                    role: self.role,
                    node_id: self.node_id,
                },
            );
        }
    }
}

#[async_trait]
impl Release for LocalSessionRelease {
    async fn release(self: Box<Self>) -> Result<(), SessionError> {
        Ok(()) // Drop removes it
    }
}

#[derive(Debug)]
struct LocalLeaderRelease {
    state: Arc<Mutex<State>>,
    meta: Arc<dyn MetaStore>,
    fence: Fence,
    _permit: OwnedSemaphorePermit,
    _lost: watch::Sender<bool>,
}

impl Drop for LocalLeaderRelease {
    fn drop(&mut self) {
        // Clear the observed leader before the permit (a field, dropped after this) frees the
        // seat for the next candidate.
        let mut st = self.state.lock();
        st.slot(&self.fence.key).current.send_if_modified(|cur| {
            let ours = cur
                .as_ref()
                .is_some_and(|c| c.revision == self.fence.revision);
            if ours {
                *cur = None;
            }
            ours
        });
    }
}

#[async_trait]
impl Release for LocalLeaderRelease {
    async fn release(self: Box<Self>) -> Result<(), SessionError> {
        // Delete the key only if it is still ours (a successor may already have written it).
        let deleted = self
            .meta
            .txn(
                vec![self.fence.condition()],
                vec![ferrovus_core::store::MetaOp::Delete {
                    key: self.fence.key.clone(),
                }],
            )
            .await;
        drop(self);
        deleted?;
        Ok(())
    }
}

#[async_trait]
impl Coordination for LocalCoordination {
    async fn allocate_node_id(&self) -> Result<u64, SessionError> {
        allocate_node_id(self.meta.as_ref()).await
    }

    async fn register(&self, info: SessionInfo) -> Result<Session, SessionError> {
        let (lost_tx, lost) = watch::channel(false);
        {
            let mut st = self.state.lock();
            st.sessions.insert((info.role, info.node_id), info.clone());
            st.notify(info.role, SessionEvent::Added(info.clone()));
        }
        Ok(Session {
            release: Box::new(LocalSessionRelease {
                state: self.state.clone(),
                role: info.role,
                node_id: info.node_id,
                _lost: lost_tx,
            }),
            info,
            lost,
        })
    }

    async fn list_sessions(
        &self,
        role: Option<RoleKind>,
    ) -> Result<Vec<SessionInfo>, SessionError> {
        let st = self.state.lock();
        Ok(st
            .sessions
            .values()
            .filter(|s| role.is_none_or(|r| r == s.role))
            .cloned()
            .collect())
    }

    async fn watch_sessions(&self, role: Option<RoleKind>) -> Result<SessionWatch, SessionError> {
        let (tx, events) = mpsc::unbounded_channel();
        let mut st = self.state.lock();
        let initial = st
            .sessions
            .values()
            .filter(|s| role.is_none_or(|r| r == s.role))
            .cloned()
            .collect();
        st.watchers.push((role, tx));
        Ok(SessionWatch { initial, events })
    }

    async fn campaign(&self, key: &str, value: Vec<u8>) -> Result<LeaderGuard, SessionError> {
        let seat = self.state.lock().slot(key).seat.clone();
        let permit = seat
            .acquire_owned()
            .await
            .map_err(|_| SessionError::LeaseLost(format!("leader seat of {key} closed")))?;
        let revision = self.meta.put(key, value.clone()).await?;
        let fence = Fence {
            key: key.to_string(),
            revision,
        };
        self.state
            .lock()
            .slot(key)
            .current
            .send_replace(Some(LeaderInfo {
                value: value.clone(),
                revision,
            }));
        let (lost_tx, lost) = watch::channel(false);
        Ok(LeaderGuard {
            release: Box::new(LocalLeaderRelease {
                state: self.state.clone(),
                meta: self.meta.clone(),
                fence: fence.clone(),
                _permit: permit,
                _lost: lost_tx,
            }),
            fence,
            value,
            lost,
        })
    }

    async fn current_leader(&self, key: &str) -> Result<Option<LeaderInfo>, SessionError> {
        Ok(self.state.lock().slot(key).current.borrow().clone())
    }

    async fn watch_leader(
        &self,
        key: &str,
    ) -> Result<watch::Receiver<Option<LeaderInfo>>, SessionError> {
        Ok(self.state.lock().slot(key).current.subscribe())
    }
}
