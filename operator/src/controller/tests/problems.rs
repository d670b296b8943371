//! Pod-level problems: detection (pure) and their Degraded condition and
//! Events during a rollout, with recovery once fixed.

use k8s_openapi::api::core::v1::{Event as CoreEvent, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::DynamicObject;
use serde_json::{Value, json};

use super::{Harness, NS, deploy, sts};
use crate::controller::problems::{
    Problem, deployment_replica_failure, failed_create, fields, pod_problem, pull_detail,
    statefulset_missing_pods, sticky_message, termination_summary,
};
use crate::controller::{
    Action, Conditions, DEGRADED, PROGRESSING, Phase, READY, REQUEUE_WAITING, Reason,
};
use crate::crd::MilvusClusterSpec;

const BAD: &str = "ferrovus/ferrovus:9.9.9";

fn pod_json(name: &str, component: &str, container_status: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": {
            "app.kubernetes.io/instance": "demo",
            "app.kubernetes.io/managed-by": "ferrovus-operator",
            "app.kubernetes.io/component": component}},
        "spec": {"containers": [{"name": "ferrovus", "image": BAD}]},
        "status": {"phase": "Pending", "containerStatuses": [container_status]},
    })
}

fn pod(container_status: Value) -> Pod {
    serde_json::from_value(pod_json("demo-query-abc", "query", container_status)).unwrap()
}

fn pull_failing(reason: &str, message: &str) -> Value {
    json!({"name": "ferrovus", "image": BAD, "imageID": "", "ready": false, "restartCount": 0,
           "state": {"waiting": {"reason": reason, "message": message}}})
}

const CONFIG_ERROR: &str = "Error: loading configuration\n\nCaused by:\n    0: config error: query.cache_mb: invalid type: string \"lots\", expected u64\n";

fn crash_looping() -> Value {
    json!({"name": "ferrovus", "image": "f:1", "imageID": "", "ready": false, "restartCount": 4,
           "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container"}},
           "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "message": CONFIG_ERROR,
                                        "finishedAt": "2026-01-01T00:00:00Z"}}})
}

fn now() -> Timestamp {
    "2026-01-01T00:01:00Z".parse().unwrap()
}

#[test]
fn fields_name_the_spec_field_of_each_component() {
    let spec: MilvusClusterSpec = serde_json::from_value(json!({
        "components": {"data": {"image": "f:2"},
                       "proxy": {"autoscaling": {"minReplicas": 1, "maxReplicas": 2,
                                                 "targetCPUUtilizationPercentage": 50}}}
    }))
    .unwrap();
    assert_eq!(fields(&spec, "query").image, "spec.image");
    assert_eq!(
        fields(&spec, "query").replicas,
        "spec.components.query.replicas"
    );
    assert_eq!(fields(&spec, "data").image, "spec.components.data.image");
    assert_eq!(
        fields(&spec, "proxy").replicas,
        "spec.components.proxy.autoscaling"
    );
    assert_eq!(
        fields(&spec, "etcd").image,
        "spec.dependencies.etcd.inCluster.image"
    );
    assert_eq!(
        fields(&spec, "object-store").image,
        "spec.dependencies.storage.inCluster.image"
    );
}

#[test]
fn image_pull_failures_name_the_field_image_and_kubelet_message() {
    let f = fields(&MilvusClusterSpec::default(), "query");
    let p = pod_problem(
        &[pod(pull_failing(
            "ErrImagePull",
            "rpc error: code = NotFound desc = manifest unknown",
        ))],
        &f,
        now(),
    )
    .unwrap();
    assert_eq!(p.reason, Reason::ImagePullFailed);
    assert_eq!(
        p.message(),
        format!(
            "spec.image \"{BAD}\" cannot be pulled (pod demo-query-abc): rpc error: code = NotFound desc = manifest unknown — check spec.image, spec.imagePullSecrets and the registry"
        )
    );
    // the back-off state says the same (newer kubelets repeat the error)
    let backoff = pod_problem(
        &[pod(pull_failing(
            "ImagePullBackOff",
            &format!("Back-off pulling image \"{BAD}\": ErrImagePull: rpc error: code = NotFound desc = manifest unknown"),
        ))],
        &f,
        now(),
    )
    .unwrap();
    assert_eq!(backoff, p);
    // older kubelets only say "Back-off": no detail
    assert_eq!(
        pull_detail(&format!("Back-off pulling image \"{BAD}\""), BAD),
        None
    );
    let invalid = pod_problem(
        &[pod(pull_failing(
            "InvalidImageName",
            "couldn't parse image name \"Bad:Name\"",
        ))],
        &f,
        now(),
    )
    .unwrap();
    assert_eq!(invalid.reason, Reason::ImagePullFailed);
    // pending for another reason: no problem
    assert_eq!(
        pod_problem(&[pod(pull_failing("ContainerCreating", ""))], &f, now()),
        None
    );
}

#[test]
fn crash_loops_quote_the_termination_message() {
    let f = fields(&MilvusClusterSpec::default(), "query");
    let p = pod_problem(&[pod(crash_looping())], &f, now()).unwrap();
    assert_eq!(p.reason, Reason::ComponentCrashing);
    assert_eq!(
        p.message(),
        "container ferrovus of pod demo-query-abc keeps exiting with an error (exit code 1): Error: loading configuration Caused by: 0: config error: query.cache_mb: invalid type: string \"lots\", expected u64 — check spec.config"
    );
    // between two back-offs it runs briefly: still crashing while the exit is recent
    let mut running = crash_looping();
    running["state"] = json!({"running": {"startedAt": "2026-01-01T00:00:30Z"}});
    let again = pod_problem(&[pod(running.clone())], &f, now()).unwrap();
    assert_eq!(again, p);
    // a single crash is not reported yet
    let mut once = crash_looping();
    once["restartCount"] = json!(1);
    assert_eq!(pod_problem(&[pod(once)], &f, now()), None);
    // an old crash of a pod that is now merely starting is not a crash loop
    let later: Timestamp = "2026-01-01T01:00:00Z".parse().unwrap();
    assert_eq!(pod_problem(&[pod(running)], &f, later), None);
    // other errors point at the component's settings
    let mut oom = crash_looping();
    oom["lastState"]["terminated"] = json!({"exitCode": 137, "reason": "OOMKilled"});
    let p = pod_problem(&[pod(oom)], &f, now()).unwrap();
    assert_eq!(p.detail, None);
    assert!(p.message().contains("(exit code 137)"), "{}", p.message());
    assert!(
        p.message().contains("spec.components.query"),
        "{}",
        p.message()
    );
    // an image problem wins over a crash
    let two = [
        pod(crash_looping()),
        serde_json::from_value(pod_json(
            "demo-query-xyz",
            "query",
            pull_failing("ErrImagePull", "denied"),
        ))
        .unwrap(),
    ];
    assert_eq!(
        pod_problem(&two, &f, now()).unwrap().reason,
        Reason::ImagePullFailed
    );
}

#[test]
fn termination_messages_are_summarised() {
    assert_eq!(
        termination_summary(
            "{\"level\":\"info\"}\nstarting\nError: boom\n\nCaused by:\n  disk full\n"
        )
        .as_deref(),
        Some("Error: boom Caused by: disk full")
    );
    assert_eq!(
        termination_summary("a\nb\nc\nd\n").as_deref(),
        Some("b c d")
    );
    assert_eq!(termination_summary("\n \n"), None);
    let long = "x".repeat(2000);
    assert!(termination_summary(&long).unwrap().chars().count() <= 401);
}

fn workload(v: Value) -> DynamicObject {
    serde_json::from_value(v).unwrap()
}

fn core_event(name: &str, reason: &str, message: &str, last: &str) -> CoreEvent {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": name, "namespace": NS},
        "involvedObject": {"kind": "StatefulSet", "name": "demo-streaming", "namespace": NS},
        "reason": reason, "message": message, "type": "Warning", "lastTimestamp": last,
    }))
    .unwrap()
}

#[test]
fn replicas_that_cannot_be_created() {
    let d = workload(
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "q"},
        "status": {"conditions": [
            {"type": "Available", "status": "True"},
            {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
             "message": "pods \"q-1\" is forbidden: exceeded quota: compute"}]}}),
    );
    assert_eq!(
        deployment_replica_failure(&d).as_deref(),
        Some("pods \"q-1\" is forbidden: exceeded quota: compute")
    );
    let healthy = workload(
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "q"},
        "status": {"conditions": [{"type": "ReplicaFailure", "status": "False"}]}}),
    );
    assert_eq!(deployment_replica_failure(&healthy), None);

    let short = workload(
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "s"},
        "spec": {"replicas": 3}, "status": {"replicas": 1}}),
    );
    assert!(statefulset_missing_pods(&short));
    let full = workload(
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "s"},
        "spec": {"replicas": 3}, "status": {"replicas": 3}}),
    );
    assert!(!statefulset_missing_pods(&full));

    let events = [
        core_event(
            "a",
            "FailedCreate",
            "create Pod s-1 failed error: exceeded quota: old",
            "2026-01-01T00:00:00Z",
        ),
        core_event(
            "b",
            "FailedCreate",
            "create Pod s-1 failed error: pods \"s-1\" is forbidden: exceeded quota: new",
            "2026-01-01T00:05:00Z",
        ),
        core_event(
            "c",
            "FailedCreate",
            "create Pod s-1 failed error: etcd timeout",
            "2026-01-01T00:09:00Z",
        ),
        core_event("d", "SuccessfulCreate", "forbidden", "2026-01-01T00:09:00Z"),
    ];
    assert_eq!(
        failed_create(&events).as_deref(),
        Some("create Pod s-1 failed error: pods \"s-1\" is forbidden: exceeded quota: new")
    );
    assert_eq!(failed_create(&events[2..]), None);
}

#[test]
fn a_lasting_problem_keeps_its_message_while_the_kubelet_says_less() {
    let with_detail = Problem {
        reason: Reason::ImagePullFailed,
        headline: "spec.image \"x\" cannot be pulled (pod p)".into(),
        detail: Some("manifest unknown".into()),
        hint: None,
    };
    let now = Time(Timestamp::now());
    let old: Vec<Condition> = Conditions::ready()
        .with_problem(Reason::ImagePullFailed, &with_detail.message())
        .to_k8s(&[], 1, &now);
    let without = Problem {
        detail: None,
        ..with_detail.clone()
    };
    assert_eq!(sticky_message(&old, &without), with_detail.message());
    // another pod, or another reason: the new message
    let other_pod = Problem {
        headline: "spec.image \"x\" cannot be pulled (pod q)".into(),
        ..without.clone()
    };
    assert_eq!(sticky_message(&old, &other_pod), other_pod.message());
    assert_eq!(sticky_message(&[], &without), without.message());
}

// ---------- reconciles ----------

fn ready_pod(name: &str, component: &str) -> Value {
    let mut p = pod_json(
        name,
        component,
        json!({"name": "ferrovus", "image": "ferrovus/ferrovus:0.1.0", "imageID": "", "ready": true,
               "restartCount": 0, "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}),
    );
    p["status"]["phase"] = json!("Running");
    p
}

async fn settled() -> Harness {
    let h = Harness::new("minimal", |_| {});
    h.reconcile().await;
    h.fake.make_workloads_ready();
    h.converge().await;
    h
}

#[tokio::test]
async fn image_pull_failure_degrades_then_recovers_when_fixed() {
    let h = settled().await;
    h.edit_spec(|s| s["image"] = json!(BAD));
    h.reconcile().await;
    assert_eq!(h.applied_workloads(), ["StatefulSet/demo-coordinator"]);
    h.fake.put(
        "pods",
        pod_json(
            "demo-coordinator-0",
            "coordinator",
            pull_failing(
                "ErrImagePull",
                "rpc error: code = NotFound desc = manifest unknown",
            ),
        ),
    );
    let action = h.reconcile().await;
    assert_eq!(
        action,
        Action::requeue(REQUEUE_WAITING),
        "the rollout keeps waiting"
    );
    let st = h.status();
    assert_eq!(st.phase, Some(Phase::Degraded));
    let d = h.condition(DEGRADED);
    assert_eq!(
        (d.status.as_str(), d.reason.as_str()),
        ("True", "ImagePullFailed")
    );
    assert!(
        d.message.contains(&format!(
            "spec.image \"{BAD}\" cannot be pulled (pod demo-coordinator-0)"
        )),
        "{}",
        d.message
    );
    assert!(d.message.contains("manifest unknown"), "{}", d.message);
    let p = h.condition(PROGRESSING);
    assert_eq!(
        (p.status.as_str(), p.reason.as_str()),
        ("True", "WaitingForCoordinator")
    );
    assert_eq!(h.condition(READY).status, "False");
    let events = h.events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        (events[0].0.as_str(), events[0].1.as_str()),
        ("Warning", "ImagePullFailed")
    );
    assert_eq!(events[0].2, d.message);
    assert!(h.applied().is_empty(), "nothing deleted or forced");

    // the same problem, and the kubelet's back-off saying less: no write at all
    h.reconcile().await;
    assert!(h.fake.writes().is_empty(), "{:?}", h.fake.writes());
    h.fake.update(&super::pod_path("demo-coordinator-0"), |p| {
        p["status"]["containerStatuses"][0] = pull_failing(
            "ImagePullBackOff",
            &format!("Back-off pulling image \"{BAD}\""),
        )
    });
    h.reconcile().await;
    assert!(h.fake.writes().is_empty(), "{:?}", h.fake.writes());

    // fixed: the image is changed back, the pod replaced
    h.edit_spec(|s| s["image"] = json!("ferrovus/ferrovus:0.1.0"));
    h.fake
        .put("pods", ready_pod("demo-coordinator-0", "coordinator"));
    h.reconcile().await;
    assert_eq!(h.applied_workloads(), ["StatefulSet/demo-coordinator"]);
    assert_eq!(h.condition(DEGRADED).status, "False");
    assert!(
        h.event_reasons().contains(&"Recovered".to_string()),
        "{:?}",
        h.events()
    );
    h.fake.make_workloads_ready();
    h.converge().await;
    assert_eq!(h.status().phase, Some(Phase::Ready));
}

#[tokio::test]
async fn crashing_component_is_degraded_with_the_engine_error() {
    let h = settled().await;
    h.edit_spec(|s| s["config"] = json!({"query": {"cache_mb": "lots"}}));
    h.reconcile().await;
    h.fake.put(
        "pods",
        pod_json("demo-coordinator-0", "coordinator", crash_looping()),
    );
    h.reconcile().await;
    let d = h.condition(DEGRADED);
    assert_eq!(d.reason, "ComponentCrashing");
    assert!(
        d.message.contains("pod demo-coordinator-0"),
        "{}",
        d.message
    );
    assert!(
        d.message
            .contains("config error: query.cache_mb: invalid type"),
        "{}",
        d.message
    );
    assert!(d.message.ends_with("check spec.config"), "{}", d.message);
    assert_eq!(h.event_reasons(), ["ComponentCrashing"]);
    assert_eq!(h.status().phase, Some(Phase::Degraded));

    // spec.config fixed: rolled again, the pod runs
    h.edit_spec(|s| s["config"] = json!({}));
    h.fake
        .put("pods", ready_pod("demo-coordinator-0", "coordinator"));
    h.reconcile().await;
    assert_eq!(h.condition(DEGRADED).status, "False");
    h.fake.make_workloads_ready();
    h.converge().await;
}

#[tokio::test]
async fn statefulset_pods_refused_by_quota() {
    let h = settled().await;
    h.edit_spec(|s| s["components"] = json!({"streaming": {"replicas": 3}}));
    h.reconcile().await;
    assert_eq!(h.applied_workloads(), ["StatefulSet/demo-streaming"]);
    h.fake.update(&sts("demo-streaming"), |o| {
        let generation = o["metadata"]["generation"].clone();
        o["status"]["observedGeneration"] = generation;
    });
    let quota = "create Pod demo-streaming-1 in StatefulSet demo-streaming failed error: pods \"demo-streaming-1\" is forbidden: exceeded quota: compute, requested: pods=1, used: pods=8, limited: pods=8";
    for (name, object, message) in [
        ("demo-streaming.1", "demo-streaming", quota),
        (
            "other.1",
            "other",
            "create Pod other-0 failed error: forbidden: no",
        ),
    ] {
        h.fake.put(
            "events",
            json!({"apiVersion": "v1", "kind": "Event",
                   "metadata": {"name": name, "namespace": NS},
                   "involvedObject": {"kind": "StatefulSet", "name": object, "namespace": NS},
                   "reason": "FailedCreate", "type": "Warning", "message": message,
                   "lastTimestamp": "2026-01-01T00:00:00Z"}),
        );
    }
    h.reconcile().await;
    let d = h.condition(DEGRADED);
    assert_eq!(d.reason, "ReplicasNotCreated");
    assert!(
        d.message.starts_with("spec.components.streaming.replicas asks for 3 replicas but StatefulSet demo-streaming cannot create its pods: "),
        "{}",
        d.message
    );
    assert!(
        d.message.contains("exceeded quota: compute"),
        "{}",
        d.message
    );
    assert!(!d.message.contains("other-0"));
    let list = h
        .fake
        .log()
        .into_iter()
        .find(|r| r.path == format!("/api/v1/namespaces/{NS}/events"))
        .expect("events listed");
    assert!(list.query.contains("fieldSelector="), "{}", list.query);

    // quota raised: the pods exist, the old event no longer matters
    h.fake.make_workloads_ready();
    h.reconcile().await;
    assert_eq!(h.condition(DEGRADED).status, "False");
    assert!(h.event_reasons().contains(&"Recovered".to_string()));
}

#[tokio::test]
async fn deployment_replica_failure_is_reported() {
    let h = settled().await;
    h.edit_spec(|s| s["components"] = json!({"query": {"replicas": 3}}));
    h.reconcile().await;
    assert_eq!(h.applied_workloads(), ["Deployment/demo-query"]);
    h.fake.update(&deploy("demo-query"), |o| {
        let generation = o["metadata"]["generation"].clone();
        o["status"] = json!({"observedGeneration": generation, "replicas": 1, "readyReplicas": 1,
            "updatedReplicas": 1, "conditions": [{"type": "ReplicaFailure", "status": "True",
            "reason": "FailedCreate", "message": "pods \"demo-query-5d-x\" is forbidden: exceeded quota: compute"}]});
    });
    h.reconcile().await;
    let d = h.condition(DEGRADED);
    assert_eq!(d.reason, "ReplicasNotCreated");
    assert!(
        d.message.contains(
            "spec.components.query.replicas asks for 3 replicas but Deployment demo-query"
        ),
        "{}",
        d.message
    );
    assert_eq!(h.condition(PROGRESSING).reason, "WaitingForQuery");
    assert_eq!(h.event_reasons(), ["ReplicasNotCreated"]);
}
