//! Typed conditions: the `Ready`, `Progressing` and `Degraded` conditions of a
//! `MilvusCluster`, built from a [`Reason`] and a message instead of string
//! triples. [`Conditions::to_k8s`] keeps `lastTransitionTime` of a condition
//! whose status did not change.

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::builders::Stage;
use crate::crd::Role;

/// Condition type: every component runs the desired spec and is ready.
pub const READY: &str = "Ready";
/// Condition type: a change is being rolled out.
pub const PROGRESSING: &str = "Progressing";
/// Condition type: the spec cannot be realised, or the pods cannot run it.
pub const DEGRADED: &str = "Degraded";

/// The `reason` of a condition (and of the Event that reports it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Ready: every component is ready.
    AllComponentsReady,
    /// Progressing=False: nothing left to roll out.
    RolloutComplete,
    /// Degraded=False.
    AsExpected,
    /// `spec.paused` is true.
    Paused,
    /// A stage's workloads are not ready yet (`WaitingForDependencies`,
    /// `WaitingForCoordinator`, …).
    Waiting(Stage),
    /// The spec is invalid in a way the CRD schema did not catch.
    InvalidSpec,
    /// The external S3 Secret or one of its keys is missing.
    MissingSecret,
    /// The API server rejected an object built from the spec.
    ApplyRejected,
    /// Pods cannot pull their image.
    ImagePullFailed,
    /// A container keeps exiting with an error.
    ComponentCrashing,
    /// The workload cannot create its pods (quota, admission).
    ReplicasNotCreated,
}

impl Reason {
    /// The CamelCase spelling written to the condition.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::AllComponentsReady => "AllComponentsReady",
            Reason::RolloutComplete => "RolloutComplete",
            Reason::AsExpected => "AsExpected",
            Reason::Paused => "Paused",
            Reason::Waiting(Stage::Common | Stage::Dependencies) => "WaitingForDependencies",
            Reason::Waiting(Stage::Component(role)) => match role {
                Role::Coordinator => "WaitingForCoordinator",
                Role::Streaming => "WaitingForStreaming",
                Role::Query => "WaitingForQuery",
                Role::Data => "WaitingForData",
                Role::Proxy => "WaitingForProxy",
            },
            Reason::InvalidSpec => "InvalidSpec",
            Reason::MissingSecret => "MissingSecret",
            Reason::ApplyRejected => "ApplyRejected",
            Reason::ImagePullFailed => "ImagePullFailed",
            Reason::ComponentCrashing => "ComponentCrashing",
            Reason::ReplicasNotCreated => "ReplicasNotCreated",
        }
    }

    /// Whether the reason stops the rollout until the spec changes (as opposed
    /// to a pod-level problem, during which the rollout keeps waiting).
    pub fn blocks_rollout(self) -> bool {
        matches!(
            self,
            Reason::InvalidSpec | Reason::MissingSecret | Reason::ApplyRejected
        )
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The desired state of one condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cond {
    /// `True` or `False`.
    pub status: bool,
    /// Why.
    pub reason: Reason,
    /// What a person should know.
    pub message: String,
}

impl Cond {
    fn new(status: bool, reason: Reason, message: impl Into<String>) -> Cond {
        Cond {
            status,
            reason,
            message: message.into(),
        }
    }
}

/// The three conditions of a MilvusCluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conditions {
    /// `Ready`.
    pub ready: Cond,
    /// `Progressing`.
    pub progressing: Cond,
    /// `Degraded`.
    pub degraded: Cond,
}

fn as_expected() -> Cond {
    Cond::new(false, Reason::AsExpected, "no problem found")
}

impl Conditions {
    /// Every component runs the desired spec and is ready.
    pub fn ready() -> Conditions {
        Conditions {
            ready: Cond::new(true, Reason::AllComponentsReady, "all components are ready"),
            progressing: Cond::new(
                false,
                Reason::RolloutComplete,
                "every component runs the desired spec",
            ),
            degraded: as_expected(),
        }
    }

    /// The rollout waits for `stage`'s workloads (`detail` says what is awaited).
    pub fn waiting(stage: Stage, detail: &str) -> Conditions {
        let message = format!("waiting for {}: {detail}", stage.describe());
        Conditions {
            ready: Cond::new(false, Reason::Waiting(stage), message.clone()),
            progressing: Cond::new(true, Reason::Waiting(stage), message),
            degraded: as_expected(),
        }
    }

    /// `spec.paused`: Ready keeps its previous status.
    pub fn paused(was_ready: bool) -> Conditions {
        Conditions {
            ready: Cond::new(
                was_ready,
                Reason::Paused,
                "spec.paused is true: the operator changes nothing",
            ),
            progressing: Cond::new(false, Reason::Paused, "spec.paused is true"),
            degraded: as_expected(),
        }
    }

    /// A spec problem: nothing is applied until the spec (or a Secret) is fixed.
    pub fn blocked(reason: Reason, message: &str) -> Conditions {
        Conditions {
            ready: Cond::new(false, reason, message),
            progressing: Cond::new(false, reason, "rollout stopped until the spec is fixed"),
            degraded: Cond::new(true, reason, message),
        }
    }

    /// A pod-level problem on top of a waiting rollout: Degraded and not Ready,
    /// while Progressing still says what the rollout waits for.
    pub fn with_problem(mut self, reason: Reason, message: &str) -> Conditions {
        self.ready = Cond::new(false, reason, message);
        self.degraded = Cond::new(true, reason, message);
        self
    }

    /// The Kubernetes conditions, in the order Ready, Progressing, Degraded.
    /// A condition whose status equals its previous one keeps its
    /// `lastTransitionTime`; others get `now`.
    pub fn to_k8s(&self, old: &[Condition], generation: i64, now: &Time) -> Vec<Condition> {
        [
            (READY, &self.ready),
            (PROGRESSING, &self.progressing),
            (DEGRADED, &self.degraded),
        ]
        .into_iter()
        .map(|(type_, c)| {
            let status = if c.status { "True" } else { "False" };
            let last_transition_time = match old.iter().find(|o| o.type_ == type_) {
                Some(p) if p.status == status => p.last_transition_time.clone(),
                _ => now.clone(),
            };
            Condition {
                type_: type_.into(),
                status: status.into(),
                reason: c.reason.as_str().into(),
                message: c.message.clone(),
                observed_generation: Some(generation),
                last_transition_time,
            }
        })
        .collect()
    }
}

/// Whether `conditions` has `type_` with status `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

/// The condition `type_`, if present.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::jiff::Timestamp;

    use super::*;

    fn t(s: &str) -> Time {
        Time(s.parse::<Timestamp>().unwrap())
    }

    #[test]
    fn waiting_reasons_name_the_stage() {
        let names: Vec<&str> = Stage::all()
            .into_iter()
            .map(|s| Reason::Waiting(s).as_str())
            .collect();
        assert_eq!(
            names,
            [
                "WaitingForDependencies",
                "WaitingForDependencies",
                "WaitingForCoordinator",
                "WaitingForStreaming",
                "WaitingForQuery",
                "WaitingForData",
                "WaitingForProxy",
            ]
        );
    }

    #[test]
    fn builders_set_status_reason_and_message() {
        let c = Conditions::ready().to_k8s(&[], 3, &t("2026-01-01T00:00:00Z"));
        let summary: Vec<(&str, &str, &str)> = c
            .iter()
            .map(|c| (c.type_.as_str(), c.status.as_str(), c.reason.as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                ("Ready", "True", "AllComponentsReady"),
                ("Progressing", "False", "RolloutComplete"),
                ("Degraded", "False", "AsExpected"),
            ]
        );
        assert!(c.iter().all(|c| c.observed_generation == Some(3)));

        let w = Conditions::waiting(Stage::Component(Role::Query), "demo-query: 1/3 ready");
        assert!(w.progressing.status && !w.ready.status && !w.degraded.status);
        assert_eq!(
            w.progressing.message,
            "waiting for query nodes: demo-query: 1/3 ready"
        );

        let b = Conditions::blocked(Reason::MissingSecret, "Secret ns/s3 not found");
        assert!(b.degraded.status && !b.progressing.status && !b.ready.status);
        assert_eq!(b.degraded.reason, Reason::MissingSecret);

        let p = w.with_problem(Reason::ImagePullFailed, "spec.image: …");
        assert!(p.degraded.status && p.progressing.status);
        assert_eq!(p.ready.reason, Reason::ImagePullFailed);
        assert_eq!(
            p.progressing.reason,
            Reason::Waiting(Stage::Component(Role::Query))
        );
        assert!(Reason::MissingSecret.blocks_rollout());
        assert!(!Reason::ImagePullFailed.blocks_rollout());
    }

    #[test]
    fn transition_time_moves_only_when_status_changes() {
        let t0 = t("2026-01-01T00:00:00Z");
        let t1 = t("2026-01-01T00:05:00Z");
        let first =
            Conditions::waiting(Stage::Dependencies, "demo-etcd: 0/1 ready").to_k8s(&[], 1, &t0);
        // same statuses, other message: times kept
        let second =
            Conditions::waiting(Stage::Component(Role::Coordinator), "x").to_k8s(&first, 1, &t1);
        assert!(second.iter().all(|c| c.last_transition_time == t0));
        assert_eq!(second[1].reason, "WaitingForCoordinator");
        // Ready and Progressing flip, Degraded does not
        let third = Conditions::ready().to_k8s(&second, 1, &t1);
        assert_eq!(third[0].last_transition_time, t1);
        assert_eq!(third[1].last_transition_time, t1);
        assert_eq!(third[2].last_transition_time, t0);
        assert!(is_true(&third, READY));
        assert!(!is_true(&third, DEGRADED));
        assert_eq!(find(&third, PROGRESSING).unwrap().status, "False");
    }
}
