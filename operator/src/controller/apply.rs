//! The stage walk: server-side apply of each stage's objects (skipped when the
//! live spec hash matches), readiness gating, and pruning of objects the spec
//! no longer asks for.

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use tracing::{debug, info};

use super::events::{Notice, applied_notice};
use super::status::{Live, Outcome, stage_state, workload_ready};
use super::{Error, Reconciler, key};
use crate::builders::{
    self, Child, FIELD_MANAGER, MANAGED_BY, Planned, SPEC_HASH_ANNOTATION, Stage,
};

/// Whether the live object already carries `child`'s spec: the same spec hash
/// and, unless an HPA owns it, the same replica count.
pub(super) fn is_current(child: &Child, live: &DynamicObject) -> bool {
    let desired = child.spec_hash();
    let same_hash = live.annotations().get(SPEC_HASH_ANNOTATION) == Some(&desired);
    let replicas_ok = match child.desired_replicas() {
        // the HPA (or nobody) owns replicas
        None => true,
        Some(r) => live.data["spec"]["replicas"].as_i64() == Some(i64::from(r)),
    };
    same_hash && replicas_ok
}

impl Reconciler<'_> {
    /// Applies `child` unless the live object already matches; returns the
    /// live object and whether it was applied.
    pub(super) async fn ensure(
        &self,
        stage: Stage,
        child: &Child,
    ) -> Result<(DynamicObject, bool), Error> {
        let api = self.dyn_api(child);
        let (kind, name) = (child.kind(), child.name());
        let desired = child.to_dynamic();
        let live = api
            .get_opt(&name)
            .await
            .map_err(Error::get(&kind, &self.namespace, &name))?;
        if let Some(live) = live
            && is_current(child, &live)
        {
            return Ok((live, false));
        }
        debug!(cluster = %key(self.mc), kind = %child.kind(), name = %child.name(), "apply");
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let applied = api
            .patch(&name, &params, &Patch::Apply(&desired))
            .await
            .map_err(Error::apply(stage, &kind, &self.namespace, &name))?;
        self.ctx.metrics.writes.inc();
        Ok((applied, true))
    }

    /// The live object of `child`, if it exists.
    pub(super) async fn get_live(&self, child: &Child) -> Result<Option<DynamicObject>, Error> {
        self.dyn_api(child)
            .get_opt(&child.name())
            .await
            .map_err(Error::get(&child.kind(), &self.namespace, &child.name()))
    }

    /// Deletes objects this cluster owns that the spec no longer asks for.
    pub(super) async fn prune(&self, planned: &[Planned], everything: bool) -> Result<(), Error> {
        use kube::core::ApiResource;
        let kinds: Vec<(ApiResource, bool)> = vec![
            (ApiResource::erase::<HorizontalPodAutoscaler>(&()), true),
            (ApiResource::erase::<StatefulSet>(&()), everything),
            (ApiResource::erase::<Deployment>(&()), everything),
            (ApiResource::erase::<Service>(&()), everything),
            (ApiResource::erase::<PodDisruptionBudget>(&()), everything),
        ];
        let uid = self.mc.metadata.uid.clone();
        let selector = format!(
            "app.kubernetes.io/instance={},app.kubernetes.io/managed-by={MANAGED_BY}",
            self.name
        );
        for (ar, enabled) in kinds {
            if !enabled {
                continue;
            }
            let api: Api<DynamicObject> =
                Api::namespaced_with(self.ctx.client.clone(), &self.namespace, &ar);
            for obj in api
                .list(&ListParams::default().labels(&selector))
                .await
                .map_err(Error::list(&ar.plural, &self.namespace, &selector))?
                .items
            {
                let name = obj.name_any();
                let wanted = planned
                    .iter()
                    .any(|p| p.child.kind() == ar.kind && p.child.name() == name);
                let ours = obj
                    .owner_references()
                    .iter()
                    .any(|o| o.controller == Some(true) && Some(&o.uid) == uid.as_ref());
                if wanted || !ours || obj.metadata.deletion_timestamp.is_some() {
                    continue;
                }
                info!(cluster = %key(self.mc), kind = %ar.kind, %name, "deleting object no longer in the spec");
                match api.delete(&name, &DeleteParams::background()).await {
                    Ok(_) => {
                        self.ctx.metrics.writes.inc();
                        let note = format!("deleted {} {name}: no longer in the spec", ar.kind);
                        self.events
                            .publish(Notice::normal("Pruned", "Prune", note))
                            .await;
                    }
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(e) => return Err(Error::delete(&ar.kind, &self.namespace, &name)(e)),
                }
            }
        }
        Ok(())
    }

    pub(super) async fn walk(&self, planned: &[Planned]) -> Result<Outcome, Error> {
        let mut out = Outcome::default();
        for stage in Stage::all() {
            let children = stage_children(planned, stage);
            let mut workloads = vec![];
            if out.waiting.is_none() {
                let mut applied = vec![];
                for child in &children {
                    let (live, changed) = self.ensure(stage, child).await?;
                    if changed {
                        applied.push(*child);
                    }
                    if child.is_workload() {
                        workloads.push(Live {
                            obj: live,
                            current: true,
                        });
                    }
                }
                if let Some(notice) = applied_notice(stage, &applied) {
                    self.events.publish(notice).await;
                }
            } else {
                // a later stage: observe only, so the status shows its state
                workloads = self.observe(&children).await?;
            }
            let state = stage_state(
                &workloads,
                children.iter().filter(|c| c.is_workload()).count(),
            );
            self.record(stage, &workloads, &mut out);
            out.unready.extend(
                workloads
                    .iter()
                    .filter(|w| !workload_ready(&w.obj).0)
                    .map(|w| w.obj.clone()),
            );
            if out.waiting.is_none() && !state.ready {
                out.waiting = Some((stage, state.detail));
            }
        }
        Ok(out)
    }

    /// Paused: read the workloads for the status, write nothing else.
    pub(super) async fn observe_only(&self) -> Result<Outcome, Error> {
        let mut out = Outcome::default();
        let planned = match builders::build(self.mc) {
            Ok(p) => p,
            Err(_) => return Ok(out),
        };
        for stage in Stage::all() {
            let children = stage_children(&planned, stage);
            let workloads = self.observe(&children).await?;
            self.record(stage, &workloads, &mut out);
        }
        Ok(out)
    }

    /// The live workloads among `children`, without applying anything.
    async fn observe(&self, children: &[&Child]) -> Result<Vec<Live>, Error> {
        let mut workloads = vec![];
        for child in children.iter().filter(|c| c.is_workload()) {
            if let Some(obj) = self.get_live(child).await? {
                let current = is_current(child, &obj);
                workloads.push(Live { obj, current });
            }
        }
        Ok(workloads)
    }
}

/// The planned objects of one stage, in plan order.
fn stage_children(planned: &[Planned], stage: Stage) -> Vec<&Child> {
    planned
        .iter()
        .filter(|p| p.stage == stage)
        .map(|p| &p.child)
        .collect()
}
