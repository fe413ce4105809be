//! Kubernetes's RBAC escalation prevention: a user may write a Role or
//! ClusterRole only with rules it holds itself (or the `escalate` verb on
//! it), and a RoleBinding or ClusterRoleBinding only to a role whose rules it
//! holds where the binding grants them (or the `bind` verb on that role).
//! A rule is held when every one of its atomic grants (one verb, group,
//! resource, name or URL) is allowed to the user; a `*` is held only as `*`.

use super::Policy;
use crate::error::ApiError;
use crate::identity::{Attributes, User};
use crate::registry::ResourceInfo;
use k8s_openapi::api::rbac::v1::PolicyRule;
use serde_json::Value;

const GROUP: &str = "rbac.authorization.k8s.io";

/// Checks a new or changed RBAC object against what `user` holds.
pub fn check(
    policy: &Policy,
    user: &User,
    info: &ResourceInfo,
    namespace: &str,
    obj: &Value,
) -> Result<(), ApiError> {
    if info.group != GROUP {
        return Ok(());
    }
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let may = |verb: &str, resource: &str, name: &str, ns: &str| {
        policy.allows(
            user,
            &Attributes {
                verb,
                group: GROUP,
                resource,
                namespace: ns,
                name,
                ..Default::default()
            },
        )
    };
    let (rules, scope): (Vec<PolicyRule>, &str) = match info.kind.as_str() {
        "Role" | "ClusterRole" => {
            if may("escalate", &info.plural, name, namespace) {
                return Ok(());
            }
            let rules = serde_json::from_value(obj["rules"].clone()).unwrap_or_default();
            (rules, namespace)
        }
        "RoleBinding" | "ClusterRoleBinding" => {
            let kind = obj["roleRef"]["kind"].as_str().unwrap_or_default();
            let role = obj["roleRef"]["name"].as_str().unwrap_or_default();
            let plural = match kind {
                "ClusterRole" => "clusterroles",
                _ => "roles",
            };
            // As Kubernetes: `bind` is asked in the binding's namespace (a
            // RoleBinding there may grant it), cluster-wide for a ClusterRoleBinding.
            if may("bind", plural, role, namespace) {
                return Ok(());
            }
            let Some(rules) = policy.rules_of_role(kind, role, namespace) else {
                return Err(forbidden(
                    info,
                    name,
                    &format!(
                        "{plural}.{GROUP} \"{role}\" not found, and the user may not \"bind\" it"
                    ),
                ));
            };
            (rules.to_vec(), namespace)
        }
        _ => return Ok(()),
    };
    let missing: Vec<String> = rules
        .iter()
        .flat_map(atoms)
        .filter(|a| !policy.allows(user, &a.attributes(scope)))
        .map(|a| a.describe())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(forbidden(
        info,
        name,
        &format!(
            "user \"{}\" (groups={:?}) is attempting to grant RBAC permissions not currently held:\n{}",
            user.name,
            user.groups,
            missing.join("\n")
        ),
    ))
}

fn forbidden(info: &ResourceInfo, name: &str, why: &str) -> ApiError {
    ApiError::forbidden(format!(
        "{}.{GROUP} \"{name}\" is forbidden: {why}",
        info.plural
    ))
}

/// One verb on one thing.
struct Atom {
    verb: String,
    group: String,
    resource: String,
    subresource: String,
    name: String,
    url: String,
}

impl Atom {
    fn attributes<'a>(&'a self, namespace: &'a str) -> Attributes<'a> {
        Attributes {
            verb: &self.verb,
            group: &self.group,
            resource: &self.resource,
            subresource: &self.subresource,
            namespace,
            name: &self.name,
            path: &self.url,
        }
    }

    fn describe(&self) -> String {
        if !self.url.is_empty() {
            return format!(
                "{{NonResourceURLs:[\"{}\"], Verbs:[\"{}\"]}}",
                self.url, self.verb
            );
        }
        let resource = if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        };
        let names = if self.name.is_empty() {
            String::new()
        } else {
            format!(", ResourceNames:[\"{}\"]", self.name)
        };
        format!(
            "{{APIGroups:[\"{}\"], Resources:[\"{resource}\"]{names}, Verbs:[\"{}\"]}}",
            self.group, self.verb
        )
    }
}

/// A rule broken into its atomic grants.
fn atoms(rule: &PolicyRule) -> Vec<Atom> {
    let mut out = Vec::new();
    for verb in &rule.verbs {
        for url in rule.non_resource_urls.iter().flatten() {
            out.push(Atom {
                verb: verb.clone(),
                group: String::new(),
                resource: String::new(),
                subresource: String::new(),
                name: String::new(),
                url: url.clone(),
            });
        }
        let names: Vec<String> = match rule.resource_names.as_deref() {
            None | Some([]) => vec![String::new()],
            Some(n) => n.to_vec(),
        };
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                let (resource, subresource) = match resource.split_once('/') {
                    Some((r, s)) => (r.to_string(), s.to_string()),
                    None => (resource.clone(), String::new()),
                };
                for name in &names {
                    out.push(Atom {
                        verb: verb.clone(),
                        group: group.clone(),
                        resource: resource.clone(),
                        subresource: subresource.clone(),
                        name: name.clone(),
                        url: String::new(),
                    });
                }
            }
        }
    }
    out
}
