//! Reconcile tests against the in-memory API server of [`crate::fake`].

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use serde_json::{Value, json};

use super::*;
use crate::fake::{FakeApi, Recorded, mc_path, path};

mod deletion;
mod events;
mod problems;
mod rollout;

const NS: &str = "ferrovus-test";

fn example_json(name: &str) -> Value {
    let p = format!(
        "{}/../manifests/examples/{name}.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(p).unwrap();
    text.split("\n---\n")
        .map(|d| serde_yaml_ng::from_str::<Value>(d).unwrap())
        .find(|v| v["kind"] == json!("MilvusCluster"))
        .unwrap()
}

struct Harness {
    fake: FakeApi,
    ctx: Arc<Context>,
    name: String,
}

impl Harness {
    fn new(example: &str, edit: impl FnOnce(&mut Value)) -> Harness {
        let (client, fake) = FakeApi::start();
        let mut mc = example_json(example);
        mc["metadata"]["namespace"] = json!(NS);
        edit(&mut mc);
        let name = mc["metadata"]["name"].as_str().unwrap().to_string();
        fake.put("milvusclusters", mc);
        let ctx = Context::new(client, Arc::new(Metrics::default()));
        Harness { fake, ctx, name }
    }

    fn path(&self) -> String {
        mc_path(NS, &self.name)
    }

    fn mc(&self) -> MilvusCluster {
        self.fake.mc(NS, &self.name).expect("cluster exists")
    }

    fn status(&self) -> MilvusClusterStatus {
        self.mc().status.unwrap_or_default()
    }

    fn condition(&self, type_: &str) -> Condition {
        self.status()
            .conditions
            .into_iter()
            .find(|c| c.type_ == type_)
            .unwrap_or_else(|| panic!("no {type_} condition"))
    }

    async fn reconcile(&self) -> Action {
        self.fake.clear_log();
        reconcile(Arc::new(self.mc()), self.ctx.clone())
            .await
            .expect("reconcile succeeds")
    }

    /// A PVC with `labels` in the test namespace.
    fn put_pvc(&self, name: &str, labels: Value) {
        self.fake.put(
            "persistentvolumeclaims",
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                   "metadata": {"name": name, "namespace": NS, "labels": labels}}),
        );
    }

    /// A PVC the operator would own for this cluster (instance and managed-by labels).
    fn put_owned_pvc(&self, name: &str) {
        self.put_pvc(
            name,
            json!({"app.kubernetes.io/instance": "demo",
                   "app.kubernetes.io/managed-by": "ferrovus-operator"}),
        );
    }

    /// `kubectl delete`: the cluster gets a deletionTimestamp (its finalizers keep it).
    fn mark_deleted(&self) {
        self.fake.update(&self.path(), |o| {
            o["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z")
        });
    }

    fn edit_spec(&self, f: impl FnOnce(&mut Value)) {
        self.fake.update(&self.path(), |o| f(&mut o["spec"]));
    }

    /// Workload names (kind/name) applied in the last reconcile, in order.
    fn applied_workloads(&self) -> Vec<String> {
        self.fake
            .writes()
            .iter()
            .filter(|r| r.method == "PATCH")
            .filter_map(|r| {
                let kind = r.body.as_ref()?["kind"].as_str()?.to_string();
                let name = r.body.as_ref()?["metadata"]["name"].as_str()?.to_string();
                matches!(kind.as_str(), "StatefulSet" | "Deployment")
                    .then(|| format!("{kind}/{name}"))
            })
            .collect()
    }

    /// Events published in the last reconcile: (type, reason, note).
    fn events(&self) -> Vec<(String, String, String)> {
        self.fake
            .writes()
            .iter()
            .filter(|r| r.method == "POST" && r.path.contains("/events.k8s.io/v1/"))
            .filter_map(|r| {
                let b = r.body.as_ref()?;
                Some((
                    b["type"].as_str()?.to_string(),
                    b["reason"].as_str()?.to_string(),
                    b["note"].as_str().unwrap_or_default().to_string(),
                ))
            })
            .collect()
    }

    /// Reasons of the events published in the last reconcile.
    fn event_reasons(&self) -> Vec<String> {
        self.events().into_iter().map(|(_, r, _)| r).collect()
    }

    /// Writes of the last reconcile other than Events.
    fn object_writes(&self) -> Vec<Recorded> {
        self.fake
            .writes()
            .into_iter()
            .filter(|r| !r.path.contains("/events"))
            .collect()
    }

    fn applied(&self) -> Vec<String> {
        self.fake
            .writes()
            .iter()
            .filter(|r| r.method == "PATCH" && !r.path.ends_with("/status"))
            .filter_map(|r| {
                let b = r.body.as_ref()?;
                Some(format!(
                    "{}/{}",
                    b["kind"].as_str()?,
                    b["metadata"]["name"].as_str()?
                ))
            })
            .collect()
    }

    /// Reconciles (marking workloads ready in between) until Ready; returns
    /// the workloads applied by each reconcile.
    async fn converge(&self) -> Vec<Vec<String>> {
        let mut rounds = vec![];
        for _ in 0..12 {
            self.reconcile().await;
            rounds.push(self.applied_workloads());
            if self.status().phase == Some(Phase::Ready) {
                return rounds;
            }
            self.fake.make_workloads_ready();
        }
        panic!("did not converge: {:?}", self.status());
    }
}

fn sts(name: &str) -> String {
    path("apps/v1", "statefulsets", NS, name)
}
fn pod_path(name: &str) -> String {
    path("v1", "pods", NS, name)
}
fn deploy(name: &str) -> String {
    path("apps/v1", "deployments", NS, name)
}

fn status_writes(writes: &[Recorded]) -> usize {
    writes
        .iter()
        .filter(|r| r.path.ends_with("/status"))
        .count()
}

#[tokio::test]
async fn create_brings_up_in_order_then_is_idempotent() {
    let h = Harness::new("minimal", |_| {});

    // 1st pass: finalizer (deletionPolicy Delete), credentials, config, dependencies
    h.reconcile().await;
    assert!(h.mc().finalizers().contains(&FINALIZER.to_string()));
    assert!(
        h.fake
            .get(&path("v1", "secrets", NS, "demo-object-store"))
            .is_some()
    );
    assert!(
        h.fake
            .get(&path("v1", "configmaps", NS, "demo-config"))
            .is_some()
    );
    assert!(
        h.fake
            .get(&path("v1", "serviceaccounts", NS, "demo"))
            .is_some()
    );
    assert!(h.fake.get(&sts("demo-etcd")).is_some());
    assert!(h.fake.get(&sts("demo-object-store")).is_some());
    assert!(
        h.fake.get(&sts("demo-coordinator")).is_none(),
        "coordinator waits for dependencies"
    );
    let st = h.status();
    assert_eq!(st.phase, Some(Phase::Pending));
    assert_eq!(st.observed_generation, Some(1));
    let progressing = h.condition(PROGRESSING);
    assert_eq!(progressing.status, "True");
    assert_eq!(progressing.reason, "WaitingForDependencies");
    assert!(
        progressing.message.contains("demo-etcd"),
        "{}",
        progressing.message
    );
    assert_eq!(h.condition(READY).status, "False");

    // nothing changes while dependencies are not ready
    h.reconcile().await;
    assert!(h.fake.writes().is_empty(), "{:?}", h.fake.writes());

    // then one component per pass, in order
    h.fake.make_workloads_ready();
    let rounds = h.converge().await;
    let order: Vec<String> = rounds.into_iter().flatten().collect();
    assert_eq!(
        order,
        vec![
            "StatefulSet/demo-coordinator",
            "StatefulSet/demo-streaming",
            "Deployment/demo-query",
            "Deployment/demo-data",
            "Deployment/demo-proxy",
        ]
    );
    let st = h.status();
    assert_eq!(st.phase, Some(Phase::Ready));
    assert_eq!(st.version.as_deref(), Some("0.1.0"));
    assert_eq!(
        st.endpoint.as_deref(),
        Some("demo-proxy.ferrovus-test.svc:19530")
    );
    let c = st.components.unwrap();
    assert_eq!(c.query.as_ref().unwrap().ready_replicas, 1);
    assert_eq!(c.proxy.as_ref().unwrap().image, "ferrovus/ferrovus:0.1.0");
    assert!(st.dependencies.unwrap().etcd.unwrap().ready);
    assert_eq!(h.condition(READY).status, "True");
    assert_eq!(h.condition(PROGRESSING).status, "False");
    assert_eq!(h.condition(DEGRADED).status, "False");

    // an unchanged resource makes no write at all (GitOps re-apply)
    let action = h.reconcile().await;
    assert!(h.fake.writes().is_empty(), "{:?}", h.fake.writes());
    assert_eq!(action, Action::requeue(REQUEUE_SETTLED));
    h.reconcile().await;
    assert!(h.fake.writes().is_empty());
}

#[tokio::test]
async fn every_apply_is_forced_server_side_apply_by_one_manager() {
    let h = Harness::new("minimal", |_| {});
    h.reconcile().await;
    h.fake.make_workloads_ready();
    h.converge().await;
    let log = h.fake.log();
    assert!(log.iter().all(|r| r.method != "PUT"), "no replace");
    let applies: Vec<_> = h
        .fake
        .all_writes()
        .into_iter()
        .filter(|r| r.method == "PATCH" && r.content_type.contains("apply-patch"))
        .collect();
    assert!(applies.len() > 20);
    for a in applies {
        assert!(
            a.query.contains("fieldManager=ferrovus-operator"),
            "{}",
            a.query
        );
        assert!(a.query.contains("force=true"), "{}", a.query);
    }
}

#[tokio::test]
async fn image_upgrade_rolls_one_component_at_a_time() {
    let h = Harness::new("minimal", |_| {});
    h.reconcile().await;
    h.fake.make_workloads_ready();
    h.converge().await;

    h.edit_spec(|s| s["image"] = json!("ferrovus/ferrovus:0.2.0"));
    let mut order = vec![];
    for _ in 0..8 {
        h.reconcile().await;
        let applied = h.applied();
        assert!(
            applied
                .iter()
                .all(|a| !a.contains("etcd") && !a.contains("object-store")),
            "dependencies untouched: {applied:?}"
        );
        let workloads = h.applied_workloads();
        assert!(
            workloads.len() <= 1,
            "one component at a time: {workloads:?}"
        );
        order.extend(workloads);
        if h.status().phase == Some(Phase::Ready) {
            break;
        }
        assert_eq!(h.status().phase, Some(Phase::Upgrading));
        assert_eq!(
            h.status().version.as_deref(),
            Some("0.1.0"),
            "old version until done"
        );
        h.fake.make_workloads_ready();
    }
    assert_eq!(
        order,
        vec![
            "StatefulSet/demo-coordinator",
            "StatefulSet/demo-streaming",
            "Deployment/demo-query",
            "Deployment/demo-data",
            "Deployment/demo-proxy",
        ]
    );
    assert_eq!(h.status().version.as_deref(), Some("0.2.0"));
    assert_eq!(h.status().observed_generation, Some(2));
}

#[tokio::test]
async fn component_image_change_touches_only_that_component() {
    let h = Harness::new("minimal", |_| {});
    h.reconcile().await;
    h.fake.make_workloads_ready();
    h.converge().await;
    h.edit_spec(|s| s["components"] = json!({"data": {"image": "ferrovus/ferrovus:0.1.1"}}));
    h.reconcile().await;
    assert_eq!(h.applied(), vec!["Deployment/demo-data"]);
    h.fake.make_workloads_ready();
    h.reconcile().await;
    assert!(h.applied().is_empty());
    assert_eq!(h.status().phase, Some(Phase::Ready));
}

#[tokio::test]
async fn config_change_updates_configmap_and_rolls_engine_pods_in_order() {
    let h = Harness::new("minimal", |_| {});
    h.reconcile().await;
    h.fake.make_workloads_ready();
    h.converge().await;
    let hash_before = h.fake.get(&sts("demo-coordinator")).unwrap()["spec"]["template"]["metadata"]
        ["annotations"][crate::builders::CONFIG_HASH_ANNOTATION]
        .clone();

    h.edit_spec(|s| s["config"] = json!({"core": {"seal_rows": 1000}}));
    h.reconcile().await;
    assert_eq!(
        h.applied(),
        vec!["ConfigMap/demo-config", "StatefulSet/demo-coordinator"]
    );
    let cm = h
        .fake
        .get(&path("v1", "configmaps", NS, "demo-config"))
        .unwrap();
    assert!(
        cm["data"]["ferrovus.yaml"]
            .as_str()
            .unwrap()
            .contains("seal_rows: 1000")
    );
    let hash_after = h.fake.get(&sts("demo-coordinator")).unwrap()["spec"]["template"]["metadata"]
        ["annotations"][crate::builders::CONFIG_HASH_ANNOTATION]
        .clone();
    assert_ne!(hash_before, hash_after);
    h.fake.make_workloads_ready();
    let rounds = h.converge().await;
    let rest: Vec<String> = rounds.into_iter().flatten().collect();
    assert_eq!(
        rest,
        vec![
            "StatefulSet/demo-streaming",
            "Deployment/demo-query",
            "Deployment/demo-data",
            "Deployment/demo-proxy",
        ]
    );
    // etcd and the object store never restarted
    assert_eq!(
        h.fake.get(&sts("demo-etcd")).unwrap()["metadata"]["generation"],
        json!(1)
    );
}

#[tokio::test]
async fn scale_without_hpa_sets_replicas_and_corrects_drift() {
    let h = Harness::new("minimal", |_| {});
    h.reconcile().await;
    h.fake.make_workloads_ready();
    h.converge().await;

    h.edit_spec(|s| s["components"] = json!({"query": {"replicas": 3}}));
    h.reconcile().await;
    assert_eq!(h.applied(), vec!["Deployment/demo-query"]);
    let body = h.fake.writes()[0].body.clone().unwrap();
    assert_eq!(body["spec"]["replicas"], json!(3));
    h.fake.make_workloads_ready();
    h.converge().await;
    assert_eq!(
        h.status()
            .components
            .unwrap()
            .query
            .unwrap()
            .desired_replicas,
        3
    );

    // someone scales by hand: the operator restores the spec
    h.fake
        .update(&deploy("demo-query"), |o| o["spec"]["replicas"] = json!(7));
    h.reconcile().await;
    assert_eq!(h.applied(), vec!["Deployment/demo-query"]);
    assert_eq!(
        h.fake.get(&deploy("demo-query")).unwrap()["spec"]["replicas"],
        json!(3)
    );
}

#[tokio::test]
async fn scale_with_hpa_leaves_replicas_to_the_hpa() {
    let h = Harness::new("minimal", |_| {});
    h.reconcile().await;
    h.fake.make_workloads_ready();
    h.converge().await;

    h.edit_spec(|s| {
        s["components"] = json!({"query": {"replicas": 1, "autoscaling": {
            "minReplicas": 2, "maxReplicas": 6, "targetCPUUtilizationPercentage": 60}}})
    });
    h.reconcile().await;
    assert_eq!(
        h.applied(),
        vec![
            "Deployment/demo-query",
            "HorizontalPodAutoscaler/demo-query"
        ]
    );
    let body = h
        .fake
        .writes()
        .into_iter()
        .find(|r| r.path.contains("/deployments/"))
        .unwrap()
        .body
        .unwrap();
    assert!(
        body["spec"].get("replicas").is_none(),
        "replicas left out of the apply"
    );
    let hpa = h
        .fake
        .get(&path(
            "autoscaling/v2",
            "horizontalpodautoscalers",
            NS,
            "demo-query",
        ))
        .unwrap();
    assert_eq!(hpa["spec"]["maxReplicas"], json!(6));
    h.fake.make_workloads_ready();
    h.converge().await;

    // the HPA scales the Deployment: the operator does not fight it
    h.fake
        .update(&deploy("demo-query"), |o| o["spec"]["replicas"] = json!(5));
    h.fake.make_workloads_ready();
    h.reconcile().await;
    assert!(h.applied().is_empty(), "{:?}", h.applied());
    assert_eq!(
        h.status()
            .components
            .unwrap()
            .query
            .unwrap()
            .desired_replicas,
        5
    );
    h.reconcile().await;
    assert!(h.fake.writes().is_empty());
    assert_eq!(
        h.fake.get(&deploy("demo-query")).unwrap()["spec"]["replicas"],
        json!(5)
    );
}

#[tokio::test]
async fn paused_changes_nothing_but_status() {
    let h = Harness::new("minimal", |_| {});
    h.reconcile().await;
    h.fake.make_workloads_ready();
    h.converge().await;

    h.edit_spec(|s| {
        s["paused"] = json!(true);
        s["image"] = json!("ferrovus/ferrovus:0.3.0");
    });
    h.reconcile().await;
    let writes = h.object_writes();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(status_writes(&writes), 1);
    assert_eq!(h.event_reasons(), ["Paused"]);
    assert_eq!(h.status().phase, Some(Phase::Paused));
    let p = h.condition(PROGRESSING);
    assert_eq!((p.status.as_str(), p.reason.as_str()), ("False", "Paused"));
    h.reconcile().await;
    assert!(h.fake.writes().is_empty());

    h.edit_spec(|s| s["paused"] = json!(false));
    h.reconcile().await;
    assert_eq!(h.applied_workloads(), vec!["StatefulSet/demo-coordinator"]);
}

#[tokio::test]
async fn delete_with_delete_policy_removes_pvcs_then_finalizer() {
    let h = Harness::new("minimal", |_| {});
    h.reconcile().await;
    assert!(h.mc().finalizers().contains(&FINALIZER.to_string()));
    for name in [
        "data-demo-etcd-0",
        "data-demo-object-store-0",
        "data-demo-streaming-0",
    ] {
        h.put_owned_pvc(name);
    }
    h.put_pvc("unrelated", json!({"app": "x"}));
    // kubectl delete: the finalizer keeps the object with a deletionTimestamp
    h.mark_deleted();
    let action = h.reconcile().await;
    assert_eq!(action, Action::await_change());
    assert_eq!(
        h.fake.paths("/persistentvolumeclaims/"),
        vec![path("v1", "persistentvolumeclaims", NS, "unrelated")]
    );
    assert!(
        h.fake
            .get(&path("v1", "secrets", NS, "demo-object-store"))
            .is_none()
    );
    assert!(
        h.fake.mc(NS, "demo").is_none(),
        "finalizer removed, object gone"
    );
}

#[tokio::test]
async fn delete_with_retain_policy_keeps_pvcs_and_has_no_finalizer() {
    let h = Harness::new("minimal", |mc| {
        mc["spec"]["deletionPolicy"] = json!("Retain")
    });
    h.reconcile().await;
    assert!(h.mc().finalizers().is_empty());
    h.put_owned_pvc("data-demo-etcd-0");
    h.mark_deleted();
    let action = h.reconcile().await;
    assert_eq!(action, Action::await_change());
    assert!(h.fake.writes().is_empty());
    assert_eq!(h.fake.paths("/persistentvolumeclaims/").len(), 1);
    assert!(
        h.fake
            .get(&path("v1", "secrets", NS, "demo-object-store"))
            .is_some()
    );
}

#[tokio::test]
async fn switching_policy_to_retain_removes_the_finalizer() {
    let h = Harness::new("minimal", |_| {});
    h.reconcile().await;
    assert!(!h.mc().finalizers().is_empty());
    h.edit_spec(|s| s["deletionPolicy"] = json!("Retain"));
    h.reconcile().await;
    assert!(h.mc().finalizers().is_empty());
}

#[tokio::test]
async fn missing_secret_is_degraded_not_an_error() {
    let h = Harness::new("production", |_| {});
    let action = h.reconcile().await;
    assert_eq!(action, Action::requeue(REQUEUE_DEGRADED));
    let d = h.condition(DEGRADED);
    assert_eq!(
        (d.status.as_str(), d.reason.as_str()),
        ("True", "MissingSecret")
    );
    assert!(
        d.message.contains("ferrovus-test/ferrovus-s3"),
        "{}",
        d.message
    );
    assert_eq!(h.status().phase, Some(Phase::Degraded));
    assert!(
        h.applied().is_empty(),
        "nothing deployed: {:?}",
        h.applied()
    );
    // the same problem again: no new write
    h.reconcile().await;
    assert!(h.fake.writes().is_empty(), "{:?}", h.fake.writes());

    // the Secret appears, with a wrong key first
    h.fake.put(
        "secrets",
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "ferrovus-s3", "namespace": NS},
               "data": {"accessKeyId": "YQ=="}}),
    );
    h.reconcile().await;
    assert!(h.condition(DEGRADED).message.contains("secretAccessKey"));
    h.fake
        .update(&path("v1", "secrets", NS, "ferrovus-s3"), |s| {
            s["data"]["secretAccessKey"] = json!("Yg==")
        });
    // the example's spec.security Secrets (their checks: controller/tests/events.rs)
    for (name, data) in [
        ("prod-root", json!({"password": "cHc="})),
        ("prod-tls", json!({"tls.crt": "Yw==", "tls.key": "aw=="})),
    ] {
        h.fake.put(
            "secrets",
            json!({"apiVersion": "v1", "kind": "Secret",
                   "metadata": {"name": name, "namespace": NS}, "data": data}),
        );
    }
    h.reconcile().await;
    assert_eq!(h.condition(DEGRADED).status, "False");
    // external dependencies: straight to the coordinator
    assert_eq!(h.applied_workloads(), vec!["StatefulSet/prod-coordinator"]);
}

#[tokio::test]
async fn invalid_spec_that_cel_would_reject_is_degraded() {
    let h = Harness::new("minimal", |mc| {
        mc["spec"]["components"] = json!({"proxy": {"autoscaling": {
            "minReplicas": 5, "maxReplicas": 2, "targetCPUUtilizationPercentage": 50}}})
    });
    let action = h.reconcile().await;
    assert_eq!(action, Action::requeue(REQUEUE_DEGRADED));
    let d = h.condition(DEGRADED);
    assert_eq!(d.reason, "InvalidSpec");
    assert!(d.message.contains("minReplicas"), "{}", d.message);
    assert!(h.fake.get(&sts("demo-etcd")).is_none());
}

#[tokio::test]
async fn rejected_apply_is_degraded() {
    let h = Harness::new("minimal", |_| {});
    h.fake.fail_writes(
        "/statefulsets/demo-etcd",
        422,
        "spec.template: bad affinity",
    );
    let action = h.reconcile().await;
    assert_eq!(action, Action::requeue(REQUEUE_DEGRADED));
    let d = h.condition(DEGRADED);
    assert_eq!(d.reason, "ApplyRejected");
    assert!(d.message.contains("bad affinity"), "{}", d.message);
    assert!(
        d.message
            .starts_with("applying StatefulSet ferrovus-test/demo-etcd (stage dependencies): "),
        "the step and the object are named: {}",
        d.message
    );
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff() {
    let h = Harness::new("minimal", |_| {});
    h.fake
        .fail_writes("/configmaps/", 500, "etcdserver: timeout");
    let mc = Arc::new(h.mc());
    let err = reconcile(mc.clone(), h.ctx.clone()).await.unwrap_err();
    assert!(err.to_string().contains("timeout"), "{err}");
    assert!(
        err.to_string()
            .starts_with("applying ConfigMap ferrovus-test/demo-config (stage configuration): "),
        "{err}"
    );
    assert!(err.api_status().is_some_and(|s| s.code == 500));
    assert_eq!(
        error_policy(mc.clone(), &err, h.ctx.clone()),
        Action::requeue(backoff(1))
    );
    assert_eq!(
        error_policy(mc.clone(), &err, h.ctx.clone()),
        Action::requeue(backoff(2))
    );
    assert!(backoff(2) > backoff(1));
    assert_eq!(backoff(30), Duration::from_secs(300));
    assert_eq!(h.ctx.metrics.failures.get(), 1);
}

#[tokio::test]
async fn condition_times_move_only_on_status_change() {
    let h = Harness::new("minimal", |_| {});
    h.reconcile().await;
    let ready_t = h.condition(READY).last_transition_time;
    let prog_t = h.condition(PROGRESSING).last_transition_time;
    h.fake.make_workloads_ready();
    h.reconcile().await; // now waiting for the coordinator: message changes, status does not
    assert!(h.condition(PROGRESSING).message.contains("coordinator"));
    assert_eq!(h.condition(READY).last_transition_time, ready_t);
    assert_eq!(h.condition(PROGRESSING).last_transition_time, prog_t);
}

#[tokio::test]
async fn removing_autoscaling_deletes_the_hpa_and_restores_replicas() {
    let h = Harness::new("minimal", |mc| {
        mc["spec"]["components"] = json!({"proxy": {"autoscaling": {
            "minReplicas": 2, "maxReplicas": 4, "targetCPUUtilizationPercentage": 60}}})
    });
    h.reconcile().await;
    h.fake.make_workloads_ready();
    h.converge().await;
    let hpa = path(
        "autoscaling/v2",
        "horizontalpodautoscalers",
        NS,
        "demo-proxy",
    );
    assert!(h.fake.get(&hpa).is_some());
    h.edit_spec(|s| s["components"] = json!({"proxy": {"replicas": 2}}));
    h.reconcile().await;
    assert!(h.fake.get(&hpa).is_none(), "HPA pruned");
    assert_eq!(
        h.fake.get(&deploy("demo-proxy")).unwrap()["spec"]["replicas"],
        json!(2)
    );
}

#[tokio::test]
async fn switching_to_external_etcd_removes_the_in_cluster_one_after_the_rollout() {
    let h = Harness::new("minimal", |_| {});
    h.reconcile().await;
    h.fake.make_workloads_ready();
    h.converge().await;
    h.edit_spec(|s| {
        s["dependencies"] = json!({"etcd": {"external": {"endpoints": ["http://etcd.db:2379"]}}})
    });
    h.reconcile().await;
    assert!(
        h.fake.get(&sts("demo-etcd")).is_some(),
        "kept while engine pods roll"
    );
    h.fake.make_workloads_ready();
    h.converge().await;
    assert!(h.fake.get(&sts("demo-etcd")).is_none());
    assert!(
        h.fake
            .get(&path("v1", "services", NS, "demo-etcd"))
            .is_none()
    );
    assert!(h.fake.get(&sts("demo-object-store")).is_some());
    let env =
        h.fake.get(&sts("demo-coordinator")).unwrap()["spec"]["template"]["spec"]["containers"][0]
            ["env"]
            .clone();
    assert!(env.to_string().contains("http://etcd.db:2379"));
}

#[tokio::test]
async fn objects_of_other_owners_are_never_pruned() {
    let h = Harness::new("minimal", |_| {});
    h.fake.put(
        "horizontalpodautoscalers",
        json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
               "metadata": {"name": "demo-foreign", "namespace": NS,
                            "labels": {"app.kubernetes.io/instance": "demo",
                                       "app.kubernetes.io/managed-by": "ferrovus-operator"},
                            "ownerReferences": [{"apiVersion": "v1", "kind": "Foo", "name": "x",
                                                 "uid": "someone-else", "controller": true}]}}),
    );
    h.reconcile().await;
    h.fake.make_workloads_ready();
    h.converge().await;
    assert!(
        h.fake
            .get(&path(
                "autoscaling/v2",
                "horizontalpodautoscalers",
                NS,
                "demo-foreign"
            ))
            .is_some()
    );
}
