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

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};
use tracing::{debug, info, warn};

use crate::builders::{
    self, BuildError, Child, FIELD_MANAGER, MANAGED_BY, Planned, SPEC_HASH_ANNOTATION, Stage,
    object_store_secret_name,
};
use crate::crd::{
    ComponentStatus, ComponentsStatus, DEFAULT_PROXY_PORT, DeletionPolicy, DependenciesStatus,
    DependencyStatus, MilvusCluster, MilvusClusterStatus, Phase, Role, image_tag,
};
use crate::telemetry::Metrics;

/// Finalizer present only while `deletionPolicy` is `Delete`.
pub const FINALIZER: &str = "ferrovus.io/cleanup";
/// Requeue while waiting for a stage (owned-object watches usually trigger sooner).
pub const REQUEUE_WAITING: Duration = Duration::from_secs(15);
/// Requeue of a settled cluster (drift check).
pub const REQUEUE_SETTLED: Duration = Duration::from_secs(300);
/// Requeue of a Degraded cluster (e.g. to notice a Secret being created).
pub const REQUEUE_DEGRADED: Duration = Duration::from_secs(30);

/// Condition types.
pub const READY: &str = "Ready";
/// Condition type: a change is being rolled out.
pub const PROGRESSING: &str = "Progressing";
/// Condition type: the spec cannot be realised.
pub const DEGRADED: &str = "Degraded";

/// Errors that make a reconciliation retry with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Kubernetes API failed.
    #[error("kubernetes API error: {0}")]
    Kube(#[from] kube::Error),
    /// An object could not be (de)serialised.
    #[error("serialization error: {0}")]
    Json(#[from] serde_json::Error),
    /// The resource is missing metadata it always has when it comes from the API server.
    #[error("{0}")]
    Metadata(&'static str),
}

/// Shared state of the reconcilers.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Consecutive failures per resource, for the backoff of [`error_policy`].
    pub failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    /// A context with fresh metrics.
    pub fn new(client: Client, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Context {
            client,
            metrics,
            failures: Mutex::default(),
        })
    }
}

fn key(mc: &MilvusCluster) -> String {
    format!("{}/{}", mc.namespace().unwrap_or_default(), mc.name_any())
}

/// Reconciles one `MilvusCluster` (the function given to the kube-runtime Controller).
pub async fn reconcile(mc: Arc<MilvusCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let start = Instant::now();
    let result = Reconciler::new(&mc, &ctx)?.run().await;
    ctx.metrics.observe(start.elapsed(), result.is_err());
    if result.is_ok() {
        ctx.failures.lock().expect("lock").remove(&key(&mc));
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

/// Live state of one stage's workloads.
struct StageState {
    ready: bool,
    detail: String,
}

struct Reconciler<'a> {
    mc: &'a MilvusCluster,
    ctx: &'a Context,
    name: String,
    namespace: String,
    generation: i64,
}

/// What the stage walk found.
struct Outcome {
    waiting: Option<(Stage, String)>,
    components: ComponentsStatus,
    dependencies: DependenciesStatus,
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
            return self.finalize().await;
        }
        self.sync_finalizer().await?;

        if self.mc.spec.paused {
            let outcome = self.observe_only().await?;
            let status = self.status(Phase::Paused, &outcome, None);
            self.write_status(status).await?;
            return Ok(Action::requeue(REQUEUE_SETTLED));
        }

        let planned = match builders::build(self.mc) {
            Ok(p) => p,
            Err(e @ BuildError::InvalidSpec(_)) | Err(e @ BuildError::MissingMetadata(_)) => {
                return self.degraded("InvalidSpec", e.to_string()).await;
            }
        };
        if let Some(problem) = self.check_secrets().await? {
            return self.degraded("MissingSecret", problem).await;
        }
        self.ensure_object_store_secret().await?;

        let outcome = match self.walk(&planned).await {
            Ok(o) => o,
            Err(Error::Kube(kube::Error::Api(resp))) if matches!(resp.code, 400 | 422) => {
                // the API server rejected an object built from the spec (e.g. an
                // invalid affinity or resource quantity): a spec problem
                return self
                    .degraded(
                        "ApplyRejected",
                        format!("the API server rejected an object: {}", resp.message),
                    )
                    .await;
            }
            Err(e) => return Err(e),
        };
        // an HPA that is no longer wanted would fight the replica count: remove it
        // at once; other leftovers (e.g. in-cluster etcd after a switch to an
        // external one) once the rollout is complete
        self.prune(&planned, outcome.waiting.is_none()).await?;
        let phase = match &outcome.waiting {
            None => Phase::Ready,
            Some((Stage::Common | Stage::Dependencies, _)) => Phase::Pending,
            Some(_) if self.old_status().version.is_some() => Phase::Upgrading,
            Some(_) => Phase::Deploying,
        };
        let status = self.status(phase, &outcome, None);
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

    // ---------- finalizer ----------

    fn has_finalizer(&self) -> bool {
        self.mc.finalizers().iter().any(|f| f == FINALIZER)
    }

    async fn set_finalizers(
        &self,
        finalizers: Vec<String>,
        resource_version: Option<String>,
    ) -> Result<(), Error> {
        // resourceVersion makes this a compare-and-swap: a concurrent change of
        // the finalizer list fails with 409 and is retried
        let patch = json!({"metadata": {
            "finalizers": finalizers,
            "resourceVersion": resource_version.or_else(|| self.mc.resource_version()),
        }});
        self.mc_api()
            .patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        self.ctx.metrics.writes.inc();
        Ok(())
    }

    /// The finalizer is present exactly while `deletionPolicy` is `Delete`.
    async fn sync_finalizer(&self) -> Result<(), Error> {
        let wants = self.mc.spec.deletion_policy() == DeletionPolicy::Delete;
        let has = self.has_finalizer();
        if wants && !has {
            let mut f = self.mc.finalizers().to_vec();
            f.push(FINALIZER.into());
            self.set_finalizers(f, None).await?;
        } else if !wants && has {
            let f = self
                .mc
                .finalizers()
                .iter()
                .filter(|f| *f != FINALIZER)
                .cloned()
                .collect();
            self.set_finalizers(f, None).await?;
        }
        Ok(())
    }

    async fn finalize(&self) -> Result<Action, Error> {
        if !self.has_finalizer() {
            return Ok(Action::await_change());
        }
        let mut status = self.old_status();
        let mut resource_version = None;
        if status.phase != Some(Phase::Deleting) {
            status.phase = Some(Phase::Deleting);
            resource_version = self.write_status(status).await?;
        }
        info!(cluster = %key(self.mc), "deleting persistent volume claims (deletionPolicy: Delete)");
        let selector = format!(
            "app.kubernetes.io/instance={},app.kubernetes.io/managed-by={MANAGED_BY}",
            self.name
        );
        let pvcs: Api<PersistentVolumeClaim> =
            Api::namespaced(self.ctx.client.clone(), &self.namespace);
        for pvc in pvcs
            .list(&ListParams::default().labels(&selector))
            .await?
            .items
        {
            if pvc.metadata.deletion_timestamp.is_some() {
                continue;
            }
            match pvcs
                .delete(&pvc.name_any(), &DeleteParams::background())
                .await
            {
                Ok(_) => {
                    self.ctx.metrics.writes.inc();
                }
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
        let secrets: Api<Secret> = Api::namespaced(self.ctx.client.clone(), &self.namespace);
        let generated = object_store_secret_name(&self.name);
        if let Some(s) = secrets.get_opt(&generated).await?
            && s.labels()
                .get("app.kubernetes.io/managed-by")
                .map(String::as_str)
                == Some(MANAGED_BY)
        {
            match secrets
                .delete(&generated, &DeleteParams::background())
                .await
            {
                Ok(_) => {
                    self.ctx.metrics.writes.inc();
                }
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
        let f = self
            .mc
            .finalizers()
            .iter()
            .filter(|f| *f != FINALIZER)
            .cloned()
            .collect();
        self.set_finalizers(f, resource_version).await?;
        Ok(Action::await_change())
    }

    // ---------- secrets ----------

    /// The external S3 Secret must exist and hold both keys.
    async fn check_secrets(&self) -> Result<Option<String>, Error> {
        let Some(ext) = self.mc.spec.storage().external else {
            return Ok(None);
        };
        let secrets: Api<Secret> = Api::namespaced(self.ctx.client.clone(), &self.namespace);
        let name = &ext.secret_ref.name;
        let Some(secret) = secrets.get_opt(name).await? else {
            return Ok(Some(format!(
                "Secret {}/{name} (spec.dependencies.storage.external.secretRef) not found",
                self.namespace
            )));
        };
        let keys = [
            ext.secret_ref
                .access_key_id_key
                .clone()
                .unwrap_or_else(|| "accessKeyId".into()),
            ext.secret_ref
                .secret_access_key_key
                .clone()
                .unwrap_or_else(|| "secretAccessKey".into()),
        ];
        for k in keys {
            let in_data = secret.data.as_ref().is_some_and(|d| d.contains_key(&k));
            let in_string = secret
                .string_data
                .as_ref()
                .is_some_and(|d| d.contains_key(&k));
            if !in_data && !in_string {
                return Ok(Some(format!(
                    "Secret {}/{name} has no key {k:?}",
                    self.namespace
                )));
            }
        }
        Ok(None)
    }

    /// Creates the in-cluster object store's credentials once (never overwritten;
    /// not owned, so that retained PVCs keep matching credentials).
    async fn ensure_object_store_secret(&self) -> Result<(), Error> {
        let storage = self.mc.spec.storage();
        if storage.external.is_some() || storage.in_cluster.is_none() {
            return Ok(());
        }
        let secrets: Api<Secret> = Api::namespaced(self.ctx.client.clone(), &self.namespace);
        let name = object_store_secret_name(&self.name);
        if secrets.get_opt(&name).await?.is_some() {
            return Ok(());
        }
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(self.namespace.clone()),
                labels: Some(
                    [
                        ("app.kubernetes.io/name", "ferrovus"),
                        ("app.kubernetes.io/instance", self.name.as_str()),
                        ("app.kubernetes.io/component", "object-store"),
                        ("app.kubernetes.io/managed-by", MANAGED_BY),
                    ]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ),
                ..Default::default()
            },
            type_: Some("Opaque".into()),
            data: Some(
                [
                    ("accessKeyId", random_token(20)),
                    ("secretAccessKey", random_token(40)),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.into_bytes())))
                .collect(),
            ),
            ..Default::default()
        };
        match secrets.create(&PostParams::default(), &secret).await {
            Ok(_) => {
                self.ctx.metrics.writes.inc();
                info!(cluster = %key(self.mc), secret = %name, "generated object store credentials");
                Ok(())
            }
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    // ---------- stages ----------

    /// Applies `child` unless the live object already matches; returns the live object.
    async fn ensure(&self, child: &Child) -> Result<DynamicObject, Error> {
        let api = self.dyn_api(child);
        let desired = child.to_dynamic();
        let hash = desired
            .annotations()
            .get(SPEC_HASH_ANNOTATION)
            .cloned()
            .unwrap_or_default();
        if let Some(live) = api.get_opt(&child.name()).await? {
            let same_hash = live.annotations().get(SPEC_HASH_ANNOTATION) == Some(&hash);
            let live_replicas = live.data["spec"]["replicas"].as_i64();
            let replicas_ok = match child.desired_replicas() {
                // the HPA (or nobody) owns replicas
                None => true,
                Some(r) => live_replicas == Some(i64::from(r)),
            };
            if same_hash && replicas_ok {
                return Ok(live);
            }
        }
        debug!(cluster = %key(self.mc), kind = %child.kind(), name = %child.name(), "apply");
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let applied = api
            .patch(&child.name(), &params, &Patch::Apply(&desired))
            .await?;
        self.ctx.metrics.writes.inc();
        Ok(applied)
    }

    /// Deletes objects this cluster owns that the spec no longer asks for.
    async fn prune(&self, planned: &[Planned], everything: bool) -> Result<(), Error> {
        use kube::core::ApiResource;
        let kinds: Vec<(ApiResource, bool)> = vec![
            (ApiResource::erase::<HorizontalPodAutoscaler>(&()), true),
            (ApiResource::erase::<StatefulSet>(&()), everything),
            (ApiResource::erase::<Deployment>(&()), everything),
            (ApiResource::erase::<Service>(&()), everything),
            (ApiResource::erase::<PodDisruptionBudget>(&()), everything),
        ];
        let uid = self.mc.metadata.uid.clone();
        let selector = format!(
            "app.kubernetes.io/instance={},app.kubernetes.io/managed-by={MANAGED_BY}",
            self.name
        );
        for (ar, enabled) in kinds {
            if !enabled {
                continue;
            }
            let api: Api<DynamicObject> =
                Api::namespaced_with(self.ctx.client.clone(), &self.namespace, &ar);
            for obj in api
                .list(&ListParams::default().labels(&selector))
                .await?
                .items
            {
                let name = obj.name_any();
                let wanted = planned
                    .iter()
                    .any(|p| p.child.kind() == ar.kind && p.child.name() == name);
                let ours = obj
                    .owner_references()
                    .iter()
                    .any(|o| o.controller == Some(true) && Some(&o.uid) == uid.as_ref());
                if wanted || !ours || obj.metadata.deletion_timestamp.is_some() {
                    continue;
                }
                info!(cluster = %key(self.mc), kind = %ar.kind, %name, "deleting object no longer in the spec");
                match api.delete(&name, &DeleteParams::background()).await {
                    Ok(_) => {
                        self.ctx.metrics.writes.inc();
                    }
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }

    async fn walk(&self, planned: &[Planned]) -> Result<Outcome, Error> {
        let mut out = Outcome {
            waiting: None,
            components: ComponentsStatus::default(),
            dependencies: DependenciesStatus::default(),
        };
        for stage in Stage::all() {
            let children: Vec<&Child> = planned
                .iter()
                .filter(|p| p.stage == stage)
                .map(|p| &p.child)
                .collect();
            let mut workloads = vec![];
            if out.waiting.is_none() {
                for child in &children {
                    let live = self.ensure(child).await?;
                    if child.is_workload() {
                        workloads.push(live);
                    }
                }
            } else {
                // a later stage: observe only, so the status shows its state
                for child in children.iter().filter(|c| c.is_workload()) {
                    if let Some(live) = self.dyn_api(child).get_opt(&child.name()).await? {
                        workloads.push(live);
                    }
                }
            }
            let state = stage_state(
                &workloads,
                children.iter().filter(|c| c.is_workload()).count(),
            );
            self.record(stage, &workloads, &mut out);
            if out.waiting.is_none() && !state.ready {
                out.waiting = Some((stage, state.detail));
            }
        }
        Ok(out)
    }

    /// Paused: read the workloads for the status, write nothing else.
    async fn observe_only(&self) -> Result<Outcome, Error> {
        let mut out = Outcome {
            waiting: None,
            components: ComponentsStatus::default(),
            dependencies: DependenciesStatus::default(),
        };
        let planned = match builders::build(self.mc) {
            Ok(p) => p,
            Err(_) => return Ok(out),
        };
        for stage in Stage::all() {
            let mut workloads = vec![];
            for p in planned
                .iter()
                .filter(|p| p.stage == stage && p.child.is_workload())
            {
                if let Some(live) = self.dyn_api(&p.child).get_opt(&p.child.name()).await? {
                    workloads.push(live);
                }
            }
            self.record(stage, &workloads, &mut out);
        }
        Ok(out)
    }

    fn record(&self, stage: Stage, workloads: &[DynamicObject], out: &mut Outcome) {
        match stage {
            Stage::Common => {}
            Stage::Dependencies => {
                let etcd = self.mc.spec.etcd();
                let endpoints =
                    builders::etcd_endpoints(&self.mc.spec, &self.name, &self.namespace);
                let ready_of = |component: &str| {
                    workloads
                        .iter()
                        .find(|w| {
                            w.labels()
                                .get("app.kubernetes.io/component")
                                .map(String::as_str)
                                == Some(component)
                        })
                        .map(|w| workload_ready(w).0)
                        .unwrap_or(false)
                };
                out.dependencies.etcd = Some(DependencyStatus {
                    mode: if etcd.external.is_some() {
                        "External"
                    } else {
                        "InCluster"
                    }
                    .into(),
                    ready: etcd.external.is_some() || ready_of("etcd"),
                    endpoint: endpoints.join(","),
                });
                let storage = self.mc.spec.storage();
                out.dependencies.storage = Some(DependencyStatus {
                    mode: if storage.external.is_some() {
                        "External"
                    } else {
                        "InCluster"
                    }
                    .into(),
                    ready: storage.external.is_some() || ready_of("object-store"),
                    endpoint: match &storage.external {
                        Some(e) => format!("{} (bucket {})", e.endpoint, e.bucket),
                        None => format!(
                            "http://{}-object-store.{}.svc:{} (bucket {})",
                            self.name,
                            self.namespace,
                            builders::OBJECT_STORE_PORT,
                            storage
                                .in_cluster
                                .and_then(|i| i.bucket)
                                .unwrap_or_else(|| crate::crd::DEFAULT_BUCKET.into())
                        ),
                    },
                });
            }
            Stage::Component(role) => {
                let status = workloads.first().map(component_status);
                let slot = match role {
                    Role::Coordinator => &mut out.components.coordinator,
                    Role::Streaming => &mut out.components.streaming,
                    Role::Query => &mut out.components.query,
                    Role::Data => &mut out.components.data,
                    Role::Proxy => &mut out.components.proxy,
                };
                *slot = status;
            }
        }
    }

    // ---------- status ----------

    fn endpoint(&self) -> String {
        let port = self
            .mc
            .spec
            .proxy_service()
            .port
            .unwrap_or(DEFAULT_PROXY_PORT);
        format!("{}-proxy.{}.svc:{port}", self.name, self.namespace)
    }

    fn status(
        &self,
        phase: Phase,
        outcome: &Outcome,
        degraded: Option<(&str, &str)>,
    ) -> MilvusClusterStatus {
        let old = self.old_status();
        let c = &outcome.components;
        let all = [&c.coordinator, &c.streaming, &c.query, &c.data, &c.proxy];
        // the version every component runs, once they all run the same image
        let version = if phase == Phase::Ready && all.iter().all(|s| s.is_some()) {
            let images: Vec<&str> = all
                .iter()
                .map(|s| s.as_ref().unwrap().image.as_str())
                .collect();
            if images.iter().all(|i| *i == images[0]) {
                Some(image_tag(images[0]))
            } else {
                old.version.clone()
            }
        } else {
            old.version.clone()
        };
        let (ready, progressing, degraded_cond) = match (phase, degraded, &outcome.waiting) {
            (_, Some((reason, msg)), _) => (
                ("False", reason.to_string(), msg.to_string()),
                (
                    "False",
                    reason.to_string(),
                    "rollout stopped until the spec is fixed".to_string(),
                ),
                ("True", reason.to_string(), msg.to_string()),
            ),
            (Phase::Paused, _, _) => (
                (
                    if old_ready(&old) { "True" } else { "False" },
                    "Paused".to_string(),
                    "spec.paused is true: the operator changes nothing".to_string(),
                ),
                (
                    "False",
                    "Paused".to_string(),
                    "spec.paused is true".to_string(),
                ),
                (
                    "False",
                    "AsExpected".to_string(),
                    "no problem found".to_string(),
                ),
            ),
            (_, None, None) => (
                (
                    "True",
                    "AllComponentsReady".to_string(),
                    "all components are ready".to_string(),
                ),
                (
                    "False",
                    "RolloutComplete".to_string(),
                    "every component runs the desired spec".to_string(),
                ),
                (
                    "False",
                    "AsExpected".to_string(),
                    "no problem found".to_string(),
                ),
            ),
            (_, None, Some((stage, detail))) => {
                let reason = match stage {
                    Stage::Common | Stage::Dependencies => "WaitingForDependencies".to_string(),
                    Stage::Component(r) => format!("WaitingFor{}", capitalize(r.as_str())),
                };
                let msg = format!("waiting for {}: {detail}", stage.describe());
                (
                    ("False", reason.clone(), msg.clone()),
                    ("True", reason, msg),
                    (
                        "False",
                        "AsExpected".to_string(),
                        "no problem found".to_string(),
                    ),
                )
            }
        };
        let conditions = vec![
            self.condition(&old, READY, ready.0, &ready.1, &ready.2),
            self.condition(
                &old,
                PROGRESSING,
                progressing.0,
                &progressing.1,
                &progressing.2,
            ),
            self.condition(
                &old,
                DEGRADED,
                degraded_cond.0,
                &degraded_cond.1,
                &degraded_cond.2,
            ),
        ];
        let components = ComponentsStatus {
            coordinator: c.coordinator.clone(),
            streaming: c.streaming.clone(),
            query: c.query.clone(),
            data: c.data.clone(),
            proxy: c.proxy.clone(),
        };
        let any_component = all.iter().any(|s| s.is_some());
        MilvusClusterStatus {
            observed_generation: Some(self.generation),
            phase: Some(phase),
            version,
            conditions,
            components: any_component.then_some(components),
            dependencies: outcome
                .dependencies
                .etcd
                .is_some()
                .then(|| outcome.dependencies.clone()),
            endpoint: Some(self.endpoint()),
        }
    }

    /// A condition whose lastTransitionTime moves only when its status changes.
    fn condition(
        &self,
        old: &MilvusClusterStatus,
        type_: &str,
        status: &str,
        reason: &str,
        message: &str,
    ) -> Condition {
        let previous = old.conditions.iter().find(|c| c.type_ == type_);
        let last_transition_time = match previous {
            Some(p) if p.status == status => p.last_transition_time.clone(),
            _ => Time(Timestamp::now()),
        };
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: message.into(),
            observed_generation: Some(self.generation),
            last_transition_time,
        }
    }

    async fn degraded(&self, reason: &str, message: String) -> Result<Action, Error> {
        warn!(cluster = %key(self.mc), reason, %message, "degraded");
        let outcome = Outcome {
            waiting: None,
            components: self.old_status().components.unwrap_or_default(),
            dependencies: self.old_status().dependencies.unwrap_or_default(),
        };
        let status = self.status(Phase::Degraded, &outcome, Some((reason, &message)));
        self.write_status(status).await?;
        Ok(Action::requeue(REQUEUE_DEGRADED))
    }

    /// Server-side applies the status if it differs from the stored one;
    /// returns the new resourceVersion when it wrote.
    async fn write_status(&self, status: MilvusClusterStatus) -> Result<Option<String>, Error> {
        if self.mc.status.as_ref() == Some(&status) {
            return Ok(None);
        }
        let body = json!({
            "apiVersion": MilvusCluster::api_version(&()),
            "kind": MilvusCluster::kind(&()),
            "status": status,
        });
        let written = self
            .mc_api()
            .patch_status(
                &self.name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&body),
            )
            .await?;
        self.ctx.metrics.writes.inc();
        Ok(written.resource_version())
    }
}

fn old_ready(old: &MilvusClusterStatus) -> bool {
    old.conditions
        .iter()
        .any(|c| c.type_ == READY && c.status == "True")
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// (ready, human-readable progress) of a live StatefulSet or Deployment.
pub fn workload_ready(w: &DynamicObject) -> (bool, String) {
    let spec_replicas = w.data["spec"]["replicas"].as_i64().unwrap_or(1);
    let st = &w.data["status"];
    let generation = w.metadata.generation.unwrap_or(0);
    let observed = st["observedGeneration"].as_i64().unwrap_or(0);
    let ready = st["readyReplicas"].as_i64().unwrap_or(0);
    let updated = st["updatedReplicas"].as_i64().unwrap_or(0);
    let total = st["replicas"].as_i64().unwrap_or(0);
    let name = w.name_any();
    if observed < generation {
        return (false, format!("{name}: rollout not yet observed"));
    }
    let revisions_ok = match w.types.as_ref().map(|t| t.kind.as_str()) {
        Some("StatefulSet") => spec_replicas == 0 || st["currentRevision"] == st["updateRevision"],
        _ => true,
    };
    let ok = ready >= spec_replicas
        && updated >= spec_replicas
        && total == spec_replicas
        && revisions_ok;
    (
        ok,
        format!("{name}: {ready}/{spec_replicas} ready, {updated} updated"),
    )
}

fn stage_state(workloads: &[DynamicObject], expected: usize) -> StageState {
    if workloads.len() < expected {
        return StageState {
            ready: false,
            detail: "not created yet".into(),
        };
    }
    let mut details = vec![];
    let mut ready = true;
    for w in workloads {
        let (ok, d) = workload_ready(w);
        ready &= ok;
        if !ok {
            details.push(d);
        }
    }
    StageState {
        ready,
        detail: details.join("; "),
    }
}

fn component_status(w: &DynamicObject) -> ComponentStatus {
    let st = &w.data["status"];
    let num = |v: &Value| v.as_i64().unwrap_or(0) as i32;
    ComponentStatus {
        desired_replicas: w.data["spec"]["replicas"].as_i64().unwrap_or(1) as i32,
        ready_replicas: num(&st["readyReplicas"]),
        updated_replicas: num(&st["updatedReplicas"]),
        image: w.data["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    }
}

fn random_token(len: usize) -> String {
    use rand::Rng;
    rand::rng()
        .sample_iter(&rand::distr::Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
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
