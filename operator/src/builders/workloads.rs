//! Engine components: coordinator and streaming nodes as StatefulSets, query,
//! data and proxy nodes as Deployments, each with a headless Service, a PDB and
//! (proxy, query, data) an optional HPA; the proxy also gets the client Service.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment, StatefulSet,
    StatefulSetSpec,
};
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HPAScalingRules, HorizontalPodAutoscaler,
    HorizontalPodAutoscalerBehavior, HorizontalPodAutoscalerSpec, MetricSpec, MetricTarget,
    ResourceMetricSource,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar,
    EnvVarSource, ObjectFieldSelector, PodSecurityContext, PodSpec, PodTemplateSpec,
    SeccompProfile, SecretKeySelector, SecretVolumeSource, SecurityContext, Service,
    ServiceAccount, ServicePort, ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::deps::{
    CLUSTER_SECRET_KEY, cluster_secret_name, etcd_endpoints, http_probe, pvc_template, s3_wiring,
    svc_port,
};
use super::{CONFIG_HASH_ANNOTATION, Child, Ctx};
use crate::crd::{Autoscaling, DEFAULT_PROXY_PORT, Role};

/// gRPC port of the proxy (client API).
pub const GRPC_PORT: i32 = 19530;
/// gRPC port of the other roles (internal API).
pub const INTERNAL_GRPC_PORT: i32 = 19531;
/// HTTP port of every role: `/healthz`, `/readyz`, `/metrics`.
pub const HTTP_PORT: i32 = 9091;
/// Data directory inside the engine containers.
pub const DATA_DIR: &str = "/var/lib/ferrovus";
/// Non-root user of the engine image.
const ENGINE_UID: i64 = 65532;

/// The `<cluster>` ServiceAccount of the engine pods (no API token mounted).
pub(crate) fn service_account(ctx: &Ctx<'_>) -> ServiceAccount {
    ServiceAccount {
        metadata: ctx.meta(ctx.name.clone(), ctx.labels("ferrovus")),
        automount_service_account_token: Some(false),
        ..Default::default()
    }
}

/// PodDisruptionBudget with `maxUnavailable: 1`.
pub(crate) fn pdb(ctx: &Ctx<'_>, component: &str) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: ctx.meta(ctx.object_name(component), ctx.labels(component)),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(ctx.selector_labels(component)),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn grpc_port(role: Role) -> i32 {
    if role == Role::Proxy {
        GRPC_PORT
    } else {
        INTERNAL_GRPC_PORT
    }
}

fn env_value(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    }
}

fn env_field(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn env_secret(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.into(),
                key: key.into(),
                optional: None,
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Environment of an engine container: the process contract's `FERROVUS_*`
/// variables, the pod's identity, then the user's extra variables (which
/// replace operator ones of the same name).
fn engine_env(ctx: &Ctx<'_>, role: Role, extra: &[EnvVar]) -> Vec<EnvVar> {
    let s3 = s3_wiring(ctx);
    let mut env = vec![
        env_value("FERROVUS_DATA_DIR", DATA_DIR),
        env_value("FERROVUS_GRPC_PORT", grpc_port(role).to_string()),
        env_value("FERROVUS_HTTP_PORT", HTTP_PORT.to_string()),
        env_value(
            "FERROVUS_ETCD_ENDPOINTS",
            etcd_endpoints(&ctx.mc.spec, &ctx.name, &ctx.namespace).join(","),
        ),
        env_value("FERROVUS_S3_ENDPOINT", s3.endpoint),
        env_value("FERROVUS_S3_BUCKET", s3.bucket),
    ];
    if let Some(region) = s3.region {
        env.push(env_value("FERROVUS_S3_REGION", region));
    }
    env.push(env_secret(
        "FERROVUS_S3_ACCESS_KEY_ID",
        &s3.secret,
        &s3.access_key_id_key,
    ));
    env.push(env_secret(
        "FERROVUS_S3_SECRET_ACCESS_KEY",
        &s3.secret,
        &s3.secret_access_key_key,
    ));
    env.push(env_secret(
        "FERROVUS_CLUSTER__SECRET",
        &cluster_secret_name(&ctx.name),
        CLUSTER_SECRET_KEY,
    ));
    env.extend(security_env(ctx, role));
    env.push(env_field("POD_NAME", "metadata.name"));
    env.push(env_field("POD_NAMESPACE", "metadata.namespace"));
    env.push(env_field("POD_IP", "status.podIP"));
    for e in extra {
        match env.iter_mut().find(|x| x.name == e.name) {
            Some(slot) => *slot = e.clone(),
            None => env.push(e.clone()),
        }
    }
    env
}

/// Where a proxy finds the TLS Secret's files.
const TLS_DIR: &str = "/etc/ferrovus/tls";

/// `spec.security` as engine settings: authorisation everywhere (the root password only where
/// the root user is created: the proxies), TLS on the proxies.
fn security_env(ctx: &Ctx<'_>, role: Role) -> Vec<EnvVar> {
    let Some(sec) = &ctx.mc.spec.security else {
        return vec![];
    };
    let mut env = vec![];
    if let Some(a) = sec.authorization.as_ref().filter(|a| a.enabled) {
        env.push(env_value(
            "FERROVUS_SECURITY__AUTHORIZATION_ENABLED",
            "true",
        ));
        if role == Role::Proxy
            && let Some(r) = &a.root_password_secret
        {
            env.push(env_secret(
                "FERROVUS_SECURITY__ROOT_PASSWORD",
                &r.name,
                &r.key_or("password"),
            ));
        }
    }
    if role == Role::Proxy
        && let Some(tls) = &sec.tls
    {
        env.push(env_value(
            "FERROVUS_SECURITY__TLS_MODE",
            tls.mode.milvus_mode().to_string(),
        ));
        for (var, file) in [
            ("FERROVUS_SECURITY__TLS__SERVER_PEM_PATH", "tls.crt"),
            ("FERROVUS_SECURITY__TLS__SERVER_KEY_PATH", "tls.key"),
            ("FERROVUS_SECURITY__TLS__CA_PEM_PATH", "ca.crt"),
        ] {
            env.push(env_value(var, format!("{TLS_DIR}/{file}")));
        }
    }
    env
}

fn pod_template(ctx: &Ctx<'_>, role: Role, config_hash: &str) -> PodTemplateSpec {
    let spec = &ctx.mc.spec;
    let comp = spec.component(role);
    let image = spec.image_for(role);
    let mut volume_mounts = vec![
        VolumeMount {
            name: "config".into(),
            mount_path: "/etc/ferrovus".into(),
            read_only: Some(true),
            ..Default::default()
        },
        VolumeMount {
            name: "data".into(),
            mount_path: DATA_DIR.into(),
            ..Default::default()
        },
    ];
    let tls = ctx
        .mc
        .spec
        .security
        .as_ref()
        .and_then(|s| s.tls.as_ref())
        .filter(|_| role == Role::Proxy);
    if tls.is_some() {
        volume_mounts.push(VolumeMount {
            name: "tls".into(),
            mount_path: TLS_DIR.into(),
            read_only: Some(true),
            ..Default::default()
        });
    }
    volume_mounts.sort_by(|a, b| a.name.cmp(&b.name));
    let container = Container {
        name: "ferrovus".into(),
        image: Some(image.clone()),
        image_pull_policy: spec.image_pull_policy.map(|p| p.as_str().to_string()),
        args: Some(vec!["run".into(), role.as_str().into()]),
        ports: Some(vec![
            ContainerPort {
                name: Some("grpc".into()),
                container_port: grpc_port(role),
                protocol: Some("TCP".into()),
                ..Default::default()
            },
            ContainerPort {
                name: Some("http".into()),
                container_port: HTTP_PORT,
                protocol: Some("TCP".into()),
                ..Default::default()
            },
        ]),
        env: Some(engine_env(ctx, role, &comp.env)),
        resources: comp.resources.clone(),
        liveness_probe: Some(http_probe("/healthz", HTTP_PORT, 10, 3)),
        readiness_probe: Some(http_probe("/readyz", HTTP_PORT, 5, 3)),
        startup_probe: Some(http_probe("/healthz", HTTP_PORT, 5, 60)),
        // the engine's fatal error (e.g. a bad spec.config key) becomes the
        // container's termination message, which the operator reports
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        volume_mounts: Some(volume_mounts),
        // the engine writes only to its data volume (and the termination log)
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut volumes = vec![Volume {
        name: "config".into(),
        config_map: Some(ConfigMapVolumeSource {
            name: ctx.object_name("config"),
            ..Default::default()
        }),
        ..Default::default()
    }];
    if let Some(tls) = tls {
        volumes.push(Volume {
            name: "tls".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(tls.secret_name.clone()),
                default_mode: Some(0o440),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    if role != Role::Streaming {
        // streaming nodes get a PersistentVolumeClaim instead
        volumes.push(Volume {
            name: "data".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        });
    }
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(ctx.versioned_labels(role.as_str(), &image)),
            annotations: Some(BTreeMap::from([(
                CONFIG_HASH_ANNOTATION.to_string(),
                config_hash.to_string(),
            )])),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            service_account_name: Some(ctx.name.clone()),
            automount_service_account_token: Some(false),
            containers: vec![container],
            volumes: Some(volumes),
            image_pull_secrets: ctx.pull_secrets(),
            node_selector: (!comp.node_selector.is_empty()).then(|| comp.node_selector.clone()),
            tolerations: (!comp.tolerations.is_empty()).then(|| comp.tolerations.clone()),
            affinity: comp.affinity.clone(),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(ENGINE_UID),
                run_as_group: Some(ENGINE_UID),
                fs_group: Some(ENGINE_UID),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

fn hpa(ctx: &Ctx<'_>, role: Role, a: &Autoscaling) -> HorizontalPodAutoscaler {
    let name = ctx.object_name(role.as_str());
    let metric = |resource: &str, pct: i32| MetricSpec {
        type_: "Resource".into(),
        resource: Some(ResourceMetricSource {
            name: resource.into(),
            target: MetricTarget {
                type_: "Utilization".into(),
                average_utilization: Some(pct),
                ..Default::default()
            },
        }),
        ..Default::default()
    };
    let mut metrics = vec![];
    if let Some(cpu) = a.target_cpu_utilization_percentage {
        metrics.push(metric("cpu", cpu));
    }
    if let Some(mem) = a.target_memory_utilization_percentage {
        metrics.push(metric("memory", mem));
    }
    HorizontalPodAutoscaler {
        metadata: ctx.meta(name.clone(), ctx.labels(role.as_str())),
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: "Deployment".into(),
                name,
            },
            min_replicas: Some(a.min_replicas),
            max_replicas: a.max_replicas,
            metrics: Some(metrics),
            behavior: a.scale_down_stabilization_seconds.map(|secs| {
                HorizontalPodAutoscalerBehavior {
                    scale_down: Some(HPAScalingRules {
                        stabilization_window_seconds: Some(secs),
                        ..Default::default()
                    }),
                    ..Default::default()
                }
            }),
        }),
        ..Default::default()
    }
}

/// Every object of one engine component.
pub(crate) fn build(ctx: &Ctx<'_>, role: Role, config_hash: &str) -> Vec<Child> {
    let spec = &ctx.mc.spec;
    let comp = spec.component(role);
    let component = role.as_str();
    let name = ctx.object_name(component);
    let headless = ctx.object_name(&format!("{component}-headless"));
    let image = spec.image_for(role);
    let labels = ctx.versioned_labels(component, &image);
    let selector = LabelSelector {
        match_labels: Some(ctx.selector_labels(component)),
        ..Default::default()
    };
    let template = pod_template(ctx, role, config_hash);
    let autoscaling = spec.autoscaling(role);
    let replicas = if autoscaling.is_some() {
        // the HPA owns the replica count: leave the field out of the apply
        None
    } else {
        Some(comp.replicas.unwrap_or(1))
    };

    let mut out = vec![Child::Service(Service {
        metadata: ctx.meta(headless.clone(), ctx.labels(component)),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            selector: Some(ctx.selector_labels(component)),
            ports: Some(vec![
                svc_port("grpc", grpc_port(role)),
                svc_port("http", HTTP_PORT),
            ]),
            ..Default::default()
        }),
        ..Default::default()
    })];

    if role == Role::Proxy {
        let svc = spec.proxy_service();
        let mut meta = ctx.meta(name.clone(), ctx.labels(component));
        if !svc.annotations.is_empty() {
            meta.annotations = Some(svc.annotations.clone());
        }
        out.push(Child::Service(Service {
            metadata: meta,
            spec: Some(ServiceSpec {
                type_: Some(svc.type_.unwrap_or_default().as_str().into()),
                selector: Some(ctx.selector_labels(component)),
                ports: Some(vec![ServicePort {
                    name: Some("grpc".into()),
                    port: svc.port.unwrap_or(DEFAULT_PROXY_PORT),
                    target_port: Some(IntOrString::String("grpc".into())),
                    protocol: Some("TCP".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }));
    }

    if role.is_stateful() {
        let claims = (role == Role::Streaming).then(|| {
            vec![pvc_template(
                ctx,
                component,
                Some(&spec.streaming_persistence()),
            )]
        });
        out.push(Child::StatefulSet(StatefulSet {
            metadata: ctx.meta(name.clone(), labels),
            spec: Some(StatefulSetSpec {
                replicas,
                service_name: Some(headless),
                pod_management_policy: Some("Parallel".into()),
                selector,
                template,
                volume_claim_templates: claims,
                ..Default::default()
            }),
            ..Default::default()
        }));
    } else {
        out.push(Child::Deployment(Deployment {
            metadata: ctx.meta(name.clone(), labels),
            spec: Some(DeploymentSpec {
                replicas,
                selector,
                template,
                strategy: Some(DeploymentStrategy {
                    type_: Some("RollingUpdate".into()),
                    rolling_update: Some(RollingUpdateDeployment {
                        max_surge: Some(IntOrString::Int(1)),
                        max_unavailable: Some(IntOrString::Int(0)),
                    }),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }));
    }
    out.push(Child::PodDisruptionBudget(pdb(ctx, component)));
    if let Some(a) = autoscaling {
        out.push(Child::HorizontalPodAutoscaler(hpa(ctx, role, &a)));
    }
    out
}
