//! The sync loop with the coordinator: `CoordApi::data_sync` as a long poll. Each call reports
//! the free slots (none while draining), the running tasks' progress and the results not yet
//! reported; the answer brings new tasks (at most the free slots) and cancellations. A call in
//! flight is never cut short — its answer may carry tasks the coordinator now counts as
//! running here — so while tasks run the wait is short (`busy_sync_wait_ms`) and results are
//! reported promptly. A result stays queued until an answer acknowledges it (a failed call's
//! results are reported again by the next one).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::Inner;
use crate::api::DataSyncReq;
use crate::streaming::backoff::Backoff;

impl Inner {
    pub(super) async fn sync_loop(self: Arc<Self>) {
        let mut stop = self.stop.subscribe();
        let mut backoff = Backoff::new(Duration::from_millis(self.config.retry_max_ms));
        let coord = self.nodes.coord();
        tracing::info!(node_id = self.node_id, addr = %self.addr, "data node sync loop started");
        loop {
            if *stop.borrow() {
                break;
            }
            // Results stay queued until an answer acknowledges them.
            let finished = self.finished.lock().clone();
            let running = self.progress();
            let busy = !running.is_empty() || !finished.is_empty();
            let req = DataSyncReq {
                node: self.node_id,
                addr: self.addr.clone(),
                wait_ms: if busy {
                    self.config.busy_sync_wait_ms
                } else {
                    self.config.sync_wait_ms
                },
                slots: self.free_slots(),
                running,
                finished: finished.clone(),
                draining: self.draining.load(Ordering::SeqCst),
            };
            let answer = tokio::select! {
                r = coord.data_sync(req) => r,
                _ = stop.changed() => {
                    // Unreported results are lost with the node; the coordinator re-queues.
                    break;
                }
            };
            match answer {
                Ok(resp) => {
                    backoff.reset();
                    if !self.registered.swap(true, Ordering::SeqCst) {
                        tracing::info!(
                            node_id = self.node_id,
                            "data node registered with the coordinator"
                        );
                    }
                    if !finished.is_empty() {
                        self.finished
                            .lock()
                            .retain(|r| !finished.iter().any(|f| f.id == r.id));
                        self.metrics.reported.inc_by(finished.len() as u64);
                    }
                    for id in resp.cancel {
                        self.cancel(id);
                    }
                    for task in resp.tasks {
                        self.start_task(task);
                    }
                    self.bump();
                }
                Err(e) => {
                    self.metrics.sync_errors.inc();
                    let wait = backoff.next_delay();
                    tracing::warn!(
                        node_id = self.node_id,
                        error = %e,
                        retry_in_ms = wait.as_millis() as u64,
                        "data_sync with the coordinator failed"
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = stop.changed() => {}
                    }
                }
            }
        }
        tracing::info!(node_id = self.node_id, "data node sync loop stopped");
    }
}
