//! The RBAC objects every server has, as kube-apiserver's bootstrap policy:
//! `cluster-admin` (bound to the group `system:masters`, which the admin
//! identity is in), discovery and self-review for every authenticated caller,
//! `system:auth-delegator` for components that check their own clients'
//! credentials, and `mosaic:agent-bootstrapper` for the bootstrap credential
//! in `DATA_DIR/agent.kubeconfig`: it may only ask for an agent's own identity
//! (`agents/certificate`, see `mosaic_crds::join`); agents' own identities are
//! then authorized by the node authorizer (`rbac/node.rs`), not by RBAC.
//! `mosaic:agent` holds the rules the Helm chart grants its agents'
//! ServiceAccount on a real Kubernetes cluster, bound to nobody here. They
//! are written at start when missing, and brought back to these rules unless
//! annotated `rbac.authorization.kubernetes.io/autoupdate: "false"`.

use serde_json::{Value, json};

/// The annotation that stops the server from restoring a bootstrap object.
pub const AUTOUPDATE: &str = "rbac.authorization.kubernetes.io/autoupdate";

/// The bootstrap credential's group (of the token in `DATA_DIR/agent.kubeconfig`).
pub const AGENTS_GROUP: &str = "mosaic:agents";

/// The cluster-wide rules a node agent needs: its Agent object and status, the
/// Tasks bound to it and their status, Events, and delegated authentication and
/// authorization for its HTTPS endpoint.
pub fn agent_cluster_rules() -> Value {
    json!([
        {"apiGroups": ["mosaic.dev"], "resources": ["agents"], "verbs": ["create", "get", "patch"]},
        {"apiGroups": ["mosaic.dev"], "resources": ["agents/status"], "verbs": ["patch"]},
        {"apiGroups": ["mosaic.dev"], "resources": ["tasks"], "verbs": ["list", "watch"]},
        {"apiGroups": ["mosaic.dev"], "resources": ["tasks/status"], "verbs": ["patch"]},
        {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create"]},
        {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]},
        {"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"], "verbs": ["create"]},
    ])
}

/// The user the in-process controllers (`mosaic server`, `mosaic up`) act as.
pub const CONTROLLERS_USER: &str = "system:mosaic:controllers";

/// What the controllers may do, cluster-wide: the rules of the chart's
/// controllers ClusterRole (charts/mosaic/templates/rbac.yaml, read at
/// compile time; tests/e2e/chart_rbac.rs derives them from an audit), so a
/// permission missing there is missing here too.
pub fn controllers_cluster_rules() -> Value {
    super::chart_rules::rules("ClusterRole", "controllers")
}

/// What the controllers may do in `mosaic-system`: the chart's controllers
/// Role (the leader Lease, and the agents' heartbeat Leases for liveness).
pub fn controllers_lease_rules() -> Value {
    super::chart_rules::rules("Role", "controllers")
}

fn user_binding(kind: &str, name: &str, ns: Option<&str>, role: (&str, &str), user: &str) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind,
        "metadata": meta(name, ns),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role.0, "name": role.1},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]})
}

/// The rules a node agent needs in `mosaic-system`: its heartbeat Lease.
pub fn agent_lease_rules() -> Value {
    json!([
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create", "patch"]},
    ])
}

fn meta(name: &str, namespace: Option<&str>) -> Value {
    let mut m = json!({
        "name": name,
        "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
        "annotations": {AUTOUPDATE: "true"},
    });
    if let Some(ns) = namespace {
        m["namespace"] = json!(ns);
    }
    m
}

fn cluster_role(name: &str, rules: Value) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": meta(name, None), "rules": rules})
}

fn group_binding(
    kind: &str,
    name: &str,
    ns: Option<&str>,
    role: (&str, &str),
    group: &str,
) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind,
        "metadata": meta(name, ns),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role.0, "name": role.1},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": group}]})
}

/// Every bootstrap object, as stored (less uid and timestamps).
pub fn objects() -> Vec<Value> {
    let crb = "ClusterRoleBinding";
    let authenticated = super::AUTHENTICATED;
    vec![
        cluster_role(
            "cluster-admin",
            json!([
                {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                {"nonResourceURLs": ["*"], "verbs": ["*"]},
            ]),
        ),
        cluster_role(
            "system:discovery",
            json!([{"nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/healthz",
                "/livez", "/readyz", "/openapi", "/openapi/*", "/version", "/version/"],
                "verbs": ["get"]}]),
        ),
        cluster_role(
            "system:basic-user",
            json!([{"apiGroups": ["authentication.k8s.io"],
                "resources": ["selfsubjectreviews"], "verbs": ["create"]},
                {"apiGroups": ["authorization.k8s.io"],
                "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                "verbs": ["create"]}]),
        ),
        cluster_role(
            "system:auth-delegator",
            json!([
                {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]},
                {"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"], "verbs": ["create"]},
            ]),
        ),
        cluster_role("mosaic:agent", agent_cluster_rules()),
        cluster_role("mosaic:controllers", controllers_cluster_rules()),
        user_binding(
            crb,
            "mosaic:controllers",
            None,
            ("ClusterRole", "mosaic:controllers"),
            CONTROLLERS_USER,
        ),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": meta("mosaic:controllers", Some("mosaic-system")), "rules": controllers_lease_rules()}),
        user_binding(
            "RoleBinding",
            "mosaic:controllers",
            Some("mosaic-system"),
            ("Role", "mosaic:controllers"),
            CONTROLLERS_USER,
        ),
        cluster_role(
            "mosaic:agent-bootstrapper",
            json!([{"apiGroups": ["mosaic.dev"], "resources": ["agents/certificate"], "verbs": ["create"]}]),
        ),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": meta("mosaic:agent", Some("mosaic-system")), "rules": agent_lease_rules()}),
        group_binding(
            crb,
            "cluster-admin",
            None,
            ("ClusterRole", "cluster-admin"),
            super::MASTERS,
        ),
        group_binding(
            crb,
            "system:discovery",
            None,
            ("ClusterRole", "system:discovery"),
            authenticated,
        ),
        group_binding(
            crb,
            "system:basic-user",
            None,
            ("ClusterRole", "system:basic-user"),
            authenticated,
        ),
        // The bootstrap credential may join agents, nothing more. (These two
        // bindings granted it every agent's rules before agents had their own
        // identities; they are rewritten on upgrade.)
        group_binding(
            crb,
            "mosaic:agent",
            None,
            ("ClusterRole", "mosaic:agent-bootstrapper"),
            AGENTS_GROUP,
        ),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": meta("mosaic:agent", Some("mosaic-system")),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "mosaic:agent"},
            "subjects": []}),
    ]
}

/// The store key of a bootstrap object.
pub fn key(obj: &Value) -> String {
    let plural = match obj["kind"].as_str().unwrap_or_default() {
        "ClusterRole" => "clusterroles",
        "Role" => "roles",
        "ClusterRoleBinding" => "clusterrolebindings",
        _ => "rolebindings",
    };
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    match obj["metadata"]["namespace"].as_str() {
        Some(ns) => format!("/rbac.authorization.k8s.io/{plural}/{ns}/{name}"),
        None => format!("/rbac.authorization.k8s.io/{plural}/{name}"),
    }
}

/// Whether a stored bootstrap object should be brought back to `want`.
pub fn needs_update(have: &Value, want: &Value) -> bool {
    if have["metadata"]["annotations"][AUTOUPDATE] == json!("false") {
        return false;
    }
    have["rules"] != want["rules"]
        || have["roleRef"] != want["roleRef"]
        || have["subjects"] != want["subjects"]
}
