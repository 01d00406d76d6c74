//! A small fake Kubernetes API server on 127.0.0.1 for watch-driven tests.
//!
//! kube's tower-test mock answers one scripted request at a time, which cannot express a
//! controller that lists, watches, elects a leader and binds concurrently. This server keeps an
//! in-memory object store and speaks the subset of the API that gpusched uses, the way the real
//! API server does:
//!
//! * list (`GET` on a collection) with a `resourceVersion` in the list metadata, `fieldSelector`
//!   `metadata.name=` / `metadata.namespace=` and `labelSelector` `k=v`;
//! * watch (`?watch=true&resourceVersion=N`): the events after N, then live events, as
//!   newline-delimited JSON on a chunked response; a resourceVersion older than the server keeps
//!   answers `410 Gone` inside the stream, as the real server does;
//! * get, create (`409 AlreadyExists`), replace with optimistic concurrency (`409 Conflict` on a
//!   stale `metadata.resourceVersion`), delete;
//! * patch: JSON merge patch, strategic merge patch (approximated: merge patch, with
//!   `status.conditions` merged by `type` as the real strategy does), JSON patch;
//! * subresources: `pods/binding` (refused with 409 when already bound or when the uid differs),
//!   `pods/eviction` (deletes the pod, or 429 for pods marked as protected by a budget),
//!   `deployments/scale`, `pods/status`.
//!
//! * validation as kube-apiserver does it (`support/validation.rs`): object names and
//!   generateName (RFC 1123), namespaces, label keys and values, annotation keys and total size,
//!   ConfigMap keys, node taints, and the strict events.k8s.io/v1 rules; 422 Invalid otherwise.
//!
//! Every request is recorded for assertions.

#![allow(dead_code)]

use super::validation;
use bytes::Bytes;
use futures::channel::mpsc;
use futures::StreamExt;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

type Body = BoxBody<Bytes, Infallible>;

/// One request as the server received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: String,
    pub content_type: String,
    pub body: Value,
}

/// Where an object lives: resource plural, namespace ("" for cluster-scoped), name.
type Key = (String, String, String);

struct Watcher {
    resource: String,
    namespace: Option<String>,
    name: Option<String>,
    tx: mpsc::UnboundedSender<Bytes>,
}

#[derive(Default)]
struct Store {
    rv: u64,
    objects: BTreeMap<Key, Value>,
    /// Every change, for watches that start from an older resourceVersion.
    history: Vec<(u64, String, Value)>,
    /// Changes at or before this resourceVersion are compacted away (watch → 410 Gone).
    compacted_to: u64,
    watchers: Vec<Watcher>,
    seen: Vec<Seen>,
    /// Pods whose eviction a PodDisruptionBudget forbids (namespace/name).
    protected: BTreeSet<String>,
    uid: u64,
    /// Names made from a generateName so far (picks each suffix).
    generated: u64,
}

/// A running fake API server. Dropping it leaves the task running until the test ends.
#[derive(Clone)]
pub struct FakeApiServer {
    store: Arc<Mutex<Store>>,
    pub url: String,
}

const CLUSTER_SCOPED: [&str; 1] = ["nodes"];

fn kind_of(resource: &str) -> (&'static str, &'static str) {
    match resource {
        "nodes" => ("v1", "Node"),
        "pods" => ("v1", "Pod"),
        "configmaps" => ("v1", "ConfigMap"),
        "events" => ("events.k8s.io/v1", "Event"),
        "leases" => ("coordination.k8s.io/v1", "Lease"),
        "deployments" => ("apps/v1", "Deployment"),
        "horizontalpodautoscalers" => ("autoscaling/v2", "HorizontalPodAutoscaler"),
        _ => ("v1", "Unknown"),
    }
}

fn resource_of(kind: &str) -> &'static str {
    match kind {
        "Node" => "nodes",
        "Pod" => "pods",
        "ConfigMap" => "configmaps",
        "Event" => "events",
        "Lease" => "leases",
        "Deployment" => "deployments",
        "HorizontalPodAutoscaler" => "horizontalpodautoscalers",
        other => panic!("the fake API server does not know kind {other}"),
    }
}

/// 422 Invalid with the causes, as the real server words it.
fn invalid(resource: &str, name: &str, errs: &[String]) -> (u16, Value) {
    status(
        422,
        "Invalid",
        &format!("{resource} {name:?} is invalid: {}", errs.join(", ")),
    )
}

fn status(code: u16, reason: &str, message: &str) -> (u16, Value) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
               "status": if code < 300 { "Success" } else { "Failure" },
               "reason": reason, "message": message, "code": code}),
    )
}

/// RFC 7386 merge, except that `status.conditions` lists merge by `type` (strategic merge).
fn strategic_merge(doc: &mut Value, patch: &Value) {
    let conds = patch.pointer("/status/conditions").cloned();
    let mut p = patch.clone();
    if let Some(Value::Object(s)) = p.get_mut("status") {
        s.remove("conditions");
    }
    json_patch::merge(doc, &p);
    if let Some(Value::Array(new)) = conds {
        let list = doc
            .as_object_mut()
            .unwrap()
            .entry("status")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .unwrap()
            .entry("conditions")
            .or_insert_with(|| json!([]));
        let arr = list.as_array_mut().unwrap();
        for c in new {
            match arr.iter_mut().find(|x| x["type"] == c["type"]) {
                Some(x) => json_patch::merge(x, &c),
                None => arr.push(c),
            }
        }
    }
}

fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The parts of an API path: resource, namespace, name, subresource.
#[derive(Debug)]
struct Target {
    resource: String,
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

fn parse_path(path: &str) -> Option<Target> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let rest = match segs.as_slice() {
        ["api", "v1", rest @ ..] => rest,
        ["apis", _group, _version, rest @ ..] => rest,
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(ns.to_string()), rest),
        _ => (None, rest),
    };
    let (resource, name, sub) = match rest {
        [r] => (r, None, None),
        [r, n] => (r, Some(n.to_string()), None),
        [r, n, s] => (r, Some(n.to_string()), Some(s.to_string())),
        _ => return None,
    };
    Some(Target {
        resource: resource.to_string(),
        namespace,
        name,
        sub,
    })
}

fn matches_selectors(obj: &Value, query: &str) -> bool {
    if let Some(fs) = query_param(query, "fieldSelector") {
        for term in fs.split(',').filter(|t| !t.is_empty()) {
            let Some((k, v)) = term.split_once('=') else {
                continue;
            };
            let path = format!("/{}", k.replace('.', "/"));
            if obj.pointer(&path).and_then(Value::as_str) != Some(v) {
                return false;
            }
        }
    }
    if let Some(ls) = query_param(query, "labelSelector") {
        for term in ls.split(',').filter(|t| !t.is_empty()) {
            let labels = &obj["metadata"]["labels"];
            let ok = match term.split_once('=') {
                Some((k, v)) => labels.get(k).and_then(Value::as_str) == Some(v),
                None => labels.get(term).is_some(),
            };
            if !ok {
                return false;
            }
        }
    }
    true
}

impl Store {
    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    /// Stores `obj` (a new resourceVersion) and tells the watchers.
    fn put(&mut self, resource: &str, mut obj: Value, event: &str) -> Value {
        let rv = self.next_rv();
        let (api_version, kind) = kind_of(resource);
        let meta = obj["metadata"].as_object_mut().expect("metadata");
        meta.insert("resourceVersion".into(), json!(rv.to_string()));
        if !meta.contains_key("uid") {
            self.uid += 1;
            meta.insert("uid".into(), json!(format!("fake-uid-{}", self.uid)));
        }
        if !meta.contains_key("creationTimestamp") {
            meta.insert("creationTimestamp".into(), json!("2026-11-23T00:00:00Z"));
        }
        obj["apiVersion"] = json!(api_version);
        obj["kind"] = json!(kind);
        let ns = obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
        let key = (resource.to_string(), ns, name);
        if event == "DELETED" {
            self.objects.remove(&key);
        } else {
            self.objects.insert(key, obj.clone());
        }
        self.history.push((rv, event.to_string(), obj.clone()));
        self.notify(resource, event, &obj);
        obj
    }

    fn notify(&mut self, resource: &str, event: &str, obj: &Value) {
        let line = Bytes::from(format!("{}\n", json!({"type": event, "object": obj})));
        self.watchers.retain(|w| {
            if w.resource != resource
                || w.namespace
                    .as_deref()
                    .is_some_and(|ns| obj["metadata"]["namespace"].as_str() != Some(ns))
                || w.name
                    .as_deref()
                    .is_some_and(|n| obj["metadata"]["name"].as_str() != Some(n))
            {
                return !w.tx.is_closed();
            }
            w.tx.unbounded_send(line.clone()).is_ok()
        });
    }

    fn get(&self, resource: &str, ns: &str, name: &str) -> Option<Value> {
        self.objects
            .get(&(resource.to_string(), ns.to_string(), name.to_string()))
            .cloned()
    }
}

impl FakeApiServer {
    /// Starts the server on a free port of 127.0.0.1.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = FakeApiServer {
            store: Arc::new(Mutex::new(Store::default())),
            url,
        };
        let s = server.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let s = s.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let s = s.clone();
                        async move { Ok::<_, Infallible>(s.handle(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        server
    }

    /// A kube client for this server (no TLS, no credentials), built as gpusched builds its own
    /// (`gpusched_live::client`: no retry layer that would hide a 429).
    pub fn client(&self) -> kube::Client {
        let config = kube::Config::new(self.url.parse().unwrap());
        gpusched_live::client::from_config(config).expect("kube client")
    }

    /// Adds or replaces an object (any typed Kubernetes object), as another client would.
    pub fn apply<T>(&self, obj: &T) -> Value
    where
        T: serde::Serialize + kube::Resource<DynamicType = ()>,
    {
        let v = serde_json::to_value(obj).unwrap();
        let resource = resource_of(&T::kind(&()));
        let mut st = self.store.lock().unwrap();
        let ns = v["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let name = v["metadata"]["name"].as_str().unwrap_or("").to_string();
        let errs = validation::object(resource, &v, true);
        assert!(
            errs.is_empty(),
            "test fixture {resource} {ns}/{name} would be refused by a real API server: {errs:?}"
        );
        let exists = st.get(resource, &ns, &name).is_some();
        st.put(resource, v, if exists { "MODIFIED" } else { "ADDED" })
    }

    /// Deletes an object, as another client would.
    pub fn delete(&self, resource: &str, ns: &str, name: &str) {
        let mut st = self.store.lock().unwrap();
        if let Some(v) = st.get(resource, ns, name) {
            st.put(resource, v, "DELETED");
        }
    }

    pub fn get(&self, resource: &str, ns: &str, name: &str) -> Option<Value> {
        self.store.lock().unwrap().get(resource, ns, name)
    }

    pub fn list(&self, resource: &str) -> Vec<Value> {
        let st = self.store.lock().unwrap();
        st.objects
            .iter()
            .filter(|((r, _, _), _)| r == resource)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Seen> {
        self.store.lock().unwrap().seen.clone()
    }

    /// Marks a pod as protected by a PodDisruptionBudget: its eviction answers 429.
    pub fn protect(&self, ns: &str, name: &str) {
        self.store
            .lock()
            .unwrap()
            .protected
            .insert(format!("{ns}/{name}"));
    }

    /// Forgets history up to now and ends every open watch, as an etcd compaction plus an API
    /// server restart would: clients must list again.
    pub fn compact_and_drop_watches(&self) {
        let mut st = self.store.lock().unwrap();
        st.compacted_to = st.rv;
        st.history.clear();
        st.watchers.clear();
    }

    /// Polls `check` until it returns `Some`, for up to `timeout` (tests of a live loop must wait
    /// for it; this bounds the wait instead of sleeping a fixed time).
    pub async fn wait_for<T>(
        &self,
        what: &str,
        timeout: std::time::Duration,
        mut check: impl FnMut(&FakeApiServer) -> Option<T>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(v) = check(self) {
                return v;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {what}; requests seen:\n{}",
                    self.requests()
                        .iter()
                        .map(|s| format!("  {} {}?{}", s.method, s.path, s.query))
                        .collect::<Vec<_>>()
                        .join("\n")
                );
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    async fn handle(&self, req: Request<hyper::body::Incoming>) -> Response<Body> {
        let method = req.method().to_string();
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or("").to_string();
        let content_type = req
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let bytes = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        self.store.lock().unwrap().seen.push(Seen {
            method: method.clone(),
            path: path.clone(),
            query: query.clone(),
            content_type: content_type.clone(),
            body: body.clone(),
        });
        let Some(t) = parse_path(&path) else {
            return respond(status(404, "NotFound", &format!("no route {path}")));
        };
        if method == "GET" && t.name.is_none() {
            if query_param(&query, "watch").as_deref() == Some("true")
                || query_param(&query, "watch").as_deref() == Some("1")
            {
                return self.watch(&t, &query);
            }
            return respond(self.list_objects(&t, &query));
        }
        respond(self.change(&method, &t, &content_type, body))
    }

    fn list_objects(&self, t: &Target, query: &str) -> (u16, Value) {
        let st = self.store.lock().unwrap();
        let items: Vec<Value> = st
            .objects
            .iter()
            .filter(|((r, ns, _), _)| {
                *r == t.resource && t.namespace.as_ref().is_none_or(|want| want == ns)
            })
            .map(|(_, v)| v.clone())
            .filter(|v| matches_selectors(v, query))
            .collect();
        let (api_version, kind) = kind_of(&t.resource);
        (
            200,
            json!({"apiVersion": api_version, "kind": format!("{kind}List"),
                   "metadata": {"resourceVersion": st.rv.to_string()}, "items": items}),
        )
    }

    fn watch(&self, t: &Target, query: &str) -> Response<Body> {
        let (tx, rx) = mpsc::unbounded::<Bytes>();
        let mut st = self.store.lock().unwrap();
        let from: u64 = query_param(query, "resourceVersion")
            .and_then(|v| v.parse().ok())
            .unwrap_or(st.rv);
        let name_filter = query_param(query, "fieldSelector")
            .and_then(|fs| fs.strip_prefix("metadata.name=").map(str::to_string));
        if from < st.compacted_to {
            let gone = json!({"type": "ERROR", "object": status(410, "Expired",
                &format!("too old resource version: {from} ({})", st.compacted_to)).1});
            let _ = tx.unbounded_send(Bytes::from(format!("{gone}\n")));
            drop(tx);
        } else {
            let replay: Vec<Value> = st
                .history
                .iter()
                .filter(|(rv, _, obj)| {
                    *rv > from
                        && resource_of(obj["kind"].as_str().unwrap_or("")) == t.resource
                        && t.namespace
                            .as_deref()
                            .is_none_or(|ns| obj["metadata"]["namespace"].as_str() == Some(ns))
                        && matches_selectors(obj, query)
                })
                .map(|(_, ev, obj)| json!({"type": ev, "object": obj}))
                .collect();
            for ev in replay {
                let _ = tx.unbounded_send(Bytes::from(format!("{ev}\n")));
            }
            st.watchers.push(Watcher {
                resource: t.resource.clone(),
                namespace: t.namespace.clone(),
                name: name_filter,
                tx,
            });
        }
        let stream = rx.map(|b| Ok::<_, Infallible>(Frame::data(b)));
        Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(BodyExt::boxed(StreamBody::new(stream)))
            .unwrap()
    }

    fn change(&self, method: &str, t: &Target, content_type: &str, body: Value) -> (u16, Value) {
        let mut st = self.store.lock().unwrap();
        let ns = t.namespace.clone().unwrap_or_default();
        let resource = t.resource.as_str();
        if CLUSTER_SCOPED.contains(&resource) != t.namespace.is_none() {
            return status(404, "NotFound", "wrong scope");
        }
        match (method, t.name.as_deref(), t.sub.as_deref()) {
            ("POST", None, None) => {
                let mut obj = body;
                let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
                if name.is_empty() {
                    if let Some(prefix) = obj["metadata"]["generateName"].as_str() {
                        // The prefix itself, then the name made from it, as the real server
                        // checks them.
                        if let Err(e) = validation::generate_name(resource, prefix) {
                            return invalid(
                                resource,
                                prefix,
                                &[format!("metadata.generateName: Invalid value: {e}")],
                            );
                        }
                        st.generated += 1;
                        let n = validation::generated_name(prefix, st.generated);
                        obj["metadata"]["name"] = json!(n);
                    } else {
                        return status(
                            422,
                            "Invalid",
                            "metadata.name: Required value: name or generateName is required",
                        );
                    }
                }
                let name = obj["metadata"]["name"].as_str().unwrap().to_string();
                if st.get(resource, &ns, &name).is_some() {
                    return status(
                        409,
                        "AlreadyExists",
                        &format!("{resource} \"{name}\" already exists"),
                    );
                }
                obj["metadata"]["namespace"] = if ns.is_empty() {
                    Value::Null
                } else {
                    json!(ns)
                };
                if ns.is_empty() {
                    obj["metadata"].as_object_mut().unwrap().remove("namespace");
                }
                let errs = validation::object(resource, &obj, true);
                if !errs.is_empty() {
                    return invalid(resource, &name, &errs);
                }
                (201, st.put(resource, obj, "ADDED"))
            }
            ("GET", Some(name), None) => match st.get(resource, &ns, name) {
                Some(v) => (200, v),
                None => status(404, "NotFound", &format!("{resource} \"{name}\" not found")),
            },
            ("PUT", Some(name), None) => {
                let Some(cur) = st.get(resource, &ns, name) else {
                    return status(404, "NotFound", &format!("{resource} \"{name}\" not found"));
                };
                let want = body["metadata"]["resourceVersion"].as_str();
                if want.is_some() && want != cur["metadata"]["resourceVersion"].as_str() {
                    return status(409, "Conflict", "the object has been modified; please apply your changes to the latest version and try again");
                }
                let mut obj = body;
                obj["metadata"]["uid"] = cur["metadata"]["uid"].clone();
                obj["metadata"]["creationTimestamp"] = cur["metadata"]["creationTimestamp"].clone();
                let errs = validation::object(resource, &obj, false);
                if !errs.is_empty() {
                    return invalid(resource, name, &errs);
                }
                (200, st.put(resource, obj, "MODIFIED"))
            }
            ("DELETE", Some(name), None) => match st.get(resource, &ns, name) {
                Some(v) => (200, st.put(resource, v, "DELETED")),
                None => status(404, "NotFound", &format!("{resource} \"{name}\" not found")),
            },
            ("PATCH", Some(name), sub) => {
                let Some(mut cur) = st.get(resource, &ns, name) else {
                    return status(404, "NotFound", &format!("{resource} \"{name}\" not found"));
                };
                let patch = match sub {
                    Some("scale") if resource == "deployments" => {
                        json!({"spec": {"replicas": body["spec"]["replicas"].clone()}})
                    }
                    Some("status") | None => body,
                    Some(other) => {
                        return status(404, "NotFound", &format!("no subresource {other}"))
                    }
                };
                if content_type.starts_with("application/merge-patch+json") {
                    json_patch::merge(&mut cur, &patch);
                } else if content_type.starts_with("application/strategic-merge-patch+json") {
                    strategic_merge(&mut cur, &patch);
                } else if content_type.starts_with("application/json-patch+json") {
                    let Ok(p) = serde_json::from_value::<json_patch::Patch>(patch) else {
                        return status(400, "BadRequest", "not a JSON patch");
                    };
                    if let Err(e) = json_patch::patch(&mut cur, &p) {
                        return status(422, "Invalid", &e.to_string());
                    }
                } else {
                    return status(415, "UnsupportedMediaType", content_type);
                }
                let errs = validation::object(resource, &cur, false);
                if !errs.is_empty() {
                    return invalid(resource, name, &errs);
                }
                let obj = st.put(resource, cur, "MODIFIED");
                if sub == Some("scale") {
                    return (
                        200,
                        json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
                        "metadata": {"name": name, "namespace": ns},
                        "spec": {"replicas": obj["spec"]["replicas"]}}),
                    );
                }
                (200, obj)
            }
            ("POST", Some(name), Some("binding")) if resource == "pods" => {
                let Some(mut pod) = st.get("pods", &ns, name) else {
                    return status(404, "NotFound", &format!("pods \"{name}\" not found"));
                };
                if let Some(uid) = body["metadata"]["uid"].as_str() {
                    if pod["metadata"]["uid"].as_str() != Some(uid) {
                        return status(
                            409,
                            "Conflict",
                            "Precondition failed: UID in precondition does not match",
                        );
                    }
                }
                if pod["spec"]["nodeName"].as_str().is_some() {
                    return status(
                        409,
                        "Conflict",
                        &format!(
                            "pod {name} is already assigned to node {}",
                            pod["spec"]["nodeName"]
                        ),
                    );
                }
                let Some(node) = body["target"]["name"].as_str() else {
                    return status(422, "Invalid", "target.name is required");
                };
                pod["spec"]["nodeName"] = json!(node);
                st.put("pods", pod, "MODIFIED");
                status(201, "", "")
            }
            ("POST", Some(name), Some("eviction")) if resource == "pods" => {
                let Some(pod) = st.get("pods", &ns, name) else {
                    return status(404, "NotFound", &format!("pods \"{name}\" not found"));
                };
                if st.protected.contains(&format!("{ns}/{name}")) {
                    return status(
                        429,
                        "TooManyRequests",
                        "Cannot evict pod as it would violate the pod's disruption budget.",
                    );
                }
                st.put("pods", pod, "DELETED");
                status(201, "", "")
            }
            _ => status(405, "MethodNotAllowed", &format!("{method} {resource}")),
        }
    }
}

fn respond((code, body): (u16, Value)) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap())
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())).boxed())
        .unwrap()
}
