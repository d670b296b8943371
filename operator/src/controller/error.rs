//! Errors of a reconciliation (retried with backoff by [`super::error_policy`]).
//!
//! Each variant says which step failed and on which object, so that logs and
//! the `ReconcileError` Event read e.g. "applying StatefulSet ns/demo-streaming
//! (stage streaming): …".

use kube::core::Status;

use crate::builders::Stage;

/// Errors that make a reconciliation retry with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Server-side apply of a child object failed.
    #[error("applying {kind} {namespace}/{name} (stage {stage}): {}", api_message(.source))]
    Apply {
        /// Stage the object belongs to.
        stage: Stage,
        /// Kind of the object.
        kind: String,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The API error.
        #[source]
        source: Box<kube::Error>,
    },
    /// Reading one object failed.
    #[error("reading {kind} {namespace}/{name}: {}", api_message(.source))]
    Get {
        /// Kind of the object.
        kind: String,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The API error.
        #[source]
        source: Box<kube::Error>,
    },
    /// Listing objects failed.
    #[error("listing {kind} in {namespace} ({selector}): {}", api_message(.source))]
    List {
        /// Kind listed (plural).
        kind: String,
        /// Namespace.
        namespace: String,
        /// Label or field selector used.
        selector: String,
        /// The API error.
        #[source]
        source: Box<kube::Error>,
    },
    /// Creating an object failed.
    #[error("creating {kind} {namespace}/{name}: {}", api_message(.source))]
    Create {
        /// Kind of the object.
        kind: String,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The API error.
        #[source]
        source: Box<kube::Error>,
    },
    /// Deleting an object failed.
    #[error("deleting {kind} {namespace}/{name}: {}", api_message(.source))]
    Delete {
        /// Kind of the object.
        kind: String,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The API error.
        #[source]
        source: Box<kube::Error>,
    },
    /// Updating the finalizers of the MilvusCluster failed.
    #[error("updating the finalizers of MilvusCluster {namespace}/{name}: {}", api_message(.source))]
    Finalizers {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The API error.
        #[source]
        source: Box<kube::Error>,
    },
    /// Writing the status of the MilvusCluster failed.
    #[error("writing the status of MilvusCluster {namespace}/{name}: {}", api_message(.source))]
    Status {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The API error.
        #[source]
        source: Box<kube::Error>,
    },
    /// The resource is missing metadata it always has when it comes from the API server.
    #[error("MilvusCluster has {0}")]
    Metadata(&'static str),
}

impl Error {
    /// The underlying client error, if any.
    pub fn kube(&self) -> Option<&kube::Error> {
        match self {
            Error::Apply { source, .. }
            | Error::Get { source, .. }
            | Error::List { source, .. }
            | Error::Create { source, .. }
            | Error::Delete { source, .. }
            | Error::Finalizers { source, .. }
            | Error::Status { source, .. } => Some(source.as_ref()),
            Error::Metadata(_) => None,
        }
    }

    /// The API server's `Status` reply, if the error is one.
    pub fn api_status(&self) -> Option<&Status> {
        match self.kube()? {
            kube::Error::Api(s) => Some(s),
            _ => None,
        }
    }

    /// The API server refused to create objects because the namespace is
    /// being deleted.
    pub fn is_namespace_terminating(&self) -> bool {
        self.kube().is_some_and(is_namespace_terminating)
    }

    /// The spec fields behind an object that failed to apply (for the
    /// `ApplyRejected` message).
    pub fn spec_fields(&self) -> String {
        match self {
            Error::Apply {
                stage: Stage::Component(role),
                ..
            } => format!(
                "spec.components.{} (resources, affinity, tolerations, nodeSelector, env)",
                role.as_str()
            ),
            Error::Apply {
                stage: Stage::Dependencies,
                ..
            } => "spec.dependencies (resources, persistence)".into(),
            _ => "spec.config and spec.components".into(),
        }
    }

    /// An apply the API server rejected as invalid (400, 422): a spec problem.
    pub fn is_rejected_apply(&self) -> bool {
        matches!(self, Error::Apply { .. })
            && self
                .api_status()
                .is_some_and(|s| matches!(s.code, 400 | 422))
    }
}

/// `map_err` adapters that add the step and the object to a client error.
impl Error {
    /// For a failed apply of `kind` `namespace/name` in `stage`.
    pub fn apply(
        stage: Stage,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> impl FnOnce(kube::Error) -> Error {
        let (kind, namespace, name) = (kind.to_string(), namespace.to_string(), name.to_string());
        move |source| Error::Apply {
            stage,
            kind,
            namespace,
            name,
            source: Box::new(source),
        }
    }

    /// For a failed read of `kind` `namespace/name`.
    pub fn get(kind: &str, namespace: &str, name: &str) -> impl FnOnce(kube::Error) -> Error {
        let (kind, namespace, name) = (kind.to_string(), namespace.to_string(), name.to_string());
        move |source| Error::Get {
            kind,
            namespace,
            name,
            source: Box::new(source),
        }
    }

    /// For a failed list of `kind` (plural) in `namespace` with `selector`.
    pub fn list(kind: &str, namespace: &str, selector: &str) -> impl FnOnce(kube::Error) -> Error {
        let (kind, namespace, selector) = (
            kind.to_string(),
            namespace.to_string(),
            selector.to_string(),
        );
        move |source| Error::List {
            kind,
            namespace,
            selector,
            source: Box::new(source),
        }
    }

    /// For a failed create of `kind` `namespace/name`.
    pub fn create(kind: &str, namespace: &str, name: &str) -> impl FnOnce(kube::Error) -> Error {
        let (kind, namespace, name) = (kind.to_string(), namespace.to_string(), name.to_string());
        move |source| Error::Create {
            kind,
            namespace,
            name,
            source: Box::new(source),
        }
    }

    /// For a failed delete of `kind` `namespace/name`.
    pub fn delete(kind: &str, namespace: &str, name: &str) -> impl FnOnce(kube::Error) -> Error {
        let (kind, namespace, name) = (kind.to_string(), namespace.to_string(), name.to_string());
        move |source| Error::Delete {
            kind,
            namespace,
            name,
            source: Box::new(source),
        }
    }
}

/// `403 Forbidden` with the cause `NamespaceTerminating` (or its message):
/// `unable to create new content in namespace … because it is being terminated`.
pub fn is_namespace_terminating(e: &kube::Error) -> bool {
    let kube::Error::Api(s) = e else {
        return false;
    };
    s.code == 403
        && (s
            .details
            .as_ref()
            .is_some_and(|d| d.causes.iter().any(|c| c.reason == "NamespaceTerminating"))
            || s.message.contains("because it is being terminated"))
}

/// The API server's message of an error (without the client's debug dump).
pub fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if s.reason.is_empty() => format!("{} ({})", s.message, s.code),
        kube::Error::Api(s) => format!("{} ({} {})", s.message, s.code, s.reason),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use kube::core::response::{StatusCause, StatusDetails};

    use super::*;
    use crate::crd::Role;

    fn api(code: u16, reason: &str, message: &str) -> kube::Error {
        kube::Error::Api(Status::failure(message, reason).with_code(code).boxed())
    }

    #[test]
    fn messages_name_the_step_and_the_object() {
        let e = Error::Apply {
            stage: Stage::Component(Role::Streaming),
            kind: "StatefulSet".into(),
            namespace: "ns".into(),
            name: "demo-streaming".into(),
            source: Box::new(api(500, "InternalError", "etcdserver: timeout")),
        };
        assert_eq!(
            e.to_string(),
            "applying StatefulSet ns/demo-streaming (stage streaming): etcdserver: timeout (500 InternalError)"
        );
        let e = Error::List {
            kind: "pods".into(),
            namespace: "ns".into(),
            selector: "app.kubernetes.io/instance=demo".into(),
            source: Box::new(api(403, "Forbidden", "pods is forbidden")),
        };
        assert!(
            e.to_string().starts_with(
                "listing pods in ns (app.kubernetes.io/instance=demo): pods is forbidden"
            ),
            "{e}"
        );
        assert!(!e.is_rejected_apply());
    }

    #[test]
    fn namespace_terminating_is_recognised_by_cause_or_message() {
        let by_cause = kube::Error::Api(
            Status::failure("forbidden", "Forbidden")
                .with_code(403)
                .with_details(StatusDetails {
                    name: String::new(),
                    group: String::new(),
                    kind: String::new(),
                    uid: String::new(),
                    causes: vec![StatusCause {
                        reason: "NamespaceTerminating".into(),
                        message: "namespace ns is being terminated".into(),
                        field: "metadata.namespace".into(),
                    }],
                    retry_after_seconds: 0,
                })
                .boxed(),
        );
        assert!(is_namespace_terminating(&by_cause));
        let by_message = api(
            403,
            "Forbidden",
            "statefulsets.apps \"demo-etcd\" is forbidden: unable to create new content in namespace ns because it is being terminated",
        );
        assert!(is_namespace_terminating(&by_message));
        assert!(!is_namespace_terminating(&api(
            403,
            "Forbidden",
            "RBAC: access denied"
        )));
        assert!(!is_namespace_terminating(&api(
            409,
            "Conflict",
            "because it is being terminated"
        )));
        let e = Error::Create {
            kind: "Secret".into(),
            namespace: "ns".into(),
            name: "s".into(),
            source: Box::new(by_message),
        };
        assert!(e.is_namespace_terminating());
        assert!(!Error::Metadata("no name").is_namespace_terminating());
    }
}
