//! PUT and PATCH: read the current object, compute the new one, and write it
//! back with compare-and-swap on its revision (retrying patches that carry no
//! resourceVersion of their own, as kube-apiserver does).

use super::body::Body;
use super::meta;
use super::objects::{Request, Warnings, admit, check_type_meta, with_warnings};
use crate::error::{ApiError, Cause};
use crate::registry::Builtin;
use crate::store::{Precondition, StoreError};
use http::{Response, StatusCode};
use serde_json::{Value, json};

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
    let current = req
        .app
        .store
        .get(&req.key(&name))
        .await?
        .ok_or_else(|| ApiError::not_found(req.subject(&name)))?;
    if wanted_rv.is_some_and(|rv| rv != current.mod_revision) {
        return Err(ApiError::conflict(req.subject(&name)));
    }
    let old = req.load(&current)?;
    let (result, warnings) = merge_update(&req, &old, new)?;
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
        let current = req
            .app
            .store
            .get(&req.key(&name))
            .await?
            .ok_or_else(|| ApiError::not_found(req.subject(&name)))?;
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
        let (result, warnings) = merge_update(&req, &old, patched)?;
        match write(&req, &name, &old, result, current.mod_revision, &warnings).await {
            Err(e) if e.reason == "Conflict" && pinned.is_none() => continue,
            other => return other,
        }
    }
    Err(ApiError::conflict(req.subject(&name)))
}

/// The object an update leaves: the new content where the verb may change it,
/// the old where it may not, and generation bumped when the spec changed.
pub(super) fn merge_update(
    req: &Request,
    old: &Value,
    mut new: Value,
) -> Result<(Value, Warnings), ApiError> {
    let info = &req.route.info;
    let name = req.name();
    if req.route.subresource.as_deref() == Some("status") {
        let mut result = old.clone();
        match new.as_object_mut().and_then(|o| o.remove("status")) {
            Some(s) => result["status"] = s,
            None => {
                result.as_object_mut().expect("an object").remove("status");
            }
        }
        if let Some(s) = &info.schema {
            let out = crate::schema::apply(s, &mut result);
            if !out.causes.is_empty() {
                return Err(ApiError::invalid(req.subject(name), out.causes));
            }
        }
        if let Some(m) = new["metadata"].get("managedFields") {
            result["metadata"]["managedFields"] = m.clone();
        }
        super::ownership::track(req, old, &mut result, Some("status"))?;
        return Ok((result, vec![]));
    }
    let warnings = admit(req, &mut new, name)?;
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
        crate::apiextensions::prepare(&mut new)
            .map_err(|c| ApiError::invalid(req.subject(name), vec![c]))?;
    }
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(o) = v.as_object_mut() {
            o.remove("metadata");
            if info.status_subresource {
                o.remove("status");
            }
        }
        v
    };
    if strip(old) != strip(&new) {
        if let Some(c) = crate::admission::check_update(info, old, &new) {
            return Err(ApiError::invalid(req.subject(name), vec![c]));
        }
        let g = old["metadata"]["generation"].as_i64().unwrap_or(0);
        new["metadata"]["generation"] = json!(g + 1);
    }
    super::ownership::track(req, old, &mut new, None)?;
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
    let deleting = result["metadata"]["deletionTimestamp"].is_string();
    let finalizers_left = result["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| !f.is_empty());
    if req.params.dry_run {
        return Ok(with_warnings(
            req.respond(StatusCode::OK, &result),
            warnings,
        ));
    }
    let store = &req.app.store;
    let outcome = if deleting && !finalizers_left {
        store
            .delete(req.key(name), Precondition::ModRevision(rev))
            .await
    } else {
        let without_rv = |v: &Value| {
            let mut v = v.clone();
            if let Some(m) = v["metadata"].as_object_mut() {
                m.remove("resourceVersion");
            }
            v
        };
        if without_rv(old) == without_rv(&result) {
            // Nothing changed: no write, no new revision, no watch event.
            return Ok(with_warnings(req.respond(StatusCode::OK, old), warnings));
        }
        store
            .update(
                req.key(name),
                meta::store_bytes(&req.route.info, &result),
                Precondition::ModRevision(rev),
            )
            .await
    };
    let kv = outcome.map_err(|e| match e {
        StoreError::NotFound(_) => ApiError::not_found(req.subject(name)),
        e => ApiError::from_store(e, req.subject(name)),
    })?;
    let stored = req.load(&kv)?;
    if req.route.info.builtin == Builtin::Crd
        && let Err(e) = req.app.registry.apply_crd(&stored)
    {
        tracing::warn!(error = %e, "updated CRD cannot be served");
    }
    Ok(with_warnings(
        req.respond(StatusCode::OK, &stored),
        warnings,
    ))
}
