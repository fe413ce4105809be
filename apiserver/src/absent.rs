//! Kubernetes kinds Mosaic does not run, served as they would be on a
//! cluster that has none of them: in discovery, always an empty list, never
//! written. Tools list them without asking: kubectl's default prune allowlist
//! (`kubectl apply --prune -l`) needs every one of its kinds to resolve, and
//! `kubectl cluster-info` lists Services. A write is refused with a message
//! that names the kind and what to use instead, so a Helm chart made for
//! Kubernetes (`helm create`'s Deployment and Service) fails saying why.

use crate::error::ApiError;
use crate::registry::{Builtin, ResourceInfo};

/// What Mosaic offers instead of a kind it does not run.
#[derive(Clone, Copy)]
enum Instead {
    Workload,
    Network,
    Storage,
}

/// Group, plural, kind, namespaced, short names, and what to use instead.
type Absent = (
    &'static str,
    &'static str,
    &'static str,
    bool,
    &'static [&'static str],
    Instead,
);

const KINDS: &[Absent] = &[
    ("", "pods", "Pod", true, &["po"], Instead::Workload),
    (
        "",
        "replicationcontrollers",
        "ReplicationController",
        true,
        &["rc"],
        Instead::Workload,
    ),
    ("", "services", "Service", true, &["svc"], Instead::Network),
    (
        "",
        "endpoints",
        "Endpoints",
        true,
        &["ep"],
        Instead::Network,
    ),
    (
        "",
        "persistentvolumeclaims",
        "PersistentVolumeClaim",
        true,
        &["pvc"],
        Instead::Storage,
    ),
    (
        "",
        "persistentvolumes",
        "PersistentVolume",
        false,
        &["pv"],
        Instead::Storage,
    ),
    (
        "apps",
        "deployments",
        "Deployment",
        true,
        &["deploy"],
        Instead::Workload,
    ),
    (
        "apps",
        "replicasets",
        "ReplicaSet",
        true,
        &["rs"],
        Instead::Workload,
    ),
    (
        "apps",
        "statefulsets",
        "StatefulSet",
        true,
        &["sts"],
        Instead::Workload,
    ),
    (
        "apps",
        "daemonsets",
        "DaemonSet",
        true,
        &["ds"],
        Instead::Workload,
    ),
    ("batch", "jobs", "Job", true, &[], Instead::Workload),
    (
        "batch",
        "cronjobs",
        "CronJob",
        true,
        &["cj"],
        Instead::Workload,
    ),
    (
        "networking.k8s.io",
        "ingresses",
        "Ingress",
        true,
        &["ing"],
        Instead::Network,
    ),
];

/// The kinds, for the registry.
pub fn kinds() -> Vec<ResourceInfo> {
    KINDS
        .iter()
        .map(|(group, plural, kind, namespaced, short, _)| {
            let mut info =
                crate::registry::builtin(group, plural, kind, *namespaced, Builtin::Absent, short);
            info.schema = None;
            info
        })
        .collect()
}

/// The refusal of `verb` on `info`, if it is one of these kinds and the
/// verb would write.
pub fn refuse(info: &ResourceInfo, verb: &str) -> Option<ApiError> {
    if info.builtin != Builtin::Absent || matches!(verb, "get" | "list" | "watch") {
        return None;
    }
    let instead = KINDS
        .iter()
        .find(|k| k.0 == info.group && k.1 == info.plural)
        .map_or(Instead::Workload, |k| k.5);
    let what = match instead {
        Instead::Workload => {
            "Mosaic runs processes as its own kinds: a Task (mosaic.dev/v1alpha1) for one run"
        }
        Instead::Network => "Mosaic has no service network: a task listens on its agent's address",
        Instead::Storage => "Mosaic has no volumes: a task writes to its sandbox",
    };
    Some(ApiError::new(
        405,
        "MethodNotAllowed",
        format!(
            "Mosaic does not serve the kind {kind} ({resource}); it lists it, always empty, for \
             tools that expect it. {what}",
            kind = info.kind,
            resource = info.group_resource(),
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_refused_naming_the_kind_and_reads_are_not() {
        let deploy = kinds()
            .into_iter()
            .find(|k| k.kind == "Deployment")
            .expect("served");
        assert_eq!(deploy.verbs(), ["get", "list", "watch"]);
        assert!(refuse(&deploy, "list").is_none());
        let e = refuse(&deploy, "create").expect("refused");
        assert_eq!(e.code, 405);
        assert!(
            e.message.contains("kind Deployment (deployments.apps)"),
            "{}",
            e.message
        );
        assert!(e.message.contains("Task"), "{}", e.message);
    }
}
