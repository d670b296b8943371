//! Pod-level problems of workloads that are not ready: images that cannot be
//! pulled, containers that keep crashing, replicas that cannot be created.
//!
//! The detectors are pure functions of the pods, the workload and its events;
//! [`Reconciler::find_problem`] reads those only for workloads that are not
//! ready. A problem makes the cluster `Degraded` (with an Event) but changes
//! nothing: the rollout keeps waiting, and the condition clears once the pods
//! recover.

use k8s_openapi::api::core::v1::{ContainerStatus, Event as CoreEvent, Pod};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, ListParams};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use super::conditions::{DEGRADED, Reason, find};
use super::{Error, Reconciler};
use crate::builders::MANAGED_BY;
use crate::crd::{MilvusClusterSpec, Role};

/// Longest piece of a kubelet or termination message quoted in a condition.
const MAX_QUOTE: usize = 400;
/// A running container that exited with an error this recently still counts as crashing
/// (the kubelet's crash-loop back-off is at most 5 minutes).
const RECENT_CRASH: SignedDuration = SignedDuration::from_mins(10);

/// Restarts before a crashing container is reported.
const MIN_RESTARTS: i32 = 2;

/// One problem, as the Degraded condition and its Event report it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// `ImagePullFailed`, `ComponentCrashing` or `ReplicasNotCreated`.
    pub reason: Reason,
    /// What and where, naming the spec field (stable while the problem lasts).
    pub headline: String,
    /// The kubelet's or the API server's words, when known.
    pub detail: Option<String>,
    /// What to check.
    pub hint: Option<String>,
}

impl Problem {
    /// The condition message: headline, detail and hint.
    pub fn message(&self) -> String {
        let mut m = self.headline.clone();
        if let Some(d) = &self.detail {
            m.push_str(": ");
            m.push_str(d);
        }
        if let Some(h) = &self.hint {
            m.push_str(" — ");
            m.push_str(h);
        }
        m
    }
}

/// The condition message of `problem`. While the same problem lasts without
/// the kubelet's words (its back-off message alternates with the real error),
/// the previous message is kept, so the status does not flap.
pub fn sticky_message(old: &[Condition], problem: &Problem) -> String {
    if problem.detail.is_none()
        && let Some(c) = find(old, DEGRADED)
        && c.status == "True"
        && c.reason == problem.reason.as_str()
        && c.message.starts_with(&problem.headline)
    {
        return c.message.clone();
    }
    problem.message()
}

/// The spec fields behind one workload (by its `app.kubernetes.io/component` label).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fields {
    /// Field that sets the image, e.g. `spec.image` or `spec.components.query.image`.
    pub image: String,
    /// Field that sets the replica count.
    pub replicas: String,
    /// Where to look when the process crashes.
    pub crash_hint: String,
}

/// The spec fields of `component` (`etcd`, `object-store` or a role name).
pub fn fields(spec: &MilvusClusterSpec, component: &str) -> Fields {
    match component {
        "etcd" => Fields {
            image: "spec.dependencies.etcd.inCluster.image".into(),
            replicas: "spec.dependencies.etcd.inCluster.replicas".into(),
            crash_hint: "check spec.dependencies.etcd.inCluster (resources, persistence) and the pod's logs".into(),
        },
        "object-store" => Fields {
            image: "spec.dependencies.storage.inCluster.image".into(),
            replicas: "spec.dependencies.storage.inCluster".into(),
            crash_hint: "check spec.dependencies.storage.inCluster (resources, persistence) and the pod's logs".into(),
        },
        role => {
            let r = Role::ORDER.into_iter().find(|r| r.as_str() == role);
            let image = match r {
                Some(r) if spec.component(r).image.is_some() => {
                    format!("spec.components.{role}.image")
                }
                _ => "spec.image".into(),
            };
            let replicas = match r {
                Some(r) if spec.autoscaling(r).is_some() => {
                    format!("spec.components.{role}.autoscaling")
                }
                _ => format!("spec.components.{role}.replicas"),
            };
            Fields {
                image,
                replicas,
                crash_hint: format!(
                    "check spec.config and spec.components.{role} (env, resources), and `kubectl logs --previous` of the pod"
                ),
            }
        }
    }
}

/// The first problem among `pods` (sorted by name): an image that cannot be
/// pulled wins over a crash.
pub fn pod_problem(pods: &[Pod], fields: &Fields, now: Timestamp) -> Option<Problem> {
    let mut pods: Vec<&Pod> = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    pods.sort_by_key(|p| p.name_any());
    let statuses = |p: &Pod| -> Vec<ContainerStatus> {
        let st = p.status.clone().unwrap_or_default();
        let mut all = st.init_container_statuses.unwrap_or_default();
        all.extend(st.container_statuses.unwrap_or_default());
        all
    };
    for pod in &pods {
        for cs in statuses(pod) {
            if let Some(p) = image_pull_problem(&pod.name_any(), &cs, fields) {
                return Some(p);
            }
        }
    }
    for pod in &pods {
        for cs in statuses(pod) {
            if let Some(p) = crash_problem(&pod.name_any(), &cs, fields, now) {
                return Some(p);
            }
        }
    }
    None
}

fn image_pull_problem(pod: &str, cs: &ContainerStatus, fields: &Fields) -> Option<Problem> {
    let waiting = cs.state.as_ref()?.waiting.as_ref()?;
    let reason = waiting.reason.as_deref()?;
    if !matches!(
        reason,
        "ErrImagePull" | "ImagePullBackOff" | "InvalidImageName"
    ) {
        return None;
    }
    Some(Problem {
        reason: Reason::ImagePullFailed,
        headline: format!(
            "{} {:?} cannot be pulled (pod {pod})",
            fields.image, cs.image
        ),
        detail: waiting
            .message
            .as_deref()
            .and_then(|m| pull_detail(m, &cs.image)),
        hint: Some(format!(
            "check {}, spec.imagePullSecrets and the registry",
            fields.image
        )),
    })
}

/// The kubelet's pull error without the back-off boilerplate, which alternates
/// with the real error (`Back-off pulling image "x": ErrImagePull: <error>`).
pub fn pull_detail(message: &str, image: &str) -> Option<String> {
    let mut m = message.trim();
    for prefix in [
        format!("Back-off pulling image {image:?}"),
        format!("Back-off pulling image \"{image}\""),
    ] {
        if let Some(rest) = m.strip_prefix(prefix.as_str()) {
            m = rest.trim_start_matches([':', ' ']);
        }
    }
    for prefix in ["ErrImagePull:", "ImagePullBackOff:"] {
        if let Some(rest) = m.strip_prefix(prefix) {
            m = rest.trim_start();
        }
    }
    (!m.is_empty()).then(|| quote(m))
}

fn crash_problem(
    pod: &str,
    cs: &ContainerStatus,
    fields: &Fields,
    now: Timestamp,
) -> Option<Problem> {
    let state = cs.state.as_ref()?;
    let last = cs.last_state.as_ref().and_then(|s| s.terminated.as_ref());
    let looping = state
        .waiting
        .as_ref()
        .is_some_and(|w| w.reason.as_deref() == Some("CrashLoopBackOff"));
    let failed_now = state.terminated.as_ref().filter(|t| t.exit_code != 0);
    // between two back-offs the container runs briefly: still crashing if it
    // exited with an error recently and is not ready
    let restarted_recently = state.running.is_some()
        && !cs.ready
        && last.is_some_and(|t| {
            t.exit_code != 0
                && t.finished_at
                    .as_ref()
                    .is_some_and(|f| now.duration_since(f.0) < RECENT_CRASH)
        });
    // one crash (e.g. a dependency not reachable yet at start) is not a
    // problem to report: the kubelet restarts the container
    if cs.restart_count < MIN_RESTARTS || (!looping && failed_now.is_none() && !restarted_recently)
    {
        return None;
    }
    let terminated = failed_now.or(last);
    let exit = terminated
        .map(|t| format!(" (exit code {})", t.exit_code))
        .unwrap_or_default();
    let detail = terminated
        .and_then(|t| t.message.as_deref())
        .and_then(termination_summary);
    let hint = match &detail {
        Some(d) if d.to_ascii_lowercase().contains("config") => "check spec.config".to_string(),
        _ => fields.crash_hint.clone(),
    };
    Some(Problem {
        reason: Reason::ComponentCrashing,
        headline: format!(
            "container {} of pod {pod} keeps exiting with an error{exit}",
            cs.name
        ),
        detail,
        hint: Some(hint),
    })
}

/// The useful part of a termination message (or, with
/// `FallbackToLogsOnError`, of the last log lines): from the last line starting
/// with `Error:` (an `anyhow` report) or else the last three non-empty lines,
/// on one line and at most [`MAX_QUOTE`] characters.
pub fn termination_summary(message: &str) -> Option<String> {
    let lines: Vec<&str> = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let from = lines
        .iter()
        .rposition(|l| l.starts_with("Error:") || l.starts_with("error:"))
        .unwrap_or(lines.len().saturating_sub(3));
    let joined = lines[from..].join(" ");
    (!joined.is_empty()).then(|| quote(&joined))
}

/// `text` on one line, cut to [`MAX_QUOTE`] characters.
fn quote(text: &str) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= MAX_QUOTE {
        flat
    } else {
        let cut: String = flat.chars().take(MAX_QUOTE).collect();
        format!("{cut}…")
    }
}

/// A Deployment whose `ReplicaFailure` condition is true (quota, admission).
pub fn deployment_replica_failure(deployment: &DynamicObject) -> Option<String> {
    deployment.data["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "ReplicaFailure" && c["status"] == "True")
        .map(|c| {
            c["message"]
                .as_str()
                .unwrap_or("replicas could not be created")
                .to_string()
        })
}

/// Whether a StatefulSet has fewer pods than it asks for (the only time its
/// `FailedCreate` events matter: old ones outlive the problem).
pub fn statefulset_missing_pods(sts: &DynamicObject) -> bool {
    let wanted = sts.data["spec"]["replicas"].as_i64().unwrap_or(1);
    let have = sts.data["status"]["replicas"].as_i64().unwrap_or(0);
    have < wanted
}

/// The newest `FailedCreate` event that says why pods cannot be created
/// (`exceeded quota`, `forbidden`).
pub fn failed_create(events: &[CoreEvent]) -> Option<String> {
    let time = |e: &CoreEvent| {
        e.last_timestamp
            .as_ref()
            .map(|t| t.0)
            .or(e.event_time.as_ref().map(|t| t.0))
            .or(e.first_timestamp.as_ref().map(|t| t.0))
    };
    events
        .iter()
        .filter(|e| e.reason.as_deref() == Some("FailedCreate"))
        .filter(|e| {
            e.message
                .as_deref()
                .is_some_and(|m| m.contains("exceeded quota") || m.contains("forbidden"))
        })
        .max_by_key(|e| time(e))
        .and_then(|e| e.message.clone())
}

/// The problem of replicas that cannot be created.
pub fn replicas_problem(
    kind: &str,
    name: &str,
    wanted: i64,
    fields: &Fields,
    why: &str,
) -> Problem {
    Problem {
        reason: Reason::ReplicasNotCreated,
        headline: format!(
            "{} asks for {wanted} replicas but {kind} {name} cannot create its pods",
            fields.replicas
        ),
        detail: Some(quote(why)),
        hint: Some(format!(
            "raise the namespace's ResourceQuota or lower {} or the resources of the component",
            fields.replicas
        )),
    }
}

impl Reconciler<'_> {
    /// The first problem among the workloads that are not ready (in stage order).
    pub(super) async fn find_problem(
        &self,
        unready: &[DynamicObject],
    ) -> Result<Option<Problem>, Error> {
        if unready.is_empty() {
            return Ok(None);
        }
        let selector = format!(
            "app.kubernetes.io/instance={},app.kubernetes.io/managed-by={MANAGED_BY}",
            self.name
        );
        let pods: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &self.namespace);
        let pods = pods
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(Error::list("pods", &self.namespace, &selector))?
            .items;
        let now = Timestamp::now();
        for w in unready {
            let component = w
                .labels()
                .get("app.kubernetes.io/component")
                .cloned()
                .unwrap_or_default();
            let fields = fields(&self.mc.spec, &component);
            let own: Vec<Pod> = pods
                .iter()
                .filter(|p| p.labels().get("app.kubernetes.io/component") == Some(&component))
                .cloned()
                .collect();
            if let Some(p) = pod_problem(&own, &fields, now) {
                return Ok(Some(p));
            }
            let kind = w.types.as_ref().map(|t| t.kind.clone()).unwrap_or_default();
            let wanted = w.data["spec"]["replicas"].as_i64().unwrap_or(1);
            let why = match kind.as_str() {
                "Deployment" => deployment_replica_failure(w),
                "StatefulSet" if statefulset_missing_pods(w) => {
                    self.failed_create_events(&w.name_any()).await?
                }
                _ => None,
            };
            if let Some(why) = why {
                return Ok(Some(replicas_problem(
                    &kind,
                    &w.name_any(),
                    wanted,
                    &fields,
                    &why,
                )));
            }
        }
        Ok(None)
    }

    async fn failed_create_events(&self, statefulset: &str) -> Result<Option<String>, Error> {
        let fields = format!(
            "involvedObject.kind=StatefulSet,involvedObject.name={statefulset},reason=FailedCreate"
        );
        let events: Api<CoreEvent> = Api::namespaced(self.ctx.client.clone(), &self.namespace);
        let list = events
            .list(&ListParams::default().fields(&fields))
            .await
            .map_err(Error::list("events", &self.namespace, &fields))?;
        Ok(failed_create(&list.items))
    }
}
