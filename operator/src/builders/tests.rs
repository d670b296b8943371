//! Builder tests: golden snapshots of the examples and one test per rule.
//! `UPDATE_GOLDEN=1 cargo test -p ferrovus-operator` rewrites the snapshots.

use std::collections::BTreeMap;

use serde_json::json;

use super::*;
use crate::crd::{Autoscaling, Components, MilvusClusterSpec, ProxySpec, ScalableComponentSpec};

/// Example resource (a file under `manifests/examples/`), with the metadata
/// the API server would add.
pub(crate) fn example(name: &str) -> MilvusCluster {
    let path = format!(
        "{}/../manifests/examples/{name}.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap();
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let v = serde_yaml_ng::Value::deserialize(doc).unwrap();
        if v["kind"] == "MilvusCluster" {
            let mut mc: MilvusCluster = serde_yaml_ng::from_value(v).unwrap();
            persisted(&mut mc);
            return mc;
        }
    }
    panic!("no MilvusCluster in {path}");
}

use serde::Deserialize;

/// Add namespace, uid and generation as the API server would.
pub(crate) fn persisted(mc: &mut MilvusCluster) {
    mc.metadata.namespace = Some("ferrovus-test".into());
    mc.metadata.uid = Some("11111111-2222-3333-4444-555555555555".into());
    mc.metadata.generation = Some(1);
}

fn minimal() -> MilvusCluster {
    example("minimal")
}

fn render(objs: &[Planned]) -> String {
    let mut out = String::new();
    for p in objs {
        out.push_str(&format!("# stage: {:?}\n---\n", p.stage));
        out.push_str(&serde_yaml_ng::to_string(&p.child.to_json()).unwrap());
    }
    out
}

fn golden(name: &str) {
    let objs = build(&example(name)).unwrap();
    let text = render(&objs);
    let path = format!("{}/tests/golden/{name}.yaml", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    if expected != text {
        let diff_line = expected
            .lines()
            .zip(text.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(expected.lines().count().min(text.lines().count()));
        panic!(
            "golden snapshot {path} differs from the builders' output (first difference at line {}); \
             review and run UPDATE_GOLDEN=1 cargo test -p ferrovus-operator",
            diff_line + 1
        );
    }
}

#[test]
fn golden_minimal() {
    golden("minimal");
}

#[test]
fn golden_production() {
    golden("production");
}

fn find<'a>(objs: &'a [Planned], kind: &str, name: &str) -> Option<&'a Child> {
    objs.iter()
        .map(|p| &p.child)
        .find(|c| c.kind() == kind && c.name() == name)
}

fn deployment<'a>(objs: &'a [Planned], name: &str) -> &'a Deployment {
    match find(objs, "Deployment", name) {
        Some(Child::Deployment(d)) => d,
        _ => panic!("no Deployment {name}"),
    }
}

fn pod_annotation(child: &Child, key: &str) -> Option<String> {
    let t = match child {
        Child::Deployment(d) => &d.spec.as_ref()?.template,
        Child::StatefulSet(s) => &s.spec.as_ref()?.template,
        _ => return None,
    };
    t.metadata.as_ref()?.annotations.as_ref()?.get(key).cloned()
}

/// (kind/name → hash) of every object.
fn hashes(objs: &[Planned]) -> BTreeMap<String, String> {
    objs.iter()
        .map(|p| {
            (
                format!("{}/{}", p.child.kind(), p.child.name()),
                p.child.spec_hash(),
            )
        })
        .collect()
}

fn changed(a: &[Planned], b: &[Planned]) -> Vec<String> {
    let (ha, hb) = (hashes(a), hashes(b));
    let mut keys: Vec<_> = ha.keys().chain(hb.keys()).cloned().collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| ha.get(k) != hb.get(k))
        .collect()
}

#[test]
fn minimal_objects_and_stages() {
    let objs = build(&minimal()).unwrap();
    let stages: Vec<Stage> = objs.iter().map(|p| p.stage).collect();
    let mut sorted = stages.clone();
    sorted.sort();
    assert_eq!(stages, sorted, "objects come in stage order");
    for (kind, name) in [
        ("ServiceAccount", "demo"),
        ("ConfigMap", "demo-config"),
        ("StatefulSet", "demo-etcd"),
        ("Service", "demo-etcd-headless"),
        ("StatefulSet", "demo-object-store"),
        ("StatefulSet", "demo-coordinator"),
        ("StatefulSet", "demo-streaming"),
        ("Deployment", "demo-query"),
        ("Deployment", "demo-data"),
        ("Deployment", "demo-proxy"),
        ("Service", "demo-proxy"),
        ("Service", "demo-coordinator-headless"),
        ("PodDisruptionBudget", "demo-query"),
    ] {
        assert!(find(&objs, kind, name).is_some(), "missing {kind} {name}");
    }
    assert!(
        !objs
            .iter()
            .any(|p| p.child.kind() == "HorizontalPodAutoscaler"),
        "no HPA without autoscaling"
    );
}

#[test]
fn every_object_is_owned_and_labelled() {
    for name in ["minimal", "production"] {
        for p in build(&example(name)).unwrap() {
            let v = p.child.to_json();
            let meta = &v["metadata"];
            assert_eq!(meta["ownerReferences"][0]["kind"], json!("MilvusCluster"));
            assert_eq!(meta["ownerReferences"][0]["controller"], json!(true));
            assert_eq!(
                meta["labels"]["app.kubernetes.io/managed-by"],
                json!("ferrovus-operator")
            );
            assert_eq!(meta["namespace"], json!("ferrovus-test"));
        }
    }
}

#[test]
fn hpa_present_means_no_replicas() {
    let objs = build(&example("production")).unwrap();
    for role in ["query", "proxy"] {
        let d = deployment(&objs, &format!("prod-{role}"));
        assert_eq!(d.spec.as_ref().unwrap().replicas, None, "{role}");
        let v = d_json(d);
        assert!(
            v["spec"].get("replicas").is_none(),
            "{role}: no replicas in the apply body"
        );
        assert!(find(&objs, "HorizontalPodAutoscaler", &format!("prod-{role}")).is_some());
    }
    // data has no autoscaling: replicas set, no HPA
    let d = deployment(&objs, "prod-data");
    assert_eq!(d.spec.as_ref().unwrap().replicas, Some(2));
    assert!(find(&objs, "HorizontalPodAutoscaler", "prod-data").is_none());
    match find(&objs, "HorizontalPodAutoscaler", "prod-query") {
        Some(Child::HorizontalPodAutoscaler(h)) => {
            let s = h.spec.as_ref().unwrap();
            assert_eq!((s.min_replicas, s.max_replicas), (Some(2), 10));
            assert_eq!(s.scale_target_ref.name, "prod-query");
            assert_eq!(s.metrics.as_ref().unwrap().len(), 2);
            // scaleDownStabilizationSeconds: 120 in the example
            let down = s.behavior.as_ref().unwrap().scale_down.as_ref().unwrap();
            assert_eq!(down.stabilization_window_seconds, Some(120));
        }
        _ => unreachable!(),
    }
    // without it the HPA keeps Kubernetes' default behaviour
    match find(&objs, "HorizontalPodAutoscaler", "prod-proxy") {
        Some(Child::HorizontalPodAutoscaler(h)) => {
            assert!(h.spec.as_ref().unwrap().behavior.is_none());
        }
        _ => unreachable!(),
    }
}

fn d_json(d: &Deployment) -> serde_json::Value {
    serde_json::to_value(d).unwrap()
}

#[test]
fn replicas_default_to_one_and_follow_spec() {
    let mut mc = minimal();
    let objs = build(&mc).unwrap();
    assert_eq!(
        deployment(&objs, "demo-query")
            .spec
            .as_ref()
            .unwrap()
            .replicas,
        Some(1)
    );
    mc.spec.components = Some(Components {
        query: Some(ScalableComponentSpec {
            common: crate::crd::ComponentSpec {
                replicas: Some(3),
                ..Default::default()
            },
            autoscaling: None,
        }),
        ..Default::default()
    });
    let objs2 = build(&mc).unwrap();
    assert_eq!(
        deployment(&objs2, "demo-query")
            .spec
            .as_ref()
            .unwrap()
            .replicas,
        Some(3)
    );
    assert_eq!(changed(&objs, &objs2), vec!["Deployment/demo-query"]);
}

#[test]
fn config_change_changes_hash_only_in_engine_pods() {
    let mc = minimal();
    let mut mc2 = mc.clone();
    mc2.spec.config = Some(json!({"core": {"seal_rows": 1000}}));
    let (a, b) = (build(&mc).unwrap(), build(&mc2).unwrap());
    let diff = changed(&a, &b);
    let mut expected = vec!["ConfigMap/demo-config".to_string()];
    for role in Role::ORDER {
        let kind = if role.is_stateful() {
            "StatefulSet"
        } else {
            "Deployment"
        };
        expected.push(format!("{kind}/demo-{}", role.as_str()));
    }
    expected.sort();
    assert_eq!(diff, expected);
    let coord_a = find(&a, "StatefulSet", "demo-coordinator").unwrap();
    let coord_b = find(&b, "StatefulSet", "demo-coordinator").unwrap();
    assert_ne!(
        pod_annotation(coord_a, CONFIG_HASH_ANNOTATION),
        pod_annotation(coord_b, CONFIG_HASH_ANNOTATION)
    );
    // dependencies do not mount the engine config
    let etcd = find(&a, "StatefulSet", "demo-etcd").unwrap();
    assert_eq!(pod_annotation(etcd, CONFIG_HASH_ANNOTATION), None);
    // the merged file keeps operator defaults and adds the user's settings
    match find(&b, "ConfigMap", "demo-config") {
        Some(Child::ConfigMap(cm)) => {
            let text = &cm.data.as_ref().unwrap()[CONFIG_FILE];
            let v: serde_json::Value = serde_yaml_ng::from_str(text).unwrap();
            assert_eq!(v["core"]["seal_rows"], json!(1000));
            assert_eq!(v["meta"]["kind"], json!("etcd"));
            assert_eq!(
                v["meta"]["etcd_prefix"],
                json!("ferrovus/ferrovus-test/demo")
            );
        }
        _ => unreachable!(),
    }
}

#[test]
fn image_change_of_one_component_changes_only_its_objects() {
    let mc = minimal();
    let mut mc2 = mc.clone();
    mc2.spec.components = Some(Components {
        query: Some(ScalableComponentSpec {
            common: crate::crd::ComponentSpec {
                image: Some("ferrovus/ferrovus:0.2.0".into()),
                ..Default::default()
            },
            autoscaling: None,
        }),
        ..Default::default()
    });
    assert_eq!(
        changed(&build(&mc).unwrap(), &build(&mc2).unwrap()),
        vec!["Deployment/demo-query"]
    );
}

#[test]
fn engine_image_change_changes_engine_workloads_only() {
    let mc = minimal();
    let mut mc2 = mc.clone();
    mc2.spec.image = Some("ferrovus/ferrovus:0.2.0".into());
    let diff = changed(&build(&mc).unwrap(), &build(&mc2).unwrap());
    assert_eq!(
        diff,
        vec![
            "Deployment/demo-data",
            "Deployment/demo-proxy",
            "Deployment/demo-query",
            "StatefulSet/demo-coordinator",
            "StatefulSet/demo-streaming",
        ]
    );
}

#[test]
fn toggling_autoscaling_touches_only_that_component() {
    let mc = minimal();
    let mut mc2 = mc.clone();
    mc2.spec.components = Some(Components {
        proxy: Some(ProxySpec {
            scalable: ScalableComponentSpec {
                common: Default::default(),
                autoscaling: Some(Autoscaling {
                    min_replicas: 1,
                    max_replicas: 4,
                    target_cpu_utilization_percentage: Some(80),
                    target_memory_utilization_percentage: None,
                    scale_down_stabilization_seconds: None,
                }),
            },
            service: None,
        }),
        ..Default::default()
    });
    assert_eq!(
        changed(&build(&mc).unwrap(), &build(&mc2).unwrap()),
        vec![
            "Deployment/demo-proxy",
            "HorizontalPodAutoscaler/demo-proxy"
        ]
    );
}

#[test]
fn probes_ports_and_args() {
    let objs = build(&minimal()).unwrap();
    let v = find(&objs, "Deployment", "demo-proxy").unwrap().to_json();
    let c = &v["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["args"], json!(["run", "proxy"]));
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], json!("/healthz"));
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], json!("/readyz"));
    assert_eq!(c["startupProbe"]["httpGet"]["port"], json!(9091));
    assert_eq!(c["ports"][0]["containerPort"], json!(19530));
    let v = find(&objs, "StatefulSet", "demo-coordinator")
        .unwrap()
        .to_json();
    let c = &v["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["args"], json!(["run", "coordinator"]));
    assert_eq!(c["ports"][0]["containerPort"], json!(19531));
    let env: BTreeMap<String, serde_json::Value> = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap().to_string(), e.clone()))
        .collect();
    assert_eq!(env["FERROVUS_GRPC_PORT"]["value"], json!("19531"));
    assert_eq!(
        env["FERROVUS_ETCD_ENDPOINTS"]["value"],
        json!("http://demo-etcd.ferrovus-test.svc:2379")
    );
    assert_eq!(
        env["FERROVUS_S3_ENDPOINT"]["value"],
        json!("http://demo-object-store.ferrovus-test.svc:9000")
    );
    assert_eq!(
        env["FERROVUS_S3_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"]["name"],
        json!("demo-object-store")
    );
    assert_eq!(env["FERROVUS_DATA_DIR"]["value"], json!(DATA_DIR));
}

/// The engine's fatal error reaches the container's termination message (the
/// operator quotes it in the ComponentCrashing condition).
#[test]
fn engine_containers_report_their_fatal_error() {
    let objs = build(&minimal()).unwrap();
    let mut engine = 0;
    for p in &objs {
        let v = p.child.to_json();
        let Some(containers) = v["spec"]["template"]["spec"]["containers"].as_array() else {
            continue;
        };
        let policy = &containers[0]["terminationMessagePolicy"];
        if matches!(p.stage, Stage::Component(_)) {
            engine += 1;
            assert_eq!(
                policy,
                &json!("FallbackToLogsOnError"),
                "{}",
                p.child.name()
            );
        }
    }
    assert_eq!(engine, 5);
}

#[test]
fn streaming_has_pvc_with_cluster_labels() {
    let objs = build(&example("production")).unwrap();
    let v = find(&objs, "StatefulSet", "prod-streaming")
        .unwrap()
        .to_json();
    let vct = &v["spec"]["volumeClaimTemplates"][0];
    assert_eq!(vct["metadata"]["name"], json!("data"));
    assert_eq!(
        vct["spec"]["resources"]["requests"]["storage"],
        json!("100Gi")
    );
    assert_eq!(vct["spec"]["storageClassName"], json!("fast-ssd"));
    assert_eq!(
        vct["metadata"]["labels"]["app.kubernetes.io/instance"],
        json!("prod")
    );
    let vols = &v["spec"]["template"]["spec"]["volumes"];
    assert_eq!(vols.as_array().unwrap().len(), 1, "data comes from the PVC");
}

#[test]
fn external_dependencies_deploy_nothing_and_wire_the_secret() {
    let objs = build(&example("production")).unwrap();
    assert!(!objs.iter().any(|p| p.stage == Stage::Dependencies));
    let v = find(&objs, "Deployment", "prod-data").unwrap().to_json();
    let env = v["spec"]["template"]["spec"]["containers"][0]["env"].clone();
    let get = |n: &str| {
        env.as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == json!(n))
            .cloned()
            .unwrap()
    };
    assert_eq!(
        get("FERROVUS_S3_SECRET_ACCESS_KEY")["valueFrom"]["secretKeyRef"],
        json!({"name": "ferrovus-s3", "key": "secretAccessKey"})
    );
    assert_eq!(get("FERROVUS_S3_REGION")["value"], json!("eu-west-1"));
    assert!(
        get("FERROVUS_ETCD_ENDPOINTS")["value"]
            .as_str()
            .unwrap()
            .contains("etcd-2.etcd.databases.svc:2379")
    );
    // the user's variable replaced nothing but was appended
    assert_eq!(get("FERROVUS_LOG_LEVEL")["value"], json!("debug"));
}

#[test]
fn user_env_replaces_operator_env() {
    let mut mc = minimal();
    mc.spec.components = Some(Components {
        coordinator: Some(crate::crd::ComponentSpec {
            env: vec![k8s_openapi::api::core::v1::EnvVar {
                name: "FERROVUS_DATA_DIR".into(),
                value: Some("/elsewhere".into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    });
    let objs = build(&mc).unwrap();
    let v = find(&objs, "StatefulSet", "demo-coordinator")
        .unwrap()
        .to_json();
    let env = v["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .clone();
    let dirs: Vec<_> = env
        .iter()
        .filter(|e| e["name"] == json!("FERROVUS_DATA_DIR"))
        .collect();
    assert_eq!(dirs.len(), 1);
    assert_eq!(dirs[0]["value"], json!("/elsewhere"));
}

#[test]
fn proxy_service_settings() {
    let objs = build(&example("production")).unwrap();
    let v = find(&objs, "Service", "prod-proxy").unwrap().to_json();
    assert_eq!(v["spec"]["type"], json!("LoadBalancer"));
    assert_eq!(v["spec"]["ports"][0]["port"], json!(19530));
    assert_eq!(
        v["metadata"]["annotations"]["service.beta.kubernetes.io/aws-load-balancer-type"],
        json!("nlb")
    );
}

#[test]
fn pdbs_allow_one_unavailable() {
    let objs = build(&minimal()).unwrap();
    let pdbs: Vec<_> = objs
        .iter()
        .filter(|p| p.child.kind() == "PodDisruptionBudget")
        .collect();
    assert_eq!(pdbs.len(), 7, "5 components + etcd + object store");
    for p in pdbs {
        assert_eq!(p.child.to_json()["spec"]["maxUnavailable"], json!(1));
    }
}

#[test]
fn etcd_cluster_members() {
    let mut mc = minimal();
    mc.spec.dependencies = Some(crate::crd::Dependencies {
        etcd: Some(crate::crd::EtcdDependency {
            external: None,
            in_cluster: Some(crate::crd::InClusterEtcd {
                replicas: Some(3),
                ..Default::default()
            }),
        }),
        storage: None,
    });
    let objs = build(&mc).unwrap();
    let v = find(&objs, "StatefulSet", "demo-etcd").unwrap().to_json();
    assert_eq!(v["spec"]["replicas"], json!(3));
    let args = v["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
    assert!(
        args.contains("demo-etcd-2=http://demo-etcd-2.demo-etcd-headless.ferrovus-test.svc:2380")
    );
}

#[test]
fn invalid_inputs_are_errors_not_panics() {
    let mut mc = minimal();
    mc.metadata.uid = None;
    assert_eq!(build(&mc), Err(BuildError::MissingMetadata("uid")));
    let mut mc = minimal();
    mc.spec.config = Some(json!(["not", "a", "map"]));
    assert!(matches!(build(&mc), Err(BuildError::InvalidSpec(_))));
    // authorisation without a root password Secret names the missing field
    let mut mc = minimal();
    mc.spec.security = Some(crate::crd::Security {
        authorization: Some(crate::crd::Authorization {
            enabled: true,
            root_password_secret: None,
        }),
        tls: None,
    });
    match build(&mc) {
        Err(BuildError::InvalidSpec(m)) => assert!(m.contains("rootPasswordSecret"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn security_reaches_the_engine_pods() {
    let objs = build(&example("production")).unwrap();
    let env_of = |name: &str| {
        let v = find(&objs, "StatefulSet", name)
            .or_else(|| find(&objs, "Deployment", name))
            .unwrap()
            .to_json();
        v["spec"]["template"]["spec"]["containers"][0]["env"].clone()
    };
    let has = |env: &serde_json::Value, var: &str| {
        env.as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == json!(var))
    };
    let proxy = env_of("prod-proxy");
    let query = env_of("prod-query");
    for env in [&proxy, &query] {
        assert!(has(env, "FERROVUS_CLUSTER__SECRET"));
        assert!(has(env, "FERROVUS_SECURITY__AUTHORIZATION_ENABLED"));
    }
    // the root password and TLS only where they are used, and never as a literal value
    assert!(has(&proxy, "FERROVUS_SECURITY__ROOT_PASSWORD"));
    assert!(!has(&query, "FERROVUS_SECURITY__ROOT_PASSWORD"));
    assert!(
        has(&proxy, "FERROVUS_SECURITY__TLS_MODE") && !has(&query, "FERROVUS_SECURITY__TLS_MODE")
    );
    let text = serde_json::to_string(&proxy).unwrap();
    assert!(!text.contains("REPLACE_ME"), "{text}");
    // nothing secret in the ConfigMap
    let cm = find(&objs, "ConfigMap", "prod-config")
        .unwrap()
        .to_json()
        .to_string();
    assert!(
        !cm.contains("password") && !cm.contains("REPLACE_ME"),
        "{cm}"
    );
}

#[test]
fn builds_are_deterministic() {
    let mc = example("production");
    assert_eq!(build(&mc).unwrap(), build(&mc).unwrap());
    let spec: MilvusClusterSpec = mc.spec.clone();
    let again = MilvusCluster::new("prod", spec);
    let mut again = again;
    persisted(&mut again);
    assert_eq!(
        hashes(&build(&mc).unwrap()),
        hashes(&build(&again).unwrap())
    );
}

#[test]
fn label_values_are_sanitized() {
    assert_eq!(label_value("sha256:abc"), "sha256-abc");
    assert_eq!(label_value(&"x".repeat(80)).len(), 63);
    assert_eq!(label_value("-a-"), "a");
}

/// The engine pods the operator builds are non-root with read-only root filesystems, no
/// privilege escalation, no capabilities and the runtime's seccomp profile. (The optional
/// in-cluster etcd and object store run third-party images as they ship; production uses
/// external ones.)
#[test]
fn engine_pods_are_locked_down() {
    for example_name in ["minimal", "production"] {
        let objs = build(&example(example_name)).unwrap();
        let mut engine = 0;
        for p in &objs {
            let v = p.child.to_json();
            let Some(spec) = v["spec"]["template"]["spec"].as_object() else {
                continue;
            };
            let component = &v["metadata"]["labels"]["app.kubernetes.io/component"];
            if component == "etcd" || component == "object-store" {
                continue;
            }
            engine += 1;
            let pod = &spec["securityContext"];
            assert_eq!(pod["runAsNonRoot"], json!(true), "{component}");
            assert_eq!(pod["seccompProfile"]["type"], json!("RuntimeDefault"));
            for c in spec["containers"].as_array().unwrap() {
                let sc = &c["securityContext"];
                assert_eq!(sc["readOnlyRootFilesystem"], json!(true), "{component}");
                assert_eq!(sc["allowPrivilegeEscalation"], json!(false));
                assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
            }
            assert_eq!(spec["automountServiceAccountToken"], json!(false));
        }
        assert_eq!(engine, 5, "{example_name}: one workload per engine role");
    }
}
