//! Full-mode end-to-end tests: a MilvusCluster on a real node, answering real pymilvus traffic
//! through upgrades, scaling and failures (see `ferrovus_e2e::full`).
//!
//!   KUBECONFIG=… FERROVUS_E2E_FULL=1 FERROVUS_E2E_IMAGE=ferrovus/ferrovus:e2e-a \
//!   FERROVUS_E2E_UPGRADE_IMAGE=ferrovus/ferrovus:e2e-b \
//!   FERROVUS_E2E_ETCD_IMAGE=ferrovus/dev-etcd:dev FERROVUS_E2E_OBJECT_STORE_IMAGE=ferrovus/dev-s3:dev \
//!   cargo test -p ferrovus-e2e --test full -- --ignored --test-threads=1 --nocapture
//!
//! Each test prints what it measured (durations, request counts) for the record.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use ferrovus_e2e::full::{Ddl, Load, full_mode, pod_http, pyload};
use ferrovus_e2e::{Env, assert_ordered, is_ready, query_ready, upgrade_image};
use ferrovus_operator::crd::{MilvusCluster, image_tag};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams};
use serde_json::{Value, json};

fn assert_no_failures(what: &str, report: &Value) {
    eprintln!("{what}: {report}");
    assert_eq!(
        report["failed"],
        json!(0),
        "{what}: failed requests: {report}"
    );
}

/// Bring-up through real probes, the README quick start through the proxy Service, then query
/// nodes scaled 1 → 3 → 1 while Strong searches run.
#[tokio::test]
#[ignore = "needs a real node: KUBECONFIG=… FERROVUS_E2E_FULL=1 cargo test -p ferrovus-e2e --test full -- --ignored"]
async fn full_a_minimal_cluster_serves_pymilvus_and_scales_query_nodes_under_searches() {
    if !full_mode("serve") {
        return;
    }
    let Some(env) = Env::setup("full-serve").await.unwrap() else {
        return;
    };
    let t0 = Instant::now();
    let name = env.apply_example("minimal", |_| {}).await.unwrap();
    let (_, reasons) = env.wait_ready(&name).await.unwrap();
    let up = t0.elapsed();
    assert_ordered(&reasons);
    let pods = env.pod_readiness(&name).await.unwrap();
    assert!(pods.iter().all(|(_, r)| *r), "every pod ready: {pods:?}");
    eprintln!("bring-up: Ready after {up:.1?} through {reasons:?}; pods {pods:?}");

    let uri = env.proxy_uri(&name).await.unwrap();
    let qs = pyload(&["quickstart", &uri]).await.unwrap();
    eprintln!("README quick start through {uri}: {qs}");
    assert_eq!(qs["ok"], json!(true));

    let load = Load::start(&["searches", &uri, "scale_searches"]).unwrap();
    for n in [3, 1] {
        let t = Instant::now();
        env.patch_spec(&name, json!({"components": {"query": {"replicas": n}}}))
            .await
            .unwrap();
        env.wait_for(&name, &format!("{n} ready query nodes"), |mc| {
            query_ready(mc, n)
        })
        .await
        .unwrap();
        eprintln!("query nodes scaled to {n} in {:.1?}", t.elapsed());
        // searches keep running on the new set for a while
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    let report = load.finish().await.unwrap();
    assert_no_failures("searches while scaling 1 → 3 → 1", &report);
    assert!(report["sent"].as_u64().unwrap_or(0) > 20, "{report}");
    env.teardown().await;
}

/// The image changes under a continuous mixed load: components roll in order, no request
/// fails, every acknowledged row is present afterwards (checked by the load itself).
#[tokio::test]
#[ignore = "needs a real node: KUBECONFIG=… FERROVUS_E2E_FULL=1 cargo test -p ferrovus-e2e --test full -- --ignored"]
async fn full_image_upgrade_under_load_fails_no_request_and_loses_no_row() {
    if !full_mode("upgrade") {
        return;
    }
    let Some(env) = Env::setup("full-upgrade").await.unwrap() else {
        return;
    };
    // two of every engine component, so that each can roll without an outage
    let name = env
        .apply_example("minimal", |mc| {
            mc["spec"]["components"] = json!({
                "coordinator": {"replicas": 2}, "streaming": {"replicas": 2},
                "query": {"replicas": 2}, "data": {"replicas": 1}, "proxy": {"replicas": 2}});
        })
        .await
        .unwrap();
    env.wait_ready(&name).await.unwrap();
    let uri = env.proxy_uri(&name).await.unwrap();
    let load = Load::start(&["mixed", &uri, "upgrade_load"]).unwrap();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let new_image = upgrade_image();
    let t = Instant::now();
    env.patch_spec(&name, json!({"image": new_image}))
        .await
        .unwrap();
    let (mc, reasons) = env
        .wait_for(&name, "the upgrade", |mc| {
            is_ready(mc)
                && mc.status.as_ref().and_then(|s| s.version.as_deref())
                    == Some(image_tag(&new_image).as_str())
        })
        .await
        .unwrap();
    let rolled = t.elapsed();
    eprintln!("upgrade to {new_image}: Ready after {rolled:.1?} through {reasons:?}");
    assert_ordered(&reasons);
    assert!(is_ready(&mc));
    tokio::time::sleep(Duration::from_secs(10)).await;
    let report = load.finish().await.unwrap();
    assert_no_failures("mixed load through the upgrade", &report);
    env.teardown().await;
}

async fn active_coordinator(env: &Env, name: &str) -> Option<Pod> {
    for p in env.pods(name, "coordinator").await.ok()? {
        if let Ok((200, body)) = pod_http(&p, 9091, "/readyz").await
            && !body.contains("standby")
        {
            return Some(p);
        }
    }
    None
}

/// The active coordinator's pod is deleted at once (grace 0: SIGKILL): DDL through the proxy
/// succeeds again within the takeover target.
#[tokio::test]
#[ignore = "needs a real node: KUBECONFIG=… FERROVUS_E2E_FULL=1 cargo test -p ferrovus-e2e --test full -- --ignored"]
async fn full_deleting_the_active_coordinator_pod_costs_seconds() {
    if !full_mode("takeover") {
        return;
    }
    let Some(env) = Env::setup("full-takeover").await.unwrap() else {
        return;
    };
    let name = env
        .apply_example("minimal", |mc| {
            mc["spec"]["components"] = json!({"coordinator": {"replicas": 2}});
        })
        .await
        .unwrap();
    env.wait_ready(&name).await.unwrap();
    let uri = env.proxy_uri(&name).await.unwrap();
    let mut takeovers = vec![];
    for round in 0..3 {
        let deadline = Instant::now() + ferrovus_e2e::timeout();
        let leader = loop {
            if let Some(p) = active_coordinator(&env, &name).await {
                break p;
            }
            assert!(Instant::now() < deadline, "no leading coordinator");
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        let ddl = Ddl::connect(&uri).await.unwrap();
        let pods: Api<Pod> = Api::namespaced(env.client.clone(), &env.ns);
        pods.delete(&leader.name_any(), &DeleteParams::default().grace_period(0))
            .await
            .unwrap();
        let secs = ddl.go_and_wait().await.unwrap();
        eprintln!(
            "round {round}: deleted {} (the leader); first DDL after {secs:.2}s",
            leader.name_any()
        );
        takeovers.push(secs);
        env.wait_ready(&name).await.unwrap();
    }
    let worst = takeovers.iter().copied().fold(0.0, f64::max);
    assert!(worst <= 10.0, "takeovers {takeovers:?} (target 5 s)");
    env.teardown().await;
}

/// A `spec.config` change rolls only the engine pods, at most one unavailable per component
/// (its PDB) at any time; etcd and the object store keep their pods.
#[tokio::test]
#[ignore = "needs a real node: KUBECONFIG=… FERROVUS_E2E_FULL=1 cargo test -p ferrovus-e2e --test full -- --ignored"]
async fn full_a_config_change_rolls_engine_pods_one_at_a_time() {
    if !full_mode("config") {
        return;
    }
    let Some(env) = Env::setup("full-config").await.unwrap() else {
        return;
    };
    let name = env
        .apply_example("minimal", |mc| {
            mc["spec"]["components"] = json!({
                "streaming": {"replicas": 2}, "query": {"replicas": 2}, "proxy": {"replicas": 2}});
        })
        .await
        .unwrap();
    env.wait_ready(&name).await.unwrap();
    let uids =
        |pods: Vec<Pod>| -> BTreeSet<String> { pods.iter().filter_map(|p| p.uid()).collect() };
    let deps_before: BTreeSet<String> = uids(env.pods(&name, "etcd").await.unwrap())
        .union(&uids(env.pods(&name, "object-store").await.unwrap()))
        .cloned()
        .collect();
    let engine = ["coordinator", "streaming", "query", "data", "proxy"];
    let mut before = BTreeMap::new();
    for c in engine {
        before.insert(c, uids(env.pods(&name, c).await.unwrap()));
    }
    let uri = env.proxy_uri(&name).await.unwrap();
    let load = Load::start(&["searches", &uri, "config_searches"]).unwrap();
    env.patch_spec(&name, json!({"config": {"log": {"level": "debug"}}}))
        .await
        .unwrap();
    // watch readiness per component until every engine pod was replaced and all are ready
    let mut worst: BTreeMap<&str, usize> = BTreeMap::new();
    let deadline = Instant::now() + ferrovus_e2e::timeout();
    loop {
        let mut all_replaced = true;
        for c in engine {
            let pods = env.pods(&name, c).await.unwrap();
            let desired = before[c].len();
            let ready = pods
                .iter()
                .filter(|p| {
                    p.metadata.deletion_timestamp.is_none()
                        && p.status
                            .as_ref()
                            .and_then(|s| s.container_statuses.as_ref())
                            .is_some_and(|cs| cs.iter().all(|c| c.ready))
                })
                .count();
            let missing = desired.saturating_sub(ready);
            let w = worst.entry(c).or_default();
            *w = (*w).max(missing);
            let now = uids(pods);
            all_replaced &= now.is_disjoint(&before[c]) && ready >= desired;
        }
        if all_replaced {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the config change did not roll every engine pod"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    env.wait_ready(&name).await.unwrap();
    let report = load.finish().await.unwrap();
    eprintln!("config change: most pods unavailable at once per component {worst:?}");
    for (c, w) in &worst {
        assert!(*w <= 1, "{c}: {w} pods unavailable at once");
    }
    let deps_after: BTreeSet<String> = uids(env.pods(&name, "etcd").await.unwrap())
        .union(&uids(env.pods(&name, "object-store").await.unwrap()))
        .cloned()
        .collect();
    assert_eq!(
        deps_after, deps_before,
        "etcd and the object store keep their pods"
    );
    assert_no_failures("searches through the config roll", &report);
    env.teardown().await;
}

/// An HPA on the query nodes (real resource metrics) adds pods under a search load and removes
/// them once it stops; the operator leaves the replica count to it.
#[tokio::test]
#[ignore = "needs a real node: KUBECONFIG=… FERROVUS_E2E_FULL=1 cargo test -p ferrovus-e2e --test full -- --ignored"]
async fn full_the_hpa_scales_query_nodes_with_the_search_load() {
    if !full_mode("hpa") {
        return;
    }
    let Some(env) = Env::setup("full-hpa").await.unwrap() else {
        return;
    };
    let name = env
        .apply_example("minimal", |mc| {
            mc["spec"]["components"] = json!({"query": {
                "autoscaling": {"minReplicas": 1, "maxReplicas": 3,
                                "targetCPUUtilizationPercentage": 50,
                                "scaleDownStabilizationSeconds": 30},
                "resources": {"requests": {"cpu": "50m"}}}});
        })
        .await
        .unwrap();
    env.wait_ready(&name).await.unwrap();
    let uri = env.proxy_uri(&name).await.unwrap();
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(env.client.clone(), &env.ns);
    let deploys: Api<Deployment> = Api::namespaced(env.client.clone(), &env.ns);
    let hpa_name = format!("{name}-query");
    let t0 = Instant::now();
    let mut timeline: Vec<String> = vec![];
    let observe = |timeline: &mut Vec<String>, hpa: &HorizontalPodAutoscaler, d: &Deployment| {
        let st = hpa.status.clone().unwrap_or_default();
        let cpu = st
            .current_metrics
            .unwrap_or_default()
            .first()
            .and_then(|m| m.resource.as_ref())
            .and_then(|r| r.current.average_utilization);
        let line = format!(
            "{:>5.0}s desired {} current {} cpu {:?}% deployment {}/{}",
            t0.elapsed().as_secs_f64(),
            st.desired_replicas,
            st.current_replicas.unwrap_or_default(),
            cpu,
            d.status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .unwrap_or_default(),
            d.spec.as_ref().and_then(|s| s.replicas).unwrap_or_default()
        );
        if timeline.last().map(|l| &l[7..]) != Some(&line[7..]) {
            eprintln!("hpa: {line}");
            timeline.push(line);
        }
    };
    let loads: Vec<Load> = (0..3)
        .map(|i| Load::start(&["searches", &uri, &format!("hpa_{i}")]).unwrap())
        .collect();
    let deadline = Instant::now() + ferrovus_e2e::timeout();
    let up_at = loop {
        let hpa = hpas.get(&hpa_name).await.unwrap();
        let d = deploys.get(&hpa_name).await.unwrap();
        observe(&mut timeline, &hpa, &d);
        if d.status
            .as_ref()
            .and_then(|s| s.ready_replicas)
            .unwrap_or_default()
            > 1
        {
            break t0.elapsed();
        }
        assert!(Instant::now() < deadline, "no scale-up: {timeline:#?}");
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    let mut reports = vec![];
    for l in loads {
        reports.push(l.finish().await.unwrap());
    }
    let stopped = t0.elapsed();
    let down_at = loop {
        let hpa = hpas.get(&hpa_name).await.unwrap();
        let d = deploys.get(&hpa_name).await.unwrap();
        observe(&mut timeline, &hpa, &d);
        let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or_default();
        if replicas == 1 && d.status.as_ref().and_then(|s| s.ready_replicas) == Some(1) {
            break t0.elapsed();
        }
        assert!(Instant::now() < deadline, "no scale-down: {timeline:#?}");
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    eprintln!(
        "hpa: scaled up {up_at:.0?} after the load started, load stopped at {stopped:.0?}, back to 1 at {down_at:.0?}"
    );
    for r in &reports {
        assert_no_failures("searches while the HPA scales", r);
    }
    // the operator left the replica count alone: the cluster is Ready with the HPA's choice
    let (mc, _) = env.wait_ready(&name).await.unwrap();
    assert!(query_ready(&mc, 1), "{:?}", mc.status);
    env.teardown().await;
}

fn degraded_with(mc: &MilvusCluster, reason: &str, needle: &str) -> bool {
    ferrovus_e2e::condition(mc, "Degraded")
        .is_some_and(|c| c.status == "True" && c.reason == reason && c.message.contains(needle))
}

/// Events of the MilvusCluster with `reason` (what `kubectl describe mc` shows).
async fn events_with(env: &Env, name: &str, reason: &str) -> Vec<String> {
    use k8s_openapi::api::events::v1::Event;
    let events: Api<Event> = Api::namespaced(env.client.clone(), &env.ns);
    events
        .list(&Default::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|e| {
            e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
                && e.reason.as_deref() == Some(reason)
        })
        .map(|e| e.note.unwrap_or_default())
        .collect()
}

/// Bad input on a real node: an image that does not exist, a `spec.config` setting of the wrong
/// type, more replicas than the namespace's quota allows. Each gives a Degraded condition and an
/// Event naming the field, the operator keeps running, and the cluster recovers once fixed.
#[tokio::test]
#[ignore = "needs a real node: KUBECONFIG=… FERROVUS_E2E_FULL=1 cargo test -p ferrovus-e2e --test full -- --ignored"]
async fn full_bad_input_is_reported_by_field_and_recovers_once_fixed() {
    if !full_mode("bad-input") {
        return;
    }
    let Some(env) = Env::setup("full-bad-input").await.unwrap() else {
        return;
    };
    let name = env
        .apply_example("minimal", |mc| {
            mc["spec"]["components"] = json!({"query": {"replicas": 2}});
        })
        .await
        .unwrap();
    env.wait_ready(&name).await.unwrap();

    // 1. an image that does not exist, for the query nodes only
    let t = Instant::now();
    env.patch_spec(
        &name,
        json!({"components": {"query": {"image": "ferrovus/ferrovus:does-not-exist"}}}),
    )
    .await
    .unwrap();
    let (mc, _) = env
        .wait_for(&name, "ImagePullFailed", |mc| {
            degraded_with(mc, "ImagePullFailed", "spec.components.query.image")
        })
        .await
        .unwrap();
    let c = ferrovus_e2e::condition(&mc, "Degraded").unwrap();
    eprintln!(
        "bad image: after {:.1?}: {}: {}",
        t.elapsed(),
        c.reason,
        c.message
    );
    assert!(
        c.message.contains("ferrovus/ferrovus:does-not-exist"),
        "{}",
        c.message
    );
    let notes = events_with(&env, &name, "ImagePullFailed").await;
    assert!(
        notes
            .iter()
            .any(|n| n.contains("spec.components.query.image")),
        "{notes:?}"
    );
    env.patch_spec(&name, json!({"components": {"query": {"image": null}}}))
        .await
        .unwrap();
    env.wait_ready(&name).await.unwrap();
    eprintln!("bad image: fixed, Ready after {:.1?}", t.elapsed());

    // 2. a configuration setting of the wrong type
    let t = Instant::now();
    env.patch_spec(&name, json!({"config": {"core": {"seal_rows": "lots"}}}))
        .await
        .unwrap();
    let (mc, _) = env
        .wait_for(&name, "ComponentCrashing", |mc| {
            degraded_with(mc, "ComponentCrashing", "core.seal_rows")
        })
        .await
        .unwrap();
    let c = ferrovus_e2e::condition(&mc, "Degraded").unwrap();
    eprintln!(
        "bad config: after {:.1?}: {}: {}",
        t.elapsed(),
        c.reason,
        c.message
    );
    assert!(c.message.contains("spec.config"), "{}", c.message);
    env.patch_spec(&name, json!({"config": null}))
        .await
        .unwrap();
    env.wait_ready(&name).await.unwrap();
    eprintln!("bad config: fixed, Ready after {:.1?}", t.elapsed());

    // 3. more query nodes than the namespace's pod quota
    use k8s_openapi::api::core::v1::ResourceQuota;
    let pods_now = env.pod_readiness(&name).await.unwrap().len();
    let quotas: Api<ResourceQuota> = Api::namespaced(env.client.clone(), &env.ns);
    let quota: ResourceQuota = serde_json::from_value(json!({
        "metadata": {"name": "pods"},
        "spec": {"hard": {"pods": (pods_now + 1).to_string()}}
    }))
    .unwrap();
    quotas.create(&Default::default(), &quota).await.unwrap();
    let t = Instant::now();
    env.patch_spec(&name, json!({"components": {"query": {"replicas": 5}}}))
        .await
        .unwrap();
    let (mc, _) = env
        .wait_for(&name, "ReplicasNotCreated", |mc| {
            degraded_with(mc, "ReplicasNotCreated", "spec.components.query.replicas")
        })
        .await
        .unwrap();
    let c = ferrovus_e2e::condition(&mc, "Degraded").unwrap();
    eprintln!(
        "quota: after {:.1?}: {}: {}",
        t.elapsed(),
        c.reason,
        c.message
    );
    env.patch_spec(&name, json!({"components": {"query": {"replicas": 2}}}))
        .await
        .unwrap();
    env.wait_ready(&name).await.unwrap();
    eprintln!("quota: fixed, Ready after {:.1?}", t.elapsed());
    let uri = env.proxy_uri(&name).await.unwrap();
    let qs = pyload(&["quickstart", &uri]).await.unwrap();
    assert_eq!(qs["ok"], json!(true), "serves after the fixes: {qs}");
    env.teardown().await;
}
