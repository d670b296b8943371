//! Helpers of the end-to-end tests (`e2e/tests/`), which run against the
//! cluster of `KUBECONFIG` (kind, k3d, or a kwok control plane).
//!
//! Each test gets its own namespace `ferrovus-e2e-<test>-<suffix>`. By default
//! the operator's controller runs inside the test process, scoped to that
//! namespace (so no operator image is needed); with
//! `FERROVUS_E2E_EXTERNAL_OPERATOR=1` the tests rely on an operator already
//! installed in the cluster (Helm chart or `manifests/install.yaml`).
//!
//! Environment:
//! - `KUBECONFIG`: the cluster; without it every test returns early (they are
//!   `#[ignore]`d, so a plain `cargo test` reports them as ignored);
//! - `FERROVUS_E2E_TIMEOUT_SECS` (default 600): how long to wait for a condition;
//! - `FERROVUS_E2E_PROVISION_PVS=1`: bind every pending PVC of the test
//!   namespace to a hostPath PersistentVolume created by the test (for control
//!   planes without a storage provisioner, such as kwok);
//! - `FERROVUS_E2E_IMAGE` / `FERROVUS_E2E_UPGRADE_IMAGE`: engine images of the
//!   examples and of the upgrade test (default `ferrovus/ferrovus:0.1.0` and
//!   `ferrovus/ferrovus:dev`, both tagged by `scripts/build-images.sh`);
//! - `FERROVUS_E2E_KEEP=1`: keep namespaces after the tests.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use ferrovus_operator::controller::{self, Context};
use ferrovus_operator::crd::{MilvusCluster, Phase};
use ferrovus_operator::telemetry::Metrics;
use k8s_openapi::api::core::v1::{
    HostPathVolumeSource, Namespace, ObjectReference, PersistentVolume, PersistentVolumeClaim,
    PersistentVolumeSpec, Pod,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::ApiResource;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub mod full;

/// Field manager of objects the tests apply.
pub const E2E_MANAGER: &str = "ferrovus-e2e";

/// How long to wait for a condition.
pub fn timeout() -> Duration {
    let secs = std::env::var("FERROVUS_E2E_TIMEOUT_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    Duration::from_secs(secs)
}

/// Engine image of the examples.
pub fn image() -> String {
    std::env::var("FERROVUS_E2E_IMAGE").unwrap_or_else(|_| "ferrovus/ferrovus:0.1.0".into())
}

/// Engine image the upgrade test moves to.
pub fn upgrade_image() -> String {
    std::env::var("FERROVUS_E2E_UPGRADE_IMAGE").unwrap_or_else(|_| "ferrovus/ferrovus:dev".into())
}

pub(crate) fn flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v == "1" || v == "true")
}

/// A test's cluster connection, namespace and (in-process) operator.
pub struct Env {
    /// Client of the cluster.
    pub client: Client,
    /// The test's namespace.
    pub ns: String,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Env {
    /// Connects to the cluster of `KUBECONFIG`, installs the CRD, creates the
    /// namespace and starts the operator. `None` (with a message) without `KUBECONFIG`.
    pub async fn setup(test: &str) -> anyhow::Result<Option<Env>> {
        if std::env::var_os("KUBECONFIG").is_none() {
            eprintln!(
                "skipped {test}: KUBECONFIG is not set (see docs/operator.md, 'End-to-end tests')"
            );
            return Ok(None);
        }
        let client = Client::try_default()
            .await
            .context("client from KUBECONFIG")?;
        install_crd(&client).await?;
        let suffix = format!(
            "{:x}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis()
                % 0xfffff
        );
        let ns = format!("ferrovus-e2e-{test}-{suffix}")
            .replace('_', "-")
            .chars()
            .take(63)
            .collect::<String>()
            .trim_end_matches('-')
            .to_string();
        let namespaces: Api<Namespace> = Api::all(client.clone());
        namespaces
            .create(
                &PostParams::default(),
                &Namespace {
                    metadata: ObjectMeta {
                        name: Some(ns.clone()),
                        labels: Some(BTreeMap::from([(
                            "app.kubernetes.io/part-of".into(),
                            "ferrovus-e2e".into(),
                        )])),
                        ..Default::default()
                    },
                    ..Default::default()
                },
            )
            .await
            .with_context(|| format!("creating namespace {ns}"))?;
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = vec![];
        if !flag("FERROVUS_E2E_EXTERNAL_OPERATOR") {
            let ctx = Context::new(client.clone(), std::sync::Arc::new(Metrics::default()));
            let mut rx = stop_rx.clone();
            tasks.push(tokio::spawn(controller::run(
                client.clone(),
                Some(ns.clone()),
                ctx,
                async move {
                    let _ = rx.wait_for(|s| *s).await;
                },
            )));
        }
        if flag("FERROVUS_E2E_PROVISION_PVS") {
            tasks.push(tokio::spawn(provision_pvs(
                client.clone(),
                ns.clone(),
                stop_rx,
            )));
        }
        eprintln!("{test}: namespace {ns}");
        Ok(Some(Env {
            client,
            ns,
            stop,
            tasks,
        }))
    }

    /// Stops the operator and deletes the namespace (unless `FERROVUS_E2E_KEEP=1`).
    pub async fn teardown(self) {
        if !flag("FERROVUS_E2E_KEEP") {
            let clusters: Api<MilvusCluster> = Api::namespaced(self.client.clone(), &self.ns);
            if let Ok(list) = clusters.list(&ListParams::default()).await {
                for mc in list.items {
                    let _ = clusters
                        .delete(&mc.name_any(), &DeleteParams::default())
                        .await;
                }
            }
            // let the operator run its finalizers before it stops
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                match clusters.list(&ListParams::default()).await {
                    Ok(l) if l.items.is_empty() => break,
                    Err(_) => break,
                    _ => tokio::time::sleep(Duration::from_secs(1)).await,
                }
            }
        }
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
        if !flag("FERROVUS_E2E_KEEP") {
            let pvs: Api<PersistentVolume> = Api::all(self.client.clone());
            let _ = pvs
                .delete_collection(
                    &DeleteParams::default(),
                    &ListParams::default().labels(&format!("ferrovus-e2e/namespace={}", self.ns)),
                )
                .await;
            let namespaces: Api<Namespace> = Api::all(self.client.clone());
            let _ = namespaces.delete(&self.ns, &DeleteParams::default()).await;
        }
    }

    /// MilvusClusters of the namespace.
    pub fn clusters(&self) -> Api<MilvusCluster> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// Applies the objects of `manifests/examples/<example>.yaml` (Secrets
    /// included) after `edit` changed the MilvusCluster; returns its name.
    pub async fn apply_example(
        &self,
        example: &str,
        edit: impl FnOnce(&mut Value),
    ) -> anyhow::Result<String> {
        let path = format!(
            "{}/../manifests/examples/{example}.yaml",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).with_context(|| path.clone())?;
        let mut name = None;
        let mut edit = Some(edit);
        for doc in text.split("\n---\n") {
            let mut v: Value = serde_yaml_ng::from_str(doc)?;
            if v.is_null() {
                continue;
            }
            v["metadata"]["namespace"] = json!(self.ns);
            if v["kind"] == "MilvusCluster" {
                v["spec"]["image"] = json!(image());
                // dependency images of FERROVUS_E2E_ETCD_IMAGE / _OBJECT_STORE_IMAGE, if set
                full::full_images(&mut v);
                if let Some(f) = edit.take() {
                    f(&mut v);
                }
                name = v["metadata"]["name"].as_str().map(String::from);
            }
            self.apply(&v).await?;
        }
        name.context("no MilvusCluster in the example")
    }

    /// Server-side applies any namespaced object.
    pub async fn apply(&self, v: &Value) -> anyhow::Result<()> {
        let (group, version) = match v["apiVersion"].as_str().unwrap_or_default().split_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (
                String::new(),
                v["apiVersion"].as_str().unwrap_or_default().to_string(),
            ),
        };
        let kind = v["kind"].as_str().unwrap_or_default();
        let gvk = GroupVersionKind::gvk(&group, &version, kind);
        let (ar, _) = kube::discovery::pinned_kind(&self.client, &gvk).await?;
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), &self.ns, &ar);
        let name = v["metadata"]["name"].as_str().unwrap_or_default();
        api.patch(
            name,
            &PatchParams::apply(E2E_MANAGER).force(),
            &Patch::Apply(v),
        )
        .await
        .with_context(|| format!("applying {kind} {name}"))?;
        Ok(())
    }

    /// Merge-patches the spec of a MilvusCluster.
    pub async fn patch_spec(&self, name: &str, spec: Value) -> anyhow::Result<MilvusCluster> {
        Ok(self
            .clusters()
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "spec": spec })),
            )
            .await?)
    }

    /// Polls the MilvusCluster until `done` holds; returns it and the distinct
    /// `Progressing` reasons seen on the way, in order.
    pub async fn wait_for(
        &self,
        name: &str,
        what: &str,
        done: impl Fn(&MilvusCluster) -> bool,
    ) -> anyhow::Result<(MilvusCluster, Vec<String>)> {
        let deadline = Instant::now() + timeout();
        let mut reasons: Vec<String> = vec![];
        loop {
            let mc = self.clusters().get(name).await?;
            if let Some(c) = condition(&mc, "Progressing")
                && c.status == "True"
                && reasons.last() != Some(&c.reason)
            {
                reasons.push(c.reason.clone());
            }
            if done(&mc) {
                return Ok((mc, reasons));
            }
            if Instant::now() > deadline {
                bail!(
                    "timed out waiting for {what} of {}/{name}; status: {}",
                    self.ns,
                    serde_json::to_string_pretty(&mc.status).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Waits until the cluster is Ready for its current generation.
    pub async fn wait_ready(&self, name: &str) -> anyhow::Result<(MilvusCluster, Vec<String>)> {
        self.wait_for(name, "Ready", is_ready).await
    }

    /// Pods of one component.
    pub async fn pods(&self, cluster: &str, component: &str) -> anyhow::Result<Vec<Pod>> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.ns);
        Ok(pods
            .list(&ListParams::default().labels(&format!(
                "app.kubernetes.io/instance={cluster},app.kubernetes.io/component={component}"
            )))
            .await?
            .items)
    }

    /// PVCs of a cluster (not being deleted).
    pub async fn pvcs(&self, cluster: &str) -> anyhow::Result<Vec<String>> {
        let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), &self.ns);
        Ok(pvcs
            .list(&ListParams::default().labels(&format!("app.kubernetes.io/instance={cluster}")))
            .await?
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .map(|p| p.name_any())
            .collect())
    }

    /// Waits until `f` returns true (polling every second).
    pub async fn eventually<F, Fut>(&self, what: &str, f: F) -> anyhow::Result<()>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<bool>>,
    {
        let deadline = Instant::now() + timeout();
        loop {
            if f().await? {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("timed out waiting for {what} in {}", self.ns);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// Ready, with exactly `n` query nodes desired and ready.
pub fn query_ready(mc: &MilvusCluster, n: i32) -> bool {
    is_ready(mc)
        && mc
            .status
            .as_ref()
            .and_then(|s| s.components.as_ref())
            .and_then(|c| c.query.as_ref())
            .is_some_and(|q| q.ready_replicas == n && q.desired_replicas == n)
}

/// A condition of the status.
pub fn condition(mc: &MilvusCluster, type_: &str) -> Option<Condition> {
    mc.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .cloned()
}

/// Ready for the current generation.
pub fn is_ready(mc: &MilvusCluster) -> bool {
    let Some(st) = &mc.status else { return false };
    st.observed_generation == mc.metadata.generation
        && st.phase == Some(Phase::Ready)
        && condition(mc, "Ready").is_some_and(|c| c.status == "True")
}

/// Checks that `seen` (Progressing reasons) never goes back in the rollout order.
pub fn assert_ordered(seen: &[String]) {
    const ORDER: [&str; 6] = [
        "WaitingForDependencies",
        "WaitingForCoordinator",
        "WaitingForStreaming",
        "WaitingForQuery",
        "WaitingForData",
        "WaitingForProxy",
    ];
    let mut last = 0;
    for r in seen {
        if let Some(i) = ORDER.iter().position(|o| o == r) {
            assert!(i >= last, "rollout went back: {seen:?}");
            last = i;
        }
    }
}

/// Installs (server-side applies) the CRD and waits until it is Established.
pub async fn install_crd(client: &Client) -> anyhow::Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = ferrovus_operator::crd::crd();
    let name = crd.metadata.name.clone().unwrap_or_default();
    crds.patch(
        &name,
        &PatchParams::apply(E2E_MANAGER).force(),
        &Patch::Apply(&crd),
    )
    .await
    .context("applying the CRD")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let c = crds.get(&name).await?;
        let established = c
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
            });
        if established {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("CRD {name} not Established after 60s");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A tiny provisioner: binds every pending PVC of `ns` to a new hostPath PV.
async fn provision_pvs(client: Client, ns: String, mut stop: watch::Receiver<bool>) {
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    loop {
        if let Ok(list) = pvcs.list(&ListParams::default()).await {
            for pvc in list.items {
                let bound = pvc
                    .spec
                    .as_ref()
                    .and_then(|s| s.volume_name.clone())
                    .is_some();
                if bound || pvc.metadata.deletion_timestamp.is_some() {
                    continue;
                }
                let spec = pvc.spec.clone().unwrap_or_default();
                let size = spec
                    .resources
                    .as_ref()
                    .and_then(|r| r.requests.as_ref())
                    .and_then(|r| r.get("storage").cloned())
                    .unwrap_or(k8s_openapi::apimachinery::pkg::api::resource::Quantity(
                        "1Gi".into(),
                    ));
                let pv_name = format!("{ns}-{}", pvc.name_any())
                    .chars()
                    .take(253)
                    .collect::<String>();
                let pv = PersistentVolume {
                    metadata: ObjectMeta {
                        name: Some(pv_name.clone()),
                        labels: Some(BTreeMap::from([(
                            "ferrovus-e2e/namespace".into(),
                            ns.clone(),
                        )])),
                        ..Default::default()
                    },
                    spec: Some(PersistentVolumeSpec {
                        capacity: Some(BTreeMap::from([("storage".into(), size)])),
                        access_modes: spec.access_modes.clone(),
                        storage_class_name: spec.storage_class_name.clone(),
                        persistent_volume_reclaim_policy: Some("Delete".into()),
                        host_path: Some(HostPathVolumeSource {
                            path: format!("/tmp/ferrovus-e2e/{pv_name}"),
                            type_: Some("DirectoryOrCreate".into()),
                        }),
                        claim_ref: Some(ObjectReference {
                            namespace: Some(ns.clone()),
                            name: Some(pvc.name_any()),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                };
                let _ = pvs.create(&PostParams::default(), &pv).await;
            }
        }
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

/// The API resource of a kind, for dynamic lookups.
pub fn api_resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}
