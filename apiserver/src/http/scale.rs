//! The `/scale` subresource of custom resources that declare one
//! (`subresources.scale`), as kube-apiserver serves it: an `autoscaling/v1`
//! Scale read from the object's replica and selector paths; a PUT or PATCH
//! of it sets the replicas path and goes through the same admission
//! (schema, CEL rules, managedFields) as an update of the object, so
//! `kubectl scale` and autoscalers work on custom kinds such as App.

use super::body::{self, Body};
use super::meta;
use super::objects::Request;
use super::update::{merge_update, store};
use crate::error::{ApiError, Cause};
use crate::registry::ScalePaths;
use http::{Response, StatusCode};
use k8s_openapi::api::autoscaling::v1::{Scale, ScaleSpec, ScaleStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

/// The subresource's name in paths.
pub const SUBRESOURCE: &str = "scale";

/// Serves `verb` (get, update or patch) on `req`'s object's scale.
pub async fn serve(
    mut req: Request,
    verb: &str,
    bytes: bytes::Bytes,
) -> Result<Response<Body>, ApiError> {
    let paths = req
        .route
        .info
        .scale
        .clone()
        .ok_or_else(|| ApiError::not_found(req.subject("")))?;
    let name = req.name().to_string();
    if verb == "get" {
        let kv = req.current(&name).await?;
        let obj = req.load(&kv)?;
        return Ok(respond(&scale_of(&obj, &paths)));
    }
    // From here on the write is one of the object itself.
    req.route.subresource = None;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        let current = req.current(&name).await?;
        let old = req.load(&current)?;
        let (wanted, pinned) = wanted_scale(&req, verb, &bytes, scale_of(&old, &paths))?;
        if pinned.is_some_and(|rv| rv != current.mod_revision) {
            return Err(ApiError::conflict(req.subject(&name)));
        }
        let replicas = wanted.spec.and_then(|s| s.replicas).unwrap_or(0);
        if replicas < 0 {
            return Err(ApiError::invalid(
                req.subject(&name),
                vec![Cause {
                    reason: "FieldValueInvalid",
                    message: format!(
                        "Invalid value: {replicas}: must be greater than or equal to 0"
                    ),
                    field: "spec.replicas".into(),
                }],
            ));
        }
        let mut new = old.clone();
        set(&mut new, &paths.spec_replicas, Value::from(replicas));
        let (result, _warnings) =
            merge_update(&req, &old, new, super::ownership::Ownership::Track).await?;
        if req.params.dry_run {
            return Ok(respond(&scale_of(&result, &paths)));
        }
        match store(&req, &name, &old, result, current.mod_revision).await {
            Ok(Some((Some(stored), _))) => return Ok(respond(&scale_of(&stored, &paths))),
            Ok(Some((None, kv))) => return Ok(respond(&scale_of(&req.load(&kv)?, &paths))),
            Ok(None) => return Ok(respond(&scale_of(&old, &paths))),
            Err(e) if e.reason == "Conflict" && pinned.is_none() => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::conflict(req.subject(&name)))
}

/// The Scale a PUT sends, or the current one with a PATCH applied, and the
/// resourceVersion the request itself pins (none, or empty: no precondition).
fn wanted_scale(
    req: &Request,
    verb: &str,
    bytes: &[u8],
    now: Scale,
) -> Result<(Scale, Option<i64>), ApiError> {
    let (value, pinned) = if verb == "update" {
        let v = meta::decode(&req.content_type, bytes)?;
        let pinned = meta::resource_version(&v)?;
        (v, pinned)
    } else {
        let ct = req.content_type.split(';').next().unwrap_or("").trim();
        let patch: Value = serde_json::from_slice(bytes).map_err(|e| {
            ApiError::bad_request(format!("couldn't decode the patch as JSON: {e}"))
        })?;
        let mut v = serde_json::to_value(&now).expect("a Scale is JSON");
        v["metadata"]
            .as_object_mut()
            .map(|m| m.remove("resourceVersion"));
        match ct {
            "application/json-patch+json" => {
                let ops: json_patch::Patch = serde_json::from_value(patch)
                    .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
                json_patch::patch(&mut v, &ops).map_err(|e| {
                    ApiError::new(
                        422,
                        "Invalid",
                        format!(
                            "the server rejected our request due to an error in our request: {e}"
                        ),
                    )
                })?;
            }
            // A Scale has no lists, so a strategic merge patch is a merge patch.
            "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
                json_patch::merge(&mut v, &patch)
            }
            other => {
                return Err(ApiError::unsupported_media(
                    other,
                    &[
                        "application/json-patch+json",
                        "application/merge-patch+json",
                        "application/strategic-merge-patch+json",
                    ],
                ));
            }
        }
        let pinned = meta::resource_version(&v)?;
        (v, pinned)
    };
    let scale = serde_json::from_value(value)
        .map_err(|e| ApiError::bad_request(format!("not a Scale: {e}")))?;
    Ok((scale, pinned))
}

/// The Scale of `obj`.
pub fn scale_of(obj: &Value, paths: &ScalePaths) -> Scale {
    let m = &obj["metadata"];
    let text = |k: &str| m[k].as_str().map(str::to_string);
    let int = |v: Option<&Value>| v.and_then(Value::as_i64).map(|n| n as i32);
    Scale {
        metadata: ObjectMeta {
            name: text("name"),
            namespace: text("namespace"),
            uid: text("uid"),
            resource_version: text("resourceVersion"),
            creation_timestamp: serde_json::from_value(m["creationTimestamp"].clone()).ok(),
            ..ObjectMeta::default()
        },
        spec: Some(ScaleSpec {
            replicas: int(at(obj, &paths.spec_replicas)),
        }),
        status: Some(ScaleStatus {
            replicas: int(at(obj, &paths.status_replicas)).unwrap_or(0),
            selector: paths
                .label_selector
                .as_deref()
                .and_then(|p| at(obj, p))
                .and_then(Value::as_str)
                .map(str::to_string),
        }),
    }
}

fn respond(scale: &Scale) -> Response<Body> {
    let mut v = serde_json::to_value(scale).expect("a Scale is JSON");
    v["apiVersion"] = Value::from("autoscaling/v1");
    v["kind"] = Value::from("Scale");
    body::json(StatusCode::OK, &v)
}

/// The value at a dotted path such as `.spec.replicas`.
fn at<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    path.trim_start_matches('.')
        .split('.')
        .try_fold(obj, |v, k| v.get(k))
}

/// Sets the value at a dotted path, making the objects on the way.
fn set(obj: &mut Value, path: &str, value: Value) {
    let mut keys: Vec<&str> = path.trim_start_matches('.').split('.').collect();
    let Some(last) = keys.pop() else { return };
    let mut v = obj;
    for k in keys {
        if !v[k].is_object() {
            v[k] = Value::Object(Default::default());
        }
        v = &mut v[k];
    }
    v[last] = value;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scale_reads_and_writes_the_declared_paths() {
        let paths = ScalePaths {
            spec_replicas: ".spec.replicas".into(),
            status_replicas: ".status.replicas".into(),
            label_selector: Some(".status.selector".into()),
        };
        let mut obj = serde_json::json!({
            "metadata": {"name": "web", "namespace": "default", "resourceVersion": "7"},
            "spec": {"replicas": 3}, "status": {"replicas": 2, "selector": "mosaic.dev/app=web"}});
        let s = scale_of(&obj, &paths);
        assert_eq!(s.spec.unwrap().replicas, Some(3));
        let st = s.status.unwrap();
        assert_eq!(
            (st.replicas, st.selector.as_deref()),
            (2, Some("mosaic.dev/app=web"))
        );
        assert_eq!(s.metadata.resource_version.as_deref(), Some("7"));
        set(&mut obj, &paths.spec_replicas, Value::from(5));
        assert_eq!(obj["spec"]["replicas"], 5);
        let mut empty = serde_json::json!({});
        set(&mut empty, ".spec.replicas", Value::from(1));
        assert_eq!(empty["spec"]["replicas"], 1);
    }
}
