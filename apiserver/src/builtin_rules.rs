//! kube-apiserver's own rules for built-in kinds beyond their schema: a
//! Secret's `stringData` is merged into `data` (base64) and dropped, its
//! `type` defaults to `Opaque`, and a Secret or ConfigMap marked `immutable`
//! keeps its data (and its mark) for good.

use crate::error::Cause;
use crate::registry::ResourceInfo;
use base64::Engine;
use serde_json::{Value, json};

fn is(info: &ResourceInfo, kind: &str) -> bool {
    info.group.is_empty() && info.kind == kind
}

/// Defaults and normalises a new or updated object (after its schema walk,
/// so `stringData` is known to be a map of strings).
pub fn normalize(info: &ResourceInfo, obj: &mut Value) {
    if !is(info, "Secret") {
        return;
    }
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    if let Some(Value::Object(plain)) = map.remove("stringData") {
        let data = map
            .entry("data")
            .or_insert_with(|| json!({}))
            .as_object_mut();
        if let Some(data) = data {
            for (k, v) in plain {
                let text = v.as_str().unwrap_or_default();
                let encoded = base64::engine::general_purpose::STANDARD.encode(text);
                data.insert(k, Value::String(encoded));
            }
        }
    }
    if map
        .get("type")
        .is_none_or(|t| t.as_str().is_none_or(str::is_empty))
    {
        map.insert("type".into(), json!("Opaque"));
    }
}

/// What an update may not change: the data of an immutable Secret or
/// ConfigMap, its `immutable` mark, and a Secret's type.
pub fn check_update(info: &ResourceInfo, old: &Value, new: &Value) -> Option<Cause> {
    let secret = is(info, "Secret");
    if !secret && !is(info, "ConfigMap") {
        return None;
    }
    let forbidden = |field: &str| Cause {
        reason: "FieldValueForbidden",
        message: "Forbidden: field is immutable when `immutable` is set".into(),
        field: field.into(),
    };
    // A Secret stored before `type` was defaulted has none: it was Opaque.
    let type_of = |v: &Value| match v["type"].as_str() {
        None | Some("") => "Opaque".to_string(),
        Some(t) => t.to_string(),
    };
    if secret && type_of(old) != type_of(new) {
        return Some(Cause {
            reason: "FieldValueInvalid",
            message: format!("Invalid value: {}: field is immutable", new["type"]),
            field: "type".into(),
        });
    }
    if old["immutable"] != Value::Bool(true) {
        return None;
    }
    if new["immutable"] != Value::Bool(true) {
        return Some(forbidden("immutable"));
    }
    let fields: &[&str] = if secret {
        &["data"]
    } else {
        &["data", "binaryData"]
    };
    let empty = json!({});
    let of = |v: &Value, f: &str| -> Value {
        let d = &v[f];
        if d.is_null() {
            empty.clone()
        } else {
            d.clone()
        }
    };
    fields
        .iter()
        .find(|f| of(old, f) != of(new, f))
        .map(|f| forbidden(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(kind: &str) -> ResourceInfo {
        crate::registry::builtins()
            .into_iter()
            .find(|i| i.group.is_empty() && i.kind == kind)
            .expect("a built-in kind")
    }

    #[test]
    fn string_data_becomes_base64_data_and_type_defaults_to_opaque() {
        let mut s = json!({"data": {"a": "eA=="}, "stringData": {"b": "hello", "a": "y"}});
        normalize(&info("Secret"), &mut s);
        assert_eq!(
            s,
            json!({"data": {"a": "eQ==", "b": "aGVsbG8="}, "type": "Opaque"})
        );
        let mut cm = json!({"data": {"a": "1"}});
        normalize(&info("ConfigMap"), &mut cm);
        assert_eq!(cm, json!({"data": {"a": "1"}}));
    }

    #[test]
    fn immutable_data_stays() {
        let cm = info("ConfigMap");
        let old = json!({"immutable": true, "data": {"a": "1"}});
        let changed = json!({"immutable": true, "data": {"a": "2"}});
        assert_eq!(
            check_update(&cm, &old, &changed).map(|c| c.field),
            Some("data".into())
        );
        let unmarked = json!({"immutable": false, "data": {"a": "1"}});
        assert_eq!(
            check_update(&cm, &old, &unmarked).map(|c| c.field),
            Some("immutable".into())
        );
        let labels_only =
            json!({"immutable": true, "data": {"a": "1"}, "metadata": {"labels": {"x": "y"}}});
        assert!(check_update(&cm, &old, &labels_only).is_none());
        let mutable = json!({"data": {"a": "1"}});
        assert!(check_update(&cm, &mutable, &changed).is_none());
        let secret = info("Secret");
        let typed = json!({"type": "Opaque"});
        let retyped = json!({"type": "kubernetes.io/tls"});
        assert_eq!(
            check_update(&secret, &typed, &retyped).map(|c| c.field),
            Some("type".into())
        );
    }
}
