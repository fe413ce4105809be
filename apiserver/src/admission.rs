//! Checks of Mosaic's own kinds that neither a structural schema nor a CEL
//! rule in the CRD expresses: quantities parse (with kube_quantity, through
//! the resource types). The Task's rules (exactly one of `command` and
//! `args`; the spec immutable once bound) are CEL in its CRD ([`crate::cel`]).

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
    causes
}

/// Checks that apply only when a spec changes.
pub fn check_update(info: &ResourceInfo, old: &Value, new: &Value) -> Option<Cause> {
    crate::builtin_rules::check_update(info, old, new)
}
