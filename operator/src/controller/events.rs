//! Kubernetes Events on the MilvusCluster (`kubectl describe mc`), published
//! through kube's [`Recorder`] with the reporter `ferrovus-operator`.
//!
//! Events are emitted only for something that happened: a phase change, a
//! Degraded cause appearing, changing or clearing, an object actually applied
//! or deleted, a reconcile error different from the previous one. A settled
//! cluster therefore emits nothing. Publishing is best effort: a failure is
//! logged and never fails the reconcile.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tracing::{debug, warn};

use super::conditions::{DEGRADED, PROGRESSING, READY, find};
use super::error::is_namespace_terminating;
use super::{Reconciler, key};
use crate::builders::{Child, Stage};
use crate::crd::{MilvusCluster, MilvusClusterStatus, Phase};

/// `reportingController` of every Event.
pub const REPORTER: &str = "ferrovus-operator";
/// Events API limit of a note.
const MAX_NOTE_BYTES: usize = 1024;

/// One Event to publish (pure data, so the rules are unit-tested).
#[derive(Clone, Debug, PartialEq)]
pub struct Notice {
    /// `Warning` rather than `Normal`.
    pub warning: bool,
    /// CamelCase reason (`Ready`, `ImagePullFailed`, `RolloutStarted`, …).
    pub reason: String,
    /// What the operator did (`Reconcile`, `Apply`, `Prune`, `Cleanup`, …).
    pub action: &'static str,
    /// The human-readable message.
    pub note: String,
    /// The object the event is about besides the MilvusCluster (e.g. the workload applied).
    pub related: Option<ObjectReference>,
}

impl Notice {
    /// A `Normal` event.
    pub fn normal(
        reason: impl Into<String>,
        action: &'static str,
        note: impl Into<String>,
    ) -> Notice {
        Notice {
            warning: false,
            reason: reason.into(),
            action,
            note: note.into(),
            related: None,
        }
    }

    /// A `Warning` event.
    pub fn warning(
        reason: impl Into<String>,
        action: &'static str,
        note: impl Into<String>,
    ) -> Notice {
        Notice {
            warning: true,
            ..Notice::normal(reason, action, note)
        }
    }

    /// With a related object.
    pub fn related(mut self, related: Option<ObjectReference>) -> Notice {
        self.related = related;
        self
    }
}

/// The spelling of a phase.
fn phase_name(p: Option<Phase>) -> &'static str {
    p.map(Phase::as_str).unwrap_or("None")
}

/// The Events that the change of status from `old` to `new` calls for:
/// - a Degraded cause that appears or changes: `Warning`, reason = the cause,
///   note = the condition message (which names the spec field and value);
/// - a Degraded cause that clears: `Normal` `Recovered`;
/// - any other phase change: `Normal`, reason = the new phase.
pub fn status_notices(old: Option<&MilvusClusterStatus>, new: &MilvusClusterStatus) -> Vec<Notice> {
    let mut out = vec![];
    let degraded_of = |s: &MilvusClusterStatus| {
        find(&s.conditions, DEGRADED)
            .filter(|c| c.status == "True")
            .map(|c| (c.reason.clone(), c.message.clone()))
    };
    let was = old.and_then(degraded_of);
    let is = degraded_of(new);
    match (&was, &is) {
        (_, Some((reason, message))) if was.as_ref() != is.as_ref() => {
            out.push(Notice::warning(
                reason.clone(),
                "Reconcile",
                message.clone(),
            ));
        }
        (Some((reason, _)), None) => {
            let now = find(&new.conditions, PROGRESSING)
                .filter(|c| c.status == "True")
                .or_else(|| find(&new.conditions, READY))
                .map(|c| c.message.clone())
                .unwrap_or_default();
            out.push(Notice::normal(
                "Recovered",
                "Reconcile",
                format!("{reason} resolved; {now}"),
            ));
        }
        _ => {}
    }
    let old_phase = old.and_then(|s| s.phase);
    if old_phase != new.phase && new.phase != Some(Phase::Degraded) {
        let detail = match new.phase {
            Some(Phase::Ready) => {
                let mut d = "all components are ready".to_string();
                if let Some(v) = &new.version {
                    let before = old.and_then(|o| o.version.as_deref());
                    match before {
                        Some(b) if b != v => d.push_str(&format!(", version {b} → {v}")),
                        _ => d.push_str(&format!(", version {v}")),
                    }
                }
                if let Some(e) = &new.endpoint {
                    d.push_str(&format!(", endpoint {e}"));
                }
                d
            }
            Some(Phase::Paused) => "spec.paused is true: the operator changes nothing".into(),
            Some(Phase::Deleting) => {
                "deletionPolicy: Delete: deleting the cluster's PersistentVolumeClaims".into()
            }
            _ => new
                .rollout
                .clone()
                .or_else(|| find(&new.conditions, PROGRESSING).map(|c| c.message.clone()))
                .unwrap_or_default(),
        };
        out.push(Notice::normal(
            phase_name(new.phase),
            "Reconcile",
            format!(
                "{} → {}: {detail}",
                phase_name(old_phase),
                phase_name(new.phase)
            ),
        ));
    }
    out
}

/// A fingerprint of notices, to skip publishing the same status change twice
/// (a reconcile that saw a stale copy of the resource recomputes it).
pub fn fingerprint(notices: &[Notice]) -> String {
    notices
        .iter()
        .map(|n| format!("{}|{}", n.reason, n.note))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Publishes Events about one MilvusCluster.
pub(super) struct Events {
    recorder: Recorder,
    reference: ObjectReference,
}

impl Events {
    /// A publisher for `mc`.
    pub fn new(client: Client, reporter: Reporter, mc: &MilvusCluster) -> Events {
        Events {
            recorder: Recorder::new(client, reporter),
            reference: mc.object_ref(&()),
        }
    }

    /// Publishes `notice`; failures are logged (quietly when the namespace is
    /// being deleted, where no Event can be created).
    pub async fn publish(&self, notice: Notice) {
        let event = Event {
            type_: if notice.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: notice.reason.clone(),
            note: Some(truncate(&notice.note, MAX_NOTE_BYTES)),
            action: notice.action.into(),
            secondary: notice.related.clone(),
        };
        let name = self.reference.name.as_deref().unwrap_or_default();
        match self.recorder.publish(&event, &self.reference).await {
            Ok(()) => {
                debug!(cluster = %name, reason = %notice.reason, note = %notice.note, "event")
            }
            Err(e) if is_namespace_terminating(&e) => {
                debug!(cluster = %name, reason = %notice.reason, "event not published: namespace is being deleted")
            }
            Err(e) => {
                warn!(cluster = %name, reason = %notice.reason, error = %e, "could not publish an event")
            }
        }
    }
}

/// The default reporter: `ferrovus-operator`, instance = `POD_NAME` when set.
pub fn reporter() -> Reporter {
    Reporter {
        controller: REPORTER.into(),
        instance: std::env::var("POD_NAME").ok().filter(|s| !s.is_empty()),
    }
}

/// `text` cut to at most `max` bytes on a character boundary.
fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// The Event for the objects of `stage` that one reconcile applied:
/// `ConfigurationApplied` (configuration stage), `RolloutStarted` (a workload
/// was applied: new image, configuration or replica count) or `Applied`.
pub fn applied_notice(stage: Stage, applied: &[&Child]) -> Option<Notice> {
    if applied.is_empty() {
        return None;
    }
    let list = applied
        .iter()
        .map(|c| format!("{} {}", c.kind(), c.name()))
        .collect::<Vec<_>>()
        .join(", ");
    let workload = applied.iter().find(|c| c.is_workload());
    let related = workload.map(|w| ObjectReference {
        api_version: Some(w.api_resource().api_version),
        kind: Some(w.kind()),
        name: Some(w.name()),
        namespace: w.to_dynamic().metadata.namespace,
        ..Default::default()
    });
    let notice = match (stage, workload) {
        (Stage::Common, _) => {
            Notice::normal("ConfigurationApplied", "Apply", format!("applied {list}"))
        }
        (Stage::Component(role), Some(w)) => {
            let json = w.to_json();
            let image = json["spec"]["template"]["spec"]["containers"][0]["image"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let replicas = match w.desired_replicas() {
                Some(r) => format!("{r} replicas"),
                None => "replicas set by the HorizontalPodAutoscaler".into(),
            };
            Notice::normal(
                "RolloutStarted",
                "Apply",
                format!(
                    "rolling out {}: image {image}, {replicas} (applied {list})",
                    role.as_str()
                ),
            )
        }
        (Stage::Dependencies, Some(_)) => Notice::normal(
            "RolloutStarted",
            "Apply",
            format!("rolling out dependencies (etcd, object storage): applied {list}"),
        ),
        (stage, None) => Notice::normal(
            "Applied",
            "Apply",
            format!("applied {list} (stage {stage})"),
        ),
    };
    Some(notice.related(related))
}

impl Reconciler<'_> {
    /// Publishes the Events of the status change from the stored status to
    /// `new` (once per change).
    pub(super) async fn announce_status(&self, new: &MilvusClusterStatus) {
        let notices = status_notices(self.mc.status.as_ref(), new);
        if notices.is_empty() {
            return;
        }
        let print = fingerprint(&notices);
        {
            let mut announced = self.ctx.announced.lock().expect("lock");
            if announced.get(&key(self.mc)) == Some(&print) {
                return;
            }
            announced.insert(key(self.mc), print);
        }
        for n in notices {
            self.events.publish(n).await;
        }
    }
}
