//! Pure builders: `&MilvusCluster` → the Kubernetes objects that run it.
//!
//! Nothing here talks to the API server: [`build`] is a function of the
//! resource alone, so it is tested with golden snapshots and per-rule unit
//! tests. The controller applies the result stage by stage (see [`Stage`]).

mod config;
mod deps;
mod workloads;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{ApiResource, DynamicObject};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::crd::{MilvusCluster, Role, image_tag};

pub use config::{CONFIG_FILE, deep_merge, engine_config};
pub use deps::{
    CLUSTER_SECRET_KEY, ETCD_CLIENT_PORT, OBJECT_STORE_PORT, cluster_secret_name, etcd_endpoints,
    object_store_secret_name,
};
pub use workloads::{DATA_DIR, GRPC_PORT, HTTP_PORT, INTERNAL_GRPC_PORT};

/// Field manager used for every server-side apply.
pub const FIELD_MANAGER: &str = "ferrovus-operator";
/// Pod-template annotation holding the hash of the engine ConfigMap.
pub const CONFIG_HASH_ANNOTATION: &str = "ferrovus.io/config-hash";
/// Annotation holding the hash of the applied object (lets the controller skip no-op applies).
pub const SPEC_HASH_ANNOTATION: &str = "ferrovus.io/spec-hash";
/// `app.kubernetes.io/managed-by` value.
pub const MANAGED_BY: &str = "ferrovus-operator";

/// Why the objects cannot be built from a resource (reported as `Degraded`).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BuildError {
    /// The resource misses name, namespace or uid (not yet persisted).
    #[error("MilvusCluster has no {0}")]
    MissingMetadata(&'static str),
    /// The spec is invalid in a way the CRD schema cannot express.
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
}

/// When an object is applied during bring-up and rollouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    /// ServiceAccount and ConfigMap: applied first, never restart anything by themselves.
    Common,
    /// In-cluster etcd and object store.
    Dependencies,
    /// One engine component (its workload, Services, PDB and HPA).
    Component(Role),
}

impl Stage {
    /// Every stage in bring-up / rollout order.
    pub fn all() -> Vec<Stage> {
        let mut v = vec![Stage::Common, Stage::Dependencies];
        v.extend(Role::ORDER.iter().map(|r| Stage::Component(*r)));
        v
    }

    /// Human-readable name used in status messages.
    pub fn describe(self) -> String {
        match self {
            Stage::Common => "configuration".into(),
            Stage::Dependencies => "dependencies (etcd, object storage)".into(),
            Stage::Component(r) => format!("{} nodes", r.as_str()),
        }
    }
}

/// The short name of a stage in logs and errors: `configuration`,
/// `dependencies` or the role (`streaming`, …).
impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stage::Common => f.write_str("configuration"),
            Stage::Dependencies => f.write_str("dependencies"),
            Stage::Component(r) => f.write_str(r.as_str()),
        }
    }
}

/// One object the cluster needs.
#[derive(Clone, Debug, PartialEq)]
#[allow(missing_docs, clippy::large_enum_variant)]
pub enum Child {
    ServiceAccount(ServiceAccount),
    ConfigMap(ConfigMap),
    Service(Service),
    StatefulSet(StatefulSet),
    Deployment(Deployment),
    PodDisruptionBudget(PodDisruptionBudget),
    HorizontalPodAutoscaler(HorizontalPodAutoscaler),
}

macro_rules! each_child {
    ($self:expr, $o:ident => $e:expr) => {
        match $self {
            Child::ServiceAccount($o) => $e,
            Child::ConfigMap($o) => $e,
            Child::Service($o) => $e,
            Child::StatefulSet($o) => $e,
            Child::Deployment($o) => $e,
            Child::PodDisruptionBudget($o) => $e,
            Child::HorizontalPodAutoscaler($o) => $e,
        }
    };
}

impl Child {
    /// `Kind`.
    pub fn kind(&self) -> String {
        each_child!(self, o => kind_of(o))
    }

    /// `metadata.name`.
    pub fn name(&self) -> String {
        each_child!(self, o => o.name_any())
    }

    /// The API resource (group, version, plural) of the object.
    pub fn api_resource(&self) -> ApiResource {
        each_child!(self, o => api_resource_of(o))
    }

    /// The object as JSON, with `apiVersion` and `kind`.
    pub fn to_json(&self) -> serde_json::Value {
        each_child!(self, o => to_json_with_type(o))
    }

    /// The object as a [`DynamicObject`] with the spec-hash annotation set.
    pub fn to_dynamic(&self) -> DynamicObject {
        let hash = self.spec_hash();
        let mut obj: DynamicObject =
            serde_json::from_value(self.to_json()).expect("child converts to DynamicObject");
        obj.annotations_mut()
            .insert(SPEC_HASH_ANNOTATION.to_string(), hash);
        obj
    }

    /// Hash of the desired object (what the controller compares with the
    /// annotation of the live object to skip no-op applies).
    pub fn spec_hash(&self) -> String {
        short_hash(&serde_json::to_string(&self.to_json()).expect("json"))
    }

    /// `spec.replicas` the object asks for (workloads only; `None` when the HPA owns it).
    pub fn desired_replicas(&self) -> Option<i32> {
        match self {
            Child::StatefulSet(s) => s.spec.as_ref().and_then(|s| s.replicas),
            Child::Deployment(d) => d.spec.as_ref().and_then(|s| s.replicas),
            _ => None,
        }
    }

    /// Whether this is the workload (StatefulSet or Deployment) of its stage.
    pub fn is_workload(&self) -> bool {
        matches!(self, Child::StatefulSet(_) | Child::Deployment(_))
    }
}

fn kind_of<K: Resource<DynamicType = ()>>(_: &K) -> String {
    K::kind(&()).into_owned()
}

fn api_resource_of<K: Resource<DynamicType = ()>>(_: &K) -> ApiResource {
    ApiResource::erase::<K>(&())
}

fn to_json_with_type<K: Resource<DynamicType = ()> + Serialize>(o: &K) -> serde_json::Value {
    let mut v = serde_json::to_value(o).expect("object serializes");
    let map = v.as_object_mut().expect("object");
    map.insert("apiVersion".into(), K::api_version(&()).into_owned().into());
    map.insert("kind".into(), K::kind(&()).into_owned().into());
    v
}

/// A built object and the stage it belongs to.
#[derive(Clone, Debug, PartialEq)]
pub struct Planned {
    /// Bring-up / rollout stage.
    pub stage: Stage,
    /// The object.
    pub child: Child,
}

/// Everything the cluster needs, in stage order.
pub fn build(mc: &MilvusCluster) -> Result<Vec<Planned>, BuildError> {
    let ctx = Ctx::new(mc)?;
    let mut out = vec![];
    let mut push = |stage, child| out.push(Planned { stage, child });

    push(
        Stage::Common,
        Child::ServiceAccount(workloads::service_account(&ctx)),
    );
    let cm = config::config_map(&ctx)?;
    let config_hash = config::config_hash(&cm);
    push(Stage::Common, Child::ConfigMap(cm));

    for child in deps::build(&ctx) {
        push(Stage::Dependencies, child);
    }
    for role in Role::ORDER {
        for child in workloads::build(&ctx, role, &config_hash) {
            push(Stage::Component(role), child);
        }
    }
    Ok(out)
}

/// Validated inputs shared by the builders.
pub(crate) struct Ctx<'a> {
    pub mc: &'a MilvusCluster,
    pub name: String,
    pub namespace: String,
    pub owner: OwnerReference,
}

impl<'a> Ctx<'a> {
    fn new(mc: &'a MilvusCluster) -> Result<Self, BuildError> {
        let name = mc
            .metadata
            .name
            .clone()
            .ok_or(BuildError::MissingMetadata("name"))?;
        let namespace = mc
            .metadata
            .namespace
            .clone()
            .ok_or(BuildError::MissingMetadata("namespace"))?;
        let owner = mc
            .controller_owner_ref(&())
            .ok_or(BuildError::MissingMetadata("uid"))?;
        validate_spec(&mc.spec).map_err(BuildError::InvalidSpec)?;
        Ok(Ctx {
            mc,
            name,
            namespace,
            owner,
        })
    }

    /// `<cluster>-<suffix>`.
    pub fn object_name(&self, suffix: &str) -> String {
        format!("{}-{}", self.name, suffix)
    }

    /// Labels selecting the pods of `component`.
    pub fn selector_labels(&self, component: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("app.kubernetes.io/name".into(), "ferrovus".into()),
            ("app.kubernetes.io/instance".into(), self.name.clone()),
            ("app.kubernetes.io/component".into(), component.into()),
        ])
    }

    /// Labels of every object of `component`.
    pub fn labels(&self, component: &str) -> BTreeMap<String, String> {
        let mut l = self.selector_labels(component);
        l.insert("app.kubernetes.io/managed-by".into(), MANAGED_BY.into());
        l.insert("app.kubernetes.io/part-of".into(), "ferrovus".into());
        l
    }

    /// Labels of a workload and its pods: also the version of its image.
    pub fn versioned_labels(&self, component: &str, image: &str) -> BTreeMap<String, String> {
        let mut l = self.labels(component);
        l.insert(
            "app.kubernetes.io/version".into(),
            label_value(&image_tag(image)),
        );
        l
    }

    /// Metadata with name, namespace, labels and the owner reference.
    pub fn meta(&self, name: String, labels: BTreeMap<String, String>) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.clone()),
            labels: Some(labels),
            owner_references: Some(vec![self.owner.clone()]),
            ..Default::default()
        }
    }

    /// Pull secrets of every pod.
    pub fn pull_secrets(&self) -> Option<Vec<k8s_openapi::api::core::v1::LocalObjectReference>> {
        let s = &self.mc.spec.image_pull_secrets;
        (!s.is_empty()).then(|| s.clone())
    }
}

/// Checks the CRD's schema and CEL rules express too, for API servers that
/// did not enforce them (resources stored before a CRD upgrade, CEL disabled),
/// plus what they cannot express.
pub fn validate_spec(spec: &crate::crd::MilvusClusterSpec) -> Result<(), String> {
    if let Some(cfg) = &spec.config
        && !cfg.is_object()
    {
        return Err("spec.config must be a mapping of engine settings".into());
    }
    let etcd = spec.etcd();
    if etcd.external.is_some() == etcd.in_cluster.is_some() {
        return Err(
            "spec.dependencies.etcd: exactly one of external or inCluster must be set".into(),
        );
    }
    if let Some(ext) = &etcd.external
        && (ext.endpoints.is_empty() || ext.endpoints.iter().any(|e| e.trim().is_empty()))
    {
        return Err("spec.dependencies.etcd.external.endpoints must list endpoints".into());
    }
    if let Some(ic) = &etcd.in_cluster
        && let Some(r) = ic.replicas
        && (r < 1 || r % 2 == 0)
    {
        return Err(format!(
            "spec.dependencies.etcd.inCluster.replicas must be odd and positive, got {r}"
        ));
    }
    let storage = spec.storage();
    if storage.external.is_some() == storage.in_cluster.is_some() {
        return Err(
            "spec.dependencies.storage: exactly one of external or inCluster must be set".into(),
        );
    }
    if let Some(ext) = &storage.external {
        if ext.endpoint.trim().is_empty() || ext.bucket.trim().is_empty() {
            return Err("spec.dependencies.storage.external needs an endpoint and a bucket".into());
        }
        if ext.secret_ref.name.trim().is_empty() {
            return Err("spec.dependencies.storage.external.secretRef.name is empty".into());
        }
    }
    if let Some(a) = spec
        .security
        .as_ref()
        .and_then(|s| s.authorization.as_ref())
        && a.enabled
        && a.root_password_secret
            .as_ref()
            .is_none_or(|r| r.name.trim().is_empty())
    {
        return Err(
            "spec.security.authorization.enabled needs rootPasswordSecret.name (a Secret with the root user's initial password)"
                .into(),
        );
    }
    for role in Role::ORDER {
        let c = spec.component(role);
        if let Some(r) = c.replicas
            && r < 0
        {
            return Err(format!(
                "spec.components.{}.replicas must be >= 0, got {r}",
                role.as_str()
            ));
        }
        if let Some(a) = spec.autoscaling(role) {
            if a.min_replicas < 1 || a.min_replicas > a.max_replicas {
                return Err(format!(
                    "spec.components.{}.autoscaling: need 1 <= minReplicas ({}) <= maxReplicas ({})",
                    role.as_str(),
                    a.min_replicas,
                    a.max_replicas
                ));
            }
            if a.target_cpu_utilization_percentage.is_none()
                && a.target_memory_utilization_percentage.is_none()
            {
                return Err(format!(
                    "spec.components.{}.autoscaling needs a CPU and/or memory target",
                    role.as_str()
                ));
            }
        }
    }
    Ok(())
}

/// A valid label value: at most 63 characters of `[A-Za-z0-9._-]`, starting and ending alphanumeric.
pub fn label_value(s: &str) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    cleaned
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

/// First 16 hex digits of the SHA-256 of `text`.
pub fn short_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
