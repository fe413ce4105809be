//! The built-in kinds' schemas, taken from k8s-openapi (upstream's OpenAPI
//! documents as Rust types, with their descriptions) rather than written by
//! hand, in the structural form a CRD's `openAPIV3Schema` has: so the same
//! walk ([`crate::schema`]) prunes, reports under `fieldValidation=Strict` and
//! type-checks a ConfigMap as it does a Task, and OpenAPI (`kubectl explain
//! configmap.data`) describes it.

use k8s_openapi::api::{coordination, core, events, rbac};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;
use std::sync::LazyLock;

/// The schema of `T`, every subschema inline.
fn of<T: k8s_openapi::schemars::JsonSchema>() -> Value {
    let generator = k8s_openapi::schemars::generate::SchemaSettings::openapi3()
        .with(|s| s.inline_subschemas = true)
        .into_generator();
    let mut v =
        serde_json::to_value(generator.into_root_schema_for::<T>()).expect("a schema is JSON");
    if let Some(m) = v.as_object_mut() {
        for k in ["$schema", "$defs", "definitions", "title"] {
            m.remove(k);
        }
    }
    structural(&mut v);
    v
}

/// Objects whose fields the upstream schema leaves open (no properties and no
/// additionalProperties, as `RawExtension`) keep whatever they hold; so do
/// the places where a schema refers to itself (a CRD's `JSONSchemaProps`
/// nests JSONSchemaProps: schemars leaves a `$ref` there) and the either-or
/// fields (`oneOf`: a schema or a boolean), which the walk does not type.
fn structural(v: &mut Value) {
    let Some(m) = v.as_object_mut() else {
        return;
    };
    // (JSONSchemaProps's own field list has fields named `$ref` and `oneOf`:
    // their values are schemas, not a reference's string or a list.)
    if m.get("$ref").is_some_and(Value::is_string) || m.get("oneOf").is_some_and(Value::is_array) {
        let description = m.remove("description");
        m.clear();
        m.insert(
            "x-kubernetes-preserve-unknown-fields".into(),
            Value::Bool(true),
        );
        if let Some(d) = description {
            m.insert("description".into(), d);
        }
        return;
    }
    if m.get("type").and_then(Value::as_str) == Some("object")
        && !m.contains_key("properties")
        && !m.contains_key("additionalProperties")
    {
        m.insert(
            "x-kubernetes-preserve-unknown-fields".into(),
            Value::Bool(true),
        );
        // apiextensions' JSON (a schema's `default`, `example`, `enum` items)
        // is any JSON value, which schemars types as an object.
        let description = m.get("description").and_then(Value::as_str).unwrap_or("");
        if description.starts_with("JSON represents any valid JSON value")
            || description.starts_with("default is a default value")
        {
            m.remove("type");
        }
    }
    for (_, child) in m.iter_mut() {
        match child {
            Value::Object(_) => structural(child),
            Value::Array(items) => items.iter_mut().for_each(structural),
            _ => {}
        }
    }
}

/// ObjectMeta's schema: what `metadata` of every kind may hold.
pub static OBJECT_META: LazyLock<Value> = LazyLock::new(of::<ObjectMeta>);

/// The schema of a built-in kind.
pub fn of_kind(group: &str, kind: &str) -> Option<Value> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;
    Some(match (group, kind) {
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            of::<apiextensions::CustomResourceDefinition>()
        }
        ("", "Namespace") => of::<core::v1::Namespace>(),
        ("", "Secret") => of::<core::v1::Secret>(),
        ("", "ConfigMap") => of::<core::v1::ConfigMap>(),
        ("", "ServiceAccount") => of::<core::v1::ServiceAccount>(),
        ("", "Event") => of::<core::v1::Event>(),
        ("events.k8s.io", "Event") => of::<events::v1::Event>(),
        ("coordination.k8s.io", "Lease") => of::<coordination::v1::Lease>(),
        ("rbac.authorization.k8s.io", "Role") => of::<rbac::v1::Role>(),
        ("rbac.authorization.k8s.io", "ClusterRole") => of::<rbac::v1::ClusterRole>(),
        ("rbac.authorization.k8s.io", "RoleBinding") => of::<rbac::v1::RoleBinding>(),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => of::<rbac::v1::ClusterRoleBinding>(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configmap_data_is_a_map_of_strings_with_upstream_descriptions() {
        let s = of_kind("", "ConfigMap").expect("served");
        assert_eq!(
            s["properties"]["data"]["additionalProperties"]["type"],
            "string"
        );
        assert!(
            s["properties"]["data"]["description"]
                .as_str()
                .is_some_and(|d| d.contains("configuration data")),
            "{s}"
        );
        assert!(s.get("$defs").is_none() && s.get("definitions").is_none());
        let secret = of_kind("", "Secret").expect("served");
        assert_eq!(
            secret["properties"]["data"]["additionalProperties"]["format"],
            "byte"
        );
    }

    #[test]
    fn a_crd_schema_may_have_any_json_as_default_enum_and_example() {
        let s = of_kind("apiextensions.k8s.io", "CustomResourceDefinition").expect("served");
        let mut crd = serde_json::json!({"metadata": {"name": "ws.example.com"}, "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "ws", "kind": "W"},
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
                "type": "string", "default": "small", "enum": ["small", "large"], "example": 3}}}]}});
        let out = crate::schema::apply(&s, &mut crd);
        assert!(out.causes.is_empty(), "{:?}", out.causes);
        assert!(out.unknown.is_empty(), "{:?}", out.unknown);
    }

    #[test]
    fn every_schema_is_inline() {
        for (g, k) in [
            ("", "Event"),
            ("rbac.authorization.k8s.io", "ClusterRole"),
            ("apiextensions.k8s.io", "CustomResourceDefinition"),
        ] {
            let s = of_kind(g, k).expect("served").to_string();
            assert!(!s.contains("\"$ref\":\"#"), "{g}/{k}: {s}");
        }
        assert!(!OBJECT_META.to_string().contains("$ref\":\"#"));
        let crd = of_kind("apiextensions.k8s.io", "CustomResourceDefinition").expect("served");
        let schema = &crd["properties"]["spec"]["properties"]["versions"]["items"]["properties"]["schema"]
            ["properties"]["openAPIV3Schema"];
        for field in ["type", "properties", "x-kubernetes-validations"] {
            assert!(schema["properties"][field].is_object(), "{field}: {schema}");
        }
    }
}
