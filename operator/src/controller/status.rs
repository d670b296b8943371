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

/// What the stage walk found.
pub(super) struct Outcome {
    pub waiting: Option<(Stage, String)>,
    pub components: ComponentsStatus,
    pub dependencies: DependenciesStatus,
}

impl Reconciler<'_> {
    pub(super) fn record(&self, stage: Stage, workloads: &[DynamicObject], out: &mut Outcome) {
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
        }
    }

    /// A spec problem: status `Degraded` with `reason`, nothing applied.
    pub(super) async fn degraded(&self, reason: Reason, message: String) -> Result<Action, Error> {
        warn!(cluster = %key(self.mc), %reason, %message, "degraded");
        let outcome = Outcome {
            waiting: None,
            components: self.old_status().components.unwrap_or_default(),
            dependencies: self.old_status().dependencies.unwrap_or_default(),
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

pub(super) fn stage_state(workloads: &[DynamicObject], expected: usize) -> StageState {
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
