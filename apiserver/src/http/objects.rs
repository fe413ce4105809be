//! Single-object verbs: create, get, delete; update and patch are in
//! [`super::update`]. Each follows kube-apiserver's rules for metadata,
//! namespaces, validation, dry runs and finalizers.

use super::body::{self, Body};
use super::{App, Params, meta, route::ResourceRoute, table};
use crate::error::{ApiError, Cause, Subject};
use crate::registry::{Builtin, ResourceInfo};
use crate::schema;
use crate::store::Precondition;
use http::{Response, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;

pub use super::update::{patch, update};

/// One resource request, parsed.
pub struct Request {
    /// Shared state.
    pub app: Arc<App>,
    /// What the path names.
    pub route: ResourceRoute,
    /// Query parameters.
    pub params: Params,
    /// The Accept header.
    pub accept: String,
    /// The Content-Type header.
    pub content_type: String,
    /// The User-Agent header (the field manager of updates that name none).
    pub user_agent: String,
    /// Who sent it.
    pub user: crate::auth::User,
}

impl Request {
    /// The error subject for the named object.
    pub fn subject<'a>(&'a self, name: &'a str) -> Subject<'a> {
        Subject {
            group: &self.route.info.group,
            resource: &self.route.info.plural,
            kind: &self.route.info.kind,
            name,
        }
    }

    /// The store key of the named object.
    pub fn key(&self, name: &str) -> String {
        self.route.info.key(self.route.namespace.as_deref(), name)
    }

    /// The object name from the path.
    pub fn name(&self) -> &str {
        self.route.name.as_deref().unwrap_or_default()
    }

    /// The named object as stored now; 404 when there is none.
    pub async fn current(&self, name: &str) -> Result<Arc<crate::store::KeyValue>, ApiError> {
        self.app
            .store
            .get(&self.key(name))
            .await?
            .ok_or_else(|| ApiError::not_found(self.subject(name)))
    }

    /// A stored value as this resource serves it.
    pub fn load(&self, kv: &crate::store::KeyValue) -> Result<Value, ApiError> {
        meta::load(&self.route.info, kv)
    }

    /// Renders one object as JSON or as a Table row.
    pub fn respond(&self, status: StatusCode, obj: &Value) -> Response<Body> {
        if table::wants_table(&self.accept) {
            let t = table::table(
                &self.route.info,
                std::slice::from_ref(obj),
                &self.params,
                json!({}),
                true,
            );
            return body::json(status, &t);
        }
        body::json(status, obj)
    }

    /// Renders `obj`, just stored as `kv`: the stored bytes with the
    /// resourceVersion spliced in when they are what this request is served
    /// (JSON of the stored shape), so the object is not encoded a second time.
    pub fn respond_stored(
        &self,
        status: StatusCode,
        kv: &crate::store::KeyValue,
        obj: &Value,
    ) -> Response<Body> {
        self.spliced(status, kv)
            .unwrap_or_else(|| self.respond(status, obj))
    }

    /// Renders a stored object, decoding it only when it must be reshaped.
    pub fn respond_kv(
        &self,
        status: StatusCode,
        kv: &crate::store::KeyValue,
    ) -> Result<Response<Body>, ApiError> {
        match self.spliced(status, kv) {
            Some(r) => Ok(r),
            None => Ok(self.respond(status, &self.load(kv)?)),
        }
    }

    fn spliced(&self, status: StatusCode, kv: &crate::store::KeyValue) -> Option<Response<Body>> {
        if !self.route.info.view.is_stored() || table::wants_table(&self.accept) {
            return None;
        }
        let bytes = super::splice::with_resource_version(&kv.value, kv.mod_revision)?;
        Some(body::json_bytes(status, bytes))
    }
}

/// Gives a body the URL's name when it has none; a different one is a 400.
pub fn check_name(obj: &mut Value, name: &str) -> Result<(), ApiError> {
    match obj["metadata"]["name"].as_str() {
        None | Some("") => obj["metadata"]["name"] = json!(name),
        Some(n) if n == name => {}
        Some(n) => {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
    }
    Ok(())
}

/// The status an object of Mosaic's own kinds has from its creation on.
fn initial_status(info: &ResourceInfo) -> Option<Value> {
    if info.group != mosaic_crds::GROUP {
        return None;
    }
    mosaic_crds::initial_status(&info.kind, k8s_openapi::jiff::Timestamp::now())
}

/// Validation warnings to send back in `Warning` headers.
pub type Warnings = Vec<String>;

/// Applies the schema (prune, default, validate) and the per-kind checks.
/// Unknown fields are an error under `fieldValidation=Strict`, a warning under `Warn`.
/// On an update, `old` is the stored object: failures in values it already
/// held are not reported (validation ratcheting).
pub fn admit(
    req: &Request,
    obj: &mut Value,
    name: &str,
    old: Option<&Value>,
) -> Result<Warnings, ApiError> {
    let info = &req.route.info;
    let mut warnings = Vec::new();
    let mut causes: Vec<Cause> = Vec::new();
    if let Some(s) = &info.schema {
        let mut out = schema::apply_update(s, obj, old);
        // Every kind's metadata is an ObjectMeta, whatever its own schema says.
        if obj.get("metadata").is_some() {
            let meta = schema::apply_field(
                &crate::builtin_schema::OBJECT_META,
                &mut obj["metadata"],
                "metadata",
            );
            out.unknown.extend(meta.unknown);
            out.causes.extend(meta.causes);
        }
        if !out.unknown.is_empty() {
            match req.params.field_validation.as_str() {
                "Strict" => {
                    let list = out
                        .unknown
                        .iter()
                        .map(|u| format!("unknown field \"{u}\""))
                        .collect::<Vec<_>>();
                    return Err(ApiError::bad_request(format!(
                        "strict decoding error: {}",
                        list.join(", ")
                    )));
                }
                "Warn" => {
                    warnings.extend(out.unknown.iter().map(|u| format!("unknown field \"{u}\"")))
                }
                _ => {}
            }
        }
        causes.extend(out.causes);
    }
    crate::builtin_rules::normalize(info, obj);
    causes.extend(meta::check_labels(obj));
    causes.extend(super::limits::check_annotations(obj));
    causes.extend(crate::admission::check(info, obj));
    // A create's CEL rules are reported with the schema's failures, as
    // kube-apiserver reports them (an update's run on the object as it will
    // be stored: [`check_rules`]). Not on values of the wrong type.
    if old.is_none()
        && let Some(rules) = &info.rules
        && !causes.iter().any(|c| c.reason == "FieldValueTypeInvalid")
    {
        causes.extend(crate::cel::validate(rules, obj, None));
    }
    if !causes.is_empty() {
        return Err(ApiError::invalid(req.subject(name), causes));
    }
    Ok(warnings)
}

/// The kind's CEL rules (`x-kubernetes-validations`) on the object as it
/// will be stored; `old` on an update (transition rules, ratcheting).
pub fn check_rules(
    req: &Request,
    obj: &Value,
    old: Option<&Value>,
    name: &str,
) -> Result<(), ApiError> {
    let Some(rules) = &req.route.info.rules else {
        return Ok(());
    };
    let causes = crate::cel::validate(rules, obj, old);
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(req.subject(name), causes))
    }
}

/// Adds `Warning` headers.
pub fn with_warnings(mut resp: Response<Body>, warnings: &Warnings) -> Response<Body> {
    for w in warnings {
        let v = format!("299 - \"{}\"", w.replace('"', "\\\""));
        if let Ok(h) = http::HeaderValue::from_str(&v) {
            resp.headers_mut().append("Warning", h);
        }
    }
    resp
}

/// Checks `apiVersion` and `kind` against the resource, filling them when absent.
pub fn check_type_meta(info: &ResourceInfo, obj: &mut Value) -> Result<(), ApiError> {
    if !obj.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    let api_version = info.api_version();
    match obj["apiVersion"].as_str() {
        None => obj["apiVersion"] = json!(api_version),
        Some(v) if v == api_version => {}
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({api_version})"
            )));
        }
    }
    match obj["kind"].as_str() {
        None => obj["kind"] = json!(info.kind),
        Some(k) if k == info.kind => {}
        Some(k) => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                info.kind
            )));
        }
    }
    if !obj["metadata"].is_object() {
        if obj["metadata"].is_null() {
            obj["metadata"] = json!({});
        } else {
            return Err(ApiError::bad_request("metadata must be an object"));
        }
    }
    Ok(())
}

/// Makes the body's namespace agree with the path's (a mismatch is a 400).
pub fn check_namespace(req: &Request, obj: &mut Value) -> Result<(), ApiError> {
    let info = &req.route.info;
    if !info.namespaced {
        if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("namespace");
        }
        return Ok(());
    }
    let path_ns = req.route.namespace.as_deref().ok_or_else(|| {
        ApiError::bad_request(format!(
            "{} is namespaced: use /namespaces/<ns>/{}",
            info.plural, info.plural
        ))
    })?;
    match obj["metadata"]["namespace"].as_str() {
        None | Some("") => obj["metadata"]["namespace"] = json!(path_ns),
        Some(ns) if ns == path_ns => {}
        Some(ns) => {
            return Err(ApiError::bad_request(format!(
                "the namespace of the provided object ({ns}) does not match the namespace sent on the request ({path_ns})"
            )));
        }
    }
    Ok(())
}

/// 404 unless the request's namespace exists; 403 while it terminates.
pub async fn require_namespace(req: &Request, name: &str) -> Result<(), ApiError> {
    let Some(ns) = req.route.namespace.as_deref() else {
        return Ok(());
    };
    if req.app.namespaces.is_active(ns) {
        return Ok(());
    }
    let ns_info = req
        .app
        .registry
        .get("", "v1", "namespaces")
        .expect("namespaces are built in");
    let found = req.app.store.get(&ns_info.key(None, ns)).await?;
    let subject = Subject {
        group: "",
        resource: "namespaces",
        kind: "namespaces",
        name: ns,
    };
    match found {
        None => Err(ApiError::not_found(subject)),
        Some(kv) => {
            // Parse only when the namespace may be terminating (most creates skip it).
            let maybe = memchr::memmem::find(&kv.value, b"deletionTimestamp").is_some();
            if maybe && meta::from_store(&kv)?["metadata"]["deletionTimestamp"].is_string() {
                return Err(ApiError::forbidden(format!(
                    "{} \"{}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                    req.route.info.group_resource(),
                    name,
                )));
            }
            Ok(())
        }
    }
}

/// POST to a collection.
pub async fn create(req: Request, bytes: bytes::Bytes) -> Result<Response<Body>, ApiError> {
    let obj = meta::decode(&req.content_type, &bytes)?;
    create_value(req, obj, None).await
}

/// Creates `obj`; `managed` is its managedFields when the caller computed them
/// (server-side apply), else the create is recorded as an Update by its manager.
pub async fn create_value(
    req: Request,
    mut obj: Value,
    managed: Option<crate::ssa::managed::Managed>,
) -> Result<Response<Body>, ApiError> {
    let info = req.route.info.clone();
    check_type_meta(&info, &mut obj)?;
    check_namespace(&req, &mut obj)?;
    let given = obj["metadata"]["name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .map(str::to_string);
    let generate = match &given {
        Some(_) => None,
        None => obj["metadata"]["generateName"]
            .as_str()
            .filter(|p| !p.is_empty())
            .map(str::to_string),
    };
    let mut name = match (given, &generate) {
        (Some(n), _) => n,
        (None, Some(prefix)) => format!("{prefix}{}", meta::name_suffix()),
        (None, None) => {
            return Err(ApiError::invalid(
                req.subject(""),
                vec![Cause {
                    reason: "FieldValueRequired",
                    message: "Required value: name or generateName is required".into(),
                    field: "metadata.name".into(),
                }],
            ));
        }
    };
    if let Some(c) = meta::check_name(&name, "metadata.name") {
        return Err(ApiError::invalid(req.subject(&name), vec![c]));
    }
    require_namespace(&req, &name).await?;
    let warnings = admit(&req, &mut obj, &name, None)?;
    super::guard::admit(&req, None, &mut obj).await?;
    let m = obj["metadata"].as_object_mut().expect("checked above");
    m.insert("name".into(), json!(name));
    m.insert("uid".into(), json!(meta::new_uid()));
    m.insert("creationTimestamp".into(), json!(meta::now()));
    m.insert("generation".into(), json!(1));
    for k in [
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
    ] {
        m.remove(k);
    }
    match info.builtin {
        Builtin::Custom if info.status_subresource => {
            let o = obj.as_object_mut().expect("an object");
            o.remove("status");
            if let Some(status) = initial_status(&info) {
                o.insert("status".into(), status);
            }
        }
        Builtin::Namespace => obj["status"] = json!({"phase": "Active"}),
        Builtin::Crd => crate::apiextensions::prepare(&mut obj, &req.app.registry)
            .map_err(|c| ApiError::invalid(req.subject(&name), vec![c]))?,
        _ => {}
    }
    match managed {
        Some(m) => m.write(&mut obj),
        None => super::ownership::track(&req, &Value::Null, &mut obj, None)?,
    }
    if let Some(c) = super::limits::check_depth(&obj) {
        return Err(ApiError::invalid(req.subject(&name), vec![c]));
    }
    if req.params.dry_run {
        return Ok(with_warnings(
            req.respond(StatusCode::CREATED, &obj),
            &warnings,
        ));
    }
    // A generated name that is taken is generated again (see generate_name).
    let mut names = super::generate_name::Retry::new(generate.as_deref());
    let kv = loop {
        let bytes = meta::store_bytes(&info, &obj);
        match req.app.store.create(req.key(&name), bytes).await {
            Ok(kv) => break kv,
            Err(e) => match names.next_after(&e, meta::name_suffix) {
                Some(next) => {
                    name = next;
                    obj["metadata"]["name"] = json!(name);
                }
                None => return Err(ApiError::from_store(e, req.subject(&name))),
            },
        }
    };
    // What was stored is `obj` at the new revision: no need to parse it back.
    let mut stored = obj;
    stored["metadata"]["resourceVersion"] = json!(kv.mod_revision.to_string());
    if info.builtin == Builtin::Crd
        && let Err(e) = req.app.registry.apply_crd(&stored)
    {
        tracing::warn!(error = %e, "stored CRD cannot be served");
    }
    if info.builtin == Builtin::Namespace
        && let Err(e) =
            crate::default_sa::ensure(req.app.store.as_ref(), &req.app.registry, &name).await
    {
        tracing::warn!(namespace = %name, error = %e, "making its default ServiceAccount");
    }
    Ok(with_warnings(
        req.respond_stored(StatusCode::CREATED, &kv, &stored),
        &warnings,
    ))
}

/// A live namespace's `default` ServiceAccount comes back when deleted, as
/// Kubernetes's ServiceAccount controller brings it back.
async fn recreate_default_sa(req: &Request, name: &str) {
    let info = &req.route.info;
    if info.group.is_empty()
        && info.plural == "serviceaccounts"
        && name == "default"
        && let Some(ns) = req.route.namespace.as_deref()
        && let Err(e) =
            crate::default_sa::ensure_if_live(req.app.store.as_ref(), &req.app.registry, ns).await
    {
        tracing::warn!(namespace = %ns, error = %e, "making its default ServiceAccount again");
    }
}

/// GET one object.
pub async fn get(req: Request) -> Result<Response<Body>, ApiError> {
    let name = req.name();
    let kv = req.current(name).await?;
    req.respond_kv(StatusCode::OK, &kv)
}

/// DELETE one object: marks it when finalizers remain, removes it otherwise.
pub async fn delete(req: Request, bytes: bytes::Bytes) -> Result<Response<Body>, ApiError> {
    let name = req.name().to_string();
    let opts: Value = if bytes.is_empty() {
        json!({})
    } else {
        meta::decode(&req.content_type, &bytes)?
    };
    let dry_run = req.params.dry_run
        || opts["dryRun"]
            .as_array()
            .is_some_and(|a| a.iter().any(|v| v == "All"));
    let pre_rv = opts["preconditions"]["resourceVersion"]
        .as_str()
        .and_then(|s| s.parse::<i64>().ok());
    let pre_uid = opts["preconditions"]["uid"].as_str();
    let policy = req
        .params
        .propagation_policy
        .clone()
        .or_else(|| opts["propagationPolicy"].as_str().map(str::to_string))
        .or_else(|| (opts["orphanDependents"] == true).then(|| "Orphan".to_string()));
    let policy_finalizer = match policy.as_deref() {
        None | Some("Background") => None,
        Some("Foreground") => Some(crate::gc::FOREGROUND),
        Some("Orphan") => Some(crate::gc::ORPHAN),
        Some(other) => {
            return Err(ApiError::invalid(
                req.subject(&name),
                vec![Cause {
                    reason: "FieldValueNotSupported",
                    message: format!(
                        "Unsupported value: {other:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
                    ),
                    field: "propagationPolicy".into(),
                }],
            ));
        }
    };
    for _ in 0..8 {
        let kv = req.current(&name).await?;
        let mut obj = req.load(&kv)?;
        if pre_rv.is_some_and(|rv| rv != kv.mod_revision)
            || pre_uid.is_some_and(|u| obj["metadata"]["uid"].as_str() != Some(u))
        {
            return Err(ApiError::conflict(req.subject(&name)));
        }
        let deleting = obj["metadata"]["deletionTimestamp"].is_string();
        let namespace = req.route.info.builtin == Builtin::Namespace;
        if let Some(f) = policy_finalizer
            && !deleting
            && !namespace
        {
            // Foreground or Orphan: the collector acts on the dependents first.
            let mut list = obj["metadata"]["finalizers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if !list.iter().any(|x| x == f) {
                list.push(json!(f));
                obj["metadata"]["finalizers"] = json!(list);
            }
        }
        let has_finalizers = obj["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty());
        // A namespace terminates (the collector empties it, then removes it);
        // an object with finalizers is marked and waits for them.
        if namespace || has_finalizers {
            if deleting || dry_run {
                return Ok(req.respond(StatusCode::OK, &obj));
            }
            obj["metadata"]["deletionTimestamp"] = json!(meta::now());
            if namespace {
                // Before the mark is written: no create here may skip the store read after it.
                req.app.namespaces.forget(&name);
                obj["spec"]["finalizers"] = json!(["kubernetes"]);
                obj["status"]["phase"] = json!("Terminating");
            } else {
                obj["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            }
            // Stored without its resourceVersion (the revision is it), so
            // encoded as it is, not copied first.
            if let Some(m) = obj["metadata"].as_object_mut() {
                m.remove("resourceVersion");
                m.remove("selfLink");
            }
            match req
                .app
                .store
                .update(
                    req.key(&name),
                    meta::store_bytes(&req.route.info, &obj),
                    Precondition::ModRevision(kv.mod_revision),
                )
                .await
            {
                Ok(kv) => return req.respond_kv(StatusCode::OK, &kv),
                Err(crate::store::StoreError::Conflict { .. }) if pre_rv.is_none() => continue,
                Err(e) => return Err(ApiError::from_store(e, req.subject(&name))),
            }
        }
        if dry_run {
            return Ok(req.respond(StatusCode::OK, &obj));
        }
        if req.route.info.builtin == Builtin::Crd {
            crate::apiextensions::delete_crd_content(&req.app, &obj).await?;
        }
        match req
            .app
            .store
            .delete(req.key(&name), Precondition::ModRevision(kv.mod_revision))
            .await
        {
            Ok(kv) => {
                recreate_default_sa(&req, &name).await;
                return req.respond_kv(StatusCode::OK, &kv);
            }
            Err(crate::store::StoreError::Conflict { .. }) if pre_rv.is_none() => continue,
            Err(e) => return Err(ApiError::from_store(e, req.subject(&name))),
        }
    }
    Err(ApiError::conflict(req.subject(&name)))
}
