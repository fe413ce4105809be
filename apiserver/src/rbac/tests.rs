//! Rule matching and binding resolution, checked against Kubernetes's semantics.

use super::*;
use serde_json::json;

fn user(name: &str, groups: &[&str]) -> User {
    User {
        name: name.into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}

fn attrs<'a>(
    verb: &'a str,
    resource: &'a str,
    sub: &'a str,
    ns: &'a str,
    name: &'a str,
) -> Attributes<'a> {
    Attributes {
        verb,
        group: "mosaic.dev",
        resource,
        subresource: sub,
        namespace: ns,
        name,
        path: "",
    }
}

fn policy(objects: &[serde_json::Value]) -> Policy {
    let mut p = Policy::default();
    for o in objects {
        p.add(&serde_json::to_vec(o).unwrap()).unwrap();
    }
    p
}

fn team_policy() -> Policy {
    policy(&[
        json!({"kind": "Role", "metadata": {"name": "tasks", "namespace": "team-a"},
            "rules": [{"apiGroups": ["mosaic.dev"], "resources": ["tasks"], "verbs": ["get", "list", "create"]}]}),
        json!({"kind": "RoleBinding", "metadata": {"name": "alice", "namespace": "team-a"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "tasks"},
            "subjects": [{"kind": "ServiceAccount", "name": "alice"}]}),
        json!({"kind": "ClusterRole", "metadata": {"name": "status-writer"},
            "rules": [{"apiGroups": ["mosaic.dev"], "resources": ["tasks/status"], "verbs": ["patch"]},
                      {"apiGroups": ["mosaic.dev"], "resources": ["agents"], "resourceNames": ["node-1"], "verbs": ["get"]},
                      {"nonResourceURLs": ["/metrics", "/debug/*"], "verbs": ["get"]}]}),
        json!({"kind": "ClusterRoleBinding", "metadata": {"name": "writers"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "status-writer"},
            "subjects": [{"kind": "Group", "name": "writers"}]}),
    ])
}

#[test]
fn a_role_binding_grants_only_in_its_namespace() {
    let p = team_policy();
    let alice = user(&service_account_user("team-a", "alice"), &[AUTHENTICATED]);
    assert!(p.allows(&alice, &attrs("create", "tasks", "", "team-a", "")));
    assert!(!p.allows(&alice, &attrs("create", "tasks", "", "team-b", "")));
    assert!(
        !p.allows(&alice, &attrs("list", "tasks", "", "", "")),
        "not cluster-wide"
    );
    assert!(!p.allows(&alice, &attrs("delete", "tasks", "", "team-a", "t")));
    assert!(
        !p.allows(&alice, &attrs("patch", "tasks", "status", "team-a", "t")),
        "a subresource is its own resource"
    );
    let bob = user(&service_account_user("team-b", "alice"), &[AUTHENTICATED]);
    assert!(
        !p.allows(&bob, &attrs("create", "tasks", "", "team-a", "")),
        "same name, other namespace"
    );
}

#[test]
fn cluster_bindings_subresources_names_and_paths() {
    let p = team_policy();
    let w = user("carol", &["writers", AUTHENTICATED]);
    assert!(p.allows(&w, &attrs("patch", "tasks", "status", "anywhere", "t")));
    assert!(!p.allows(&w, &attrs("patch", "tasks", "", "anywhere", "t")));
    assert!(p.allows(&w, &attrs("get", "agents", "", "", "node-1")));
    assert!(!p.allows(&w, &attrs("get", "agents", "", "", "node-2")));
    assert!(
        !p.allows(&w, &attrs("list", "agents", "", "", "")),
        "resourceNames never match a collection"
    );
    let path = |p: &'static str| Attributes {
        verb: "get",
        path: p,
        ..Default::default()
    };
    assert!(p.allows(&w, &path("/metrics")));
    assert!(p.allows(&w, &path("/debug/pprof")));
    assert!(!p.allows(&w, &path("/metricsx")));
    assert!(!p.allows(&user("dave", &[AUTHENTICATED]), &path("/metrics")));
}

#[test]
fn masters_bypass_and_wildcards_match_everything() {
    let p = policy(&[
        json!({"kind": "ClusterRole", "metadata": {"name": "all"},
            "rules": [{"apiGroups": ["*"], "resources": ["*/status"], "verbs": ["*"]}]}),
        json!({"kind": "ClusterRoleBinding", "metadata": {"name": "all"},
            "roleRef": {"kind": "ClusterRole", "name": "all"},
            "subjects": [{"kind": "User", "name": "erin"}]}),
    ]);
    assert!(p.allows(
        &user("root", &[MASTERS]),
        &attrs("delete", "tasks", "", "x", "y")
    ));
    let erin = user("erin", &[]);
    assert!(p.allows(&erin, &attrs("update", "roles", "status", "", "r")));
    assert!(!p.allows(&erin, &attrs("update", "roles", "", "", "r")));
}

#[test]
fn a_binding_to_a_missing_role_grants_nothing() {
    let p = policy(&[
        json!({"kind": "RoleBinding", "metadata": {"name": "b", "namespace": "n"},
        "roleRef": {"kind": "Role", "name": "gone"}, "subjects": [{"kind": "User", "name": "u"}]}),
    ]);
    assert!(!p.allows(&user("u", &[]), &attrs("get", "tasks", "", "n", "t")));
}

#[test]
fn the_bootstrap_credential_may_only_join_agents() {
    let p = policy(&super::bootstrap::objects());
    let bootstrap = user(
        "mosaic:agent",
        &[super::bootstrap::AGENTS_GROUP, AUTHENTICATED],
    );
    let join = Attributes {
        verb: "create",
        group: "mosaic.dev",
        resource: "agents",
        subresource: "certificate",
        name: "node-1",
        ..Default::default()
    };
    assert!(p.allows(&bootstrap, &join));
    assert!(!p.allows(
        &bootstrap,
        &attrs("patch", "tasks", "status", "default", "t")
    ));
    assert!(!p.allows(&bootstrap, &attrs("watch", "tasks", "", "", "")));
    assert!(!p.allows(&bootstrap, &attrs("create", "tasks", "", "default", "")));
    assert!(!p.allows(&bootstrap, &attrs("delete", "agents", "", "", "a")));
    let lease = |ns| Attributes {
        verb: "patch",
        group: "coordination.k8s.io",
        resource: "leases",
        namespace: ns,
        name: "a",
        ..Default::default()
    };
    assert!(!p.allows(&bootstrap, &lease("mosaic-system")));
    let discovery = Attributes {
        verb: "get",
        path: "/apis/mosaic.dev/v1alpha1",
        ..Default::default()
    };
    assert!(p.allows(&user("anyone", &[AUTHENTICATED]), &discovery));
}

#[test]
fn an_agents_own_identity_may_touch_only_its_own_objects() {
    use super::node::authorize;
    let a = |verb, group, resource, sub, ns, name| Attributes {
        verb,
        group,
        resource,
        subresource: sub,
        namespace: ns,
        name,
        ..Default::default()
    };
    assert!(authorize(
        "n1",
        &a("patch", "mosaic.dev", "agents", "status", "", "n1")
    ));
    assert!(!authorize(
        "n1",
        &a("patch", "mosaic.dev", "agents", "status", "", "n2")
    ));
    assert!(authorize(
        "n1",
        &a("watch", "mosaic.dev", "tasks", "", "", "")
    ));
    assert!(authorize(
        "n1",
        &a("patch", "mosaic.dev", "tasks", "status", "default", "t")
    ));
    assert!(!authorize(
        "n1",
        &a("patch", "mosaic.dev", "tasks", "", "default", "t")
    ));
    assert!(!authorize(
        "n1",
        &a("create", "mosaic.dev", "tasks", "binding", "default", "t")
    ));
    assert!(authorize(
        "n1",
        &a(
            "patch",
            "coordination.k8s.io",
            "leases",
            "",
            "mosaic-system",
            "n1"
        )
    ));
    assert!(!authorize(
        "n1",
        &a(
            "patch",
            "coordination.k8s.io",
            "leases",
            "",
            "mosaic-system",
            "n2"
        )
    ));
    assert!(!authorize(
        "mosaic-controllers",
        &a(
            "patch",
            "coordination.k8s.io",
            "leases",
            "",
            "mosaic-system",
            "mosaic-controllers"
        )
    ));
    assert!(!authorize(
        "n1",
        &a("get", "", "secrets", "", "default", "s")
    ));
    assert!(!authorize(
        "n1",
        &a(
            "create",
            "rbac.authorization.k8s.io",
            "rolebindings",
            "",
            "default",
            ""
        )
    ));
}
