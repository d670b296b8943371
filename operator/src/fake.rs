//! A small in-memory Kubernetes API server for reconcile tests, behind a
//! `tower-test` mock service (the pattern of kube-rs' controller-rs, with a
//! store instead of scripted exchanges so tests can assert on outcomes).
//!
//! It understands what the operator sends: GET (object or labelled list),
//! server-side apply PATCH (object and `/status`), merge PATCH (with the
//! `resourceVersion` precondition), POST and DELETE (honouring finalizers).
//! Every request is recorded.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use http::{Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};

use crate::builders::deep_merge;
use crate::crd::MilvusCluster;

/// One request seen by the fake.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// HTTP method.
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// Query string.
    pub query: String,
    /// Content type.
    pub content_type: String,
    /// Request body as JSON (if any).
    pub body: Option<Value>,
}

impl Recorded {
    /// Anything but a GET.
    pub fn is_write(&self) -> bool {
        self.method != "GET"
    }
}

#[derive(Default)]
struct State {
    objects: BTreeMap<String, Value>,
    log: Vec<Recorded>,
    /// Writes since the start (never cleared).
    all_writes: Vec<Recorded>,
    rv: u64,
    /// Requests whose path contains the key get this (code, message) reply.
    failures: BTreeMap<String, (u16, String)>,
    /// Namespaces being deleted: creating anything in them is forbidden.
    terminating: std::collections::BTreeSet<String>,
}

/// Handle on the fake API server.
#[derive(Clone, Default)]
pub struct FakeApi {
    state: Arc<Mutex<State>>,
}

/// Path of a namespaced object.
pub fn path(api_version: &str, plural: &str, ns: &str, name: &str) -> String {
    let prefix = if api_version.contains('/') {
        format!("/apis/{api_version}")
    } else {
        format!("/api/{api_version}")
    };
    format!("{prefix}/namespaces/{ns}/{plural}/{name}")
}

/// Path of a MilvusCluster.
pub fn mc_path(ns: &str, name: &str) -> String {
    path("ferrovus.io/v1alpha1", "milvusclusters", ns, name)
}

fn status_response(code: u16, reason: &str, message: &str) -> Response<Body> {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code,
    });
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap())
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(&body).unwrap()))
        .unwrap()
}

/// What the API server answers to a create in a namespace being deleted.
fn namespace_terminating(ns: &str, p: &str) -> Response<Body> {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("{p} is forbidden: unable to create new content in namespace {ns} because it is being terminated"),
        "reason": "Forbidden", "code": 403,
        "details": {"causes": [{"reason": "NamespaceTerminating",
                                "message": format!("namespace {ns} is being terminated"),
                                "field": "metadata.namespace"}]},
    });
    Response::builder()
        .status(StatusCode::FORBIDDEN)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(&body).unwrap()))
        .unwrap()
}

fn namespace_of(p: &str) -> Option<&str> {
    let mut parts = p.split('/');
    parts.find(|s| *s == "namespaces")?;
    parts.next()
}

fn ok(v: &Value) -> Response<Body> {
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(v).unwrap()))
        .unwrap()
}

fn labels_match(obj: &Value, selector: &str) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        let (k, v) = term.split_once('=').unwrap_or((term, ""));
        obj["metadata"]["labels"][k].as_str() == Some(v)
    })
}

/// `a.b=c,d=e` against the object's JSON (string values).
fn fields_match(obj: &Value, selector: &str) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        let (k, v) = term.split_once('=').unwrap_or((term, ""));
        let found = k.split('.').fold(obj, |o, part| &o[part]);
        found.as_str() == Some(v)
    })
}

fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| {
            v.replace("%3D", "=")
                .replace("%2C", ",")
                .replace("%2F", "/")
                .replace('+', " ")
        })
    })
}

impl FakeApi {
    /// A client talking to a new fake API server (needs a tokio runtime).
    pub fn start() -> (Client, FakeApi) {
        let (svc, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let fake = FakeApi::default();
        let server = fake.clone();
        tokio::spawn(async move {
            while let Some((req, send)) = handle.next_request().await {
                let resp = server.handle(req).await;
                send.send_response(resp);
            }
        });
        (Client::new(svc, "default"), fake)
    }

    async fn handle(&self, req: Request<Body>) -> Response<Body> {
        let method = req.method().to_string();
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or_default().to_string();
        let content_type = req
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let bytes = req.into_body().collect_bytes().await.unwrap_or_default();
        let body: Option<Value> = if bytes.is_empty() {
            None
        } else {
            serde_json::from_slice(&bytes).ok()
        };
        let mut st = self.state.lock().unwrap();
        let rec = Recorded {
            method: method.clone(),
            path: path.clone(),
            query: query.clone(),
            content_type: content_type.clone(),
            body: body.clone(),
        };
        st.log.push(rec.clone());
        if rec.is_write() {
            st.all_writes.push(rec);
        }
        if let Some((code, msg)) = st
            .failures
            .iter()
            .find(|(k, _)| path.contains(k.as_str()) && method != "GET")
            .map(|(_, v)| v.clone())
        {
            return status_response(code, "Invalid", &msg);
        }
        let (obj_path, sub) = match path.strip_suffix("/status") {
            Some(p) => (p.to_string(), true),
            None => (path.clone(), false),
        };
        let creates = method == "POST"
            || (method == "PATCH"
                && content_type.contains("apply-patch")
                && !sub
                && !st.objects.contains_key(&obj_path));
        if creates
            && let Some(ns) = namespace_of(&path)
            && st.terminating.contains(ns)
        {
            return namespace_terminating(ns, &obj_path);
        }
        match method.as_str() {
            "GET" => {
                if let Some(o) = st.objects.get(&obj_path) {
                    return ok(o);
                }
                // a list: every object directly under this collection path
                let prefix = format!("{obj_path}/");
                let selector = query_param(&query, "labelSelector").unwrap_or_default();
                let fields = query_param(&query, "fieldSelector").unwrap_or_default();
                let items: Vec<Value> = st
                    .objects
                    .iter()
                    .filter(|(k, _)| k.starts_with(&prefix) && !k[prefix.len()..].contains('/'))
                    .map(|(_, v)| v.clone())
                    .filter(|v| labels_match(v, &selector) && fields_match(v, &fields))
                    .collect();
                if items.is_empty() && is_object_path(&obj_path) {
                    return status_response(404, "NotFound", &format!("{obj_path} not found"));
                }
                ok(&json!({"apiVersion": "v1", "kind": "List",
                           "metadata": {"resourceVersion": st.rv.to_string()}, "items": items}))
            }
            "PATCH" => {
                let body = body.unwrap_or(Value::Null);
                if content_type.contains("apply-patch") {
                    st.apply(&obj_path, body, sub)
                } else if content_type.contains("merge-patch") {
                    st.merge(&obj_path, body, sub)
                } else {
                    status_response(415, "UnsupportedMediaType", &content_type)
                }
            }
            "POST" => {
                let body = body.unwrap_or(Value::Null);
                let name = body["metadata"]["name"].as_str().unwrap_or_default();
                let p = format!("{obj_path}/{name}");
                if st.objects.contains_key(&p) {
                    return status_response(409, "AlreadyExists", &format!("{p} exists"));
                }
                let created = st.stamp_new(body);
                st.objects.insert(p, created.clone());
                ok(&created)
            }
            "DELETE" => {
                let Some(mut o) = st.objects.get(&obj_path).cloned() else {
                    return status_response(404, "NotFound", &format!("{obj_path} not found"));
                };
                let has_finalizers = o["metadata"]["finalizers"]
                    .as_array()
                    .is_some_and(|f| !f.is_empty());
                if has_finalizers {
                    o["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
                    st.objects.insert(obj_path, o.clone());
                } else {
                    st.objects.remove(&obj_path);
                }
                ok(&o)
            }
            _ => status_response(405, "MethodNotAllowed", &method),
        }
    }

    // ---------- test helpers ----------

    /// Stores an object (with apiVersion, kind, metadata.name/namespace) as is.
    pub fn put(&self, plural: &str, obj: Value) {
        let p = path(
            obj["apiVersion"].as_str().unwrap(),
            plural,
            obj["metadata"]["namespace"].as_str().unwrap(),
            obj["metadata"]["name"].as_str().unwrap(),
        );
        let mut st = self.state.lock().unwrap();
        let stamped = st.stamp_new(obj);
        st.objects.insert(p, stamped);
    }

    /// The stored object at `path`.
    pub fn get(&self, path: &str) -> Option<Value> {
        self.state.lock().unwrap().objects.get(path).cloned()
    }

    /// Changes a stored object in place (bumping resourceVersion, and generation if spec changed).
    pub fn update(&self, path: &str, f: impl FnOnce(&mut Value)) {
        let mut st = self.state.lock().unwrap();
        st.rv += 1;
        let rv = st.rv;
        let o = st.objects.get_mut(path).expect("object exists");
        let spec_before = o["spec"].clone();
        f(o);
        o["metadata"]["resourceVersion"] = json!(rv.to_string());
        if o["spec"] != spec_before {
            let g = o["metadata"]["generation"].as_i64().unwrap_or(1);
            o["metadata"]["generation"] = json!(g + 1);
        }
    }

    /// The MilvusCluster as the controller would see it.
    pub fn mc(&self, ns: &str, name: &str) -> Option<MilvusCluster> {
        self.get(&mc_path(ns, name))
            .map(|v| serde_json::from_value(v).expect("valid MilvusCluster"))
    }

    /// Paths of the stored objects whose path contains `fragment`.
    pub fn paths(&self, fragment: &str) -> Vec<String> {
        self.state
            .lock()
            .unwrap()
            .objects
            .keys()
            .filter(|k| k.contains(fragment))
            .cloned()
            .collect()
    }

    /// Makes every StatefulSet and Deployment report all replicas ready and updated.
    pub fn make_workloads_ready(&self) {
        let mut st = self.state.lock().unwrap();
        for (p, o) in st.objects.iter_mut() {
            if p.contains("/statefulsets/") || p.contains("/deployments/") {
                let replicas = o["spec"]["replicas"].as_i64().unwrap_or(1);
                let generation = o["metadata"]["generation"].as_i64().unwrap_or(1);
                let rev = format!("rev-{generation}");
                o["status"] = json!({
                    "observedGeneration": generation,
                    "replicas": replicas,
                    "readyReplicas": replicas,
                    "availableReplicas": replicas,
                    "updatedReplicas": replicas,
                    "currentRevision": rev,
                    "updateRevision": rev,
                });
            }
        }
    }

    /// Every recorded request.
    pub fn log(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().log.clone()
    }

    /// Forgets the recorded requests.
    pub fn clear_log(&self) {
        self.state.lock().unwrap().log.clear();
    }

    /// Recorded writes (anything but GET).
    pub fn writes(&self) -> Vec<Recorded> {
        self.log().into_iter().filter(Recorded::is_write).collect()
    }

    /// Every write since the fake started.
    pub fn all_writes(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().all_writes.clone()
    }

    /// Marks `ns` as being deleted: creates in it fail with 403 `NamespaceTerminating`.
    pub fn terminate_namespace(&self, ns: &str) {
        self.state.lock().unwrap().terminating.insert(ns.into());
    }

    /// Removes a stored object (as the garbage collector or a user would).
    pub fn remove(&self, path: &str) {
        self.state.lock().unwrap().objects.remove(path);
    }

    /// Makes writes to paths containing `fragment` fail with `code`.
    pub fn fail_writes(&self, fragment: &str, code: u16, message: &str) {
        self.state
            .lock()
            .unwrap()
            .failures
            .insert(fragment.into(), (code, message.into()));
    }
}

fn is_object_path(p: &str) -> bool {
    // /api/v1/namespaces/ns/plural/name has 6 segments, /apis/g/v/namespaces/ns/plural/name 7
    let n = p.split('/').filter(|s| !s.is_empty()).count();
    if p.starts_with("/apis/") {
        n == 7
    } else {
        n == 6
    }
}

impl State {
    fn stamp_new(&mut self, mut obj: Value) -> Value {
        self.rv += 1;
        let m = &mut obj["metadata"];
        m["resourceVersion"] = json!(self.rv.to_string());
        if m["uid"].is_null() {
            m["uid"] = json!(format!("uid-{}", self.rv));
        }
        if m["generation"].is_null() {
            m["generation"] = json!(1);
        }
        if m["creationTimestamp"].is_null() {
            m["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
        }
        obj
    }

    fn apply(&mut self, p: &str, body: Value, sub: bool) -> Response<Body> {
        match self.objects.get(p).cloned() {
            None if sub => status_response(404, "NotFound", p),
            None => {
                let created = self.stamp_new(body);
                self.objects.insert(p.to_string(), created.clone());
                ok(&created)
            }
            Some(mut old) => {
                self.rv += 1;
                if sub {
                    old["status"] = body["status"].clone();
                } else {
                    // our manager owns everything it sends: the new object is
                    // the body, plus server-managed metadata and the status
                    let mut new = body;
                    for k in [
                        "uid",
                        "creationTimestamp",
                        "generation",
                        "finalizers",
                        "deletionTimestamp",
                    ] {
                        if !old["metadata"][k].is_null() && new["metadata"][k].is_null() {
                            new["metadata"][k] = old["metadata"][k].clone();
                        }
                    }
                    if old["spec"] != new["spec"] {
                        let g = old["metadata"]["generation"].as_i64().unwrap_or(1);
                        new["metadata"]["generation"] = json!(g + 1);
                    }
                    // fields owned by others (e.g. replicas set by an HPA) survive
                    if new["spec"]["replicas"].is_null() && !old["spec"]["replicas"].is_null() {
                        new["spec"]["replicas"] = old["spec"]["replicas"].clone();
                    }
                    new["status"] = old["status"].clone();
                    old = new;
                }
                old["metadata"]["resourceVersion"] = json!(self.rv.to_string());
                self.objects.insert(p.to_string(), old.clone());
                ok(&old)
            }
        }
    }

    fn merge(&mut self, p: &str, patch: Value, sub: bool) -> Response<Body> {
        let Some(mut obj) = self.objects.get(p).cloned() else {
            return status_response(404, "NotFound", p);
        };
        if let Some(rv) = patch["metadata"]["resourceVersion"].as_str()
            && obj["metadata"]["resourceVersion"].as_str() != Some(rv)
        {
            return status_response(409, "Conflict", "the object has been modified");
        }
        let mut patch = patch;
        if let Some(m) = patch["metadata"].as_object_mut() {
            m.remove("resourceVersion");
        }
        if sub {
            deep_merge(&mut obj["status"], patch["status"].clone());
        } else {
            merge_patch(&mut obj, patch);
        }
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let gone = !obj["metadata"]["deletionTimestamp"].is_null()
            && obj["metadata"]["finalizers"]
                .as_array()
                .is_none_or(|f| f.is_empty());
        if gone {
            self.objects.remove(p);
        } else {
            self.objects.insert(p.to_string(), obj.clone());
        }
        ok(&obj)
    }
}

/// RFC 7386 JSON merge patch.
fn merge_patch(target: &mut Value, patch: Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            let t = target.as_object_mut().unwrap();
            for (k, v) in p {
                if v.is_null() {
                    t.remove(&k);
                } else {
                    merge_patch(t.entry(k).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other,
    }
}
