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

/// One kind Mosaic lists and does not run.
struct Absent {
    group: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    instead: Instead,
}

const KINDS: &[Absent] = &[
    Absent {
        group: "",
        plural: "pods",
        kind: "Pod",
        namespaced: true,
        short: &["po"],
        instead: Instead::Workload,
    },
    Absent {
        group: "",
        plural: "replicationcontrollers",
        kind: "ReplicationController",
        namespaced: true,
        short: &["rc"],
        instead: Instead::Workload,
    },
    Absent {
        group: "",
        plural: "services",
        kind: "Service",
        namespaced: true,
        short: &["svc"],
        instead: Instead::Network,
    },
    Absent {
        group: "",
        plural: "endpoints",
        kind: "Endpoints",
        namespaced: true,
        short: &["ep"],
        instead: Instead::Network,
    },
    Absent {
        group: "",
        plural: "persistentvolumeclaims",
        kind: "PersistentVolumeClaim",
        namespaced: true,
        short: &["pvc"],
        instead: Instead::Storage,
    },
    Absent {
        group: "",
        plural: "persistentvolumes",
        kind: "PersistentVolume",
        namespaced: false,
        short: &["pv"],
        instead: Instead::Storage,
    },
    Absent {
        group: "apps",
        plural: "deployments",
        kind: "Deployment",
        namespaced: true,
        short: &["deploy"],
        instead: Instead::Workload,
    },
    Absent {
        group: "apps",
        plural: "replicasets",
        kind: "ReplicaSet",
        namespaced: true,
        short: &["rs"],
        instead: Instead::Workload,
    },
    Absent {
        group: "apps",
        plural: "statefulsets",
        kind: "StatefulSet",
        namespaced: true,
        short: &["sts"],
        instead: Instead::Workload,
    },
    Absent {
        group: "apps",
        plural: "daemonsets",
        kind: "DaemonSet",
        namespaced: true,
        short: &["ds"],
        instead: Instead::Workload,
    },
    Absent {
        group: "batch",
        plural: "jobs",
        kind: "Job",
        namespaced: true,
        short: &[],
        instead: Instead::Workload,
    },
    Absent {
        group: "batch",
        plural: "cronjobs",
        kind: "CronJob",
        namespaced: true,
        short: &["cj"],
        instead: Instead::Workload,
    },
    Absent {
        group: "networking.k8s.io",
        plural: "ingresses",
        kind: "Ingress",
        namespaced: true,
        short: &["ing"],
        instead: Instead::Network,
    },
];

/// The kinds, for the registry.
pub fn kinds() -> Vec<ResourceInfo> {
    KINDS
        .iter()
        .map(|a| {
            let mut info = crate::registry::builtin(
                a.group,
                a.plural,
                a.kind,
                a.namespaced,
                Builtin::Absent,
                a.short,
            );
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
        .find(|k| k.group == info.group && k.plural == info.plural)
        .map_or(Instead::Workload, |k| k.instead);
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
