//! A rule's failure in kube-apiserver's words (reason, message, field), and
//! which failures an update ratchets.

use crate::error::Cause;
use kube_cel::{ErrorKind, ValidationError};
use serde_json::Value;

/// An update's failure on a value it left unchanged, of a rule that does not
/// compare with `oldSelf`.
pub fn ratchets(e: &ValidationError, obj: &Value, old: Option<&Value>) -> bool {
    let Some(old) = old else {
        return false;
    };
    if e.rule.contains("oldSelf") || e.kind != ErrorKind::ValidationFailure {
        return false;
    }
    let path = e.field_path.trim_start_matches('.');
    matches!((at(obj, path), at(old, path)), (Some(a), Some(b)) if a == b)
}

/// The value at a field path (`spec.env[0].name`).
pub fn at<'a>(mut v: &'a Value, path: &str) -> Option<&'a Value> {
    for seg in path.split('.').filter(|s| !s.is_empty()) {
        let (name, rest) = seg.split_once('[').unwrap_or((seg, ""));
        if !name.is_empty() {
            v = v.get(name)?;
        }
        for idx in rest.split('[') {
            if let Some(i) = idx.strip_suffix(']') {
                v = v.get(i.parse::<usize>().ok()?)?;
            }
        }
    }
    Some(v)
}

fn type_name(v: Option<&Value>) -> &'static str {
    match v {
        Some(Value::String(_)) => "string",
        Some(Value::Number(n)) if n.is_f64() => "number",
        Some(Value::Number(_)) => "integer",
        Some(Value::Bool(_)) => "boolean",
        Some(Value::Array(_)) => "array",
        _ => "object",
    }
}

pub fn cause(e: &ValidationError, obj: &Value) -> Cause {
    let field = e.field_path.trim_start_matches('.').to_string();
    let (reason, message) = match (e.kind.clone(), e.reason.as_deref()) {
        (ErrorKind::ValidationFailure, Some("FieldValueForbidden")) => {
            ("FieldValueForbidden", format!("Forbidden: {}", e.message))
        }
        (ErrorKind::ValidationFailure, Some("FieldValueRequired")) => (
            "FieldValueRequired",
            format!("Required value: {}", e.message),
        ),
        (ErrorKind::ValidationFailure, Some("FieldValueDuplicate")) => (
            "FieldValueDuplicate",
            format!("Duplicate value: {}", e.message),
        ),
        (ErrorKind::ValidationFailure, _) => (
            "FieldValueInvalid",
            format!(
                "Invalid value: \"{}\": {}",
                type_name(at(obj, &field)),
                e.message
            ),
        ),
        // A rule that could not be evaluated fails closed, as upstream's does.
        _ => (
            "FieldValueInvalid",
            format!("Invalid value: \"object\": {}", e.message),
        ),
    };
    Cause {
        reason,
        message,
        field,
    }
}
