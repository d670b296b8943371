//! The `ferrovus.io/cleanup` finalizer: present exactly while `deletionPolicy`
//! is `Delete`; on deletion it removes the cluster's PVCs and generated Secret.

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use serde_json::json;
use tracing::info;

use super::events::Notice;
use super::{Error, FINALIZER, Reconciler, key};
use crate::builders::{MANAGED_BY, object_store_secret_name};
use crate::crd::{DeletionPolicy, Phase};

impl Reconciler<'_> {
    pub(super) fn has_finalizer(&self) -> bool {
        self.mc.finalizers().iter().any(|f| f == FINALIZER)
    }

    /// The resource's finalizers without this operator's.
    fn finalizers_but_ours(&self) -> Vec<String> {
        self.mc
            .finalizers()
            .iter()
            .filter(|f| *f != FINALIZER)
            .cloned()
            .collect()
    }

    pub(super) async fn set_finalizers(
        &self,
        finalizers: Vec<String>,
        resource_version: Option<String>,
    ) -> Result<(), Error> {
        // resourceVersion makes this a compare-and-swap: a concurrent change of
        // the finalizer list fails with 409 and is retried
        let patch = json!({"metadata": {
            "finalizers": finalizers,
            "resourceVersion": resource_version.or_else(|| self.mc.resource_version()),
        }});
        self.mc_api()
            .patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|source| Error::Finalizers {
                namespace: self.namespace.clone(),
                name: self.name.clone(),
                source: Box::new(source),
            })?;
        self.ctx.metrics.writes.inc();
        Ok(())
    }

    /// The finalizer is present exactly while `deletionPolicy` is `Delete`.
    pub(super) async fn sync_finalizer(&self) -> Result<(), Error> {
        let wants = self.mc.spec.deletion_policy() == DeletionPolicy::Delete;
        let has = self.has_finalizer();
        if wants && !has {
            let mut f = self.mc.finalizers().to_vec();
            f.push(FINALIZER.into());
            self.set_finalizers(f, None).await?;
        } else if !wants && has {
            self.set_finalizers(self.finalizers_but_ours(), None)
                .await?;
        }
        Ok(())
    }

    pub(super) async fn finalize(&self) -> Result<Action, Error> {
        if !self.has_finalizer() {
            return Ok(Action::await_change());
        }
        let mut status = self.old_status();
        let mut resource_version = None;
        if status.phase != Some(Phase::Deleting) {
            status.phase = Some(Phase::Deleting);
            resource_version = self.write_status(status).await?;
        }
        info!(cluster = %key(self.mc), "deleting persistent volume claims (deletionPolicy: Delete)");
        let selector = format!(
            "app.kubernetes.io/instance={},app.kubernetes.io/managed-by={MANAGED_BY}",
            self.name
        );
        let pvcs: Api<PersistentVolumeClaim> =
            Api::namespaced(self.ctx.client.clone(), &self.namespace);
        let mut deleted = vec![];
        for pvc in pvcs
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(Error::list(
                "persistentvolumeclaims",
                &self.namespace,
                &selector,
            ))?
            .items
        {
            if pvc.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let name = pvc.name_any();
            match pvcs.delete(&name, &DeleteParams::background()).await {
                Ok(_) => {
                    self.ctx.metrics.writes.inc();
                    deleted.push(format!("PersistentVolumeClaim {name}"));
                }
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => {
                    return Err(Error::delete(
                        "PersistentVolumeClaim",
                        &self.namespace,
                        &name,
                    )(e));
                }
            }
        }
        let secrets: Api<Secret> = Api::namespaced(self.ctx.client.clone(), &self.namespace);
        let generated = object_store_secret_name(&self.name);
        if let Some(s) = secrets.get_opt(&generated).await.map_err(Error::get(
            "Secret",
            &self.namespace,
            &generated,
        ))? && s
            .labels()
            .get("app.kubernetes.io/managed-by")
            .map(String::as_str)
            == Some(MANAGED_BY)
        {
            match secrets
                .delete(&generated, &DeleteParams::background())
                .await
            {
                Ok(_) => {
                    self.ctx.metrics.writes.inc();
                    deleted.push(format!("Secret {generated}"));
                }
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(Error::delete("Secret", &self.namespace, &generated)(e)),
            }
        }
        if !deleted.is_empty() {
            let note = format!("deletionPolicy: Delete: deleted {}", deleted.join(", "));
            self.events
                .publish(Notice::normal("CleanedUp", "Cleanup", note))
                .await;
        }
        self.set_finalizers(self.finalizers_but_ours(), resource_version)
            .await?;
        Ok(Action::await_change())
    }
}
