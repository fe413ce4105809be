//! TaskBinding: what a scheduler POSTs to `tasks/<name>/binding` to bind a
//! Task to an agent in one write, as kube-scheduler POSTs a Binding to
//! `pods/<name>/binding`.
//!
//! CustomResourceDefinitions have no such subresource, so on a Kubernetes
//! cluster a scheduler binds with two writes (the finalizer, then the status);
//! Mosaic's own API server serves `tasks/binding` (listed in discovery) and
//! does both at once. Both paths produce the same object, built here.

use crate::ports::TaskPort;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The subresource's name.
pub const SUBRESOURCE: &str = "binding";
/// The kind of a binding request.
pub const KIND: &str = "TaskBinding";
/// Held by every bound Task: deleting it kills it on its agent before the object goes.
pub const FINALIZER: &str = "mosaic.dev/kill-before-delete";

/// A request to bind the Task `metadata.name` to `target.agent`. A
/// `metadata.resourceVersion` makes it a compare-and-swap on the Task.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskBinding {
    /// `mosaic.dev/v1alpha1`.
    pub api_version: String,
    /// `TaskBinding`.
    pub kind: String,
    /// The Task's name (and, optionally, the resourceVersion it must still have).
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Where the Task goes.
    pub target: BindingTarget,
}

/// The agent a Task is bound to, and the host ports it is given there.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BindingTarget {
    /// The Agent's name.
    pub agent: String,
    /// The host ports given, in the order of the Task's `spec.ports`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<TaskPort>,
}

impl TaskBinding {
    /// A binding of `task` (at `resource_version`, when given) to `agent`.
    pub fn new(
        task: &str,
        resource_version: Option<String>,
        agent: &str,
        ports: Vec<TaskPort>,
    ) -> Self {
        Self {
            api_version: format!("{}/{}", crate::GROUP, crate::VERSION),
            kind: KIND.into(),
            metadata: ObjectMeta {
                name: Some(task.into()),
                resource_version,
                ..Default::default()
            },
            target: BindingTarget {
                agent: agent.into(),
                ports,
            },
        }
    }
}

/// The status a bound Task has (a merge patch of its status): Staging on
/// `agent` with the host `ports` it is given there, scheduled at `now`, for
/// the spec of `generation` ([`crate::lifecycle::bound`], as JSON).
pub fn bound_status(
    agent: &str,
    ports: &[TaskPort],
    generation: Option<i64>,
    now: k8s_openapi::jiff::Timestamp,
) -> Value {
    serde_json::to_value(crate::lifecycle::bound(agent, ports, generation, now))
        .expect("a status is JSON")
}
