//! Checks of Mosaic's own kinds that a structural schema cannot express:
//! a Task has exactly one of `command` and `args`, quantities parse (with
//! kube_quantity, through the resource types), and a Task's spec is immutable
//! once it is bound to an agent.

use crate::error::Cause;
use crate::registry::ResourceInfo;
use serde_json::Value;

fn check_quantities(v: &Value, path: &str, causes: &mut Vec<Cause>) {
    if v.is_null() {
        return;
    }
    let parsed: Result<mosaic_crds::ResourceQuantities, _> = serde_json::from_value(v.clone());
    match parsed.map(|q| q.validate()) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => causes.push(Cause {
            reason: "FieldValueInvalid",
            message: format!("Invalid value: \"{}\": {}", e.value, e.message),
            field: format!("{path}.{}", e.field),
        }),
        // A wrong type is reported by the schema walk already.
        Err(_) => {}
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
    if let Some(c) = crate::builtin_rules::check_update(info, old, new) {
        return Some(c);
    }
    let bound = old["status"]["agent"]
        .as_str()
        .is_some_and(|a| !a.is_empty());
    (info.group == mosaic_crds::GROUP && info.kind == "Task" && bound && old["spec"] != new["spec"])
        .then(|| Cause {
            reason: "FieldValueForbidden",
            message: "Forbidden: a Task's spec is immutable once it is bound to an agent (as a \
                      Pod's is); to run something else, create a Task under a new name and delete \
                      this one (a Helm chart names its Tasks after a hash of their spec, so an \
                      upgrade replaces them: see docs/gitops.md)"
                .into(),
            field: "spec".into(),
        })
}
