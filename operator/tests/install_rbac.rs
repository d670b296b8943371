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

/// Least privilege: no rule of any Role or ClusterRole grants a wildcard verb, resource or API
/// group — in the rendered install manifest and in the chart's template.
#[test]
fn no_rbac_rule_uses_a_wildcard() {
    for doc in install_docs()
        .iter()
        .filter(|d| d["kind"] == "ClusterRole" || d["kind"] == "Role")
    {
        for rule in doc["rules"].as_array().expect("rules") {
            for field in ["verbs", "resources", "apiGroups", "resourceNames"] {
                let wild = rule[field].as_array().is_some_and(|a| {
                    a.iter()
                        .any(|x| x.as_str().is_some_and(|s| s.contains('*')))
                });
                assert!(
                    !wild,
                    "{} {}: wildcard in {field}: {rule}",
                    doc["kind"], doc["metadata"]["name"]
                );
            }
        }
    }
    let chart = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../charts/ferrovus-operator/templates/rbac.yaml"
    );
    let text = std::fs::read_to_string(chart).expect("the chart's rbac.yaml");
    assert!(
        !text.contains("\"*\"") && !text.contains("'*'"),
        "wildcard in {chart}"
    );
}

/// Every pod the install manifest runs is non-root with a read-only root filesystem, no
/// privilege escalation and no capabilities.
#[test]
fn every_pod_is_non_root_with_a_read_only_root_filesystem() {
    let mut pods = 0;
    for doc in install_docs() {
        let kind = doc["kind"].as_str().unwrap_or_default();
        if !matches!(kind, "Deployment" | "StatefulSet" | "DaemonSet" | "Job") {
            continue;
        }
        pods += 1;
        let name = &doc["metadata"]["name"];
        let spec = &doc["spec"]["template"]["spec"];
        for c in spec["containers"].as_array().expect("containers") {
            let sc = &c["securityContext"];
            let non_root = sc["runAsNonRoot"] == true
                || (sc["runAsNonRoot"].is_null()
                    && spec["securityContext"]["runAsNonRoot"] == true);
            assert!(
                non_root,
                "{kind} {name}: container {} may run as root",
                c["name"]
            );
            assert_eq!(
                sc["readOnlyRootFilesystem"], true,
                "{kind} {name}: {}",
                c["name"]
            );
            assert_eq!(
                sc["allowPrivilegeEscalation"], false,
                "{kind} {name}: {}",
                c["name"]
            );
            assert_eq!(
                sc["capabilities"]["drop"],
                serde_json::json!(["ALL"]),
                "{kind} {name}"
            );
        }
    }
    assert!(pods > 0, "the install manifest runs the operator");
}
