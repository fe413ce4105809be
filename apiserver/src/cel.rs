//! CEL validation rules (`x-kubernetes-validations`) of the CRDs the server
//! serves, evaluated as kube-apiserver evaluates them, with kube-cel (the
//! kube-rs port of Kubernetes's CEL libraries): `rule`, `message`,
//! `messageExpression`, `reason`, `fieldPath`, transition rules on `oldSelf`
//! (`optionalOldSelf`), and a static cost estimate that refuses a CRD whose
//! rule would cost more than Kubernetes allows.
//!
//! Rules are compiled once, when a CRD is stored or loaded, and evaluated on
//! every create and update after the schema walk (so on the defaulted object).
//! An update ratchets, as kube-apiserver's does: a failure of a rule that does
//! not read `oldSelf`, on a value the update left as it was, is not reported.

use crate::error::Cause;
use kube_cel::{CompiledSchema, ErrorKind, RootContext, ValidationError, WarningKind};
use serde_json::Value;

/// The compiled rules of one served version of a CRD.
pub struct Rules {
    compiled: CompiledSchema,
    root: RootContext,
}

impl std::fmt::Debug for Rules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rules")
            .field("kind", &self.root.kind)
            .finish()
    }
}

/// Why a CRD's rules cannot be served.
#[derive(Debug, thiserror::Error)]
#[error("{rule}: {message}")]
pub struct RuleError {
    /// The rule's text.
    pub rule: String,
    /// What is wrong with it.
    pub message: String,
}

/// Whether a schema holds any rule at all.
fn has_rules(schema: &Value) -> bool {
    match schema {
        Value::Object(m) => {
            m.get("x-kubernetes-validations")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty())
                || m.values().any(has_rules)
        }
        Value::Array(a) => a.iter().any(has_rules),
        _ => false,
    }
}

/// Compiles the rules of `schema` (an `openAPIV3Schema`) for objects of
/// `group/version` `kind`; `None` when it has none.
pub fn compile(
    schema: &Value,
    group: &str,
    version: &str,
    kind: &str,
) -> Result<Option<Rules>, RuleError> {
    if !has_rules(schema) {
        return Ok(None);
    }
    let compiled = kube_cel::compile_schema(schema);
    check(&compiled)?;
    let api_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Ok(Some(Rules {
        compiled,
        root: RootContext {
            api_version,
            api_group: group.into(),
            kind: kind.into(),
        },
    }))
}

/// Refuses rules that do not compile, name variables a CRD rule cannot
/// see, or whose estimated cost is over Kubernetes's per-rule budget.
fn check(node: &CompiledSchema) -> Result<(), RuleError> {
    if let Some(e) = node.compilation_errors().first() {
        return Err(RuleError {
            rule: String::new(),
            message: format!("compilation failed: {e}"),
        });
    }
    for cr in node.validations.iter().flatten() {
        let rule = &cr.rule.rule;
        let warnings = kube_cel::analyze_rule(rule, node, kube_cel::ScopeContext::CrdValidation);
        if let Some(w) = warnings
            .iter()
            .find(|w| matches!(w.kind, WarningKind::WrongScope | WarningKind::CostExceeded))
        {
            return Err(RuleError {
                rule: rule.clone(),
                message: w.message.clone(),
            });
        }
    }
    node.properties
        .values()
        .chain(node.items.as_deref())
        .chain(node.additional_properties.as_deref())
        .chain(&node.all_of)
        .chain(&node.one_of)
        .chain(&node.any_of)
        .try_for_each(check)
}

thread_local! {
    /// A validator holds the registered Kubernetes functions; one per thread.
    static VALIDATOR: kube_cel::Validator = kube_cel::Validator::new();
}

/// The failures of `rules` on `obj` (and, on an update, `old`), each as a
/// cause in kube-apiserver's words.
pub fn validate(rules: &Rules, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    // As kube-apiserver, the root's metadata shows rules only its name and
    // generateName (so managedFields and the rest are never converted).
    let (seen, seen_old) = (visible(obj), old.map(visible));
    let result = VALIDATOR.with(|v| {
        v.validate_compiled_with_context(
            &rules.compiled,
            &seen,
            seen_old.as_ref(),
            Some(&rules.root),
        )
    });
    let Err(errors) = result else {
        return Vec::new();
    };
    errors
        .into_vec()
        .into_iter()
        .filter(|e| !ratchets(e, obj, old))
        .map(|e| cause(&e, obj))
        .collect()
}

/// What a rule at the root sees of `obj`: everything but metadata, and of
/// that only `name` and `generateName`.
fn visible(obj: &Value) -> Value {
    let Some(o) = obj.as_object() else {
        return obj.clone();
    };
    let mut out = serde_json::Map::with_capacity(o.len());
    for (k, v) in o {
        if k == "metadata" {
            let mut m = serde_json::Map::new();
            for key in ["name", "generateName"] {
                if let Some(x) = v.get(key) {
                    m.insert(key.into(), x.clone());
                }
            }
            out.insert(k.clone(), Value::Object(m));
        } else {
            out.insert(k.clone(), v.clone());
        }
    }
    Value::Object(out)
}

/// An update's failure on a value it left unchanged, of a rule that does not
/// compare with `oldSelf`.
fn ratchets(e: &ValidationError, obj: &Value, old: Option<&Value>) -> bool {
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
fn at<'a>(mut v: &'a Value, path: &str) -> Option<&'a Value> {
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

fn cause(e: &ValidationError, obj: &Value) -> Cause {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {"spec": {"type": "object",
            "x-kubernetes-validations": [
                {"rule": "self.min <= self.max", "messageExpression": "'min ' + string(self.min) + ' is over max ' + string(self.max)"},
                {"rule": "self.size == oldSelf.size", "message": "size is immutable", "reason": "FieldValueForbidden", "fieldPath": ".size"}
            ],
            "properties": {"min": {"type": "integer"}, "max": {"type": "integer"}, "size": {"type": "string", "maxLength": 10}}}}})
    }

    fn rules() -> Rules {
        compile(&schema(), "example.com", "v1", "Widget")
            .unwrap()
            .unwrap()
    }

    #[test]
    fn rules_fail_with_their_message_field_and_reason() {
        let obj = json!({"spec": {"min": 3, "max": 1, "size": "s"}});
        let causes = validate(&rules(), &obj, None);
        assert_eq!(causes.len(), 1, "{causes:?}");
        assert_eq!(causes[0].field, "spec");
        assert_eq!(
            causes[0].message,
            "Invalid value: \"object\": min 3 is over max 1"
        );
        // The transition rule runs on an update only.
        let old = json!({"spec": {"min": 1, "max": 2, "size": "s"}});
        let new = json!({"spec": {"min": 1, "max": 2, "size": "l"}});
        let causes = validate(&rules(), &new, Some(&old));
        assert_eq!(causes.len(), 1, "{causes:?}");
        assert_eq!(causes[0].field, "spec.size");
        assert_eq!(causes[0].reason, "FieldValueForbidden");
        assert_eq!(causes[0].message, "Forbidden: size is immutable");
    }

    #[test]
    fn an_unchanged_failing_value_ratchets() {
        let old = json!({"spec": {"min": 3, "max": 1, "size": "s"}});
        let relabelled = old.clone();
        assert!(validate(&rules(), &relabelled, Some(&old)).is_empty());
        let worse = json!({"spec": {"min": 4, "max": 1, "size": "s"}});
        assert_eq!(validate(&rules(), &worse, Some(&old)).len(), 1);
    }

    #[test]
    fn bad_rules_are_refused() {
        let bad = json!({"type": "object", "x-kubernetes-validations": [{"rule": "self.a +"}]});
        assert!(compile(&bad, "g.io", "v1", "K").is_err());
        let scope =
            json!({"type": "object", "x-kubernetes-validations": [{"rule": "object.a == 1"}]});
        assert!(compile(&scope, "g.io", "v1", "K").is_err());
        assert!(
            compile(&json!({"type": "object"}), "g.io", "v1", "K")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn field_paths_resolve() {
        let v = json!({"spec": {"env": [{"name": "a"}, {"name": "b"}]}});
        assert_eq!(at(&v, "spec.env[1].name"), Some(&json!("b")));
        assert_eq!(at(&v, ""), Some(&v));
        assert_eq!(at(&v, "spec.x"), None);
    }
}
