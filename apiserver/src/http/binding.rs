//! `POST .../tasks/<name>/binding`: binds a Task to an agent in one write, as
//! `pods/<name>/binding` does for a Pod. The Task gets Mosaic's kill-before-delete
//! finalizer and the bound status of [`mosaic_crds::binding`]; a Task already
//! bound or being deleted is a 409, as is a stale `metadata.resourceVersion`.
//! Field ownership is recorded as the two writes it replaces would have: the
//! finalizer under the caller's Update, the status under its status Update.

use super::body::{self, Body};
use super::objects::Request;
use super::{meta, ownership, update};
use crate::error::{ApiError, Cause};
use http::{Response, StatusCode};
use mosaic_crds::binding::{FINALIZER, KIND, TaskBinding, bound_status};
use serde_json::json;

/// Serves one binding request.
pub async fn create(req: Request, bytes: bytes::Bytes) -> Result<Response<Body>, ApiError> {
    let name = req.name().to_string();
    let v = meta::decode(&req.content_type, &bytes)?;
    let pinned = meta::resource_version(&v)?;
    let b: TaskBinding = serde_json::from_value(v)
        .map_err(|e| ApiError::bad_request(format!("couldn't decode the {KIND}: {e}")))?;
    if b.kind != KIND {
        return Err(ApiError::bad_request(format!(
            "expected kind {KIND}, got {:?}",
            b.kind
        )));
    }
    if let Some(n) = b.metadata.name.as_deref().filter(|n| *n != name) {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({n}) does not match the name on the URL ({name})"
        )));
    }
    if b.target.agent.is_empty() {
        return Err(ApiError::invalid(
            req.subject(&name),
            vec![Cause {
                reason: "FieldValueRequired",
                message: "Required value: the agent to bind to".into(),
                field: "target.agent".into(),
            }],
        ));
    }
    let current = req.current(&name).await?;
    if pinned.is_some_and(|rv| rv != current.mod_revision) {
        return Err(ApiError::conflict(req.subject(&name)));
    }
    let old = req.load(&current)?;
    let refuse = |why: String| {
        ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                req.route.info.group_resource()
            ),
        )
    };
    if old["metadata"]["deletionTimestamp"].is_string() {
        return Err(refuse("the task is being deleted".into()));
    }
    if let Some(a) = old["status"]["agent"].as_str().filter(|a| !a.is_empty()) {
        return Err(refuse(format!("the task is already bound to agent {a}")));
    }
    // The ports given are the ports asked for, by name and in order.
    let asked: Vec<&str> = old["spec"]["ports"]
        .as_array()
        .map(|ps| ps.iter().filter_map(|p| p["name"].as_str()).collect())
        .unwrap_or_default();
    let given: Vec<&str> = b.target.ports.iter().map(|p| p.name.as_str()).collect();
    let distinct: std::collections::BTreeSet<u16> = b.target.ports.iter().map(|p| p.port).collect();
    if asked != given
        || b.target.ports.iter().any(|p| p.port == 0)
        || distinct.len() != b.target.ports.len()
    {
        return Err(ApiError::invalid(
            req.subject(&name),
            vec![Cause {
                reason: "FieldValueInvalid",
                message: format!(
                    "Invalid value: the ports given ({given:?}) must be the task's spec.ports ({asked:?}), each a distinct port from 1 to 65535"
                ),
                field: "target.ports".into(),
            }],
        ));
    }
    // The finalizer and the bound status, in one copy of the object.
    let mut bound = old.clone();
    let m = bound["metadata"]
        .as_object_mut()
        .ok_or_else(|| ApiError::internal("a stored Task without metadata"))?;
    let fins = m.entry("finalizers").or_insert_with(|| json!([]));
    if let Some(list) = fins.as_array_mut()
        && !list.iter().any(|f| f == FINALIZER)
    {
        list.push(json!(FINALIZER));
    }
    // The finalizer is the main resource's change; the schema's defaults
    // below are nobody's, as they were not when these were two writes.
    let main = ownership::main_changes(&req, &old, &bound);
    if !bound["status"].is_object() {
        bound["status"] = json!({});
    }
    let generation = old["metadata"]["generation"].as_i64();
    json_patch::merge(
        &mut bound["status"],
        &bound_status(
            &b.target.agent,
            &b.target.ports,
            generation,
            mosaic_crds::lifecycle::now(),
        ),
    );
    if let Some(s) = &req.route.info.schema {
        let out = crate::schema::apply(s, &mut bound);
        if !out.causes.is_empty() {
            return Err(ApiError::invalid(req.subject(&name), out.causes));
        }
    }
    ownership::track_both(&req, &old, &mut bound, main);
    if !req.params.dry_run {
        update::store(&req, &name, &old, bound, current.mod_revision).await?;
    }
    Ok(body::json(
        StatusCode::CREATED,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    ))
}

/// Whether `info` has the binding subresource (Mosaic's Tasks do).
pub fn served_for(info: &crate::registry::ResourceInfo) -> bool {
    info.builtin == crate::registry::Builtin::Custom
        && info.group == mosaic_crds::GROUP
        && info.plural == "tasks"
}
