//! Checks of Mosaic's own kinds that a structural schema cannot express:
//! a Task has exactly one of `command` and `args`, its quantities parse, and
//! its spec is immutable once it is bound to an agent.

use crate::error::Cause;
use crate::registry::ResourceInfo;
use serde_json::Value;

fn quantity_ok(q: &str) -> bool {
    let digits_end = q
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_digit() || *c == '.' || *c == '+' || *c == '-'))
        .map_or(q.len(), |(i, _)| i);
    let (num, suffix) = q.split_at(digits_end);
    let num_ok = !num.is_empty() && num.parse::<f64>().is_ok_and(|n| n >= 0.0);
    let suffix_ok = matches!(
        suffix,
        "" | "m" | "k" | "M" | "G" | "T" | "P" | "E" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei"
    ) || (suffix.starts_with(['e', 'E']) && suffix[1..].parse::<i32>().is_ok());
    num_ok && suffix_ok
}

fn check_quantities(v: &Value, path: &str, causes: &mut Vec<Cause>) {
    let Some(map) = v.as_object() else { return };
    for (k, q) in map {
        let text = match q {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => continue,
        };
        if !quantity_ok(&text) {
            causes.push(Cause {
                reason: "FieldValueInvalid",
                message: format!("Invalid value: \"{text}\": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$' and be non-negative"),
                field: format!("{path}.{k}"),
            });
        }
    }
}

/// Kind-specific checks on a new or updated object.
pub fn check(info: &ResourceInfo, obj: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    if info.group != mosaic_crds::GROUP {
        return causes;
    }
    let spec = &obj["spec"];
    for path in ["resources", "quota.guarantee", "quota.limit"] {
        let mut v = spec;
        for seg in path.split('.') {
            v = &v[seg];
        }
        check_quantities(v, &format!("spec.{path}"), &mut causes);
    }
    if info.kind == "Task" {
        let has_cmd = spec["command"].is_string();
        let has_args = spec["args"].as_array().is_some_and(|a| !a.is_empty());
        if has_cmd == has_args {
            causes.push(Cause {
                reason: "FieldValueInvalid",
                message: "Invalid value: exactly one of spec.command and spec.args must be set"
                    .into(),
                field: "spec.command".into(),
            });
        }
    }
    causes
}

/// Checks that apply only when a spec changes.
pub fn check_update(info: &ResourceInfo, old: &Value, new: &Value) -> Option<Cause> {
    let bound = old["status"]["agent"]
        .as_str()
        .is_some_and(|a| !a.is_empty());
    (info.group == mosaic_crds::GROUP && info.kind == "Task" && bound && old["spec"] != new["spec"])
        .then(|| Cause {
            reason: "FieldValueForbidden",
            message: "Forbidden: a Task's spec is immutable once it is bound to an agent".into(),
            field: "spec".into(),
        })
}

#[cfg(test)]
mod tests {
    use super::quantity_ok;

    #[test]
    fn quantities() {
        for q in ["1", "500m", "0.5", "128Mi", "1Gi", "2e3", "1.5G"] {
            assert!(quantity_ok(q), "{q}");
        }
        for q in ["", "abc", "1Qi", "-1", "m"] {
            assert!(!quantity_ok(q), "{q}");
        }
    }
}
