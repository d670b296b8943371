//! Per-component rollout progress in the status during an upgrade.

use kube::api::DynamicObject;
use serde_json::json;

use super::{Harness, deploy};
use crate::builders::Stage;
use crate::controller::Phase;
use crate::controller::status::{COMPLETE, PENDING, rollout_state, rollout_summary};
use crate::crd::{ComponentStatus, ComponentsStatus, Role};

fn workload(
    kind: &str,
    generation: i64,
    spec_replicas: i64,
    status: serde_json::Value,
) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": kind,
        "metadata": {"name": "w", "generation": generation},
        "spec": {"replicas": spec_replicas},
        "status": status,
    }))
    .unwrap()
}

#[test]
fn rollout_states() {
    let done =
        json!({"observedGeneration": 2, "replicas": 3, "readyReplicas": 3, "updatedReplicas": 3});
    assert_eq!(
        rollout_state(&workload("Deployment", 2, 3, done.clone()), true),
        COMPLETE
    );
    assert_eq!(
        rollout_state(&workload("Deployment", 2, 3, done), false),
        PENDING
    );
    let unobserved =
        json!({"observedGeneration": 1, "replicas": 3, "readyReplicas": 3, "updatedReplicas": 3});
    assert_eq!(
        rollout_state(&workload("Deployment", 2, 3, unobserved), true),
        "Updating 0/3"
    );
    let rolling =
        json!({"observedGeneration": 2, "replicas": 4, "readyReplicas": 3, "updatedReplicas": 1});
    assert_eq!(
        rollout_state(&workload("Deployment", 2, 3, rolling), true),
        "Updating 1/3"
    );
    let starting =
        json!({"observedGeneration": 2, "replicas": 3, "readyReplicas": 1, "updatedReplicas": 3});
    assert_eq!(
        rollout_state(&workload("Deployment", 2, 3, starting), true),
        "Waiting 1/3 ready"
    );
    let sts = json!({"observedGeneration": 2, "replicas": 3, "readyReplicas": 3, "updatedReplicas": 3,
                     "currentRevision": "a", "updateRevision": "b"});
    assert_eq!(
        rollout_state(&workload("StatefulSet", 2, 3, sts), true),
        "Updating 3/3"
    );
}

#[test]
fn rollout_summary_names_component_progress_done_and_next() {
    let c = |rollout: &str, image: &str| {
        Some(ComponentStatus {
            image: image.into(),
            rollout: Some(rollout.into()),
            ..Default::default()
        })
    };
    let components = ComponentsStatus {
        coordinator: c(COMPLETE, "f:2"),
        streaming: c(COMPLETE, "f:2"),
        query: c("Updating 1/3", "f:2"),
        data: c(PENDING, "f:1"),
        proxy: c(COMPLETE, "f:1"),
    };
    let waiting = (
        Stage::Component(Role::Query),
        "demo-query: 1/3 ready".to_string(),
    );
    assert_eq!(
        rollout_summary(Some(&waiting), &components).as_deref(),
        Some("query: Updating 1/3 (f:2); done: coordinator, streaming; next: data")
    );
    assert_eq!(rollout_summary(None, &components), None);
    let deps = (Stage::Dependencies, "demo-etcd: 0/1 ready".to_string());
    assert_eq!(
        rollout_summary(Some(&deps), &ComponentsStatus::default()).as_deref(),
        Some("dependencies: demo-etcd: 0/1 ready")
    );
    let first = (
        Stage::Component(Role::Coordinator),
        "not created yet".to_string(),
    );
    assert_eq!(
        rollout_summary(Some(&first), &ComponentsStatus::default()).as_deref(),
        Some("coordinator: not created yet; next: streaming, query, data, proxy")
    );
}

#[tokio::test]
async fn upgrade_reports_per_component_rollout_progress() {
    let h = Harness::new("minimal", |mc| {
        mc["spec"]["components"] = json!({"query": {"replicas": 3}})
    });
    h.reconcile().await;
    h.fake.make_workloads_ready();
    h.converge().await;
    let st = h.status();
    assert_eq!(st.rollout, None, "nothing rolling once Ready");
    let q = st.components.unwrap().query.unwrap();
    assert_eq!(q.rollout.as_deref(), Some(COMPLETE));
    assert_eq!(q.current_image.as_deref(), Some("ferrovus/ferrovus:0.1.0"));

    h.edit_spec(|s| s["image"] = json!("ferrovus/ferrovus:0.2.0"));
    h.reconcile().await;
    let st = h.status();
    let c = st.components.clone().unwrap();
    let coord = c.coordinator.unwrap();
    assert_eq!(coord.rollout.as_deref(), Some("Updating 0/1"));
    assert_eq!(coord.image, "ferrovus/ferrovus:0.2.0");
    assert_eq!(
        coord.current_image.as_deref(),
        Some("ferrovus/ferrovus:0.1.0")
    );
    let streaming = c.streaming.unwrap();
    assert_eq!(streaming.rollout.as_deref(), Some(PENDING));
    assert_eq!(streaming.image, "ferrovus/ferrovus:0.1.0");
    assert_eq!(
        st.rollout.as_deref(),
        Some(
            "coordinator: Updating 0/1 (ferrovus/ferrovus:0.2.0); next: streaming, query, data, proxy"
        )
    );

    // coordinator and streaming done; the query Deployment rolls one pod at a time
    for _ in 0..2 {
        h.fake.make_workloads_ready();
        h.reconcile().await;
    }
    assert_eq!(h.applied_workloads(), vec!["Deployment/demo-query"]);
    h.fake.update(&deploy("demo-query"), |o| {
        let generation = o["metadata"]["generation"].clone();
        o["status"] = json!({"observedGeneration": generation, "replicas": 4,
                             "readyReplicas": 3, "updatedReplicas": 1});
    });
    h.reconcile().await;
    let st = h.status();
    assert_eq!(st.phase, Some(Phase::Upgrading));
    assert_eq!(
        st.rollout.as_deref(),
        Some(
            "query: Updating 1/3 (ferrovus/ferrovus:0.2.0); done: coordinator, streaming; next: data, proxy"
        )
    );
    let q = st.components.unwrap().query.unwrap();
    assert_eq!(
        (q.updated_replicas, q.ready_replicas, q.desired_replicas),
        (1, 3, 3)
    );
    assert_eq!(q.current_image.as_deref(), Some("ferrovus/ferrovus:0.1.0"));

    h.fake.make_workloads_ready();
    h.converge().await;
    let st = h.status();
    assert_eq!(st.rollout, None);
    let c = st.components.unwrap();
    for r in Role::ORDER {
        let s = c.get(r).unwrap();
        assert_eq!(s.rollout.as_deref(), Some(COMPLETE), "{r:?}");
        assert_eq!(s.current_image.as_deref(), Some("ferrovus/ferrovus:0.2.0"));
    }
}
