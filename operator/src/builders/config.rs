//! The engine ConfigMap: operator defaults deep-merged with `spec.config`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use serde_json::{Value, json};

use super::{BuildError, Ctx, short_hash};

/// Key (and file name under `/etc/ferrovus/`) of the engine configuration.
pub const CONFIG_FILE: &str = "ferrovus.yaml";

/// The engine configuration: the settings the operator needs (etcd metadata
/// and S3 storage, a per-cluster etcd prefix, JSON logs) with `spec.config`
/// merged over them. Endpoints, bucket and credentials are passed as
/// `FERROVUS_*` environment variables (see the workloads), so that a change of
/// dependency rolls pods but does not touch this file.
pub fn engine_config(mc_namespace: &str, mc_name: &str, user: Option<&Value>) -> Value {
    let mut base = json!({
        "meta": {
            "kind": "etcd",
            "etcd_prefix": format!("ferrovus/{mc_namespace}/{mc_name}"),
        },
        "storage": {
            "kind": "s3",
            "s3": {
                "force_path_style": true,
                "create_bucket": true,
            },
        },
        "log": { "format": "json" },
        // on SIGTERM a proxy stays serving, unready, while its endpoint is removed
        "proxy": { "drain_delay_ms": 5000 },
    });
    if let Some(user) = user {
        deep_merge(&mut base, user.clone());
    }
    base
}

/// Recursive merge of JSON objects: keys of `over` win; non-objects replace.
pub fn deep_merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(bv) => deep_merge(bv, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

/// The `<cluster>-config` ConfigMap mounted at `/etc/ferrovus` by every engine pod.
pub(crate) fn config_map(ctx: &Ctx<'_>) -> Result<ConfigMap, BuildError> {
    let cfg = engine_config(&ctx.namespace, &ctx.name, ctx.mc.spec.config.as_ref());
    let yaml = serde_yaml_ng::to_string(&cfg)
        .map_err(|e| BuildError::InvalidSpec(format!("spec.config: {e}")))?;
    Ok(ConfigMap {
        metadata: ctx.meta(ctx.object_name("config"), ctx.labels("config")),
        data: Some(BTreeMap::from([(CONFIG_FILE.to_string(), yaml)])),
        ..Default::default()
    })
}

/// Hash of the ConfigMap's content, put in the engine pod templates so a
/// configuration change rolls them.
pub fn config_hash(cm: &ConfigMap) -> String {
    short_hash(&serde_json::to_string(&cm.data).expect("json"))
}
