//! Secrets: the external S3 Secret must exist with both keys; the in-cluster
//! object store's credentials are generated once.

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use tracing::info;

use super::events::Notice;
use super::{Error, Reconciler, key};
use crate::builders::{MANAGED_BY, object_store_secret_name};

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
            let in_data = secret.data.as_ref().is_some_and(|d| d.contains_key(&k));
            let in_string = secret
                .string_data
                .as_ref()
                .is_some_and(|d| d.contains_key(&k));
            if !in_data && !in_string {
                return Ok(Some(format!(
                    "Secret {}/{name} (spec.dependencies.storage.external.secretRef) has no key {k:?} (spec.dependencies.storage.external.secretRef.{field})",
                    self.namespace
                )));
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
        let secrets: Api<Secret> = Api::namespaced(self.ctx.client.clone(), &self.namespace);
        let name = object_store_secret_name(&self.name);
        if secrets
            .get_opt(&name)
            .await
            .map_err(Error::get("Secret", &self.namespace, &name))?
            .is_some()
        {
            return Ok(());
        }
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(self.namespace.clone()),
                labels: Some(
                    [
                        ("app.kubernetes.io/name", "ferrovus"),
                        ("app.kubernetes.io/instance", self.name.as_str()),
                        ("app.kubernetes.io/component", "object-store"),
                        ("app.kubernetes.io/managed-by", MANAGED_BY),
                    ]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ),
                ..Default::default()
            },
            type_: Some("Opaque".into()),
            data: Some(
                [
                    ("accessKeyId", random_token(20)),
                    ("secretAccessKey", random_token(40)),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.into_bytes())))
                .collect(),
            ),
            ..Default::default()
        };
        match secrets.create(&PostParams::default(), &secret).await {
            Ok(_) => {
                self.ctx.metrics.writes.inc();
                info!(cluster = %key(self.mc), secret = %name, "generated object store credentials");
                let note = format!(
                    "generated the in-cluster object store's credentials in Secret {name} (kept when the cluster is deleted with deletionPolicy: Retain)"
                );
                self.events
                    .publish(Notice::normal("CredentialsGenerated", "Create", note))
                    .await;
                Ok(())
            }
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
            Err(e) => Err(Error::create("Secret", &self.namespace, &name)(e)),
        }
    }
}

fn random_token(len: usize) -> String {
    use rand::Rng;
    rand::rng()
        .sample_iter(&rand::distr::Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}
