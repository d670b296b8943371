//! Status: what the stage walk observed, the conditions, and the status write
//! (only when it differs from the stored one).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};
use tracing::warn;

use super::conditions::{Conditions, Reason};
use super::{Error, REQUEUE_DEGRADED, Reconciler, key};
use crate::builders::{self, FIELD_MANAGER, Stage};
use crate::crd::{
    ComponentStatus, ComponentsStatus, DEFAULT_PROXY_PORT, DependenciesStatus, DependencyStatus,
    MilvusCluster, MilvusClusterStatus, Phase, Role, image_tag,
};

/// Live state of one stage's workloads.
pub(super) struct StageState {
    pub ready: bool,
    pub detail: String,
}

/// A live workload and whether it already carries the desired spec.
pub(super) struct Live {
    pub obj: DynamicObject,
    pub current: bool,
}

/// What the stage walk found.
#[derive(Default)]
pub(super) struct Outcome {
    pub waiting: Option<(Stage, String)>,
    /// Live workloads that are not ready, in stage order.
    pub unready: Vec<DynamicObject>,
    pub components: ComponentsStatus,
    pub dependencies: DependenciesStatus,
}

impl Reconciler<'_> {
    pub(super) fn record(&self, stage: Stage, workloads: &[Live], out: &mut Outcome) {
        match stage {
            Stage::Common => {}
            Stage::Dependencies => {
                let etcd = self.mc.spec.etcd();
                let endpoints =
                    builders::etcd_endpoints(&self.mc.spec, &self.name, &self.namespace);
                let ready_of = |component: &str| {
                    workloads
                        .iter()
                        .map(|l| &l.obj)
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
                let old = self.old_status().components.unwrap_or_default();
                *out.components.slot(role) = workloads
                    .first()
                    .map(|l| component_status(l, old.get(role)));
            }
        }
    }

    pub(super) fn endpoint(&self) -> String {
        let port = self
            .mc
            .spec
            .proxy_service()
            .port
            .unwrap_or(DEFAULT_PROXY_PORT);
        format!("{}-proxy.{}.svc:{port}", self.name, self.namespace)
    }

    /// The status to write: `conditions` plus what the walk observed.
    pub(super) fn status(
        &self,
        phase: Phase,
        outcome: &Outcome,
        conditions: Conditions,
    ) -> MilvusClusterStatus {
        let old = self.old_status();
        let c = &outcome.components;
        let all = [&c.coordinator, &c.streaming, &c.query, &c.data, &c.proxy];
        // the version every component runs, once they all run the same image
        let images: Vec<&str> = all
            .iter()
            .filter_map(|s| s.as_ref())
            .map(|s| s.image.as_str())
            .collect();
        let version = if phase == Phase::Ready
            && images.len() == all.len()
            && images.iter().all(|i| *i == images[0])
        {
            Some(image_tag(images[0]))
        } else {
            old.version.clone()
        };
        let now = Time(Timestamp::now());
        let components = ComponentsStatus {
            coordinator: c.coordinator.clone(),
            streaming: c.streaming.clone(),
            query: c.query.clone(),
            data: c.data.clone(),
            proxy: c.proxy.clone(),
        };
        let rollout = rollout_summary(outcome.waiting.as_ref(), &components);
        MilvusClusterStatus {
            observed_generation: Some(self.generation),
            phase: Some(phase),
            version,
            conditions: conditions.to_k8s(&old.conditions, self.generation, &now),
            components: (!images.is_empty()).then_some(components),
            dependencies: outcome
                .dependencies
                .etcd
                .is_some()
                .then(|| outcome.dependencies.clone()),
            endpoint: Some(self.endpoint()),
            rollout,
        }
    }

    /// A spec problem: status `Degraded` with `reason`, nothing applied.
    pub(super) async fn degraded(&self, reason: Reason, message: String) -> Result<Action, Error> {
        warn!(cluster = %key(self.mc), %reason, %message, "degraded");
        let outcome = Outcome {
            components: self.old_status().components.unwrap_or_default(),
            dependencies: self.old_status().dependencies.unwrap_or_default(),
            ..Outcome::default()
        };
        let status = self.status(
            Phase::Degraded,
            &outcome,
            Conditions::blocked(reason, &message),
        );
        self.write_status(status).await?;
        Ok(Action::requeue(REQUEUE_DEGRADED))
    }

    /// Server-side applies the status if it differs from the stored one;
    /// returns the new resourceVersion when it wrote.
    pub(super) async fn write_status(
        &self,
        status: MilvusClusterStatus,
    ) -> Result<Option<String>, Error> {
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
            .await
            .map_err(|source| Error::Status {
                namespace: self.namespace.clone(),
                name: self.name.clone(),
                source: Box::new(source),
            })?;
        self.ctx.metrics.writes.inc();
        self.announce_status(&status).await;
        Ok(written.resource_version())
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

pub(super) fn stage_state(workloads: &[Live], expected: usize) -> StageState {
    if workloads.len() < expected {
        return StageState {
            ready: false,
            detail: "not created yet".into(),
        };
    }
    let mut details = vec![];
    let mut ready = true;
    for w in workloads {
        let (ok, d) = workload_ready(&w.obj);
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

/// The status of a component from its live workload; `old` carries the image
/// of the last complete rollout.
pub(super) fn component_status(live: &Live, old: Option<&ComponentStatus>) -> ComponentStatus {
    let w = &live.obj;
    let st = &w.data["status"];
    let num = |v: &Value| v.as_i64().unwrap_or(0) as i32;
    let image = w.data["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let rollout = rollout_state(w, live.current);
    let current_image = if rollout == COMPLETE {
        Some(image.clone())
    } else {
        old.and_then(|o| o.current_image.clone())
    };
    ComponentStatus {
        desired_replicas: w.data["spec"]["replicas"].as_i64().unwrap_or(1) as i32,
        ready_replicas: num(&st["readyReplicas"]),
        updated_replicas: num(&st["updatedReplicas"]),
        image,
        current_image,
        rollout: Some(rollout),
    }
}

/// Rollout state of a finished component.
pub const COMPLETE: &str = "Complete";
/// Rollout state of a component whose new spec waits for an earlier component.
pub const PENDING: &str = "Pending";

/// The rollout state of a live workload: `Pending` when it does not carry the
/// desired spec yet (`current` false), `Complete` when ready, otherwise
/// `Updating u/d`, `Waiting r/d ready` or `Scaling n/d`.
pub fn rollout_state(w: &DynamicObject, current: bool) -> String {
    if !current {
        return PENDING.into();
    }
    if workload_ready(w).0 {
        return COMPLETE.into();
    }
    let desired = w.data["spec"]["replicas"].as_i64().unwrap_or(1);
    let st = &w.data["status"];
    let observed = st["observedGeneration"].as_i64().unwrap_or(0);
    if observed < w.metadata.generation.unwrap_or(0) {
        return format!("Updating 0/{desired}");
    }
    let updated = st["updatedReplicas"].as_i64().unwrap_or(0);
    let ready = st["readyReplicas"].as_i64().unwrap_or(0);
    let total = st["replicas"].as_i64().unwrap_or(0);
    let revisions_differ = w.types.as_ref().is_some_and(|t| t.kind == "StatefulSet")
        && desired > 0
        && st["currentRevision"] != st["updateRevision"];
    if updated < desired || revisions_differ {
        format!("Updating {updated}/{desired}")
    } else if ready < desired {
        format!("Waiting {ready}/{desired} ready")
    } else {
        format!("Scaling {total}/{desired}")
    }
}

/// `status.rollout`: the component being rolled, its progress and image, and
/// the components done and next; `None` when nothing is awaited.
pub fn rollout_summary(
    waiting: Option<&(Stage, String)>,
    components: &ComponentsStatus,
) -> Option<String> {
    let (stage, detail) = waiting?;
    let Stage::Component(role) = stage else {
        return Some(format!("dependencies: {detail}"));
    };
    let mut text = match components.get(*role) {
        Some(c) => format!(
            "{}: {} ({})",
            role.as_str(),
            c.rollout.as_deref().unwrap_or(PENDING),
            c.image
        ),
        None => format!("{}: not created yet", role.as_str()),
    };
    let complete = |r: &Role| {
        components
            .get(*r)
            .is_some_and(|c| c.rollout.as_deref() == Some(COMPLETE))
    };
    let position = Role::ORDER.iter().position(|r| r == role).unwrap_or(0);
    let done: Vec<&str> = Role::ORDER[..position]
        .iter()
        .filter(|r| complete(r))
        .map(|r| r.as_str())
        .collect();
    let next: Vec<&str> = Role::ORDER[position + 1..]
        .iter()
        .filter(|r| !complete(r))
        .map(|r| r.as_str())
        .collect();
    if !done.is_empty() {
        text.push_str(&format!("; done: {}", done.join(", ")));
    }
    if !next.is_empty() {
        text.push_str(&format!("; next: {}", next.join(", ")));
    }
    Some(text)
}
