//! PUT and PATCH: read the current object, compute the new one, and write it
//! back with compare-and-swap on its revision (retrying patches that carry no
//! resourceVersion of their own, as kube-apiserver does).

use super::body::Body;
use super::meta;
use super::objects::{Request, Warnings, admit, check_type_meta, with_warnings};
use super::ownership::Ownership;
use crate::error::{ApiError, Cause};
use crate::registry::Builtin;
use crate::store::{KeyValue, Precondition, StoreError};
use http::{Response, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;

const PATCH_TYPES: [&str; 4] = [
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/apply-patch+yaml",
    "application/strategic-merge-patch+json",
];

/// PUT one object (or its status).
pub async fn update(req: Request, bytes: bytes::Bytes) -> Result<Response<Body>, ApiError> {
    let name = req.name().to_string();
    let mut new = meta::decode(&req.content_type, &bytes)?;
    check_type_meta(&req.route.info, &mut new)?;
    super::objects::check_namespace(&req, &mut new)?;
    super::objects::check_name(&mut new, &name)?;
    let wanted_rv = meta::resource_version(&new)?;
    if wanted_rv.is_none() && !req.route.info.unconditional_update {
        return Err(ApiError::invalid(
            req.subject(&name),
            vec![Cause {
                reason: "FieldValueInvalid",
                message: "Invalid value: 0x0: must be specified for an update".into(),
                field: "metadata.resourceVersion".into(),
            }],
        ));
    }
    let current = req.current(&name).await?;
    if wanted_rv.is_some_and(|rv| rv != current.mod_revision) {
        return Err(ApiError::conflict(req.subject(&name)));
    }
    let old = req.load(&current)?;
    let (result, warnings) = merge_update(&req, &old, new, Ownership::Track).await?;
    write(&req, &name, &old, result, current.mod_revision, &warnings).await
}

/// PATCH one object (or its status) with a JSON patch or a merge patch.
pub async fn patch(req: Request, bytes: bytes::Bytes) -> Result<Response<Body>, ApiError> {
    let name = req.name().to_string();
    let ct = req
        .content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    let custom =
        req.route.info.builtin == Builtin::Custom || req.route.info.builtin == Builtin::Crd;
    match ct.as_str() {
        "application/json-patch+json" | "application/merge-patch+json" => {}
        // Built-in kinds here have no lists with merge keys that Mosaic's clients patch,
        // so a strategic merge patch on them is a merge patch.
        "application/strategic-merge-patch+json" if !custom => {}
        "application/apply-patch+yaml" => return super::apply::apply(req, bytes).await,
        _ => {
            let supported: &[&str] = if custom {
                &PATCH_TYPES[..3]
            } else {
                &PATCH_TYPES
            };
            return Err(ApiError::unsupported_media(&ct, supported));
        }
    }
    let patch: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("couldn't decode the patch as JSON: {e}")))?;
    // As kube-apiserver's GuaranteedUpdate: a patch that pins no
    // resourceVersion is applied again to the newer object until it lands
    // (many writers of one object under load lose several races in a row).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        let current = req.current(&name).await?;
        let old = req.load(&current)?;
        let mut patched = old.clone();
        if ct == "application/json-patch+json" {
            let ops: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
            json_patch::patch(&mut patched, &ops).map_err(|e| match e.kind {
                json_patch::PatchErrorKind::TestFailed => ApiError::new(
                    422,
                    "Invalid",
                    format!("the server rejected our request due to an error in our request: {e}"),
                ),
                _ => ApiError::new(
                    422,
                    "Invalid",
                    format!("the server rejected our request due to an error in our request: {e}"),
                ),
            })?;
        } else {
            if !patch.is_object() {
                return Err(ApiError::bad_request("a merge patch must be a JSON object"));
            }
            json_patch::merge(&mut patched, &patch);
        }
        check_type_meta(&req.route.info, &mut patched)?;
        let pinned = meta::resource_version(&patched)?;
        if pinned.is_some_and(|rv| rv != current.mod_revision) {
            return Err(ApiError::conflict(req.subject(&name)));
        }
        let (result, warnings) = merge_update(&req, &old, patched, Ownership::Track).await?;
        match write(&req, &name, &old, result, current.mod_revision, &warnings).await {
            Err(e) if e.reason == "Conflict" && pinned.is_none() => continue,
            other => return other,
        }
    }
    Err(ApiError::conflict(req.subject(&name)))
}

/// The object an update leaves: the new content where the verb may change it,
/// the old where it may not, and generation bumped when the spec changed.
pub(super) async fn merge_update(
    req: &Request,
    old: &Value,
    mut new: Value,
    ownership: Ownership,
) -> Result<(Value, Warnings), ApiError> {
    let info = &req.route.info;
    let name = req.name();
    if req.route.subresource.as_deref() == Some("status") {
        // The schema walk leaves the root's metadata alone, so it may run
        // after managedFields are in place.
        let mut result = status_write(old, new);
        super::guard::admit_status(req, old, &result)?;
        if let Some(s) = &info.schema {
            let out = crate::schema::apply_update(s, &mut result, Some(old));
            if !out.causes.is_empty() {
                return Err(ApiError::invalid(req.subject(name), out.causes));
            }
        }
        super::objects::check_rules(req, &result, Some(old), name)?;
        super::ownership::settle(req, old, &mut result, Some("status"), ownership)?;
        return Ok((result, vec![]));
    }
    let warnings = admit(req, &mut new, name, Some(old))?;
    super::guard::admit(req, Some(old), &mut new).await?;
    {
        let om = &old["metadata"];
        let m = new["metadata"].as_object_mut().expect("type meta checked");
        for k in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "namespace",
            "generation",
        ] {
            match om.get(k) {
                Some(v) => m.insert(k.into(), v.clone()),
                None => m.remove(k),
            };
        }
        if om["deletionTimestamp"].is_string() {
            let had: Vec<&Value> = om["finalizers"]
                .as_array()
                .map(|a| a.iter().collect())
                .unwrap_or_default();
            let added = m
                .get("finalizers")
                .and_then(Value::as_array)
                .is_some_and(|f| f.iter().any(|x| !had.contains(&x)));
            if added {
                return Err(ApiError::invalid(
                    req.subject(name),
                    vec![Cause {
                        reason: "FieldValueForbidden",
                        message: "Forbidden: no new finalizers can be added if the object is being deleted".into(),
                        field: "metadata.finalizers".into(),
                    }],
                ));
            }
        }
    }
    if info.status_subresource {
        match old.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                new.as_object_mut().expect("an object").remove("status");
            }
        }
    }
    if info.builtin == Builtin::Crd {
        crate::apiextensions::prepare(&mut new, &req.app.registry)
            .map_err(|c| ApiError::invalid(req.subject(name), vec![c]))?;
    }
    let skip: &[&str] = if info.status_subresource {
        &["metadata", "status"]
    } else {
        &["metadata"]
    };
    if !equal_except(old, &new, skip) {
        if let Some(c) = crate::admission::check_update(info, old, &new) {
            return Err(ApiError::invalid(req.subject(name), vec![c]));
        }
        let g = old["metadata"]["generation"].as_i64().unwrap_or(0);
        new["metadata"]["generation"] = json!(g + 1);
    }
    super::objects::check_rules(req, &new, Some(old), name)?;
    super::ownership::settle(req, old, &mut new, None, ownership)?;
    Ok((new, warnings))
}

/// Stores an update (or deletes the object when its last finalizer went).
pub(super) async fn write(
    req: &Request,
    name: &str,
    old: &Value,
    result: Value,
    rev: i64,
    warnings: &Warnings,
) -> Result<Response<Body>, ApiError> {
    // What a patch made must stay readable once stored.
    if let Some(c) = super::limits::check_depth(&result) {
        return Err(ApiError::invalid(req.subject(name), vec![c]));
    }
    if req.params.dry_run {
        return Ok(with_warnings(
            req.respond(StatusCode::OK, &result),
            warnings,
        ));
    }
    let response = match store(req, name, old, result, rev).await? {
        Some((Some(stored), kv)) => req.respond_stored(StatusCode::OK, &kv, &stored),
        Some((None, kv)) => req.respond_kv(StatusCode::OK, &kv)?,
        None => req.respond(StatusCode::OK, old),
    };
    Ok(with_warnings(response, warnings))
}

/// Writes `result` over `old` (at revision `rev`), or deletes the object when
/// it is being deleted and its last finalizer went. The object as stored (not
/// decoded when deleted: the key-value serves as it is) and its key-value, or
/// `None` when nothing changed (no write, no new revision, no watch event).
pub(super) async fn store(
    req: &Request,
    name: &str,
    old: &Value,
    mut result: Value,
    rev: i64,
) -> Result<Option<(Option<Value>, Arc<KeyValue>)>, ApiError> {
    let deleting = result["metadata"]["deletionTimestamp"].is_string();
    let finalizers_left = result["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| !f.is_empty());
    let store = &req.app.store;
    let not_found = |e| match e {
        StoreError::NotFound(_) => ApiError::not_found(req.subject(name)),
        e => ApiError::from_store(e, req.subject(name)),
    };
    let stored = if deleting && !finalizers_left {
        let kv = store
            .delete(req.key(name), Precondition::ModRevision(rev))
            .await
            .map_err(not_found)?;
        let crd = req.route.info.builtin == Builtin::Crd;
        (if crd { Some(req.load(&kv)?) } else { None }, kv)
    } else {
        if same_but_resource_version(old, &result) {
            return Ok(None);
        }
        // The stored form carries no resourceVersion (the revision is it), so
        // what was stored is `result` at the new revision: no need to parse it back.
        if let Some(m) = result["metadata"].as_object_mut() {
            m.remove("resourceVersion");
            m.remove("selfLink");
        }
        let kv = store
            .update(
                req.key(name),
                meta::store_bytes(&req.route.info, &result),
                Precondition::ModRevision(rev),
            )
            .await
            .map_err(not_found)?;
        result["metadata"]["resourceVersion"] = json!(kv.mod_revision.to_string());
        (Some(result), kv)
    };
    if let (Builtin::Crd, Some(crd)) = (req.route.info.builtin, &stored.0)
        && let Err(e) = req.app.registry.apply_crd(crd)
    {
        tracing::warn!(error = %e, "updated CRD cannot be served");
    }
    Ok(Some(stored))
}

/// What a write to the status subresource leaves: `old`, with the status and
/// the managedFields (when it has them) of `new`. A status patch usually
/// changes nothing else, and then `new` is that object already: no copy.
fn status_write(old: &Value, mut new: Value) -> Value {
    let same_metadata = match (old["metadata"].as_object(), new["metadata"].as_object()) {
        (Some(o), Some(n)) => {
            (n.contains_key("managedFields") || !o.contains_key("managedFields"))
                && maps_equal_except(o, n, &["managedFields"])
        }
        (o, n) => o == n,
    };
    if same_metadata && equal_except(old, &new, &["metadata", "status"]) {
        return new;
    }
    let mut result = old.clone();
    match new.as_object_mut().and_then(|o| o.remove("status")) {
        Some(s) => result["status"] = s,
        None => {
            result.as_object_mut().expect("an object").remove("status");
        }
    }
    if let Some(m) = new["metadata"].get_mut("managedFields") {
        result["metadata"]["managedFields"] = m.take();
    }
    result
}

/// Whether two objects are equal in every top-level field but those in `skip`.
fn equal_except(a: &Value, b: &Value, skip: &[&str]) -> bool {
    match (a.as_object(), b.as_object()) {
        (Some(x), Some(y)) => maps_equal_except(x, y, skip),
        _ => a == b,
    }
}

fn maps_equal_except(
    x: &serde_json::Map<String, Value>,
    y: &serde_json::Map<String, Value>,
    skip: &[&str],
) -> bool {
    let counted = |m: &serde_json::Map<String, Value>| {
        m.keys().filter(|k| !skip.contains(&k.as_str())).count()
    };
    counted(x) == counted(y)
        && x.iter()
            .filter(|(k, _)| !skip.contains(&k.as_str()))
            .all(|(k, v)| y.get(k) == Some(v))
}

/// Whether two objects are the same but for `metadata.resourceVersion`.
fn same_but_resource_version(a: &Value, b: &Value) -> bool {
    let meta_equal = match (a["metadata"].as_object(), b["metadata"].as_object()) {
        (Some(x), Some(y)) => maps_equal_except(x, y, &["resourceVersion"]),
        (x, y) => x == y,
    };
    meta_equal && equal_except(a, b, &["metadata"])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equality_skips_only_what_it_is_told_to() {
        let a = json!({"metadata": {"name": "a", "resourceVersion": "1"}, "spec": {"x": 1}, "status": {"p": 1}});
        let mut b = a.clone();
        b["metadata"]["resourceVersion"] = json!("2");
        assert!(same_but_resource_version(&a, &b));
        b["status"]["p"] = json!(2);
        assert!(!same_but_resource_version(&a, &b));
        assert!(equal_except(&a, &b, &["metadata", "status"]));
        assert!(!equal_except(&a, &b, &["metadata"]));
        b["extra"] = json!(true);
        assert!(!equal_except(&a, &b, &["metadata", "status"]));
        let mut c = a.clone();
        c["metadata"]["labels"] = json!({"k": "v"});
        assert!(!same_but_resource_version(&a, &c));
        c["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("resourceVersion");
        c["metadata"].as_object_mut().unwrap().remove("labels");
        assert!(same_but_resource_version(&a, &c));
    }

    /// What a status write leaves, spelled out: the old object, the new
    /// status (or none), and the new managedFields when there are any.
    fn status_write_reference(old: &Value, new: &Value) -> Value {
        let mut result = old.clone();
        match new.get("status") {
            Some(s) => result["status"] = s.clone(),
            None => {
                result.as_object_mut().unwrap().remove("status");
            }
        }
        if let Some(m) = new["metadata"].get("managedFields") {
            result["metadata"]["managedFields"] = m.clone();
        }
        result
    }

    fn object() -> impl Strategy<Value = Value> {
        let small = prop_oneof![
            Just(json!(null)),
            Just(json!(1)),
            Just(json!("a")),
            Just(json!({"x": 1})),
            Just(json!([{"manager": "m"}])),
        ];
        let fields = |keys: &'static [&'static str]| {
            prop::collection::btree_map(prop::sample::select(keys), small.clone(), 0..4)
        };
        (
            fields(&["name", "labels", "managedFields", "generation"]),
            fields(&["spec", "status", "extra"]),
        )
            .prop_map(|(meta, rest)| {
                let mut obj: serde_json::Map<String, Value> =
                    rest.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
                let meta = meta.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
                obj.insert("metadata".into(), Value::Object(meta));
                Value::Object(obj)
            })
    }

    use proptest::prelude::*;

    proptest! {
        #[test]
        fn a_status_write_keeps_all_but_status_and_managed_fields(
            old in object(),
            other in object(),
            edits in (0..3u8, 0..3u8, any::<bool>()),
        ) {
            // Mostly `old` edited the way a status patch does (the status, the
            // managedFields), sometimes beyond that, sometimes another object.
            let (status, managed, elsewhere) = edits;
            let mut new = old.clone();
            match status {
                0 => {}
                1 => new["status"] = other["status"].clone(),
                _ => {
                    new.as_object_mut().unwrap().remove("status");
                }
            }
            let meta = new["metadata"].as_object_mut().unwrap();
            match managed {
                0 => {}
                1 => {
                    meta.remove("managedFields");
                }
                _ => {
                    meta.insert("managedFields".into(), json!([{"manager": "new"}]));
                }
            }
            if elsewhere {
                new["spec"] = other["spec"].clone();
            }
            for new in [new, other] {
                prop_assert_eq!(
                    status_write(&old, new.clone()),
                    status_write_reference(&old, &new)
                );
            }
        }
    }
}
