//! Secrets: the external S3 Secret and the Secrets of `spec.security` must exist
//! with their keys; the in-cluster object store's credentials and the cluster's
//! internal secret are generated once.

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::api::{Api, PostParams};
use tracing::info;

use super::events::Notice;
use super::{Error, Reconciler, key};
use crate::builders::{
    CLUSTER_SECRET_KEY, MANAGED_BY, cluster_secret_name, object_store_secret_name,
};
use crate::crd::TlsMode;

impl Reconciler<'_> {
    /// The external S3 Secret must exist and hold both keys.
    pub(super) async fn check_secrets(&self) -> Result<Option<String>, Error> {
        let Some(ext) = self.mc.spec.storage().external else {
            return Ok(None);
        };
        let secrets: Api<Secret> = Api::namespaced(self.ctx.client.clone(), &self.namespace);
        let name = &ext.secret_ref.name;
        let Some(secret) =
            secrets
                .get_opt(name)
                .await
                .map_err(Error::get("Secret", &self.namespace, name))?
        else {
            return Ok(Some(format!(
                "Secret {}/{name} (spec.dependencies.storage.external.secretRef) not found",
                self.namespace
            )));
        };
        let keys = [
            (
                "accessKeyIdKey",
                ext.secret_ref
                    .access_key_id_key
                    .clone()
                    .unwrap_or_else(|| "accessKeyId".into()),
            ),
            (
                "secretAccessKeyKey",
                ext.secret_ref
                    .secret_access_key_key
                    .clone()
                    .unwrap_or_else(|| "secretAccessKey".into()),
            ),
        ];
        for (field, k) in keys {
            if !has_key(&secret, &k) {
                return Ok(Some(format!(
                    "Secret {}/{name} (spec.dependencies.storage.external.secretRef) has no key {k:?} (spec.dependencies.storage.external.secretRef.{field})",
                    self.namespace
                )));
            }
        }
        Ok(None)
    }

    /// Secrets `spec.security` names must exist with their keys: the root password, and the TLS
    /// certificate (with `ca.crt` for mutual TLS).
    pub(super) async fn check_security_secrets(&self) -> Result<Option<String>, Error> {
        let Some(sec) = &self.mc.spec.security else {
            return Ok(None);
        };
        let mut wanted: Vec<(String, Vec<String>, &str)> = vec![];
        if let Some(a) = sec.authorization.as_ref().filter(|a| a.enabled)
            && let Some(r) = &a.root_password_secret
        {
            wanted.push((
                r.name.clone(),
                vec![r.key_or("password")],
                "spec.security.authorization.rootPasswordSecret",
            ));
        }
        if let Some(tls) = &sec.tls {
            let mut keys = vec!["tls.crt".to_string(), "tls.key".to_string()];
            if tls.mode == TlsMode::Mutual {
                keys.push("ca.crt".into());
            }
            wanted.push((
                tls.secret_name.clone(),
                keys,
                "spec.security.tls.secretName",
            ));
        }
        let secrets: Api<Secret> = Api::namespaced(self.ctx.client.clone(), &self.namespace);
        for (name, keys, field) in wanted {
            let Some(secret) = secrets.get_opt(&name).await.map_err(Error::get(
                "Secret",
                &self.namespace,
                &name,
            ))?
            else {
                return Ok(Some(format!(
                    "Secret {}/{name} ({field}) not found",
                    self.namespace
                )));
            };
            for k in keys {
                if !has_key(&secret, &k) {
                    return Ok(Some(format!(
                        "Secret {}/{name} ({field}) has no key {k:?}",
                        self.namespace
                    )));
                }
            }
        }
        Ok(None)
    }

    /// Creates the in-cluster object store's credentials once (never overwritten;
    /// not owned, so that retained PVCs keep matching credentials).
    pub(super) async fn ensure_object_store_secret(&self) -> Result<(), Error> {
        let storage = self.mc.spec.storage();
        if storage.external.is_some() || storage.in_cluster.is_none() {
            return Ok(());
        }
        let name = object_store_secret_name(&self.name);
        let data = [
            ("accessKeyId", random_token(20)),
            ("secretAccessKey", random_token(40)),
        ];
        let note = format!(
            "generated the in-cluster object store's credentials in Secret {name} (kept when the cluster is deleted with deletionPolicy: Retain)"
        );
        let notice = Notice::normal("CredentialsGenerated", "Create", note);
        self.generate_secret(&name, "object-store", &data, false, notice)
            .await
    }

    /// Creates the cluster's internal secret once (owned: deleted with the cluster).
    pub(super) async fn ensure_cluster_secret(&self) -> Result<(), Error> {
        let name = cluster_secret_name(&self.name);
        let data = [(CLUSTER_SECRET_KEY, random_token(48))];
        let note = format!(
            "generated the secret the cluster's pods present to each other in Secret {name}"
        );
        let notice = Notice::normal("ClusterSecretGenerated", "Create", note);
        self.generate_secret(&name, "cluster-secret", &data, true, notice)
            .await
    }

    /// Create the Secret `name` with `data` unless it exists (a Secret of that name is used as
    /// is, never overwritten).
    async fn generate_secret(
        &self,
        name: &str,
        component: &str,
        data: &[(&str, String)],
        owned: bool,
        notice: Notice,
    ) -> Result<(), Error> {
        let secrets: Api<Secret> = Api::namespaced(self.ctx.client.clone(), &self.namespace);
        if secrets
            .get_opt(name)
            .await
            .map_err(Error::get("Secret", &self.namespace, name))?
            .is_some()
        {
            return Ok(());
        }
        let owner = owned
            .then(|| self.mc.controller_owner_ref(&()))
            .flatten()
            .map(|o| vec![o]);
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some(self.namespace.clone()),
                labels: Some(
                    [
                        ("app.kubernetes.io/name", "ferrovus"),
                        ("app.kubernetes.io/instance", self.name.as_str()),
                        ("app.kubernetes.io/component", component),
                        ("app.kubernetes.io/managed-by", MANAGED_BY),
                    ]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ),
                owner_references: owner,
                ..Default::default()
            },
            type_: Some("Opaque".into()),
            data: Some(
                data.iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.clone().into_bytes())))
                    .collect(),
            ),
            ..Default::default()
        };
        match secrets.create(&PostParams::default(), &secret).await {
            Ok(_) => {
                self.ctx.metrics.writes.inc();
                info!(cluster = %key(self.mc), secret = %name, "generated a secret");
                self.events.publish(notice).await;
                Ok(())
            }
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
            Err(e) => Err(Error::create("Secret", &self.namespace, name)(e)),
        }
    }
}

/// Whether `secret` holds `key` (in `data`, or in `stringData` not yet folded in).
fn has_key(secret: &Secret, key: &str) -> bool {
    secret.data.as_ref().is_some_and(|d| d.contains_key(key))
        || secret
            .string_data
            .as_ref()
            .is_some_and(|d| d.contains_key(key))
}

fn random_token(len: usize) -> String {
    use rand::Rng;
    rand::rng()
        .sample_iter(&rand::distr::Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}
