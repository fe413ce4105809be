//! The resource reference (`docs/resources.md`), generated from the CRD
//! schemas so it cannot say anything the API does not; a test fails when the
//! committed file drifts from [`reference_markdown`].

use serde_json::Value;

/// Resource names Kubernetes's built-in API groups serve too, where kubectl
/// prefers the built-in one.
const KUBERNETES_PLURALS: &[&str] = &["roles"];

/// The whole reference as Markdown.
pub fn reference_markdown() -> String {
    let mut out = String::from(
        "# Resource reference\n\n\
         Generated from the CustomResourceDefinitions (`crds/src`); do not edit by hand.\n\
         Regenerate with `UPDATE_CRDS=1 cargo test -p mosaic-crds --test drift`.\n\n\
         Every kind is in API group `mosaic.dev`, version `v1alpha1`. Quantities are\n\
         Kubernetes quantity strings (`cpus: \"500m\"`, `memory: 256Mi`). Every kind has\n\
         `status.conditions` (Kubernetes `metav1.Condition`) and `status.observedGeneration`.\n",
    );
    for crd in crate::all_crds() {
        let names = &crd.spec.names;
        let version = &crd.spec.versions[0];
        out.push_str(&format!("\n## {}\n\n", names.kind));
        let short = names
            .short_names
            .as_ref()
            .map(|s| format!(", short name `{}`", s.join("`, `")))
            .unwrap_or_default();
        // A plural Kubernetes serves itself (RBAC's `roles`) needs the group.
        let get = if KUBERNETES_PLURALS.contains(&names.plural.as_str()) {
            format!(
                "`kubectl get {}.{}` (plain `{}` are Kubernetes RBAC's)",
                names.plural, crd.spec.group, names.plural
            )
        } else {
            format!("`kubectl get {}`", names.plural)
        };
        out.push_str(&format!(
            "{get}{short}; {}.\n\n",
            if crd.spec.scope == "Namespaced" {
                "namespaced"
            } else {
                "cluster-scoped"
            }
        ));
        let schema = serde_json::to_value(&version.schema).unwrap_or_default();
        let root = &schema["openAPIV3Schema"];
        if let Some(d) = root["description"].as_str() {
            out.push_str(&format!("{}\n\n", d.trim()));
        }
        out.push_str("| field | type | default | description |\n|---|---|---|---|\n");
        for part in ["spec", "status"] {
            walk(&root["properties"][part], part, &mut out);
        }
    }
    out
}

fn type_of(s: &Value) -> String {
    if s.get("x-kubernetes-int-or-string").is_some() {
        return "int or string".into();
    }
    if let Some(values) = s["enum"].as_array() {
        let v: Vec<String> = values
            .iter()
            .filter_map(|v| v.as_str().map(|s| format!("`{s}`")))
            .collect();
        return format!("one of {}", v.join(", "));
    }
    match s["type"].as_str() {
        Some("array") => format!("list of {}", type_of(&s["items"])),
        Some(t) => t.to_string(),
        None if s["anyOf"].is_array() || s["oneOf"].is_array() => "varies".into(),
        None => "object".into(),
    }
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn walk(s: &Value, path: &str, out: &mut String) {
    if s.is_null() {
        return;
    }
    let default = match &s["default"] {
        Value::Null => String::new(),
        v => format!("`{v}`"),
    };
    out.push_str(&format!(
        "| `{path}` | {} | {default} | {} |\n",
        cell(&type_of(s)),
        cell(s["description"].as_str().unwrap_or("").trim())
    ));
    let (props, prefix) = if s["type"] == "array" {
        (&s["items"]["properties"], format!("{path}[]"))
    } else {
        (&s["properties"], path.to_string())
    };
    if let Some(props) = props.as_object() {
        for (k, v) in props {
            walk(v, &format!("{prefix}.{k}"), out);
        }
    }
}
