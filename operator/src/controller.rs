//! The reconcile loop.
//!
//! One reconciliation of a `MilvusCluster`:
//! 1. deletion: with `deletionPolicy: Delete` a finalizer deletes the PVCs of
//!    the in-cluster dependencies and streaming nodes (and the generated
//!    object-store Secret), then lets the garbage collector remove the owned
//!    objects; with `Retain` there is no finalizer and PVCs stay;
//! 2. `paused`: only status is written;
//! 3. the desired objects are built ([`crate::builders::build`]); invalid specs
//!    and missing Secrets become a `Degraded` condition (no error, no crash loop);
//! 4. stages are walked in order — configuration, dependencies, coordinator,
//!    streaming, query, data, proxy. Each object of the current stage is
//!    server-side applied (field manager `ferrovus-operator`, forced) unless the
//!    live object already carries the same spec hash; then the stage's
//!    workloads must be ready (observed generation current, every replica
//!    updated and ready) before the next stage is touched. This is both the
//!    ordered bring-up and the ordered, one-component-at-a-time upgrade;
//! 5. the status (observedGeneration, conditions, per-component replicas and
//!    images, endpoint) is written only when it differs from the stored one.
//!
//! An unchanged, ready cluster therefore costs only reads.
//!
//! Submodules: `apply` (stage walk, server-side apply, pruning), `status`
//! (observed state and the status write), `finalize` (finalizer and cleanup),
//! `secrets` (S3 Secret checks, generated credentials), `error`.

mod apply;
pub mod conditions;
mod error;
mod events;
mod finalize;
mod problems;
mod secrets;
mod status;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DynamicObject};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::Reporter;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use tracing::{debug, info, warn};

use crate::builders::{self, BuildError, Child, MANAGED_BY, Stage};
use crate::crd::{MilvusCluster, MilvusClusterStatus, Phase};
use crate::telemetry::Metrics;

pub use conditions::{Conditions, DEGRADED, PROGRESSING, READY, Reason};
pub use error::Error;
use events::Events;
pub use events::{Notice, REPORTER, status_notices};
pub use status::workload_ready;

/// Finalizer present only while `deletionPolicy` is `Delete`.
pub const FINALIZER: &str = "ferrovus.io/cleanup";
/// Requeue while waiting for a stage (owned-object watches usually trigger sooner).
pub const REQUEUE_WAITING: Duration = Duration::from_secs(15);
/// Requeue of a settled cluster (drift check).
pub const REQUEUE_SETTLED: Duration = Duration::from_secs(300);
/// Requeue of a Degraded cluster (e.g. to notice a Secret being created).
pub const REQUEUE_DEGRADED: Duration = Duration::from_secs(30);

/// Shared state of the reconcilers.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Consecutive failures per resource, for the backoff of [`error_policy`].
    pub failures: Mutex<HashMap<String, u32>>,
    /// Clusters (key → uid) whose namespace is being deleted: not reconciled
    /// any more (only their finalizer still runs).
    pub terminating: Mutex<HashMap<String, Option<String>>>,
    /// Who publishes the Events (`ferrovus-operator`, instance `POD_NAME`).
    pub reporter: Reporter,
    /// Per cluster, the status change last announced by Events (a reconcile
    /// that saw a stale copy of the resource does not announce it twice).
    announced: Mutex<HashMap<String, String>>,
    /// Per cluster, the last reconcile error announced by an Event (a
    /// persisting error is announced once, not at every retry).
    last_error: Mutex<HashMap<String, String>>,
}

impl Context {
    /// A context with fresh metrics.
    pub fn new(client: Client, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Context {
            client,
            metrics,
            failures: Mutex::default(),
            terminating: Mutex::default(),
            reporter: events::reporter(),
            announced: Mutex::default(),
            last_error: Mutex::default(),
        })
    }

    /// Whether `mc`'s namespace was found to be terminating.
    fn is_terminating(&self, mc: &MilvusCluster) -> bool {
        self.terminating.lock().expect("lock").get(&key(mc)) == Some(&mc.metadata.uid)
    }

    fn set_terminating(&self, mc: &MilvusCluster) {
        self.terminating
            .lock()
            .expect("lock")
            .insert(key(mc), mc.metadata.uid.clone());
    }

    /// Drops what is remembered about a cluster whose finalizer ran.
    fn forget(&self, mc: &MilvusCluster) {
        let k = key(mc);
        self.terminating.lock().expect("lock").remove(&k);
        self.announced.lock().expect("lock").remove(&k);
        self.last_error.lock().expect("lock").remove(&k);
    }
}

fn key(mc: &MilvusCluster) -> String {
    format!("{}/{}", mc.namespace().unwrap_or_default(), mc.name_any())
}

/// Reconciles one `MilvusCluster` (the function given to the kube-runtime Controller).
pub async fn reconcile(mc: Arc<MilvusCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let start = Instant::now();
    let reconciler = Reconciler::new(&mc, &ctx)?;
    let result = reconciler.run().await;
    ctx.metrics.observe(start.elapsed(), result.is_err());
    match &result {
        Ok(_) => {
            ctx.failures.lock().expect("lock").remove(&key(&mc));
            ctx.last_error.lock().expect("lock").remove(&key(&mc));
        }
        Err(e) => {
            // one Event per distinct error: retries of the same failure only log
            let text = e.to_string();
            let previous = ctx
                .last_error
                .lock()
                .expect("lock")
                .insert(key(&mc), text.clone());
            if previous.as_deref() != Some(text.as_str()) && !e.is_namespace_terminating() {
                reconciler
                    .events
                    .publish(Notice::warning("ReconcileError", "Reconcile", text))
                    .await;
            }
        }
    }
    result
}

/// Retry with exponential backoff: 5 s, 10 s, 20 s … at most 5 minutes.
pub fn error_policy(mc: Arc<MilvusCluster>, error: &Error, ctx: Arc<Context>) -> Action {
    let mut failures = ctx.failures.lock().expect("lock");
    let n = failures.entry(key(&mc)).or_insert(0);
    *n = n.saturating_add(1);
    let delay = backoff(*n);
    warn!(cluster = %key(&mc), %error, attempt = *n, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// Delay before retry number `attempt` (1-based).
pub fn backoff(attempt: u32) -> Duration {
    let secs = 5u64.saturating_mul(1u64 << attempt.saturating_sub(1).min(10));
    Duration::from_secs(secs.min(300))
}

struct Reconciler<'a> {
    mc: &'a MilvusCluster,
    ctx: &'a Context,
    name: String,
    namespace: String,
    generation: i64,
    events: Events,
}

impl<'a> Reconciler<'a> {
    fn new(mc: &'a MilvusCluster, ctx: &'a Context) -> Result<Self, Error> {
        Ok(Reconciler {
            mc,
            ctx,
            name: mc.metadata.name.clone().ok_or(Error::Metadata("no name"))?,
            namespace: mc
                .metadata
                .namespace
                .clone()
                .ok_or(Error::Metadata("no namespace"))?,
            generation: mc.metadata.generation.unwrap_or(0),
            events: Events::new(ctx.client.clone(), ctx.reporter.clone(), mc),
        })
    }

    fn mc_api(&self) -> Api<MilvusCluster> {
        Api::namespaced(self.ctx.client.clone(), &self.namespace)
    }

    fn dyn_api(&self, child: &Child) -> Api<DynamicObject> {
        Api::namespaced_with(
            self.ctx.client.clone(),
            &self.namespace,
            &child.api_resource(),
        )
    }

    async fn run(&self) -> Result<Action, Error> {
        if self.mc.metadata.deletion_timestamp.is_some() {
            // only the finalizer's cleanup: nothing is applied to a cluster
            // being deleted
            let action = self.finalize().await?;
            self.ctx.forget(self.mc);
            return Ok(action);
        }
        if self.ctx.is_terminating(self.mc) {
            return Ok(Action::await_change());
        }
        match self.run_live().await {
            Err(e) if e.is_namespace_terminating() => {
                // the namespace controller is deleting everything: re-creating
                // children would only be refused again
                info!(cluster = %key(self.mc), error = %e,
                    "namespace is being deleted: no longer reconciling this cluster");
                self.ctx.set_terminating(self.mc);
                Ok(Action::await_change())
            }
            other => other,
        }
    }

    /// Reconciles a cluster that is not being deleted.
    async fn run_live(&self) -> Result<Action, Error> {
        self.sync_finalizer().await?;

        if self.mc.spec.paused {
            let outcome = self.observe_only().await?;
            let was_ready = conditions::is_true(&self.old_status().conditions, READY);
            let status = self.status(Phase::Paused, &outcome, Conditions::paused(was_ready));
            self.write_status(status).await?;
            return Ok(Action::requeue(REQUEUE_SETTLED));
        }

        let planned = match builders::build(self.mc) {
            Ok(p) => p,
            Err(e @ BuildError::InvalidSpec(_)) | Err(e @ BuildError::MissingMetadata(_)) => {
                return self.degraded(Reason::InvalidSpec, e.to_string()).await;
            }
        };
        if let Some(problem) = self.check_secrets().await? {
            return self.degraded(Reason::MissingSecret, problem).await;
        }
        if let Some(problem) = self.check_security_secrets().await? {
            return self.degraded(Reason::MissingSecret, problem).await;
        }
        self.ensure_object_store_secret().await?;
        self.ensure_cluster_secret().await?;

        let outcome = match self.walk(&planned).await {
            Ok(o) => o,
            Err(e) if e.is_rejected_apply() => {
                // the API server rejected an object built from the spec (e.g. an
                // invalid affinity or resource quantity): a spec problem
                let message = format!("{e} — check {}", e.spec_fields());
                return self.degraded(Reason::ApplyRejected, message).await;
            }
            Err(e) => return Err(e),
        };
        // an HPA that is no longer wanted would fight the replica count: remove it
        // at once; other leftovers (e.g. in-cluster etcd after a switch to an
        // external one) once the rollout is complete
        self.prune(&planned, outcome.waiting.is_none()).await?;
        let mut phase = match &outcome.waiting {
            None => Phase::Ready,
            Some((Stage::Common | Stage::Dependencies, _)) => Phase::Pending,
            Some(_) if self.old_status().version.is_some() => Phase::Upgrading,
            Some(_) => Phase::Deploying,
        };
        let mut conditions = match &outcome.waiting {
            None => Conditions::ready(),
            Some((stage, detail)) => Conditions::waiting(*stage, detail),
        };
        // pods that cannot run what was applied degrade the status; the
        // rollout keeps waiting (nothing is deleted or forced)
        let problem = match self.find_problem(&outcome.unready).await {
            Ok(p) => p,
            Err(e) => {
                warn!(cluster = %key(self.mc), error = %e, "could not inspect pods of unready workloads");
                None
            }
        };
        if let Some(p) = &problem {
            let message = problems::sticky_message(&self.old_status().conditions, p);
            conditions = conditions.with_problem(p.reason, &message);
            phase = Phase::Degraded;
        }
        let status = self.status(phase, &outcome, conditions);
        self.write_status(status).await?;
        Ok(Action::requeue(if outcome.waiting.is_some() {
            REQUEUE_WAITING
        } else {
            REQUEUE_SETTLED
        }))
    }

    fn old_status(&self) -> MilvusClusterStatus {
        self.mc.status.clone().unwrap_or_default()
    }
}

/// Runs the controller for one namespace (or all when `None`) until `shutdown` resolves.
pub async fn run(
    client: Client,
    namespace: Option<String>,
    ctx: Arc<Context>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    fn scoped<K>(client: &Client, ns: &Option<String>) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        match ns {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    }
    let owned =
        watcher::Config::default().labels(&format!("app.kubernetes.io/managed-by={MANAGED_BY}"));
    let clusters: Api<MilvusCluster> = scoped(&client, &namespace);
    info!(
        namespace = namespace.as_deref().unwrap_or("<all>"),
        "starting MilvusCluster controller"
    );
    Controller::new(clusters, watcher::Config::default().any_semantic())
        .owns(scoped::<StatefulSet>(&client, &namespace), owned.clone())
        .owns(scoped::<Deployment>(&client, &namespace), owned.clone())
        .owns(scoped::<Service>(&client, &namespace), owned.clone())
        .owns(scoped::<ConfigMap>(&client, &namespace), owned.clone())
        .owns(scoped::<ServiceAccount>(&client, &namespace), owned.clone())
        .owns(
            scoped::<PodDisruptionBudget>(&client, &namespace),
            owned.clone(),
        )
        .owns(
            scoped::<HorizontalPodAutoscaler>(&client, &namespace),
            owned,
        )
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            match res {
                Ok((obj, _)) => debug!(cluster = %obj, "reconciled"),
                Err(e) => debug!(error = %e, "reconcile loop"),
            }
        })
        .await;
}

#[cfg(test)]
mod tests;
