//! The election loop of a coordinator process: standby (catalogue kept warm by a watch, `NotLeader`
//! answers) while campaigning; on election, take over (list the catalogue, open the TSO and id
//! allocator through the fenced store, start the term); on loss, stop the term at once and
//! campaign again; on shutdown, resign (or, for a crash-like stop, just stop renewing).

use std::sync::Arc;
use std::time::Duration;

use ferrovus_core::CoreError;

use super::catalog::CATALOG_PREFIX;
use super::fence::FencedStore;
use super::leader::{Leader, Takeover};
use super::{Mode, Shared};
use crate::rpc::ClusterError;
use crate::session::{COORDINATOR_LEADER_KEY, LeaderGuard};

/// How the leading phase ended.
enum End {
    Lost,
    Shutdown { resign: bool },
}

impl Shared {
    pub(super) fn set_standby(&self) {
        let previous = std::mem::replace(&mut *self.mode.write(), Mode::Standby);
        if let Mode::Leading(l) = previous {
            l.stop();
        }
        self.leading.send_replace(false);
        self.metrics.leader.set(0);
        if let Some(r) = &self.readiness {
            r.set_ready_as("standby");
        }
    }

    fn set_leading(&self, leader: Arc<Leader>) {
        *self.mode.write() = Mode::Leading(leader);
        *self.leader_addr.write() = Some(self.addr.clone());
        self.leading.send_replace(true);
        self.metrics.leader.set(1);
        self.metrics.elections.inc();
        if let Some(r) = &self.readiness {
            r.set_ready();
        }
    }

    async fn shutdown_requested(&self) -> bool {
        let mut rx = self.shutdown.subscribe();
        match rx.wait_for(|s| s.is_some()).await {
            Ok(v) => v.unwrap_or(true),
            Err(_) => true,
        }
    }

    fn shutdown_now(&self) -> bool {
        self.shutdown.borrow().is_some()
    }

    pub(super) async fn run(self: Arc<Self>) {
        tokio::spawn(self.clone().follow_leader_key());
        let mut backoff = Duration::from_millis(200);
        loop {
            if self.shutdown_now() {
                return;
            }
            self.set_standby();
            let campaign = self
                .coordination
                .campaign(COORDINATOR_LEADER_KEY, self.addr.as_bytes().to_vec());
            let guard = tokio::select! {
                g = campaign => g,
                _ = self.keep_warm() => unreachable!("keep_warm never returns"),
                _ = self.shutdown_requested() => return,
            };
            let guard = match guard {
                Ok(g) => g,
                Err(e) => {
                    tracing::warn!(error = %e, "campaign failed; retrying");
                    self.pause(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            let leader = match self.take_over(&guard).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "takeover failed; resigning and campaigning again");
                    if let Err(e) = guard.resign().await {
                        tracing::warn!(error = %e, "resigning failed");
                    }
                    self.pause(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            backoff = Duration::from_millis(200);
            self.set_leading(leader.clone());
            tracing::info!(addr = %self.addr, fence = guard.fence().revision, "coordinator leads");
            let end = tokio::select! {
                _ = guard.lost() => End::Lost,
                _ = leader.stopped() => End::Lost,
                resign = self.shutdown_requested() => End::Shutdown { resign },
            };
            leader.stop();
            self.set_standby();
            match end {
                End::Lost => {
                    tracing::warn!(addr = %self.addr, "leadership lost: stopped acting; campaigning again");
                    drop(guard);
                }
                End::Shutdown { resign: true } => {
                    match guard.resign().await {
                        Ok(()) => tracing::info!("resigned leadership"),
                        Err(e) => tracing::warn!(error = %e, "resigning failed; the lease expires"),
                    }
                    return;
                }
                End::Shutdown { resign: false } => {
                    drop(guard);
                    return;
                }
            }
        }
    }

    async fn pause(&self, d: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = self.shutdown_requested() => {}
        }
    }

    /// Keeps the observed leader address current (for `NotLeader { leader }`).
    async fn follow_leader_key(self: Arc<Self>) {
        let mut rx = loop {
            match self.coordination.watch_leader(COORDINATOR_LEADER_KEY).await {
                Ok(rx) => break rx,
                Err(e) => {
                    tracing::warn!(error = %e, "watching the leader key failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = self.shutdown_requested() => return,
                    }
                }
            }
        };
        loop {
            let addr = rx
                .borrow_and_update()
                .as_ref()
                .and_then(|l| String::from_utf8(l.value.clone()).ok());
            *self.leader_addr.write() = addr;
            tokio::select! {
                r = rx.changed() => if r.is_err() { return },
                _ = self.shutdown_requested() => return,
            }
        }
    }

    /// The standby's warm copy: list the catalogue once, then follow its changes through a
    /// watch from the listing's revision (decoding only changed keys); after a broken watch,
    /// list and watch again. A store that cannot be watched is re-listed every
    /// `standby_refresh_ms`. Never returns.
    async fn keep_warm(&self) {
        let every = Duration::from_millis(self.config.standby_refresh_ms.max(50));
        loop {
            match self.follow_catalog().await {
                Ok(true) => tracing::debug!("catalogue watch ended; listing again"),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "standby catalogue refresh failed"),
            }
            tokio::time::sleep(every).await;
        }
    }

    /// One listing and, where the store can watch, the watch that follows it until it breaks.
    /// `Ok(true)`: the watch ended; `Ok(false)`: the store cannot watch.
    async fn follow_catalog(&self) -> Result<bool, CoreError> {
        let (kvs, revision) = self.meta.list_at(CATALOG_PREFIX).await?;
        self.install_warm(self.loader.lock().await.load(&kvs)?);
        let Some(mut watch) = self.meta.watch(CATALOG_PREFIX, revision + 1).await? else {
            return Ok(false);
        };
        while let Some(changes) = watch.next().await? {
            self.metrics.standby_changes.inc_by(changes.len() as u64);
            self.install_warm(self.loader.lock().await.apply(&changes)?);
        }
        Ok(true)
    }

    fn install_warm(&self, (cat, decoded): (super::catalog::Catalog, usize)) {
        if decoded > 0 {
            tracing::debug!(
                decoded,
                version = cat.version,
                "standby catalogue refreshed"
            );
        }
        *self.warm.write() = Arc::new(cat);
    }

    /// Lists the catalogue (after the election, so it holds every write of the previous
    /// leader) and starts the term.
    async fn take_over(&self, guard: &LeaderGuard) -> Result<Arc<Leader>, ClusterError> {
        let started = std::time::Instant::now();
        let store = FencedStore::new(self.meta.clone(), guard.fence().clone());
        let kvs = self.meta.list(CATALOG_PREFIX).await?;
        let (catalog, decoded) = self.loader.lock().await.load(&kvs)?;
        let collections = catalog.collections.len();
        *self.warm.write() = Arc::new(catalog.clone());
        let leader = Leader::take_over(Takeover {
            store,
            objects: self.objects.clone(),
            coordination: self.coordination.clone(),
            catalog,
            config: self.config.clone(),
            core: self.core.clone(),
            metrics: self.metrics.clone(),
        })
        .await?;
        tracing::info!(
            collections,
            keys = kvs.len(),
            decoded,
            seconds = started.elapsed().as_secs_f64(),
            "took over the catalogue"
        );
        Ok(leader)
    }
}
