//! The rules the Helm chart grants a component, read at compile time from
//! `charts/mosaic/templates/rbac.yaml`, so that the controllers' permissions
//! are written once: `mosaic server` binds the same rules to its in-process
//! controllers as the chart gives them on Kubernetes.

use serde_json::Value;

/// The chart's RBAC template.
const CHART_RBAC: &str = include_str!("../../../charts/mosaic/templates/rbac.yaml");

/// The `rules` of the chart's role of `kind` (ClusterRole or Role) labelled
/// `app.kubernetes.io/component: <component>`. The chart is part of this
/// binary, so a role missing or unreadable is a build defect: it panics
/// (and the unit test below fails first), rather than leaving the
/// controllers silently without permissions.
pub fn rules(kind: &str, component: &str) -> Value {
    for doc in CHART_RBAC.replace("\r\n", "\n").split("\n---") {
        let Ok(v) = serde_saphyr::from_str::<Value>(&without_actions(doc)) else {
            continue;
        };
        if v["kind"] != kind || v["metadata"]["labels"]["app.kubernetes.io/component"] != component
        {
            continue;
        }
        let rules_part = &doc[doc.find("\nrules:").unwrap_or(0)..];
        assert!(
            !rules_part.contains("{{"),
            "charts/mosaic/templates/rbac.yaml: the {component} {kind}'s rules hold a template \
             action; mosaic server reads them as plain YAML"
        );
        return v["rules"].clone();
    }
    panic!("charts/mosaic/templates/rbac.yaml has no readable {kind} for the {component}")
}

/// `doc` with every template action (`{{ ... }}`, comments included) taken
/// out: what is left of a role's rules is plain YAML.
fn without_actions(doc: &str) -> String {
    let mut out = String::with_capacity(doc.len());
    let mut rest = doc;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        match rest[start..].find("}}") {
            Some(end) => rest = &rest[start + end + 2..],
            None => return out,
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_controllers_rules_are_read_from_the_chart() {
        let cluster = rules("ClusterRole", "controllers");
        let has = |rules: &Value, resource: &str, verb: &str| {
            rules.as_array().unwrap().iter().any(|r| {
                r["resources"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|x| x == resource)
                    && r["verbs"].as_array().unwrap().iter().any(|x| x == verb)
            })
        };
        assert!(has(&cluster, "tasks/binding", "create"), "{cluster}");
        assert!(has(&cluster, "apps/status", "patch"), "{cluster}");
        assert!(!has(&cluster, "secrets", "list"), "{cluster}");
        let leases = rules("Role", "controllers");
        assert!(has(&leases, "leases", "update"), "{leases}");
        assert!(std::panic::catch_unwind(|| rules("Role", "nobody")).is_err());
    }
}
