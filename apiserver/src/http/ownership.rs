//! Field ownership on every write: the manager of a create, update or patch
//! (its `fieldManager`, else the User-Agent's first word, as kube-apiserver
//! does) takes the fields it changed in `metadata.managedFields`. A client that
//! writes `managedFields` itself (kubectl moving an object from client-side to
//! server-side apply) has them kept, once checked, in canonical form; `[]`
//! clears them.

use super::objects::Request;
use crate::error::ApiError;
use crate::ssa::managed::Managed;
use crate::ssa::schema::Schema;
use crate::ssa::update;
use serde_json::{Value, json};

/// Who sets the managedFields of a write.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Ownership {
    /// The write's manager takes the fields it changed ([`track`]): a
    /// create, an update, a patch.
    Track,
    /// Already set by the server (a server-side apply, whose `[]` means none).
    Set,
}

/// Records ownership of a write from `old` to `new` as `ownership` says.
pub fn settle(
    req: &Request,
    old: &Value,
    new: &mut Value,
    subresource: Option<&str>,
    ownership: Ownership,
) -> Result<(), ApiError> {
    match ownership {
        Ownership::Track => track(req, old, new, subresource),
        Ownership::Set => {
            let m = new["metadata"].as_object_mut();
            let empty = |m: &&mut serde_json::Map<String, Value>| {
                m.get("managedFields")
                    .and_then(Value::as_array)
                    .is_some_and(Vec::is_empty)
            };
            if let Some(m) = m.filter(empty) {
                m.remove("managedFields");
            }
            Ok(())
        }
    }
}

/// The manager of a request.
pub fn manager(req: &Request) -> String {
    if let Some(m) = req
        .params
        .field_manager
        .as_deref()
        .filter(|m| !m.is_empty())
    {
        return m.to_string();
    }
    let ua = req.user_agent.split('/').next().unwrap_or("").trim();
    if ua.is_empty() {
        "unknown".into()
    } else {
        ua.to_string()
    }
}

/// Updates `new`'s managedFields for a write from `old` (`Null` for a create).
pub fn track(
    req: &Request,
    old: &Value,
    new: &mut Value,
    subresource: Option<&str>,
) -> Result<(), ApiError> {
    let info = &req.route.info;
    let had = old["metadata"].get("managedFields");
    let given = new["metadata"].get("managedFields");
    let unchanged = given.is_some() && given == had;
    if given.is_some() && given != had {
        // Set by the client: kept once checked, in canonical form (an empty
        // list clears them).
        Managed::read(new)
            .and_then(Managed::canonical)
            .map_err(|m| ApiError::bad_request(format!("invalid managedFields: {m}")))?
            .write(new);
        return Ok(());
    }
    let schema = Schema::root(info.schema.as_ref());
    if old.is_null()
        && subresource.is_none()
        && let Some(tree) = update::created(new, info.status_subresource, schema)
    {
        // A create: the manager owns every field it sent, found in one pass.
        if let Some(m) = new["metadata"].as_object_mut()
            && !tree.is_empty()
        {
            let mut entry = json!({"manager": manager(req), "operation": "Update",
                "apiVersion": info.api_version(), "time": super::now(),
                "fieldsType": "FieldsV1"});
            // Moved in, not through `json!`, which would copy the tree.
            entry["fieldsV1"] = Value::Object(tree);
            m.insert("managedFields".into(), Value::Array(vec![entry]));
        }
        return Ok(());
    }
    let changes = update::diff(old, new, subresource, info.status_subresource, schema);
    // A write that kept the managedFields it read hands them over; else they are copied.
    let taken = match new["metadata"].as_object_mut() {
        Some(m) if unchanged => m.remove("managedFields"),
        _ => None,
    };
    let mut list: Vec<Value> = match taken {
        Some(Value::Array(list)) => list,
        _ => old["metadata"]["managedFields"]
            .as_array()
            .cloned()
            .unwrap_or_default(),
    };
    update::record(
        &mut list,
        &changes,
        &manager(req),
        &info.api_version(),
        subresource,
        &super::now(),
    );
    if let Some(m) = new["metadata"].as_object_mut() {
        if list.is_empty() {
            m.remove("managedFields");
        } else {
            m.insert("managedFields".into(), Value::Array(list));
        }
    }
    Ok(())
}

/// What a write from `old` to `new` changed of the main resource (for
/// [`track_both`]).
pub fn main_changes(req: &Request, old: &Value, new: &Value) -> update::Changes {
    let info = &req.route.info;
    update::diff(
        old,
        new,
        None,
        info.status_subresource,
        Schema::root(info.schema.as_ref()),
    )
}

/// Records a write the server made of the main resource and status at once
/// (a binding, of a kind with the status subresource), as the two writes it
/// stands for would have: `main` (the main resource's change, found before
/// the status was set) under its Update, then the status's under the status
/// subresource's. `new` holds the managedFields it was copied with.
pub fn track_both(req: &Request, old: &Value, new: &mut Value, main: update::Changes) {
    let info = &req.route.info;
    let schema = Schema::root(info.schema.as_ref());
    let status = update::diff(old, new, Some("status"), true, schema);
    let Some(m) = new["metadata"].as_object_mut() else {
        return;
    };
    let mut list = match m.remove("managedFields") {
        Some(Value::Array(list)) => list,
        _ => Vec::new(),
    };
    let (who, version, now) = (manager(req), info.api_version(), super::now());
    update::record(&mut list, &main, &who, &version, None, &now);
    update::record(&mut list, &status, &who, &version, Some("status"), &now);
    if !list.is_empty() {
        m.insert("managedFields".into(), Value::Array(list));
    }
}
