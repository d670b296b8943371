//! The operator's RBAC in `manifests/install.yaml` (rendered from the chart)
//! grants what the controller uses.

use serde::Deserialize;
use serde_json::Value;

fn install_docs() -> Vec<Value> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../manifests/install.yaml");
    let text = std::fs::read_to_string(path).expect("manifests/install.yaml");
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).expect("valid YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

fn cluster_role_rules() -> Vec<Value> {
    install_docs()
        .into_iter()
        .find(|d| d["kind"] == "ClusterRole")
        .expect("a ClusterRole")["rules"]
        .as_array()
        .expect("rules")
        .clone()
}

/// The verbs granted on `group`/`resource`.
fn verbs(rules: &[Value], group: &str, resource: &str) -> Vec<String> {
    let has = |v: &Value, s: &str| v.as_array().is_some_and(|a| a.iter().any(|x| x == s));
    let mut out: Vec<String> = rules
        .iter()
        .filter(|r| has(&r["apiGroups"], group) && has(&r["resources"], resource))
        .flat_map(|r| r["verbs"].as_array().cloned().unwrap_or_default())
        .filter_map(|v| v.as_str().map(String::from))
        .collect();
    out.sort();
    out.dedup();
    out
}

#[test]
fn events_can_be_published() {
    let rules = cluster_role_rules();
    let v = verbs(&rules, "events.k8s.io", "events");
    assert!(
        v.contains(&"create".into()) && v.contains(&"patch".into()),
        "{v:?}"
    );
}

#[test]
fn pods_and_their_events_can_be_listed() {
    let rules = cluster_role_rules();
    assert!(verbs(&rules, "", "pods").contains(&"list".into()));
    assert!(verbs(&rules, "", "events").contains(&"list".into()));
    // read-only: the operator never changes pods
    assert_eq!(verbs(&rules, "", "pods"), ["list"]);
}
