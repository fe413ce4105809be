//! The committed CRD YAML must be exactly what the types generate.
//! Regenerate with: `UPDATE_CRDS=1 cargo test -p mosaic-crds --test drift`.

use std::path::Path;

#[test]
fn committed_crds_match_the_types() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("generated/crds.yaml");
    let generated = mosaic_crds::all_crds_yaml();
    if std::env::var_os("UPDATE_CRDS").is_some() {
        std::fs::write(&path, &generated).expect("writing crds/generated/crds.yaml");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "crds/generated/crds.yaml is out of date with the types in crds/src; \
         run `UPDATE_CRDS=1 cargo test -p mosaic-crds --test drift` and commit the result"
    );
}

#[test]
fn committed_resource_reference_matches_the_types() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/resources.md");
    let generated = mosaic_crds::reference::reference_markdown();
    if std::env::var_os("UPDATE_CRDS").is_some() {
        std::fs::write(&path, &generated).expect("writing docs/resources.md");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/resources.md is out of date with the types in crds/src; \
         run `UPDATE_CRDS=1 cargo test -p mosaic-crds --test drift` and commit the result"
    );
    for kind in ["Agent", "Role", "Framework", "Reservation", "Task", "Offer"] {
        assert!(
            committed.contains(&format!("\n## {kind}\n")),
            "{kind} is documented"
        );
    }
    assert!(committed.contains("| `spec.healthCheck.http.port` |"));
}

#[test]
fn every_kind_has_the_contract_names() {
    let crds = mosaic_crds::all_crds();
    let kinds: Vec<_> = crds.iter().map(|c| c.spec.names.kind.as_str()).collect();
    // The contract's kinds, first round and second (a new kind adds to the end).
    let contract = [
        "Agent",
        "Role",
        "Framework",
        "Reservation",
        "Task",
        "Offer",
        "App",
    ];
    assert_eq!(kinds[..contract.len()], contract, "{kinds:?}");
    for crd in &crds {
        assert_eq!(crd.spec.group, "mosaic.dev");
        let v = &crd.spec.versions[0];
        assert_eq!(v.name, "v1alpha1");
        assert!(
            v.subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some(),
            "{} has /status",
            crd.spec.names.kind
        );
        let schema = serde_json::to_value(&v.schema).unwrap();
        let status = &schema["openAPIV3Schema"]["properties"]["status"]["properties"];
        assert!(
            status["conditions"].is_object(),
            "{} has status.conditions",
            crd.spec.names.kind
        );
        assert!(
            status["observedGeneration"].is_object(),
            "{} has status.observedGeneration",
            crd.spec.names.kind
        );
    }
    let short = |k: &str| {
        crds.iter()
            .find(|c| c.spec.names.kind == k)
            .unwrap()
            .spec
            .names
            .short_names
            .clone()
    };
    assert_eq!(short("Task"), Some(vec!["tk".to_string()]));
    assert_eq!(short("Framework"), Some(vec!["fw".to_string()]));
    assert_eq!(short("Agent"), Some(vec!["ag".to_string()]));
    assert_eq!(short("App"), Some(vec!["app".to_string()]));
    let app = crds.iter().find(|c| c.spec.names.kind == "App").unwrap();
    let scale = app.spec.versions[0]
        .subresources
        .as_ref()
        .and_then(|s| s.scale.as_ref())
        .expect("App has /scale");
    assert_eq!(
        (
            scale.spec_replicas_path.as_str(),
            scale.status_replicas_path.as_str(),
            scale.label_selector_path.as_deref()
        ),
        (
            ".spec.replicas",
            ".status.replicas",
            Some(".status.selector")
        )
    );
}
