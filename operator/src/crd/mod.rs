//! The `MilvusCluster` custom resource (`ferrovus.io/v1alpha1`).
//!
//! Every field carries a doc comment: they become the `description`s of the
//! generated CRD schema, which is what `kubectl explain milvuscluster.spec…`
//! prints. The schema is structural: enums are plain strings, "one of" choices
//! are structs with optional members plus a CEL rule (`x-kubernetes-validations`).
//! `crds/milvusclusters.ferrovus.io.yaml` is generated from these types by the
//! `crdgen` binary (see [`crd_yaml`]).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, EnvVar, LocalObjectReference, ResourceRequirements, Toleration,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, CustomResourceExt, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod security;
pub use security::{Authorization, SecretKeyRef, Security, Tls, TlsMode};

/// API group of the custom resource.
pub const GROUP: &str = "ferrovus.io";
/// Served (and stored) version.
pub const VERSION: &str = "v1alpha1";
/// Default engine image when `spec.image` is not set.
pub const DEFAULT_IMAGE: &str = "ferrovus/ferrovus:0.1.0";
/// Default image of the in-cluster etcd.
pub const DEFAULT_ETCD_IMAGE: &str = "quay.io/coreos/etcd:v3.5.21";
/// Default image of the in-cluster S3-compatible object store.
pub const DEFAULT_OBJECT_STORE_IMAGE: &str = "minio/minio:RELEASE.2025-04-22T22-12-26Z";
/// Default bucket of the in-cluster object store.
pub const DEFAULT_BUCKET: &str = "ferrovus";
/// Default proxy (client) port.
pub const DEFAULT_PROXY_PORT: i32 = 19530;

/// Desired state of a Ferrovus vector database cluster.
// several `printcolumn(type_ = "string")` look like duplicated attributes to clippy
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "ferrovus.io",
    version = "v1alpha1",
    kind = "MilvusCluster",
    plural = "milvusclusters",
    singular = "milvuscluster",
    namespaced,
    status = "MilvusClusterStatus",
    derive = "PartialEq",
    derive = "Default",
    shortname = "mc",
    shortname = "fvc",
    category = "ferrovus",
    doc = "A Ferrovus (Milvus-compatible) vector database cluster: coordinator, proxy, streaming, query and data nodes plus their etcd and S3-compatible object storage, reconciled by ferrovus-operator.",
    printcolumn(
        name = "Phase",
        type_ = "string",
        description = "Lifecycle phase",
        json_path = ".status.phase"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        description = "Status of the Ready condition",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Version",
        type_ = "string",
        description = "Engine version every component runs",
        json_path = ".status.version"
    ),
    printcolumn(
        name = "Endpoint",
        type_ = "string",
        description = "Address clients connect to (host:port of the proxy Service)",
        json_path = ".status.endpoint"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct MilvusClusterSpec {
    /// Engine container image run by every component (`ferrovus run <role>`).
    /// Changing it upgrades the cluster one component at a time in the order
    /// coordinator, streaming, query, data, proxy. Defaults to the image of the
    /// operator's release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,

    /// Pull policy of the engine image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<PullPolicy>,

    /// Secrets used to pull the engine and dependency images.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,

    /// When true the operator stops changing the cluster's objects (it still
    /// reports status). Use it for manual maintenance.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,

    /// Free-form engine configuration (YAML/JSON object) deep-merged over the
    /// operator's defaults into `/etc/ferrovus/ferrovus.yaml`. Changing it rolls
    /// the engine pods (in the upgrade order); settings given by
    /// `FERROVUS_*` environment variables (dependencies, data dir) win.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form_object")]
    pub config: Option<serde_json::Value>,

    /// Metadata store (etcd) and object storage (S3) the cluster uses. Both
    /// default to in-cluster instances deployed by the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependencies: Option<Dependencies>,

    /// What happens to data when the MilvusCluster is deleted: `Retain` (default)
    /// keeps the PersistentVolumeClaims of the in-cluster dependencies and of the
    /// streaming nodes; `Delete` removes them (through a finalizer). External
    /// etcd and S3 are never touched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,

    /// Per-component settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub components: Option<Components>,

    /// Users and privileges, and TLS of the Milvus port. Internal traffic
    /// between the cluster's pods is always authenticated with a generated
    /// shared secret (Secret `<name>-cluster-secret`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<Security>,
}

fn free_form_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// Pull policy of the engine image: `Always`, `IfNotPresent` or `Never`
/// (Kubernetes' default when unset).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullPolicy {
    /// Always pull.
    Always,
    /// Pull only when the image is not present on the node.
    IfNotPresent,
    /// Never pull.
    Never,
}

impl PullPolicy {
    /// The Kubernetes spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }
}

/// What happens to data when the MilvusCluster is deleted: `Retain` (default)
/// keeps the PersistentVolumeClaims of the in-cluster etcd, object store and
/// streaming nodes; `Delete` removes them through a finalizer. External etcd
/// and S3 are never touched.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeletionPolicy {
    /// Keep PersistentVolumeClaims (data survives; re-creating the cluster with
    /// the same name reuses them).
    #[default]
    Retain,
    /// Delete the PersistentVolumeClaims of the in-cluster etcd, object store and
    /// streaming nodes.
    Delete,
}

/// External services the cluster depends on.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Dependencies {
    /// Metadata store. Defaults to an in-cluster etcd.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd: Option<EtcdDependency>,
    /// Object storage for segments, indexes and the WAL archive. Defaults to an
    /// in-cluster S3-compatible store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageDependency>,
}

/// etcd used for metadata, service discovery and the coordinator lease:
/// set exactly one of `external` or `inCluster`.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    cel,
    validation = Rule::new("has(self.external) != has(self.inCluster)").message("exactly one of etcd.external or etcd.inCluster must be set")
)]
pub struct EtcdDependency {
    /// An etcd cluster managed outside of this resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalEtcd>,
    /// An etcd StatefulSet deployed and owned by the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_cluster: Option<InClusterEtcd>,
}

/// Connection to an existing etcd.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ExternalEtcd {
    /// Client endpoints, e.g. `http://etcd-0.etcd:2379`.
    #[schemars(length(min = 1))]
    pub endpoints: Vec<String>,
}

/// An etcd deployed in the cluster's namespace.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    cel,
    validation = Rule::new("!has(self.replicas) || self.replicas % 2 == 1").message("etcd.inCluster.replicas must be odd (1, 3, 5…)")
)]
pub struct InClusterEtcd {
    /// etcd image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Number of etcd members (odd; default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 7))]
    pub replicas: Option<i32>,
    /// Resource requests and limits of the etcd container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Persistent volume of each member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence: Option<Persistence>,
}

/// Object storage: set exactly one of `external` or `inCluster`.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    cel,
    validation = Rule::new("has(self.external) != has(self.inCluster)").message("exactly one of storage.external or storage.inCluster must be set")
)]
pub struct StorageDependency {
    /// An S3-compatible service managed outside of this resource (AWS S3, MinIO,
    /// Ceph RGW, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalStorage>,
    /// An S3-compatible object store StatefulSet deployed by the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_cluster: Option<InClusterStorage>,
}

/// Connection to an existing S3-compatible service.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ExternalStorage {
    /// Endpoint URL including the scheme, e.g. `https://s3.eu-west-1.amazonaws.com`.
    #[schemars(length(min = 1))]
    pub endpoint: String,
    /// Bucket holding the cluster's data (created by the engine if missing).
    #[schemars(length(min = 3, max = 63))]
    pub bucket: String,
    /// Region (optional for most S3-compatible services).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Secret in the same namespace holding the access key pair.
    pub secret_ref: S3SecretRef,
}

/// Reference to a Secret with S3 credentials.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct S3SecretRef {
    /// Name of the Secret (same namespace as the MilvusCluster).
    #[schemars(length(min = 1))]
    pub name: String,
    /// Key of the access key id in the Secret (default `accessKeyId`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id_key: Option<String>,
    /// Key of the secret access key in the Secret (default `secretAccessKey`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key_key: Option<String>,
}

/// An S3-compatible object store deployed in the cluster's namespace. Its
/// credentials are generated once into the Secret `<name>-object-store`
/// (keys `accessKeyId`, `secretAccessKey`); a pre-existing Secret of that name
/// is used as is.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct InClusterStorage {
    /// Object store image (MinIO-compatible command line: `server /data`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Bucket name (default `ferrovus`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 3, max = 63))]
    pub bucket: Option<String>,
    /// Resource requests and limits of the object store container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Persistent volume of the object store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence: Option<Persistence>,
}

/// A PersistentVolumeClaim template.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Persistence {
    /// Requested size (default `10Gi`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<Quantity>,
    /// StorageClass; the cluster default when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

/// Settings of each engine role.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Components {
    /// Coordinators (StatefulSet, active–standby through an etcd lease; default 1 replica).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coordinator: Option<ComponentSpec>,
    /// Proxies (Deployment) serving the client gRPC API behind the client Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<ProxySpec>,
    /// Streaming nodes (StatefulSet) owning the write-ahead log and growing segments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streaming: Option<StreamingSpec>,
    /// Query nodes (Deployment) serving sealed segments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<ScalableComponentSpec>,
    /// Data nodes (Deployment) compacting segments and building indexes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<ScalableComponentSpec>,
}

/// Settings shared by every component.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ComponentSpec {
    /// Number of pods (default 1). Ignored when `autoscaling` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub replicas: Option<i32>,
    /// Image for this component only (overrides `spec.image`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Resource requests and limits of the engine container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Node labels the pods must match.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations of the pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Affinity rules of the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Extra environment variables (a variable with the name of an
    /// operator-provided one replaces it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
}

/// A component that can be scaled by a HorizontalPodAutoscaler.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ScalableComponentSpec {
    #[serde(flatten)]
    #[allow(missing_docs)]
    pub common: ComponentSpec,
    /// When set, an `autoscaling/v2` HorizontalPodAutoscaler owns the replica
    /// count and `replicas` is ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<Autoscaling>,
}

/// Streaming nodes: a component with a persistent volume for the WAL.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct StreamingSpec {
    #[serde(flatten)]
    #[allow(missing_docs)]
    pub common: ComponentSpec,
    /// Persistent volume of each streaming node (write-ahead log, growing segments).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence: Option<Persistence>,
}

/// Proxies: scalable, plus the client Service.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ProxySpec {
    #[serde(flatten)]
    #[allow(missing_docs)]
    pub scalable: ScalableComponentSpec,
    /// The client Service in front of the proxies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ProxyService>,
}

/// Horizontal pod autoscaling of a component.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    cel,
    validation = Rule::new("self.minReplicas <= self.maxReplicas").message("autoscaling.minReplicas must be less than or equal to autoscaling.maxReplicas"),
    validation = Rule::new("has(self.targetCPUUtilizationPercentage) || has(self.targetMemoryUtilizationPercentage)").message("autoscaling needs targetCPUUtilizationPercentage and/or targetMemoryUtilizationPercentage")
)]
pub struct Autoscaling {
    /// Lower bound of the replica count.
    #[schemars(range(min = 1))]
    pub min_replicas: i32,
    /// Upper bound of the replica count.
    #[schemars(range(min = 1))]
    pub max_replicas: i32,
    /// Target average CPU utilization (percent of requests).
    #[serde(
        default,
        rename = "targetCPUUtilizationPercentage",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 1, max = 1000))]
    pub target_cpu_utilization_percentage: Option<i32>,
    /// Target average memory utilization (percent of requests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub target_memory_utilization_percentage: Option<i32>,
    /// How long the load must stay low before the HPA removes pods (its scale-down
    /// stabilization window; Kubernetes' default is 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 3600))]
    pub scale_down_stabilization_seconds: Option<i32>,
}

/// The client Service of the proxies.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ProxyService {
    /// Service type (default `ClusterIP`).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<ServiceType>,
    /// Service port for the gRPC API (default 19530).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
    /// Annotations of the Service (e.g. for cloud load balancers).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Type of the client Service: `ClusterIP` (default), `NodePort` or `LoadBalancer`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ServiceType {
    /// Reachable inside the cluster only.
    #[default]
    ClusterIP,
    /// Also exposed on a port of every node.
    NodePort,
    /// Exposed through a cloud load balancer.
    LoadBalancer,
}

impl ServiceType {
    /// The Kubernetes spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceType::ClusterIP => "ClusterIP",
            ServiceType::NodePort => "NodePort",
            ServiceType::LoadBalancer => "LoadBalancer",
        }
    }
}

/// Observed state, written by the operator only.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct MilvusClusterStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Lifecycle phase: Pending, Deploying, Upgrading, Ready, Paused, Degraded or Deleting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Engine version (image tag) that every component runs, once they all run the same one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// `Ready`, `Progressing` and `Degraded` conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Per-component replica counts and images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub components: Option<ComponentsStatus>,
    /// In-cluster dependencies' readiness.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependencies: Option<DependenciesStatus>,
    /// Address clients connect to (`host:port` of the proxy Service).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// While a change is rolled out: the component being rolled, its progress
    /// and image, and which components are done and which come next, e.g.
    /// `query: Updating 1/3 (ferrovus/ferrovus:0.2.0); done: coordinator,
    /// streaming; next: data, proxy`. Absent once every component runs the
    /// desired spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<String>,
}

/// Lifecycle phase: `Pending` (waiting for dependencies), `Deploying`,
/// `Upgrading` (rolling a change one component at a time), `Ready`, `Paused`,
/// `Degraded` (see the Degraded condition) or `Deleting`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for dependencies (etcd, object storage).
    Pending,
    /// Creating components for the first time.
    Deploying,
    /// Rolling a spec change out one component at a time.
    Upgrading,
    /// Every component runs the desired spec and is ready.
    Ready,
    /// `spec.paused` is true.
    Paused,
    /// The spec is invalid or cannot be applied (see the Degraded condition).
    Degraded,
    /// The resource is being deleted.
    Deleting,
}

impl Phase {
    /// The spelling in the status.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Deploying => "Deploying",
            Phase::Upgrading => "Upgrading",
            Phase::Ready => "Ready",
            Phase::Paused => "Paused",
            Phase::Degraded => "Degraded",
            Phase::Deleting => "Deleting",
        }
    }
}

/// Status of every component.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ComponentsStatus {
    /// Coordinators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coordinator: Option<ComponentStatus>,
    /// Streaming nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streaming: Option<ComponentStatus>,
    /// Query nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<ComponentStatus>,
    /// Data nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<ComponentStatus>,
    /// Proxies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<ComponentStatus>,
}

impl ComponentsStatus {
    /// The status of `role`.
    pub fn get(&self, role: Role) -> Option<&ComponentStatus> {
        match role {
            Role::Coordinator => self.coordinator.as_ref(),
            Role::Streaming => self.streaming.as_ref(),
            Role::Query => self.query.as_ref(),
            Role::Data => self.data.as_ref(),
            Role::Proxy => self.proxy.as_ref(),
        }
    }

    /// The slot of `role`.
    pub fn slot(&mut self, role: Role) -> &mut Option<ComponentStatus> {
        match role {
            Role::Coordinator => &mut self.coordinator,
            Role::Streaming => &mut self.streaming,
            Role::Query => &mut self.query,
            Role::Data => &mut self.data,
            Role::Proxy => &mut self.proxy,
        }
    }
}

/// Status of one component's workload.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ComponentStatus {
    /// Replicas the workload should have (from its spec; the HPA's choice when autoscaled).
    pub desired_replicas: i32,
    /// Replicas that are ready.
    pub ready_replicas: i32,
    /// Replicas that run the current pod template.
    pub updated_replicas: i32,
    /// Image of the workload's pod template (the image being rolled out while
    /// `rollout` is not `Complete`).
    pub image: String,
    /// Image every replica ran when the component's last rollout completed
    /// (differs from `image` while an upgrade of this component is pending or
    /// in progress).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_image: Option<String>,
    /// Rollout state: `Complete`; `Pending` (the new spec waits for an earlier
    /// component); `Updating u/d` (u of d replicas run the new pod template);
    /// `Waiting r/d ready`; `Scaling n/d` (n pods, d wanted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<String>,
}

/// Status of the dependencies.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct DependenciesStatus {
    /// etcd.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd: Option<DependencyStatus>,
    /// Object storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<DependencyStatus>,
}

/// Status of one dependency.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct DependencyStatus {
    /// `External` or `InCluster`.
    pub mode: String,
    /// Whether the dependency is usable (external ones are assumed to be).
    pub ready: bool,
    /// Endpoint(s) the engine is given.
    pub endpoint: String,
}

/// The `MilvusCluster` CustomResourceDefinition.
///
/// `MilvusCluster::crd()` post-processed: `spec.config` keeps unknown fields
/// (kube's structural rewrite drops that marker), and the descriptions inside
/// embedded Kubernetes types (affinity, tolerations, env, resources) are cut to
/// their first sentence, which keeps the CRD well under the 256 KiB
/// `last-applied-configuration` limit of client-side `kubectl apply`.
pub fn crd() -> CustomResourceDefinition {
    let mut value = serde_json::to_value(MilvusCluster::crd()).expect("CRD serializes");
    for version in value["spec"]["versions"].as_array_mut().expect("versions") {
        let root = &mut version["schema"]["openAPIV3Schema"];
        let config = &mut root["properties"]["spec"]["properties"]["config"];
        config["x-kubernetes-preserve-unknown-fields"] = serde_json::Value::Bool(true);
        shorten_embedded_descriptions(root, false);
    }
    serde_json::from_value(value).expect("CRD deserializes")
}

/// Properties whose schema comes from k8s-openapi.
const EMBEDDED: [&str; 6] = [
    "affinity",
    "tolerations",
    "env",
    "resources",
    "imagePullSecrets",
    "conditions",
];

fn shorten_embedded_descriptions(schema: &mut serde_json::Value, inside: bool) {
    let Some(obj) = schema.as_object_mut() else {
        return;
    };
    if inside && let Some(serde_json::Value::String(d)) = obj.get_mut("description") {
        *d = first_sentence(d);
    }
    if let Some(serde_json::Value::Object(props)) = obj.get_mut("properties") {
        for (name, sub) in props.iter_mut() {
            let nested = inside || EMBEDDED.contains(&name.as_str());
            shorten_embedded_descriptions(sub, nested);
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(sub) = obj.get_mut(key) {
            shorten_embedded_descriptions(sub, inside);
        }
    }
}

fn first_sentence(text: &str) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.find(". ") {
        Some(i) => flat[..=i].to_string(),
        None => flat,
    }
}

/// The CRD as YAML, exactly as written to `crds/milvusclusters.ferrovus.io.yaml`.
pub fn crd_yaml() -> String {
    let crd = crd();
    let body = serde_yaml_ng::to_string(&crd).expect("CRD serializes");
    format!(
        "# Generated by `cargo run -p ferrovus-operator --bin crdgen`; do not edit.\n---\n{body}"
    )
}

// ---- defaults and accessors used by builders and the controller ----

/// Component roles of the engine, in rollout order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// `ferrovus run coordinator`.
    Coordinator,
    /// `ferrovus run streaming`.
    Streaming,
    /// `ferrovus run query`.
    Query,
    /// `ferrovus run data`.
    Data,
    /// `ferrovus run proxy`.
    Proxy,
}

impl Role {
    /// Rollout / bring-up order.
    pub const ORDER: [Role; 5] = [
        Role::Coordinator,
        Role::Streaming,
        Role::Query,
        Role::Data,
        Role::Proxy,
    ];

    /// The role name, as passed to `ferrovus run`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Coordinator => "coordinator",
            Role::Streaming => "streaming",
            Role::Query => "query",
            Role::Data => "data",
            Role::Proxy => "proxy",
        }
    }

    /// StatefulSet (stable identity) or Deployment.
    pub fn is_stateful(self) -> bool {
        matches!(self, Role::Coordinator | Role::Streaming)
    }
}

impl MilvusClusterSpec {
    /// The engine image (spec or default).
    pub fn engine_image(&self) -> &str {
        self.image.as_deref().unwrap_or(DEFAULT_IMAGE)
    }

    /// Deletion policy with its default.
    pub fn deletion_policy(&self) -> DeletionPolicy {
        self.deletion_policy.unwrap_or_default()
    }

    /// The settings shared by every component of `role`.
    pub fn component(&self, role: Role) -> ComponentSpec {
        let c = self.components.clone().unwrap_or_default();
        match role {
            Role::Coordinator => c.coordinator.unwrap_or_default(),
            Role::Streaming => c.streaming.unwrap_or_default().common,
            Role::Query => c.query.unwrap_or_default().common,
            Role::Data => c.data.unwrap_or_default().common,
            Role::Proxy => c.proxy.unwrap_or_default().scalable.common,
        }
    }

    /// Autoscaling of `role`, if any (only proxy, query and data support it).
    pub fn autoscaling(&self, role: Role) -> Option<Autoscaling> {
        let c = self.components.clone().unwrap_or_default();
        match role {
            Role::Query => c.query.and_then(|q| q.autoscaling),
            Role::Data => c.data.and_then(|q| q.autoscaling),
            Role::Proxy => c.proxy.and_then(|q| q.scalable.autoscaling),
            Role::Coordinator | Role::Streaming => None,
        }
    }

    /// Image of `role` (component override or the engine image).
    pub fn image_for(&self, role: Role) -> String {
        self.component(role)
            .image
            .unwrap_or_else(|| self.engine_image().to_string())
    }

    /// etcd dependency with its default (in-cluster).
    pub fn etcd(&self) -> EtcdDependency {
        self.dependencies
            .as_ref()
            .and_then(|d| d.etcd.clone())
            .unwrap_or_else(|| EtcdDependency {
                external: None,
                in_cluster: Some(InClusterEtcd::default()),
            })
    }

    /// Storage dependency with its default (in-cluster).
    pub fn storage(&self) -> StorageDependency {
        self.dependencies
            .as_ref()
            .and_then(|d| d.storage.clone())
            .unwrap_or_else(|| StorageDependency {
                external: None,
                in_cluster: Some(InClusterStorage::default()),
            })
    }

    /// Proxy Service settings with defaults.
    pub fn proxy_service(&self) -> ProxyService {
        self.components
            .as_ref()
            .and_then(|c| c.proxy.as_ref())
            .and_then(|p| p.service.clone())
            .unwrap_or_default()
    }

    /// Persistence of streaming nodes.
    pub fn streaming_persistence(&self) -> Persistence {
        self.components
            .as_ref()
            .and_then(|c| c.streaming.as_ref())
            .and_then(|s| s.persistence.clone())
            .unwrap_or_default()
    }
}

/// Tag of an image reference (`repo:tag` → `tag`, digests → the digest), or
/// `latest` when none.
pub fn image_tag(image: &str) -> String {
    if let Some((_, digest)) = image.split_once('@') {
        return digest.to_string();
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, tag)) => tag.to_string(),
        None => "latest".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    fn schema_of_spec() -> serde_json::Value {
        let crd = serde_json::to_value(crd()).unwrap();
        crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
    }

    /// CI's staleness check: the committed CRD must equal the generated one.
    #[test]
    fn committed_crd_is_up_to_date() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../crds/milvusclusters.ferrovus.io.yaml"
        );
        let generated = crd_yaml();
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == generated,
            "crds/milvusclusters.ferrovus.io.yaml is stale: run `cargo run -p ferrovus-operator --bin crdgen > crds/milvusclusters.ferrovus.io.yaml` (or UPDATE_GOLDEN=1 cargo test -p ferrovus-operator)"
        );
    }

    /// Every property in the schema has a description, so `kubectl explain` reads well.
    #[test]
    fn every_field_has_a_description() {
        fn walk(path: &str, schema: &serde_json::Value, missing: &mut Vec<String>) {
            if let Some(props) = schema.get("properties").and_then(|p| p.as_object()) {
                for (name, sub) in props {
                    let p = format!("{path}.{name}");
                    let top_level = path.is_empty()
                        && ["apiVersion", "kind", "metadata"].contains(&name.as_str());
                    if sub.get("description").is_none() && !top_level {
                        missing.push(p.clone());
                    }
                    walk(&p, sub, missing);
                }
            }
            if let Some(items) = schema.get("items") {
                walk(&format!("{path}[]"), items, missing);
            }
            if let Some(ap) = schema.get("additionalProperties")
                && ap.is_object()
            {
                walk(&format!("{path}{{}}"), ap, missing);
            }
        }
        let mut missing = vec![];
        walk("", &schema_of_spec(), &mut missing);
        // Embedded Kubernetes types (resources, affinity, …) come with their
        // own upstream descriptions; only check our own fields.
        assert!(
            missing.is_empty(),
            "fields without description: {missing:?}"
        );
    }

    #[test]
    fn schema_is_structural_no_oneof_anyof() {
        let text = serde_json::to_string(&schema_of_spec()).unwrap();
        for bad in ["\"oneOf\"", "\"anyOf\"", "\"$ref\"", "\"allOf\""] {
            assert!(!text.contains(bad), "schema contains {bad}");
        }
    }

    #[test]
    fn crd_metadata() {
        let crd = crd();
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some("milvusclusters.ferrovus.io")
        );
        assert_eq!(crd.spec.scope, "Namespaced");
        let names = &crd.spec.names;
        assert_eq!(names.kind, "MilvusCluster");
        assert!(
            names
                .short_names
                .as_ref()
                .unwrap()
                .contains(&"mc".to_string())
        );
        let v = &crd.spec.versions[0];
        assert!(v.subresources.as_ref().unwrap().status.is_some());
        let cols: Vec<_> = v
            .additional_printer_columns
            .as_ref()
            .unwrap()
            .iter()
            .map(|c| c.name.clone())
            .collect();
        assert_eq!(cols, ["Phase", "Ready", "Version", "Endpoint", "Age"]);
        let endpoint = v
            .additional_printer_columns
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.name == "Endpoint")
            .unwrap();
        assert_eq!(endpoint.json_path, ".status.endpoint");
    }

    #[test]
    fn cel_rules_are_in_the_schema() {
        let text = serde_json::to_string(&schema_of_spec()).unwrap();
        assert!(text.contains("has(self.external) != has(self.inCluster)"));
        assert!(text.contains("self.minReplicas <= self.maxReplicas"));
        let s = schema_of_spec();
        let replicas = &s["properties"]["spec"]["properties"]["components"]["properties"]["query"]
            ["properties"]["replicas"];
        assert_eq!(replicas["minimum"].as_f64(), Some(0.0));
    }

    #[test]
    fn cel_autoscaling_min_le_max() {
        let ok = json!({"minReplicas": 1, "maxReplicas": 3, "targetCPUUtilizationPercentage": 70});
        assert!(Autoscaling::validate_cel(&ok, None).is_ok());
        let bad = json!({"minReplicas": 4, "maxReplicas": 3, "targetCPUUtilizationPercentage": 70});
        assert!(Autoscaling::validate_cel(&bad, None).is_err());
        let no_target = json!({"minReplicas": 1, "maxReplicas": 3});
        assert!(Autoscaling::validate_cel(&no_target, None).is_err());
    }

    #[test]
    fn cel_exactly_one_dependency_mode() {
        let ext = json!({"external": {"endpoints": ["http://e:2379"]}});
        assert!(EtcdDependency::validate_cel(&ext, None).is_ok());
        let inc = json!({"inCluster": {}});
        assert!(EtcdDependency::validate_cel(&inc, None).is_ok());
        let both = json!({"external": {"endpoints": ["x"]}, "inCluster": {}});
        assert!(EtcdDependency::validate_cel(&both, None).is_err());
        let none = json!({});
        assert!(StorageDependency::validate_cel(&none, None).is_err());
        let even = json!({"replicas": 2});
        assert!(InClusterEtcd::validate_cel(&even, None).is_err());
    }

    #[test]
    fn spec_roundtrips_camel_case() {
        let yaml = r#"
image: ferrovus/ferrovus:1.2.3
deletionPolicy: Delete
components:
  query:
    replicas: 2
    autoscaling: {minReplicas: 2, maxReplicas: 5, targetCPUUtilizationPercentage: 60}
  proxy:
    replicas: 3
    service: {type: LoadBalancer, port: 443}
"#;
        let spec: MilvusClusterSpec = serde_yaml_ng::from_str(yaml).unwrap();
        assert_eq!(spec.deletion_policy(), DeletionPolicy::Delete);
        assert_eq!(spec.component(Role::Query).replicas, Some(2));
        assert_eq!(spec.component(Role::Proxy).replicas, Some(3));
        assert_eq!(spec.autoscaling(Role::Query).unwrap().max_replicas, 5);
        assert_eq!(spec.proxy_service().type_, Some(ServiceType::LoadBalancer));
        assert_eq!(image_tag(spec.engine_image()), "1.2.3");
        assert!(spec.etcd().in_cluster.is_some());
    }

    #[test]
    fn image_tags() {
        assert_eq!(image_tag("a/b:1"), "1");
        assert_eq!(image_tag("localhost:5000/b"), "latest");
        assert_eq!(image_tag("localhost:5000/b:2"), "2");
        assert_eq!(image_tag("b@sha256:ab"), "sha256:ab");
    }

    #[test]
    fn config_preserves_unknown_fields_and_crd_is_small() {
        let s = schema_of_spec();
        let config = &s["properties"]["spec"]["properties"]["config"];
        assert_eq!(config["x-kubernetes-preserve-unknown-fields"], json!(true));
        assert_eq!(config["type"], json!("object"));
        // client-side `kubectl apply` stores the object as compact JSON in an
        // annotation limited to 256 KiB
        let size = serde_json::to_string(&crd()).unwrap().len();
        assert!(size < 200 * 1024, "CRD is {size} bytes of JSON");
    }

    /// The chart's copy and the CRD inside manifests/install.yaml match the types.
    #[test]
    fn chart_and_install_manifest_carry_the_current_crd() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        let chart_path =
            format!("{root}/charts/ferrovus-operator/crds/milvusclusters.ferrovus.io.yaml");
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&chart_path, crd_yaml()).unwrap();
        }
        let chart_copy = std::fs::read_to_string(&chart_path).unwrap();
        assert!(
            chart_copy == crd_yaml(),
            "charts/ferrovus-operator/crds is stale: run operator/scripts/gen-manifests.sh"
        );
        let install = std::fs::read_to_string(format!("{root}/manifests/install.yaml")).unwrap();
        let mut kinds = vec![];
        let mut found = false;
        for doc in serde_yaml_ng::Deserializer::from_str(&install) {
            let v = serde_json::Value::deserialize(doc).unwrap();
            if v.is_null() {
                continue;
            }
            let kind = v["kind"]
                .as_str()
                .expect("every document has a kind")
                .to_string();
            assert!(v["metadata"]["name"].is_string(), "{kind} without a name");
            if kind == "CustomResourceDefinition" {
                found = true;
                assert!(
                    v == serde_json::to_value(crd()).unwrap(),
                    "manifests/install.yaml has a stale CRD: run operator/scripts/gen-manifests.sh"
                );
            }
            kinds.push(kind);
        }
        assert!(found, "no CRD in manifests/install.yaml");
        for k in [
            "Namespace",
            "ServiceAccount",
            "ClusterRole",
            "Deployment",
            "Service",
        ] {
            assert!(kinds.iter().any(|x| x == k), "install.yaml lacks a {k}");
        }
    }
}
