//! Structural-schema handling for custom resources, as kube-apiserver does it:
//! drop nulls the schema does not allow, prune unknown fields (or report them,
//! under `fieldValidation=Strict`), apply defaults, then validate types, enums,
//! required fields, bounds and patterns, collecting every failure with its
//! field path.
//!
//! One walk does all four. `apiVersion`, `kind` and `metadata` at the root are
//! the API machinery's business and are left alone here.
//!
//! Updates ratchet as kube-apiserver's do (1.30 on): a failure inside a value
//! the update left as it was stored is not reported, so an object stored
//! before a stricter schema stays updatable in the fields it does change.

use crate::error::Cause;
use serde_json::{Map, Value};
use std::fmt::Write;

/// What a walk found.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Validation failures (a 422).
    pub causes: Vec<Cause>,
    /// Paths of fields the schema does not know (pruned).
    pub unknown: Vec<String>,
}

/// Prunes, defaults and validates `obj` in place against `schema` (an `openAPIV3Schema`).
pub fn apply(schema: &Value, obj: &mut Value) -> Outcome {
    apply_update(schema, obj, None)
}

/// As [`apply`], for an update of `old`: failures inside values equal to
/// their stored counterparts are dropped (validation ratcheting).
pub fn apply_update(schema: &Value, obj: &mut Value, old: Option<&Value>) -> Outcome {
    let mut out = Outcome::default();
    let Some(map) = obj.as_object_mut() else {
        out.causes.push(Cause {
            reason: "FieldValueTypeInvalid",
            message: "Invalid value: the object must be a JSON object".into(),
            field: "<root>".into(),
        });
        return out;
    };
    let props = schema.get("properties").and_then(Value::as_object);
    // One buffer holds the path of the field being walked.
    let mut path = String::new();
    map.retain(|k, v| {
        if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
            return true;
        }
        match props.and_then(|p| p.get(k)) {
            Some(s) if v.is_null() && !nullable(s) => false,
            Some(s) => {
                path.push_str(k);
                walk(s, v, &mut path, &mut out, old.and_then(|o| o.get(k)));
                path.clear();
                true
            }
            None if preserves_unknown(schema) => true,
            None => {
                out.unknown.push(k.clone());
                false
            }
        }
    });
    default_and_require(schema, map, "", &mut out);
    out
}

/// Prunes, defaults and validates one field of an object (`path`, as
/// `metadata`) against its schema: what [`apply`] leaves alone at the root.
pub fn apply_field(schema: &Value, v: &mut Value, path: &str) -> Outcome {
    let mut out = Outcome::default();
    let mut p = path.to_string();
    walk(schema, v, &mut p, &mut out, None);
    out
}

fn nullable(s: &Value) -> bool {
    s.get("nullable") == Some(&Value::Bool(true))
}

fn preserves_unknown(s: &Value) -> bool {
    s.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 64 {
        // Cut on a character boundary: a client's value may be any UTF-8.
        format!("{}...", s.chars().take(61).collect::<String>())
    } else {
        s
    }
}

fn type_error(out: &mut Outcome, path: &str, v: &Value, want: &str) {
    out.causes.push(Cause {
        reason: "FieldValueTypeInvalid",
        message: format!(
            "Invalid value: \"{}\": {path} in body must be of type {want}: \"{}\"",
            type_name(v),
            type_name(v)
        ),
        field: path.to_string(),
    });
}

/// Walks `v` against `s`; `path` is `v`'s field path, and is as it was on return.
/// `old` is the stored value at the same path, on an update.
fn walk(s: &Value, v: &mut Value, path: &mut String, out: &mut Outcome, old: Option<&Value>) {
    if old.is_some_and(|o| o == v) {
        // Unchanged: pruned and defaulted as ever, but its failures ratchet.
        let kept = out.causes.len();
        walk(s, v, path, out, None);
        out.causes.truncate(kept);
        return;
    }
    if v.is_null() {
        if !nullable(s) {
            type_error(
                out,
                path,
                v,
                s.get("type").and_then(Value::as_str).unwrap_or("object"),
            );
        }
        return;
    }
    if s.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
        if !(v.is_string() || v.is_i64() || v.is_u64()) {
            out.causes.push(Cause {
                reason: "FieldValueTypeInvalid",
                message: format!(
                    "Invalid value: \"{}\": {path} in body must be of type integer,string: \"{}\"",
                    type_name(v),
                    type_name(v)
                ),
                field: path.to_string(),
            });
        }
        return;
    }
    if let Some(want) = s.get("type").and_then(Value::as_str) {
        let ok = match want {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "integer" => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
            "number" => v.is_number(),
            "boolean" => v.is_boolean(),
            _ => true,
        };
        if !ok {
            type_error(out, path, v, want);
            return;
        }
    }
    if let Some(allowed) = s.get("enum").and_then(Value::as_array)
        && !allowed.contains(v)
    {
        let list = allowed
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        out.causes.push(Cause {
            reason: "FieldValueNotSupported",
            message: format!("Unsupported value: {}: supported values: {list}", short(v)),
            field: path.to_string(),
        });
    }
    bounds(s, v, path, out);
    match v {
        Value::Object(map) => walk_object(s, map, path, out, old),
        Value::Array(items) => {
            // List items are not matched with the stored ones: only a list
            // left whole ratchets.
            if let Some(item_schema) = s.get("items") {
                let len = path.len();
                for (i, item) in items.iter_mut().enumerate() {
                    let _ = write!(path, "[{i}]");
                    walk(item_schema, item, path, out, None);
                    path.truncate(len);
                }
            }
        }
        _ => {}
    }
}

/// Decodes base64 as Go's `encoding/base64.StdEncoding` (which kube-apiserver
/// uses) does: line breaks are skipped and trailing bits need not be zero.
fn decode_base64(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    use base64::Engine;
    use base64::engine::{GeneralPurpose, GeneralPurposeConfig};
    const GO_STD: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
    );
    if text.contains(['\r', '\n']) {
        GO_STD.decode(text.replace(['\r', '\n'], ""))
    } else {
        GO_STD.decode(text)
    }
}

fn bounds(s: &Value, v: &Value, path: &str, out: &mut Outcome) {
    let mut fail = |message: String| {
        out.causes.push(Cause {
            reason: "FieldValueInvalid",
            message,
            field: path.to_string(),
        })
    };
    if let Some(n) = v.as_f64() {
        if let Some(min) = s.get("minimum").and_then(Value::as_f64)
            && n < min
        {
            fail(format!(
                "Invalid value: {}: {path} in body should be greater than or equal to {min}",
                short(v)
            ));
        }
        if let Some(max) = s.get("maximum").and_then(Value::as_f64)
            && n > max
        {
            fail(format!(
                "Invalid value: {}: {path} in body should be less than or equal to {max}",
                short(v)
            ));
        }
    }
    if let Some(text) = v.as_str() {
        // Bytes travel base64-encoded (a Secret's data, a ConfigMap's binaryData).
        if s.get("format").and_then(Value::as_str) == Some("byte")
            && let Err(e) = decode_base64(text)
        {
            fail(format!(
                "Invalid value: {}: {path} in body must be base64-encoded: {e}",
                short(v)
            ));
        }
        let len = text.chars().count() as u64;
        if let Some(max) = s.get("maxLength").and_then(Value::as_u64)
            && len > max
        {
            fail(format!("Too long: may not be more than {max} bytes"));
        }
        if let Some(min) = s.get("minLength").and_then(Value::as_u64)
            && len < min
        {
            fail(format!(
                "Invalid value: {}: {path} in body should be at least {min} chars long",
                short(v)
            ));
        }
        if let Some(pattern) = s.get("pattern").and_then(Value::as_str)
            && !crate::schema_pattern::matches(pattern, text)
        {
            fail(format!(
                "Invalid value: {}: {path} in body should match '{pattern}'",
                short(v)
            ));
        }
    }
    if let Some(items) = v.as_array() {
        if let Some((i, dup)) = crate::schema_lists::duplicate(s, items) {
            out.causes.push(Cause {
                reason: "FieldValueDuplicate",
                message: format!("Duplicate value: {dup}"),
                field: format!("{path}[{i}]"),
            });
        }
        let mut fail = |message: String| {
            out.causes.push(Cause {
                reason: "FieldValueInvalid",
                message,
                field: path.to_string(),
            })
        };
        if let Some(max) = s.get("maxItems").and_then(Value::as_u64)
            && items.len() as u64 > max
        {
            fail(format!(
                "Too many: {}: must have at most {max} items",
                items.len()
            ));
        }
        if let Some(min) = s.get("minItems").and_then(Value::as_u64)
            && (items.len() as u64) < min
        {
            fail(format!(
                "Invalid value: {path} in body should have at least {min} items"
            ));
        }
    }
}

fn walk_object(
    s: &Value,
    map: &mut Map<String, Value>,
    path: &mut String,
    out: &mut Outcome,
    old: Option<&Value>,
) {
    let props = s.get("properties").and_then(Value::as_object);
    let additional = s.get("additionalProperties").filter(|a| a.is_object());
    let len = path.len();
    map.retain(|k, v| match props.and_then(|p| p.get(k)).or(additional) {
        Some(cs) if v.is_null() && !nullable(cs) => false,
        Some(cs) => {
            if len > 0 {
                path.push('.');
            }
            path.push_str(k);
            walk(cs, v, path, out, old.and_then(|o| o.get(k)));
            path.truncate(len);
            true
        }
        None if preserves_unknown(s)
            || (props.is_none() && s.get("additionalProperties") == Some(&Value::Bool(true))) =>
        {
            true
        }
        None => {
            out.unknown.push(join(path, k));
            false
        }
    });
    default_and_require(s, map, path, out);
}

fn default_and_require(s: &Value, map: &mut Map<String, Value>, path: &str, out: &mut Outcome) {
    if let Some(props) = s.get("properties").and_then(Value::as_object) {
        for (k, ps) in props {
            if !map.contains_key(k)
                && let Some(d) = ps.get("default")
            {
                let mut d = d.clone();
                // Defaults are themselves defaulted below, as kube-apiserver does.
                if let Value::Object(m) = &mut d {
                    default_and_require(ps, m, &join(path, k), &mut Outcome::default());
                }
                map.insert(k.clone(), d);
            }
        }
    }
    for r in s
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(r) = r.as_str()
            && !map.contains_key(r)
        {
            out.causes.push(Cause {
                reason: "FieldValueRequired",
                message: "Required value".into(),
                field: join(path, r),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn long_non_ascii_values_are_shortened_without_panicking() {
        let v = serde_json::json!(format!("a{}", "€".repeat(100)));
        assert!(super::short(&v).ends_with("..."));
    }

    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "spec": {"type": "object", "required": ["command"], "properties": {
                "command": {"type": "string"},
                "backoffLimit": {"type": "integer", "default": 3, "minimum": 0},
                "policy": {"type": "string", "enum": ["Never", "Always"]},
                "cpus": {"x-kubernetes-int-or-string": true},
                "env": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
                "opt": {"type": "string", "nullable": true}
            }}
        }})
    }

    #[test]
    fn defaults_prunes_and_validates() {
        let mut obj = json!({"apiVersion": "x/v1", "kind": "T", "metadata": {"name": "a"},
            "spec": {"command": "true", "extra": 1, "env": [{"name": "A", "bogus": true}], "cpus": "500m", "opt": null},
            "junk": {}});
        let out = apply(&schema(), &mut obj);
        assert!(out.causes.is_empty(), "{:?}", out.causes);
        let mut unknown = out.unknown.clone();
        unknown.sort();
        assert_eq!(unknown, ["junk", "spec.env[0].bogus", "spec.extra"]);
        assert_eq!(obj["spec"]["backoffLimit"], 3);
        assert_eq!(obj["spec"]["env"][0], json!({"name": "A"}));
        assert_eq!(obj["spec"]["opt"], Value::Null);
        assert_eq!(obj["metadata"]["name"], "a");
    }

    #[test]
    fn reports_every_failure_with_its_path() {
        let mut obj = json!({"spec": {"backoffLimit": "three", "policy": "Sometimes", "cpus": 1.5, "env": "x"}});
        let out = apply(&schema(), &mut obj);
        let fields: Vec<_> = out
            .causes
            .iter()
            .map(|c| (c.field.as_str(), c.reason))
            .collect();
        assert!(
            fields.contains(&("spec.backoffLimit", "FieldValueTypeInvalid")),
            "{fields:?}"
        );
        assert!(
            fields.contains(&("spec.policy", "FieldValueNotSupported")),
            "{fields:?}"
        );
        assert!(
            fields.contains(&("spec.cpus", "FieldValueTypeInvalid")),
            "{fields:?}"
        );
        assert!(
            fields.contains(&("spec.env", "FieldValueTypeInvalid")),
            "{fields:?}"
        );
        assert!(
            fields.contains(&("spec.command", "FieldValueRequired")),
            "{fields:?}"
        );
        // Paths stay right across nesting and siblings walked after it.
        let mut nested = json!({"spec": {"command": "x", "env": [{"name": "a"}, {"name": 1, "x": 1}], "policy": "No"}, "other": 1});
        let out = apply(&schema(), &mut nested);
        let fields: Vec<_> = out.causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["spec.env[1].name", "spec.policy"]);
        assert_eq!(out.unknown, ["other", "spec.env[1].x"]);
        let mut neg = json!({"spec": {"command": "x", "backoffLimit": -1}});
        assert_eq!(
            apply(&schema(), &mut neg).causes[0].field,
            "spec.backoffLimit"
        );
    }

    #[test]
    fn base64_is_read_as_go_reads_it() {
        assert_eq!(decode_base64("aGVs\r\nbG8=").unwrap(), b"hello");
        assert!(decode_base64("aGk=").is_ok());
        assert!(decode_base64("aGl=").is_ok(), "non-zero trailing bits");
        assert!(decode_base64("a!==").is_err());
    }

    #[test]
    fn an_update_ratchets_failures_in_unchanged_values() {
        // Stored before the schema grew stricter: a bad policy and no command.
        let old =
            json!({"spec": {"policy": "Sometimes", "backoffLimit": 1}, "other": {"policy": "x"}});
        // Changing another field is allowed; the stored failures are not reported.
        let mut obj = json!({"spec": {"policy": "Sometimes", "backoffLimit": 2}});
        let mut spec_only = schema();
        spec_only["properties"]["spec"]["required"] = json!([]);
        let out = apply_update(&spec_only, &mut obj, Some(&old));
        assert!(out.causes.is_empty(), "{:?}", out.causes);
        // A changed value is checked, and so is a new one.
        let mut obj = json!({"spec": {"policy": "Rarely", "backoffLimit": -2}});
        let out = apply_update(&spec_only, &mut obj, Some(&old));
        let mut fields: Vec<_> = out.causes.iter().map(|c| c.field.as_str()).collect();
        fields.sort();
        assert_eq!(fields, ["spec.backoffLimit", "spec.policy"]);
        // A required field still missing from a changed object is reported.
        let mut obj = json!({"spec": {"policy": "Sometimes", "backoffLimit": 2}});
        let out = apply_update(&schema(), &mut obj, Some(&old));
        let fields: Vec<_> = out.causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["spec.command"]);
    }
}
