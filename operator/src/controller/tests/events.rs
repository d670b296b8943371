//! Kubernetes Events: one per state change, none while nothing changes.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use serde_json::json;

use super::{Harness, NS};
use crate::builders::Stage;
use crate::controller::{
    Conditions, Notice, Phase, REPORTER, Reason, error_policy, reconcile, status_notices,
};
use crate::crd::{MilvusClusterStatus, Role};
use crate::fake::path;

fn status(phase: Phase, conditions: Conditions) -> MilvusClusterStatus {
    let now = Time(Timestamp::now());
    MilvusClusterStatus {
        phase: Some(phase),
        conditions: conditions.to_k8s(&[] as &[Condition], 1, &now),
        endpoint: Some("demo-proxy.ns.svc:19530".into()),
        ..Default::default()
    }
}

fn summary(notices: &[Notice]) -> Vec<(bool, &str)> {
    notices
        .iter()
        .map(|n| (n.warning, n.reason.as_str()))
        .collect()
}

#[test]
fn status_changes_map_to_events() {
    let waiting = status(
        Phase::Deploying,
        Conditions::waiting(Stage::Component(Role::Query), "demo-query: 0/1 ready"),
    );
    let mut ready = status(Phase::Ready, Conditions::ready());
    ready.version = Some("0.1.0".into());

    // first status: the phase
    let n = status_notices(None, &waiting);
    assert_eq!(summary(&n), [(false, "Deploying")]);
    assert!(
        n[0].note
            .starts_with("None → Deploying: waiting for query nodes"),
        "{}",
        n[0].note
    );
    // nothing changed: nothing to say, even if a message changed
    let other_wait = status(
        Phase::Deploying,
        Conditions::waiting(Stage::Component(Role::Data), "demo-data: 0/1 ready"),
    );
    assert!(status_notices(Some(&waiting), &other_wait).is_empty());
    // Deploying → Ready names version and endpoint
    let n = status_notices(Some(&waiting), &ready);
    assert_eq!(summary(&n), [(false, "Ready")]);
    assert_eq!(
        n[0].note,
        "Deploying → Ready: all components are ready, version 0.1.0, endpoint demo-proxy.ns.svc:19530"
    );
    // an upgrade finishing names both versions
    let mut upgraded = ready.clone();
    upgraded.version = Some("0.2.0".into());
    let mut upgrading = status(
        Phase::Upgrading,
        Conditions::waiting(Stage::Component(Role::Proxy), "x"),
    );
    upgrading.version = Some("0.1.0".into());
    upgrading.rollout = Some("proxy: Updating 0/1 (f:2); done: coordinator".into());
    let n = status_notices(Some(&ready), &upgrading);
    assert_eq!(
        n[0].note,
        "Ready → Upgrading: proxy: Updating 0/1 (f:2); done: coordinator"
    );
    let n = status_notices(Some(&upgrading), &upgraded);
    assert!(n[0].note.contains("version 0.1.0 → 0.2.0"), "{}", n[0].note);

    // Degraded: one Warning whose reason is the cause and whose note is the message
    let degraded = status(
        Phase::Degraded,
        Conditions::blocked(
            Reason::MissingSecret,
            "Secret ns/s3 (spec.dependencies.storage.external.secretRef) not found",
        ),
    );
    let n = status_notices(Some(&ready), &degraded);
    assert_eq!(summary(&n), [(true, "MissingSecret")]);
    assert!(
        n[0].note
            .contains("spec.dependencies.storage.external.secretRef")
    );
    assert!(status_notices(Some(&degraded), &degraded.clone()).is_empty());
    // another cause or message: a new Warning
    let other = status(
        Phase::Degraded,
        Conditions::blocked(Reason::MissingSecret, "Secret ns/s3 has no key"),
    );
    assert_eq!(
        summary(&status_notices(Some(&degraded), &other)),
        [(true, "MissingSecret")]
    );
    // recovery
    let n = status_notices(Some(&degraded), &waiting);
    assert_eq!(summary(&n), [(false, "Recovered"), (false, "Deploying")]);
    assert!(
        n[0].note
            .starts_with("MissingSecret resolved; waiting for query nodes"),
        "{}",
        n[0].note
    );
    // a pod-level problem while the rollout waits
    let problem = status(
        Phase::Degraded,
        Conditions::waiting(Stage::Component(Role::Query), "x").with_problem(
            Reason::ImagePullFailed,
            "spec.image \"f:9\" cannot be pulled",
        ),
    );
    assert_eq!(
        summary(&status_notices(Some(&waiting), &problem)),
        [(true, "ImagePullFailed")]
    );
}

#[tokio::test]
async fn bring_up_and_upgrade_emit_one_event_per_change() {
    let h = Harness::new("minimal", |_| {});
    h.reconcile().await;
    assert_eq!(
        h.event_reasons(),
        [
            "CredentialsGenerated",
            "ClusterSecretGenerated",
            "ConfigurationApplied",
            "RolloutStarted",
            "Pending"
        ]
    );
    let events = h.events();
    assert!(
        events[3].2.contains("StatefulSet demo-etcd"),
        "{:?}",
        events[3]
    );
    // The pods' shared secret: generated once, random, owned by the cluster (deleted with it).
    let secret = h
        .fake
        .get(&path("v1", "secrets", NS, "demo-cluster-secret"))
        .expect("the cluster secret is generated");
    assert_eq!(
        secret["metadata"]["ownerReferences"][0]["kind"],
        json!("MilvusCluster")
    );
    let value = secret["data"]["secret"].as_str().unwrap().to_string();
    assert!(value.len() >= 48, "{value}");
    // the Event is about the MilvusCluster, reported by ferrovus-operator
    let post = h
        .fake
        .writes()
        .into_iter()
        .find(|r| r.path.contains("/events"))
        .unwrap();
    let body = post.body.unwrap();
    assert_eq!(
        post.path,
        format!("/apis/events.k8s.io/v1/namespaces/{NS}/events")
    );
    assert_eq!(body["reportingController"], json!(REPORTER));
    assert_eq!(body["regarding"]["kind"], json!("MilvusCluster"));
    assert_eq!(body["regarding"]["name"], json!("demo"));

    // waiting without change: no event
    h.reconcile().await;
    assert!(h.events().is_empty());
    let again = h
        .fake
        .get(&path("v1", "secrets", NS, "demo-cluster-secret"))
        .unwrap();
    assert_eq!(
        again["data"]["secret"].as_str(),
        Some(value.as_str()),
        "never regenerated"
    );

    let mut all = vec![];
    h.fake.make_workloads_ready();
    for _ in 0..8 {
        h.reconcile().await;
        all.extend(h.events());
        if h.status().phase == Some(Phase::Ready) {
            break;
        }
        h.fake.make_workloads_ready();
    }
    let rollouts: Vec<&str> = all
        .iter()
        .filter(|e| e.1 == "RolloutStarted")
        .map(|e| e.2.as_str())
        .collect();
    assert_eq!(rollouts.len(), 5, "{all:?}");
    assert!(
        rollouts[0]
            .starts_with("rolling out coordinator: image ferrovus/ferrovus:0.1.0, 1 replicas"),
        "{}",
        rollouts[0]
    );
    assert!(
        rollouts[4].starts_with("rolling out proxy:"),
        "{}",
        rollouts[4]
    );
    let phases: Vec<&str> = all
        .iter()
        .filter(|e| {
            matches!(
                e.1.as_str(),
                "Pending" | "Deploying" | "Ready" | "Upgrading"
            )
        })
        .map(|e| e.1.as_str())
        .collect();
    assert_eq!(phases, ["Deploying", "Ready"]);
    // settled: no event, no write
    h.reconcile().await;
    assert!(h.fake.writes().is_empty());

    h.edit_spec(|s| s["image"] = json!("ferrovus/ferrovus:0.2.0"));
    h.reconcile().await;
    assert_eq!(h.event_reasons(), ["RolloutStarted", "Upgrading"]);
    assert!(
        h.events()[1]
            .2
            .starts_with("Ready → Upgrading: coordinator: Updating 0/1"),
        "{:?}",
        h.events()
    );
    let mut last = vec![];
    for _ in 0..8 {
        h.fake.make_workloads_ready();
        h.reconcile().await;
        last = h.events();
        if h.status().phase == Some(Phase::Ready) {
            break;
        }
    }
    assert!(
        last.iter()
            .any(|e| e.1 == "Ready" && e.2.contains("version 0.1.0 → 0.2.0")),
        "{last:?}"
    );
}

#[tokio::test]
async fn degraded_causes_and_recovery_are_events() {
    let h = Harness::new("production", |_| {});
    h.reconcile().await;
    let events = h.events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].0, "Warning");
    assert_eq!(events[0].1, "MissingSecret");
    assert!(
        events[0]
            .2
            .contains("spec.dependencies.storage.external.secretRef"),
        "{}",
        events[0].2
    );
    h.reconcile().await;
    assert!(h.events().is_empty(), "same problem: no new event");

    h.fake.put(
        "secrets",
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "ferrovus-s3", "namespace": NS},
               "data": {"accessKeyId": "YQ=="}}),
    );
    h.reconcile().await;
    let events = h.events();
    assert_eq!(events.len(), 1);
    assert!(
        events[0].2.contains("secretRef.secretAccessKeyKey"),
        "{}",
        events[0].2
    );
    h.fake
        .update(&path("v1", "secrets", NS, "ferrovus-s3"), |s| {
            s["data"]["secretAccessKey"] = json!("Yg==")
        });
    // Then the Secrets of spec.security, each named by its field.
    h.reconcile().await;
    let events = h.events();
    assert!(
        events[0]
            .2
            .contains("prod-root (spec.security.authorization.rootPasswordSecret) not found"),
        "{events:?}"
    );
    h.fake.put(
        "secrets",
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "prod-root", "namespace": NS},
               "data": {"password": "cHc="}}),
    );
    h.reconcile().await;
    let events = h.events();
    assert!(
        events[0]
            .2
            .contains("prod-tls (spec.security.tls.secretName) not found"),
        "{events:?}"
    );
    h.fake.put(
        "secrets",
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "prod-tls", "namespace": NS},
               "type": "kubernetes.io/tls",
               "data": {"tls.crt": "Yw==", "tls.key": "aw=="}}),
    );
    h.reconcile().await;
    let reasons = h.event_reasons();
    assert!(reasons.contains(&"Recovered".to_string()), "{reasons:?}");
    assert!(
        reasons.contains(&"RolloutStarted".to_string()),
        "{reasons:?}"
    );
}

#[tokio::test]
async fn invalid_spec_and_rejected_apply_events_name_the_field() {
    let h = Harness::new("minimal", |mc| {
        mc["spec"]["components"] = json!({"proxy": {"autoscaling": {
            "minReplicas": 5, "maxReplicas": 2, "targetCPUUtilizationPercentage": 50}}})
    });
    h.reconcile().await;
    let e = h.events();
    assert_eq!(
        (e[0].0.as_str(), e[0].1.as_str()),
        ("Warning", "InvalidSpec")
    );
    assert!(
        e[0].2.contains("spec.components.proxy.autoscaling"),
        "{}",
        e[0].2
    );

    let h = Harness::new("minimal", |_| {});
    h.reconcile().await;
    h.fake.make_workloads_ready();
    h.reconcile().await;
    h.fake.fail_writes(
        "/statefulsets/demo-streaming",
        422,
        "spec.template.spec.affinity: Invalid value",
    );
    h.fake.make_workloads_ready();
    h.reconcile().await;
    let e = h.events();
    let rejected = e
        .iter()
        .find(|e| e.1 == "ApplyRejected")
        .expect("ApplyRejected event");
    assert_eq!(rejected.0, "Warning");
    assert!(
        rejected
            .2
            .contains("StatefulSet ferrovus-test/demo-streaming (stage streaming)"),
        "{}",
        rejected.2
    );
    assert!(
        rejected.2.contains("check spec.components.streaming"),
        "{}",
        rejected.2
    );
}

#[tokio::test]
async fn reconcile_errors_are_announced_once_per_distinct_error() {
    let h = Harness::new("minimal", |_| {});
    h.fake
        .fail_writes("/configmaps/", 500, "etcdserver: timeout");
    let mc = Arc::new(h.mc());
    h.fake.clear_log();
    let err = reconcile(mc.clone(), h.ctx.clone()).await.unwrap_err();
    error_policy(mc.clone(), &err, h.ctx.clone());
    let e = h.events();
    let errors: Vec<_> = e.iter().filter(|e| e.1 == "ReconcileError").collect();
    assert_eq!(errors.len(), 1, "{e:?}");
    assert_eq!(errors[0].0, "Warning");
    assert!(
        errors[0]
            .2
            .starts_with("applying ConfigMap ferrovus-test/demo-config (stage configuration)"),
        "{}",
        errors[0].2
    );
    // the same error again: logged and retried, no new event
    let mc = Arc::new(h.mc());
    h.fake.clear_log();
    let again = reconcile(mc, h.ctx.clone()).await.unwrap_err();
    assert_eq!(again.to_string(), err.to_string());
    assert!(
        h.events().iter().all(|e| e.1 != "ReconcileError"),
        "{:?}",
        h.events()
    );
}

#[tokio::test]
async fn event_failures_never_fail_the_reconcile() {
    let h = Harness::new("minimal", |_| {});
    h.fake
        .fail_writes("/events", 403, "events.events.k8s.io is forbidden");
    h.reconcile().await;
    assert_eq!(h.status().phase, Some(Phase::Pending));
}

#[tokio::test]
async fn pruning_and_cleanup_are_events() {
    let h = Harness::new("minimal", |mc| {
        mc["spec"]["components"] = json!({"proxy": {"autoscaling": {
            "minReplicas": 2, "maxReplicas": 4, "targetCPUUtilizationPercentage": 60}}})
    });
    h.reconcile().await;
    h.fake.make_workloads_ready();
    h.converge().await;
    h.edit_spec(|s| s["components"] = json!({"proxy": {"replicas": 2}}));
    h.reconcile().await;
    let pruned: Vec<_> = h.events().into_iter().filter(|e| e.1 == "Pruned").collect();
    assert_eq!(pruned.len(), 1);
    assert_eq!(
        pruned[0].2,
        "deleted HorizontalPodAutoscaler demo-proxy: no longer in the spec"
    );

    h.put_owned_pvc("data-demo-etcd-0");
    h.mark_deleted();
    h.reconcile().await;
    let e = h.events();
    assert_eq!(h.event_reasons(), ["Deleting", "CleanedUp"], "{e:?}");
    assert_eq!(
        e[1].2,
        "deletionPolicy: Delete: deleted PersistentVolumeClaim data-demo-etcd-0, Secret demo-object-store"
    );
}
