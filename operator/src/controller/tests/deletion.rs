//! Deletion: nothing is applied to a cluster being deleted or in a namespace
//! being deleted.

use kube::ResourceExt;
use serde_json::json;

use super::{Harness, NS, sts};
use crate::controller::{Action, FINALIZER, Phase};
use crate::fake::path;

/// Writes that create or change child objects (not status, not Events, not deletes).
fn child_applies(h: &Harness) -> Vec<String> {
    h.fake
        .writes()
        .into_iter()
        .filter(|r| !r.path.ends_with("/status") && !r.path.contains("/events"))
        .filter(|r| r.method == "POST" || r.content_type.contains("apply-patch"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

#[tokio::test]
async fn terminating_namespace_stops_reconciling_without_errors() {
    let h = Harness::new("minimal", |_| {});
    h.reconcile().await;
    assert!(h.fake.get(&sts("demo-etcd")).is_some());

    // the namespace controller deletes the children before the MilvusCluster
    h.fake.terminate_namespace(NS);
    h.fake.remove(&sts("demo-etcd"));
    let action = h.reconcile().await;
    assert_eq!(action, Action::await_change(), "no error, no backoff");
    let refused: Vec<_> = h
        .fake
        .log()
        .into_iter()
        .filter(|r| r.path == sts("demo-etcd") && r.method == "PATCH")
        .collect();
    assert_eq!(refused.len(), 1, "one refused re-create: {refused:?}");
    assert_ne!(h.status().phase, Some(Phase::Degraded));
    assert!(h.ctx.failures.lock().unwrap().is_empty());

    // later reconciles of the same cluster do nothing at all
    let action = h.reconcile().await;
    assert_eq!(action, Action::await_change());
    assert!(h.fake.log().is_empty(), "{:?}", h.fake.log());
    assert!(h.fake.get(&sts("demo-etcd")).is_none());

    // the finalizer still runs when the MilvusCluster's turn comes
    h.mark_deleted();
    let action = h.reconcile().await;
    assert_eq!(action, Action::await_change());
    assert!(child_applies(&h).is_empty(), "{:?}", child_applies(&h));
    assert!(h.fake.mc(NS, "demo").is_none(), "finalizer released");
    assert!(h.ctx.terminating.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_cluster_being_deleted_is_never_applied() {
    let h = Harness::new("minimal", |_| {});
    h.reconcile().await;
    assert!(h.mc().finalizers().contains(&FINALIZER.to_string()));
    // a child disappears and the spec changes while the cluster is being deleted
    h.fake.remove(&sts("demo-etcd"));
    h.fake.remove(&path("v1", "configmaps", NS, "demo-config"));
    h.edit_spec(|s| s["image"] = json!("ferrovus/ferrovus:9.9.9"));
    h.mark_deleted();
    h.reconcile().await;
    assert!(child_applies(&h).is_empty(), "{:?}", child_applies(&h));
    assert!(h.fake.get(&sts("demo-etcd")).is_none());
    assert!(
        h.fake
            .get(&path("v1", "configmaps", NS, "demo-config"))
            .is_none()
    );
}
