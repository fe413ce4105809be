//! Server-side apply: `PATCH` with `application/apply-patch+yaml` (YAML or
//! JSON). The configuration is merged into the live object (or creates it)
//! under the request's `fieldManager`, with the ownership and conflict rules
//! of [`crate::ssa::managed`]; conflicts are a 409 whose causes name each field
//! and its owner, unless `force=true`.

use super::body::Body;
use super::meta;
use super::objects::{Request, check_type_meta};
use super::ownership::Ownership;
use super::update::{merge_update, write};
use crate::error::{ApiError, Cause};
use crate::ssa::fields::display;
use crate::ssa::managed::{Applied, Conflict, Managed, copy_except, owned_part, status_only};
use crate::ssa::merge::check_lists;
use crate::ssa::schema::Schema;
use http::Response;
use serde_json::{Value, json};

fn conflict_error(req: &Request, name: &str, conflicts: &[Conflict]) -> ApiError {
    let n = conflicts.len();
    let mut message = format!(
        "Apply failed with {n} conflict{}: ",
        if n == 1 { "" } else { "s" }
    );
    let lines: Vec<String> = conflicts
        .iter()
        .map(|c| {
            format!(
                "conflict with \"{}\" using {}: {}",
                c.manager,
                c.api_version,
                c.field()
            )
        })
        .collect();
    message.push_str(&lines.join("\n"));
    let causes: Vec<Value> = conflicts
        .iter()
        .zip(&lines)
        .map(|(c, l)| json!({"reason": "FieldManagerConflict", "message": l, "field": c.field()}))
        .collect();
    let mut e = ApiError::new(409, "Conflict", message);
    e.details = Some(json!({"name": name, "group": req.route.info.group,
        "kind": req.route.info.plural, "causes": causes}));
    e
}

/// The part of the configuration merged into the object: for the main
/// resource, all but status when status is a subresource; for `/status`, status.
fn merge_part(config: &Value, subresource: Option<&str>, status_subresource: bool) -> Value {
    match config.as_object() {
        Some(o) if subresource == Some("status") => status_only(o),
        Some(o) if status_subresource => Value::Object(copy_except(o, &["status"])),
        _ => config.clone(),
    }
}

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Whether every conflict is on a field of the object's client-side
/// last-applied configuration.
fn within_last_applied(
    old: &Value,
    conflicts: &[Conflict],
    schema: Schema<'_>,
    status_subresource: bool,
) -> bool {
    let Some(text) = old["metadata"]["annotations"][LAST_APPLIED].as_str() else {
        return false;
    };
    let Ok(last) = serde_json::from_str::<Value>(text) else {
        return false;
    };
    let set = crate::ssa::fields::set_of(&owned_part(&last, None, status_subresource), schema);
    conflicts.iter().all(|c| set.contains(&c.path))
}

/// As kube-apiserver: kubectl's server-side applies keep an existing
/// last-applied annotation current, so that client-side apply still works after.
fn keep_last_applied(manager: &str, old: &Value, config: &Value, result: &mut Value) {
    if manager != "kubectl" || !old["metadata"]["annotations"][LAST_APPLIED].is_string() {
        return;
    }
    let mut applied = config.clone();
    if let Some(a) = applied["metadata"]["annotations"].as_object_mut() {
        a.remove(LAST_APPLIED);
    }
    result["metadata"]["annotations"][LAST_APPLIED] = json!(applied.to_string());
}

/// Applies a configuration.
pub async fn apply(req: Request, bytes: bytes::Bytes) -> Result<Response<Body>, ApiError> {
    let name = req.name().to_string();
    let info = req.route.info.clone();
    let manager = req
        .params
        .field_manager
        .clone()
        .filter(|m| !m.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request("fieldManager: Required value: is required for apply patch")
        })?;
    let mut config = meta::decode("application/apply-patch+yaml", &bytes)?;
    if !config.is_object() {
        return Err(ApiError::bad_request(
            "the apply configuration must be a YAML or JSON object",
        ));
    }
    for f in ["apiVersion", "kind"] {
        if !config[f].is_string() {
            return Err(ApiError::bad_request(format!(
                "{f} must be set in an apply configuration"
            )));
        }
    }
    check_type_meta(&info, &mut config)?;
    super::objects::check_name(&mut config, &name)?;
    if config["metadata"].get("managedFields").is_some() {
        return Err(ApiError::bad_request(
            "metadata.managedFields must be nil in an apply configuration",
        ));
    }
    let schema = Schema::root(info.schema.as_ref());
    if let Some((path, message)) = check_lists(&config, schema, &mut Vec::new()) {
        return Err(ApiError::invalid(
            req.subject(&name),
            vec![Cause {
                reason: "FieldValueDuplicate",
                message,
                field: display(&path).trim_start_matches('.').to_string(),
            }],
        ));
    }
    let sub = req.route.subresource.clone();
    let sub = sub.as_deref();
    let merge_config = merge_part(&config, sub, info.status_subresource);
    let applied = Applied::of(owned_part(&config, sub, info.status_subresource), schema);
    let pinned = meta::resource_version(&config)?;
    let api_version = info.api_version();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        let current = req.app.store.get(&req.key(&name)).await?;
        let Some(current) = current else {
            if sub.is_some() || pinned.is_some() {
                return Err(ApiError::not_found(req.subject(&name)));
            }
            let mut managed = Managed::default();
            let obj = managed
                .apply(
                    &manager,
                    &api_version,
                    None,
                    &json!({}),
                    &|| Value::Null,
                    &merge_config,
                    &applied,
                    schema,
                    req.params.force,
                    &super::now(),
                )
                .map_err(|c| conflict_error(&req, &name, &c))?;
            return super::objects::create_value(req, obj, Some(managed)).await;
        };
        if pinned.is_some_and(|rv| rv != current.mod_revision) {
            return Err(ApiError::conflict(req.subject(&name)));
        }
        let old = req.load(&current)?;
        let live_owned = || owned_part(&old, sub, info.status_subresource);
        // Read for each attempt (a second one is rare), never copied.
        let attempt = |force: bool| {
            let mut managed = Managed::read_for(&old, sub).unwrap_or_default();
            managed
                .apply(
                    &manager,
                    &api_version,
                    sub,
                    &old,
                    &live_owned,
                    &merge_config,
                    &applied,
                    schema,
                    force,
                    &super::now(),
                )
                .map(|v| (v, managed))
        };
        let (mut result, managed) = match attempt(req.params.force) {
            Ok(r) => r,
            // As kube-apiserver: an object kubectl applied client-side moves to
            // server-side apply without conflicts on the fields it applied then.
            Err(c) if within_last_applied(&old, &c, schema, info.status_subresource) => {
                attempt(true).map_err(|c| conflict_error(&req, &name, &c))?
            }
            Err(c) => return Err(conflict_error(&req, &name, &c)),
        };
        keep_last_applied(&manager, &old, &config, &mut result);
        managed.write(&mut result);
        if result["metadata"].get("managedFields").is_none()
            && let Some(m) = result["metadata"].as_object_mut()
        {
            m.insert("managedFields".into(), json!([]));
        }
        let (result, warnings) = merge_update(&req, &old, result, Ownership::Set).await?;
        match write(&req, &name, &old, result, current.mod_revision, &warnings).await {
            Err(e) if e.reason == "Conflict" && pinned.is_none() => continue,
            other => return other,
        }
    }
    Err(ApiError::conflict(req.subject(&name)))
}
