//! charts/mosaic, checked with the real Helm 4: it lints strictly, its
//! rendering (default and HA values) is made only of valid Kubernetes objects
//! (every field known to the k8s-openapi types), it carries the CRDs byte for
//! byte, and its RBAC grants no wildcard and gives agents exactly what
//! `mosaic server` gives its own agent identity.

use crate::support::*;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;
use std::process::Command;

/// The first field of `original` the typed form lost (an unknown or misplaced field).
fn lost_field(original: &Value, typed: &Value, path: &str) -> Option<String> {
    match (original, typed) {
        (Value::Object(a), Value::Object(b)) => a.iter().find_map(|(k, v)| match b.get(k) {
            None if !v.is_null() => Some(format!("{path}.{k}")),
            None => None,
            Some(w) => lost_field(v, w, &format!("{path}.{k}")),
        }),
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (v, w))| lost_field(v, w, &format!("{path}[{i}]"))),
        (a, b) if a == b => None,
        _ => Some(format!("{path} (was {original}, read as {typed})")),
    }
}

fn strict<T: serde::de::DeserializeOwned + serde::Serialize>(doc: &Value) -> Result<T, String> {
    let typed: T = serde_json::from_value(doc.clone()).map_err(|e| e.to_string())?;
    let back = serde_json::to_value(&typed).expect("serializes");
    match lost_field(doc, &back, "") {
        Some(f) => Err(format!("unknown or invalid field {f}")),
        None => Ok(typed),
    }
}

/// Parses each object into its k8s-openapi type, rejecting unknown fields.
fn check_types(docs: &[Value]) {
    for d in docs {
        let kind = d["kind"].as_str().unwrap_or_default();
        let name = d["metadata"]["name"].as_str().unwrap_or_default();
        let checked = match kind {
            "Deployment" => strict::<Deployment>(d).map(drop),
            "DaemonSet" => strict::<DaemonSet>(d).map(drop),
            "ServiceAccount" => strict::<ServiceAccount>(d).map(drop),
            "ClusterRole" => strict::<ClusterRole>(d).map(drop),
            "ClusterRoleBinding" => strict::<ClusterRoleBinding>(d).map(drop),
            "Role" => strict::<Role>(d).map(drop),
            "RoleBinding" => strict::<RoleBinding>(d).map(drop),
            "PodDisruptionBudget" => strict::<PodDisruptionBudget>(d).map(drop),
            "CustomResourceDefinition" => strict::<CustomResourceDefinition>(d).map(drop),
            other => Err(format!("a kind this test does not expect: {other}")),
        };
        if let Err(e) = checked {
            panic!("{kind} {name}: {e}");
        }
    }
}

fn kinds(docs: &[Value]) -> Vec<String> {
    let mut k: Vec<String> = docs
        .iter()
        .map(|d| {
            format!(
                "{}/{}",
                d["kind"].as_str().unwrap(),
                d["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    k.sort();
    k
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in {:?}", kinds(docs)))
}

#[test]
fn the_chart_lints_strictly() {
    for values in [None, Some("charts/mosaic/ci/ha-values.yaml")] {
        let mut c = Command::new(helm_bin());
        c.args(["lint", "--strict"])
            .arg(repo_root().join("charts/mosaic"));
        if let Some(v) = values {
            c.arg("-f").arg(repo_root().join(v));
        }
        let out = c.output().expect("running helm");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "helm lint --strict ({values:?}): {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains("1 chart(s) linted, 0 chart(s) failed"),
            "{text}"
        );
        assert!(
            !text.contains("[WARNING]") && !text.contains("[ERROR]"),
            "{text}"
        );
    }
    // values.schema.json refuses a nonsense value, naming it.
    let out = Command::new(helm_bin())
        .args(["template", "x"])
        .arg(repo_root().join("charts/mosaic"))
        .args(["--set", "controllers.replicas=0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/controllers/replicas"));
}

#[test]
fn the_rendered_chart_is_valid_kubernetes_and_complete() {
    let default = render_chart(&["--include-crds"]);
    let ha = render_chart(&["--include-crds", "-f", "charts/mosaic/ci/ha-values.yaml"]);
    for docs in [&default, &ha] {
        check_types(docs);
        let crds = docs
            .iter()
            .filter(|d| d["kind"] == "CustomResourceDefinition")
            .count();
        assert_eq!(crds, mosaic_crds::all_crds().len(), "every Mosaic CRD");
        for (kind, name) in [
            ("ServiceAccount", "mosaic-controllers"),
            ("ServiceAccount", "mosaic-agent"),
            ("ClusterRole", "mosaic-controllers"),
            ("ClusterRole", "mosaic-agent"),
            ("ClusterRoleBinding", "mosaic-controllers"),
            ("ClusterRoleBinding", "mosaic-agent"),
            ("Role", "mosaic-controllers"),
            ("Role", "mosaic-agent"),
            ("RoleBinding", "mosaic-controllers"),
            ("RoleBinding", "mosaic-agent"),
            ("Deployment", "mosaic-controllers"),
            ("DaemonSet", "mosaic-agent"),
            ("PodDisruptionBudget", "mosaic-controllers"),
        ] {
            find(docs, kind, name);
        }
        // No rule grants a wildcard.
        for d in docs.iter().filter(|d| d["rules"].is_array()) {
            for r in d["rules"].as_array().unwrap() {
                for f in [
                    "verbs",
                    "apiGroups",
                    "resources",
                    "nonResourceURLs",
                    "resourceNames",
                ] {
                    let wild = r[f]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|v| v.as_str().unwrap_or("").contains('*'));
                    assert!(
                        !wild,
                        "{} {} grants {f} *",
                        d["kind"], d["metadata"]["name"]
                    );
                }
            }
        }
        // The controllers: restricted pods, leader election, probes, resources.
        let deploy = find(docs, "Deployment", "mosaic-controllers");
        let pod = &deploy["spec"]["template"]["spec"];
        let c = &pod["containers"][0];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
        assert_eq!(
            c["securityContext"]["capabilities"]["drop"],
            serde_json::json!(["ALL"])
        );
        assert!(c["livenessProbe"].is_object() && c["readinessProbe"].is_object());
        assert!(c["resources"]["requests"].is_object());
        assert_eq!(c["args"][0], "controllers");
        // The agents: the host's cgroups and a data dir on the host; not privileged.
        let ds = find(docs, "DaemonSet", "mosaic-agent");
        let pod = &ds["spec"]["template"]["spec"];
        let c = &pod["containers"][0];
        assert_eq!(c["securityContext"]["privileged"], false);
        let paths: Vec<&str> = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["hostPath"]["path"].as_str().unwrap())
            .collect();
        assert_eq!(paths, ["/sys/fs/cgroup", "/var/lib/mosaic/agent"]);
    }
    let replicas =
        |docs: &[Value]| find(docs, "Deployment", "mosaic-controllers")["spec"]["replicas"].clone();
    assert_eq!(replicas(&default), 2);
    assert_eq!(replicas(&ha), 3);
    assert_eq!(
        find(&ha, "PodDisruptionBudget", "mosaic-controllers")["spec"]["minAvailable"],
        2
    );
}

#[test]
fn the_chart_carries_the_crds_and_the_servers_agent_rules() {
    let chart = std::fs::read(repo_root().join("charts/mosaic/crds/crds.yaml")).unwrap();
    let generated = std::fs::read(repo_root().join("crds/generated/crds.yaml")).unwrap();
    assert!(
        chart == generated,
        "charts/mosaic/crds/crds.yaml differs from crds/generated/crds.yaml: copy it over"
    );
    let docs = render_chart(&[]);
    let agent = find(&docs, "ClusterRole", "mosaic-agent");
    assert_eq!(
        agent["rules"],
        mosaic_apiserver::rbac::bootstrap::agent_cluster_rules()
    );
    let leases = find(&docs, "Role", "mosaic-agent");
    assert_eq!(leases["metadata"]["namespace"], "mosaic-system");
    assert_eq!(
        leases["rules"],
        mosaic_apiserver::rbac::bootstrap::agent_lease_rules()
    );
}
