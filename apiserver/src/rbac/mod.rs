//! Role-based access control as Kubernetes evaluates it (rbac.authorization.k8s.io/v1):
//! Roles and ClusterRoles hold rules (verbs × API groups × resources, subresources and
//! resource names, or non-resource URLs); RoleBindings grant a role's rules in one
//! namespace, ClusterRoleBindings everywhere. [`Policy`] is one consistent view of
//! those objects (and of the ServiceAccounts tokens name), built from the store;
//! [`cache::PolicyCache`] keeps it current.

pub mod bootstrap;
pub mod cache;
mod chart_rules;
pub mod escalation;
pub mod node;

use crate::identity::{Attributes, User};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use std::collections::HashMap;

/// A binding's grant: whose, and which role's rules.
#[derive(Clone, Debug)]
struct Grant {
    subjects: Vec<k8s_openapi::api::rbac::v1::Subject>,
    /// `ClusterRole` or `Role`.
    role_kind: String,
    role_name: String,
    /// The binding's namespace ("" for a ClusterRoleBinding).
    namespace: String,
}

/// The RBAC objects and ServiceAccounts at one store revision.
#[derive(Debug, Default)]
pub struct Policy {
    /// The store revision this view reflects.
    pub revision: i64,
    cluster_roles: HashMap<String, Vec<PolicyRule>>,
    roles: HashMap<(String, String), Vec<PolicyRule>>,
    cluster_bindings: Vec<Grant>,
    bindings: HashMap<String, Vec<Grant>>,
    /// (namespace, name) -> uid of each ServiceAccount.
    pub service_accounts: HashMap<(String, String), String>,
}

/// The group every authenticated caller is in.
pub const AUTHENTICATED: &str = "system:authenticated";
/// The group that bypasses authorization, as in Kubernetes.
pub const MASTERS: &str = "system:masters";

pub use crate::identity::service_account_user;

impl Policy {
    /// Adds one stored object (Role, ClusterRole, RoleBinding, ClusterRoleBinding
    /// or ServiceAccount, told apart by kind); objects that do not parse are skipped.
    pub fn add(&mut self, value: &[u8]) -> Result<(), serde_json::Error> {
        #[derive(serde::Deserialize)]
        struct Kind {
            kind: String,
        }
        let kind: Kind = serde_json::from_slice(value)?;
        match kind.kind.as_str() {
            "ClusterRole" => {
                let r: ClusterRole = serde_json::from_slice(value)?;
                let name = r.metadata.name.unwrap_or_default();
                self.cluster_roles.insert(name, r.rules.unwrap_or_default());
            }
            "Role" => {
                let r: Role = serde_json::from_slice(value)?;
                let key = (
                    r.metadata.namespace.unwrap_or_default(),
                    r.metadata.name.unwrap_or_default(),
                );
                self.roles.insert(key, r.rules.unwrap_or_default());
            }
            "ClusterRoleBinding" => {
                let b: ClusterRoleBinding = serde_json::from_slice(value)?;
                self.cluster_bindings.push(Grant {
                    subjects: b.subjects.unwrap_or_default(),
                    role_kind: b.role_ref.kind,
                    role_name: b.role_ref.name,
                    namespace: String::new(),
                });
            }
            "RoleBinding" => {
                let b: RoleBinding = serde_json::from_slice(value)?;
                let ns = b.metadata.namespace.unwrap_or_default();
                self.bindings.entry(ns.clone()).or_default().push(Grant {
                    subjects: b.subjects.unwrap_or_default(),
                    role_kind: b.role_ref.kind,
                    role_name: b.role_ref.name,
                    namespace: ns,
                });
            }
            "ServiceAccount" => {
                let sa: k8s_openapi::api::core::v1::ServiceAccount = serde_json::from_slice(value)?;
                let m = sa.metadata;
                self.service_accounts.insert(
                    (m.namespace.unwrap_or_default(), m.name.unwrap_or_default()),
                    m.uid.unwrap_or_default(),
                );
            }
            _ => {}
        }
        Ok(())
    }

    /// Whether `user` may do what `a` describes. Members of `system:masters` always may.
    pub fn allows(&self, user: &User, a: &Attributes<'_>) -> bool {
        if user.groups.iter().any(|g| g == MASTERS) {
            return true;
        }
        self.rules_of(user, a.namespace)
            .any(|rule| rule_matches(rule, a))
    }

    /// Every rule that applies to `user` in `namespace` ("" for cluster scope only).
    pub fn rules_of<'a>(
        &'a self,
        user: &'a User,
        namespace: &'a str,
    ) -> impl Iterator<Item = &'a PolicyRule> + 'a {
        let local = if namespace.is_empty() {
            None
        } else {
            self.bindings.get(namespace)
        };
        self.cluster_bindings
            .iter()
            .chain(local.into_iter().flatten())
            .filter(move |g| {
                g.subjects
                    .iter()
                    .any(|s| subject_matches(s, user, &g.namespace))
            })
            .flat_map(move |g| self.role_rules(g).iter())
    }

    /// The rules of the role a binding in `namespace` refers to, if it exists.
    pub fn rules_of_role(&self, kind: &str, name: &str, namespace: &str) -> Option<&[PolicyRule]> {
        match kind {
            "ClusterRole" => self.cluster_roles.get(name),
            "Role" => self.roles.get(&(namespace.to_string(), name.to_string())),
            _ => None,
        }
        .map(Vec::as_slice)
    }

    fn role_rules(&self, g: &Grant) -> &[PolicyRule] {
        let rules = match g.role_kind.as_str() {
            "ClusterRole" => self.cluster_roles.get(&g.role_name),
            "Role" if !g.namespace.is_empty() => {
                self.roles.get(&(g.namespace.clone(), g.role_name.clone()))
            }
            _ => None,
        };
        rules.map(Vec::as_slice).unwrap_or_default()
    }
}

fn subject_matches(s: &k8s_openapi::api::rbac::v1::Subject, user: &User, binding_ns: &str) -> bool {
    match s.kind.as_str() {
        "User" => s.name == user.name,
        "Group" => user.groups.contains(&s.name),
        "ServiceAccount" => {
            let ns = s
                .namespace
                .as_deref()
                .filter(|n| !n.is_empty())
                .unwrap_or(binding_ns);
            user.name == service_account_user(ns, &s.name)
        }
        _ => false,
    }
}

fn any_or(list: &[String], want: &str) -> bool {
    list.iter().any(|x| x == "*" || x == want)
}

/// Whether one rule covers a request (Kubernetes's `RuleAllows`).
pub fn rule_matches(rule: &PolicyRule, a: &Attributes<'_>) -> bool {
    if !any_or(&rule.verbs, a.verb) {
        return false;
    }
    if a.resource.is_empty() {
        // A non-resource request, e.g. GET /metrics.
        return rule.non_resource_urls.iter().flatten().any(|u| {
            u == "*" || u == a.path || (u.ends_with('*') && a.path.starts_with(&u[..u.len() - 1]))
        });
    }
    let groups = rule.api_groups.as_deref().unwrap_or_default();
    if !any_or(groups, a.group) {
        return false;
    }
    let resources = rule.resources.as_deref().unwrap_or_default();
    let resource_ok = if a.subresource.is_empty() {
        any_or(resources, a.resource)
    } else {
        let combined = format!("{}/{}", a.resource, a.subresource);
        let any_sub = format!("*/{}", a.subresource);
        resources
            .iter()
            .any(|r| r == "*" || *r == combined || *r == any_sub)
    };
    if !resource_ok {
        return false;
    }
    match rule.resource_names.as_deref() {
        None | Some([]) => true,
        Some(names) => !a.name.is_empty() && names.iter().any(|n| n == a.name),
    }
}

#[cfg(test)]
mod tests;
