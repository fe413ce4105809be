//! OpenAPI v3 documents, generated from what the registry serves: the root
//! index and one document per group/version, with a schema per kind (the CRD's
//! structural schema, `metadata` as ObjectMeta) and the paths and operations
//! kubectl reads to decide on server-side field validation and for `explain`.

use super::body::{self, Body};
use crate::error::ApiError;
use crate::registry::{Registry, ResourceInfo};
use http::{Response, StatusCode};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Serves `/openapi/v3` and `/openapi/v3/<gv path>`.
pub fn serve(reg: &Registry, path: &str) -> Result<Response<Body>, ApiError> {
    let docs = documents(reg);
    if path == "/openapi/v3" || path == "/openapi/v3/" {
        let mut paths = Map::new();
        for (gv, doc) in &docs {
            let hash = hash(doc);
            paths.insert(
                gv.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{gv}?hash={hash}")}),
            );
        }
        return Ok(body::json(StatusCode::OK, &json!({"paths": paths})));
    }
    let gv = path.trim_start_matches("/openapi/v3/");
    match docs.get(gv) {
        Some(doc) => Ok(body::json(StatusCode::OK, doc)),
        None => Err(ApiError::no_route(path)),
    }
}

fn hash(v: &Value) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    v.to_string().hash(&mut h);
    format!("{:016X}", h.finish())
}

/// `io.k8s...`-style definition name: the group reversed, the version, the kind.
fn def_name(i: &ResourceInfo, kind: &str) -> String {
    let group: Vec<&str> = if i.group.is_empty() {
        vec!["io", "k8s", "api", "core"]
    } else {
        i.group.split('.').rev().collect()
    };
    format!("{}.{}.{kind}", group.join("."), i.version)
}

fn gvk(i: &ResourceInfo, kind: &str) -> Value {
    json!({"group": i.group, "version": i.version, "kind": kind})
}

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";

pub(super) fn documents(reg: &Registry) -> BTreeMap<String, Value> {
    let mut by_gv: BTreeMap<String, Vec<Arc<ResourceInfo>>> = BTreeMap::new();
    for i in reg.all() {
        let key = if i.group.is_empty() {
            format!("api/{}", i.version)
        } else {
            format!("apis/{}/{}", i.group, i.version)
        };
        by_gv.entry(key).or_default().push(i);
    }
    by_gv
        .into_iter()
        .map(|(gv, infos)| {
            let doc = document(&infos);
            (gv, doc)
        })
        .collect()
}

fn param(name: &str, location: &str, description: &str) -> Value {
    json!({"name": name, "in": location, "description": description, "schema": {"type": "string", "uniqueItems": true}})
}

fn document(infos: &[Arc<ResourceInfo>]) -> Value {
    let mut schemas = Map::new();
    schemas.insert(
        OBJECT_META.into(),
        crate::builtin_schema::OBJECT_META.clone(),
    );
    schemas.insert(
        LIST_META.into(),
        json!({"type": "object", "description": "ListMeta describes metadata that synthetic resources must have.",
               "properties": {"continue": {"type": "string"}, "remainingItemCount": {"type": "integer"}, "resourceVersion": {"type": "string"}}}),
    );
    let mut paths = Map::new();
    for i in infos {
        let name = def_name(i, &i.kind);
        let list_name = def_name(i, &format!("{}List", i.kind));
        let mut schema = i.schema.clone().unwrap_or_else(
            || json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
        );
        if let Some(props) = schema
            .as_object_mut()
            .map(|o| o.entry("properties").or_insert_with(|| json!({})))
        {
            props["apiVersion"] = json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."});
            props["kind"] = json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents."});
            props["metadata"] = json!({"allOf": [{"$ref": format!("#/components/schemas/{OBJECT_META}")}], "description": "Standard object's metadata."});
        }
        schema["x-kubernetes-group-version-kind"] = json!([gvk(i, &i.kind)]);
        schemas.insert(name.clone(), schema);
        schemas.insert(
            list_name.clone(),
            json!({"type": "object", "required": ["items"], "description": format!("{}List is a list of {}", i.kind, i.kind),
                   "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                     "items": {"type": "array", "items": {"$ref": format!("#/components/schemas/{name}")}},
                     "metadata": {"allOf": [{"$ref": format!("#/components/schemas/{LIST_META}")}]}},
                   "x-kubernetes-group-version-kind": [gvk(i, &format!("{}List", i.kind))]}),
        );
        let base = if i.group.is_empty() {
            format!("/api/{}", i.version)
        } else {
            format!("/apis/{}/{}", i.group, i.version)
        };
        let scope = if i.namespaced {
            "/namespaces/{namespace}"
        } else {
            ""
        };
        let collection = format!("{base}{scope}/{}", i.plural);
        let item = format!("{collection}/{{name}}");
        let obj_ref = json!({"$ref": format!("#/components/schemas/{name}")});
        let list_ref = json!({"$ref": format!("#/components/schemas/{list_name}")});
        let op = |action: &str, id: &str, schema: &Value, extra: Vec<Value>| {
            let mut params = extra;
            if matches!(action, "post" | "put" | "patch") {
                params.push(param(
                    "dryRun",
                    "query",
                    "When present, indicates that modifications should not be persisted.",
                ));
                params.push(param("fieldManager", "query", "fieldManager is a name associated with the actor or entity that is making these changes."));
                params.push(param("fieldValidation", "query", "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields."));
            }
            json!({
                "operationId": format!("{id}{}", i.kind),
                "parameters": params,
                "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": schema}}}},
                "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": gvk(i, &i.kind),
            })
        };
        let patch_body = json!({"content": {
            "application/json-patch+json": {"schema": {"type": "object"}},
            "application/merge-patch+json": {"schema": {"type": "object"}},
            "application/apply-patch+yaml": {"schema": {"type": "object"}}}});
        let mut patch = op(
            "patch",
            "patch",
            &obj_ref,
            vec![param(
                "force",
                "query",
                "Force is going to \"force\" Apply requests.",
            )],
        );
        patch["requestBody"] = patch_body;
        let mut post = op("post", "create", &obj_ref, vec![]);
        post["requestBody"] = json!({"content": {"application/json": {"schema": obj_ref}}});
        let mut put = op("put", "replace", &obj_ref, vec![]);
        put["requestBody"] = json!({"content": {"application/json": {"schema": obj_ref}}});
        let mut scope_params = vec![];
        if i.namespaced {
            scope_params.push(json!({"name": "namespace", "in": "path", "required": true, "schema": {"type": "string"}}));
        }
        paths.insert(
            collection,
            json!({"get": op("list", "list", &list_ref, vec![]), "post": post,
                   "delete": op("deletecollection", "deleteCollection", &obj_ref, vec![]),
                   "parameters": scope_params.clone()}),
        );
        let mut item_params = scope_params;
        item_params.push(
            json!({"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}),
        );
        paths.insert(
            item,
            json!({"get": op("get", "read", &obj_ref, vec![]), "put": put, "patch": patch,
                   "delete": op("delete", "delete", &obj_ref, vec![]), "parameters": item_params}),
        );
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Mosaic", "version": "v1.37.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}
