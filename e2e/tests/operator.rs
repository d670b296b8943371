//! End-to-end tests of the operator against the cluster of `KUBECONFIG`.
//!
//!   KUBECONFIG=~/.kube/config cargo test -p ferrovus-e2e -- --ignored --test-threads=2
//!
//! Without `KUBECONFIG` they are ignored by `cargo test` (and return early with
//! a message when run with `--ignored`). They check objects, conditions and
//! ordering — not data traffic — so they pass both on a control plane whose
//! nodes fake running pods (kwok) and on a full cluster with the locally built
//! images (kind/k3d). See docs/operator.md.

use std::collections::BTreeSet;

use ferrovus_e2e::{Env, assert_ordered, condition, query_ready, upgrade_image};
use ferrovus_operator::crd::{MilvusCluster, Phase, image_tag};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde_json::json;

fn uids(pods: &[k8s_openapi::api::core::v1::Pod]) -> BTreeSet<String> {
    pods.iter().filter_map(|p| p.uid()).collect()
}

#[tokio::test]
#[ignore = "needs a cluster: KUBECONFIG=… cargo test -p ferrovus-e2e -- --ignored"]
async fn crd_is_installed_and_served() {
    let Some(env) = Env::setup("crd").await.unwrap() else {
        return;
    };
    let list = env.clusters().list(&Default::default()).await.unwrap();
    assert!(list.items.is_empty());
    env.teardown().await;
}

/// Bring-up in order, scale, config change, image upgrade, deletion with `Delete`.
#[tokio::test]
#[ignore = "needs a cluster: KUBECONFIG=… cargo test -p ferrovus-e2e -- --ignored"]
async fn minimal_cluster_lifecycle() {
    let Some(env) = Env::setup("lifecycle").await.unwrap() else {
        return;
    };
    let name = env.apply_example("minimal", |_| {}).await.unwrap();

    // bring-up: dependencies → coordinator → streaming → query → data → proxy
    let (mc, reasons) = env.wait_ready(&name).await.unwrap();
    eprintln!("bring-up went through {reasons:?}");
    assert_ordered(&reasons);
    let st = mc.status.clone().unwrap();
    assert_eq!(
        st.endpoint.as_deref(),
        Some(format!("{name}-proxy.{}.svc:19530", env.ns).as_str())
    );
    assert_eq!(condition(&mc, "Degraded").unwrap().status, "False");
    let sts: Api<StatefulSet> = Api::namespaced(env.client.clone(), &env.ns);
    let deploys: Api<Deployment> = Api::namespaced(env.client.clone(), &env.ns);
    for n in ["coordinator", "streaming", "etcd", "object-store"] {
        let s = sts.get(&format!("{name}-{n}")).await.unwrap();
        let owner = &s.owner_references()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str()),
            ("MilvusCluster", name.as_str())
        );
    }
    for n in ["query", "data", "proxy"] {
        deploys.get(&format!("{name}-{n}")).await.unwrap();
    }
    // the operator is idempotent: a settled cluster keeps its resourceVersion
    let rv = env.clusters().get(&name).await.unwrap().resource_version();
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    assert_eq!(
        env.clusters().get(&name).await.unwrap().resource_version(),
        rv
    );

    // scale query nodes
    env.patch_spec(&name, json!({"components": {"query": {"replicas": 2}}}))
        .await
        .unwrap();
    let (mc, _) = env
        .wait_for(&name, "2 ready query nodes", |mc| query_ready(mc, 2))
        .await
        .unwrap();
    assert_eq!(mc.status.unwrap().phase, Some(Phase::Ready));

    // config change: engine pods roll, etcd does not
    let coord_before = uids(&env.pods(&name, "coordinator").await.unwrap());
    let etcd_before = uids(&env.pods(&name, "etcd").await.unwrap());
    env.patch_spec(&name, json!({"config": {"log": {"level": "debug"}}}))
        .await
        .unwrap();
    env.wait_ready(&name).await.unwrap();
    env.eventually("coordinator pods replaced", || async {
        let now = uids(&env.pods(&name, "coordinator").await?);
        Ok(!now.is_empty() && now.is_disjoint(&coord_before))
    })
    .await
    .unwrap();
    assert_eq!(uids(&env.pods(&name, "etcd").await.unwrap()), etcd_before);

    // image upgrade: one component at a time, in order
    let new_image = upgrade_image();
    env.patch_spec(&name, json!({"image": new_image}))
        .await
        .unwrap();
    let (mc, reasons) = env.wait_ready(&name).await.unwrap();
    eprintln!("upgrade went through {reasons:?}");
    assert_ordered(&reasons);
    assert_eq!(
        mc.status.as_ref().unwrap().version.as_deref(),
        Some(image_tag(&new_image).as_str())
    );
    for n in ["coordinator", "streaming"] {
        let s = sts.get(&format!("{name}-{n}")).await.unwrap();
        let img = s.spec.unwrap().template.spec.unwrap().containers[0]
            .image
            .clone();
        assert_eq!(img.as_deref(), Some(new_image.as_str()));
    }
    for n in ["query", "data", "proxy"] {
        let d = deploys.get(&format!("{name}-{n}")).await.unwrap();
        let img = d.spec.unwrap().template.spec.unwrap().containers[0]
            .image
            .clone();
        assert_eq!(img.as_deref(), Some(new_image.as_str()));
    }

    // delete with deletionPolicy: Delete → PVCs go away with the cluster
    assert!(
        !env.pvcs(&name).await.unwrap().is_empty(),
        "PVCs exist before deletion"
    );
    env.clusters()
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
    env.eventually("the MilvusCluster to disappear", || async {
        Ok(env.clusters().get_opt(&name).await?.is_none())
    })
    .await
    .unwrap();
    env.eventually("PVCs to be deleted", || async {
        Ok(env.pvcs(&name).await?.is_empty())
    })
    .await
    .unwrap();
    env.teardown().await;
}

#[tokio::test]
#[ignore = "needs a cluster: KUBECONFIG=… cargo test -p ferrovus-e2e -- --ignored"]
async fn retain_policy_keeps_pvcs() {
    let Some(env) = Env::setup("retain").await.unwrap() else {
        return;
    };
    let name = env
        .apply_example("minimal", |mc| {
            mc["spec"]["deletionPolicy"] = json!("Retain")
        })
        .await
        .unwrap();
    env.wait_ready(&name).await.unwrap();
    let mc = env.clusters().get(&name).await.unwrap();
    assert!(mc.finalizers().is_empty(), "no finalizer with Retain");
    let before = env.pvcs(&name).await.unwrap();
    assert!(!before.is_empty());
    env.clusters()
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
    env.eventually("the MilvusCluster to disappear", || async {
        Ok(env.clusters().get_opt(&name).await?.is_none())
    })
    .await
    .unwrap();
    // owned workloads are garbage-collected, PVCs stay
    let sts: Api<StatefulSet> = Api::namespaced(env.client.clone(), &env.ns);
    env.eventually("StatefulSets to be collected", || async {
        Ok(sts.get_opt(&format!("{name}-coordinator")).await?.is_none())
    })
    .await
    .unwrap();
    assert_eq!(env.pvcs(&name).await.unwrap(), before);
    env.teardown().await;
}

#[tokio::test]
#[ignore = "needs a cluster: KUBECONFIG=… cargo test -p ferrovus-e2e -- --ignored"]
async fn autoscaling_creates_hpa_and_operator_does_not_fight_it() {
    let Some(env) = Env::setup("hpa").await.unwrap() else {
        return;
    };
    let name = env
        .apply_example("minimal", |mc| {
            mc["spec"]["components"] = json!({"query": {"autoscaling": {
                "minReplicas": 1, "maxReplicas": 4, "targetCPUUtilizationPercentage": 70}}})
        })
        .await
        .unwrap();
    env.wait_ready(&name).await.unwrap();
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(env.client.clone(), &env.ns);
    let hpa = hpas.get(&format!("{name}-query")).await.unwrap();
    assert_eq!(hpa.spec.unwrap().max_replicas, 4);
    // play the HPA: scale the Deployment through the scale subresource
    let deploys: Api<Deployment> = Api::namespaced(env.client.clone(), &env.ns);
    deploys
        .patch_scale(
            &format!("{name}-query"),
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 2}})),
        )
        .await
        .unwrap();
    env.wait_for(&name, "2 query nodes", |mc| query_ready(mc, 2))
        .await
        .unwrap();
    let d = deploys.get(&format!("{name}-query")).await.unwrap();
    assert_eq!(
        d.spec.unwrap().replicas,
        Some(2),
        "operator kept the HPA's replica count"
    );
    env.teardown().await;
}

#[tokio::test]
#[ignore = "needs a cluster: KUBECONFIG=… cargo test -p ferrovus-e2e -- --ignored"]
async fn invalid_specs_are_rejected_or_degraded() {
    let Some(env) = Env::setup("invalid").await.unwrap() else {
        return;
    };
    // min > max: rejected by the CRD's CEL rule at admission
    let bad = json!({
        "apiVersion": "ferrovus.io/v1alpha1", "kind": "MilvusCluster",
        "metadata": {"name": "bad", "namespace": env.ns},
        "spec": {"components": {"query": {"autoscaling": {
            "minReplicas": 5, "maxReplicas": 2, "targetCPUUtilizationPercentage": 50}}}}
    });
    let err = env.apply(&bad).await.unwrap_err();
    assert!(format!("{err:#}").contains("minReplicas"), "{err:#}");
    // negative replicas: rejected by the schema
    let bad = json!({
        "apiVersion": "ferrovus.io/v1alpha1", "kind": "MilvusCluster",
        "metadata": {"name": "bad", "namespace": env.ns},
        "spec": {"components": {"data": {"replicas": -1}}}
    });
    assert!(env.apply(&bad).await.is_err());
    // a missing Secret cannot be checked by the schema: Degraded, with a clear message
    let name = env
        .apply_example("production", |mc| {
            mc["spec"]["dependencies"]["storage"]["external"]["secretRef"]["name"] = json!("nope")
        })
        .await
        .unwrap();
    let (mc, _) = env
        .wait_for(&name, "Degraded", |mc: &MilvusCluster| {
            condition(mc, "Degraded").is_some_and(|c| c.status == "True")
        })
        .await
        .unwrap();
    let d = condition(&mc, "Degraded").unwrap();
    assert_eq!(d.reason, "MissingSecret");
    assert!(d.message.contains("nope"), "{}", d.message);
    assert_eq!(
        mc.meta().generation,
        mc.status.as_ref().unwrap().observed_generation
    );
    env.teardown().await;
}
