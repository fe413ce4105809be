//! App: N instances of a Task template kept running, scaled and upgraded
//! without downtime (what Marathon gave Mesos users). The instances are
//! Tasks owned by the App; the App controller (`controllers/src/kinds/apps/`)
//! starts, replaces and rolls them.

use crate::common::Condition;
use crate::constraint::Constraint;
use crate::ports::PortSpec;
use crate::task::TaskSpec;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The label naming the App an instance belongs to.
pub const APP_LABEL: &str = "mosaic.dev/app";
/// The label naming the revision (template hash) an instance runs.
pub const REVISION_LABEL: &str = "mosaic.dev/revision";

/// The annotation holding when the App controller created an instance, to
/// the microsecond (creationTimestamp has seconds only): what "youngest" and
/// "oldest" mean when scaling down.
pub const LAUNCHED_ANNOTATION: &str = "mosaic.dev/launched-at";

/// The annotation that ranks an instance for scaling down, as a Pod's
/// `controller.kubernetes.io/pod-deletion-cost`: an integer, 0 when absent;
/// lower goes first. (Marathon's "kill this task and scale" sets it lowest.)
pub const DELETION_COST_ANNOTATION: &str = "mosaic.dev/deletion-cost";

/// The rule that the template's health check names one of the instances'
/// ports (in `spec.ports` or the template's own).
const PORT_NAME_KNOWN: &str = "!has(self.spec.template.spec.healthCheck) \
     || ((!has(self.spec.template.spec.healthCheck.http) || !has(self.spec.template.spec.healthCheck.http.portName) \
          || (has(self.spec.ports) && self.spec.ports.exists(p, p.name == self.spec.template.spec.healthCheck.http.portName)) \
          || (has(self.spec.template.spec.ports) && self.spec.template.spec.ports.exists(p, p.name == self.spec.template.spec.healthCheck.http.portName))) \
      && (!has(self.spec.template.spec.healthCheck.tcp) || !has(self.spec.template.spec.healthCheck.tcp.portName) \
          || (has(self.spec.ports) && self.spec.ports.exists(p, p.name == self.spec.template.spec.healthCheck.tcp.portName)) \
          || (has(self.spec.template.spec.ports) && self.spec.template.spec.ports.exists(p, p.name == self.spec.template.spec.healthCheck.tcp.portName))))";

/// What an App runs and how it changes.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "mosaic.dev",
    doc = "An App is N instances of a Task template kept running (what Marathon did for Mesos): failed instances are replaced with backoff, a template change rolls out within the upgrade strategy's health and over-capacity bounds, and `kubectl scale` changes the count.",
    version = "v1alpha1",
    kind = "App",
    namespaced,
    shortname = "app",
    category = "mosaic",
    category = "all",
    status = "AppStatus",
    validation = Rule::new("size(self.metadata.name) <= 63")
        .message("an App's name is at most 63 characters: it is the value of its instances' mosaic.dev/app label")
        .field_path(".metadata.name"),
    validation = Rule::new(PORT_NAME_KNOWN)
        .message("the health check's portName names none of spec.ports")
        .reason(Reason::FieldValueInvalid)
        .field_path(".spec.template.spec.healthCheck"),
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn = r#"{"name":"Replicas","type":"integer","jsonPath":".spec.replicas"}"#,
    printcolumn = r#"{"name":"Ready","type":"integer","jsonPath":".status.readyReplicas"}"#,
    printcolumn = r#"{"name":"Up-to-date","type":"integer","jsonPath":".status.updatedReplicas"}"#,
    printcolumn = r#"{"name":"Available","type":"integer","jsonPath":".status.availableReplicas"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new("!has(self.template.spec.restartPolicy) || self.template.spec.restartPolicy == 'Never'")
    .message("an App replaces an instance that ends (with backoff) rather than restarting it in place: leave spec.template.spec.restartPolicy unset or Never")
    .reason(Reason::FieldValueForbidden)
    .field_path(".template.spec.restartPolicy"))]
#[x_kube(validation = Rule::new("!has(self.template.spec.offer)")
    .message("an App's instances are placed by its framework; offers are for External frameworks' own Tasks")
    .reason(Reason::FieldValueForbidden)
    .field_path(".template.spec.offer"))]
#[x_kube(validation = Rule::new("!has(self.ports) || size(self.ports) == 0 || !has(self.template.spec.ports) || size(self.template.spec.ports) == 0")
    .message("set the instances' ports in spec.ports or in spec.template.spec.ports, not both")
    .reason(Reason::FieldValueForbidden)
    .field_path(".template.spec.ports"))]
#[x_kube(validation = Rule::new("(has(self.constraints) ? size(self.constraints) : 0) + (has(self.template.spec.constraints) ? size(self.template.spec.constraints) : 0) <= 32")
    .message("an instance carries at most 32 constraints: spec.constraints and spec.template.spec.constraints together")
    .field_path(".constraints"))]
#[serde(rename_all = "camelCase")]
pub struct AppSpec {
    /// How many instances to keep running (the scale subresource's replicas).
    #[serde(default = "one")]
    #[schemars(range(min = 0))]
    pub replicas: i32,
    /// What each instance runs.
    pub template: InstanceTemplate,
    /// Where instances may go (Marathon's constraints), met at each
    /// instance's placement together with the template's own; the operators
    /// that count instances count all of this App's, old and new. A change
    /// rolls out as a template change does.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub constraints: Vec<Constraint>,
    /// Named host ports each instance gets from its agent (Marathon's
    /// `portDefinitions`): distinct ports of the agent's `ports` resource,
    /// or a fixed `hostPort`; exported as `PORT0`.., `PORT_<NAME>` and
    /// `PORTS`, and listed, for ready instances, in `status.endpoints`. A
    /// change rolls out as a template change does.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub ports: Vec<PortSpec>,
    /// How a template change rolls out.
    #[serde(default)]
    pub upgrade_strategy: UpgradeStrategy,
    /// Stops a rollout where it is: no instance is started or killed for
    /// the new template until this is false again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
    /// How many past templates are kept for `mosaic rollout undo`.
    #[serde(default = "ten")]
    #[schemars(range(min = 0))]
    pub revision_history_limit: i32,
    /// Which instances go first when scaling down.
    #[serde(default)]
    pub kill_selection: KillSelection,
    /// Seconds to wait before starting a replacement for an instance that ended.
    #[serde(default = "backoff_seconds")]
    #[schemars(range(min = 0.0, max = 86400.0))]
    pub backoff_seconds: f64,
    /// The wait grows by this factor with each instance that ends in a row.
    #[serde(default = "backoff_factor")]
    #[schemars(range(min = 1.0, max = 100.0))]
    pub backoff_factor: f64,
    /// The longest wait.
    #[serde(default = "max_launch_delay")]
    #[schemars(range(min = 0.0, max = 86400.0))]
    pub max_launch_delay_seconds: f64,
}

/// An instance's labels and Task spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct InstanceTemplate {
    /// Labels and annotations given to each instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<TemplateMeta>,
    /// The Task each instance is (its `restartPolicy` stays `Never`: an
    /// instance that ends is replaced).
    pub spec: TaskSpec,
}

/// Metadata given to each instance.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TemplateMeta {
    /// Labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Marathon's upgrade strategy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeStrategy {
    /// The share of `replicas` that stays healthy during a rollout (0 to 1).
    #[serde(default = "full")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub minimum_health_capacity: f64,
    /// The share of `replicas` that may run beyond it during a rollout (0 to 1).
    #[serde(default = "full")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub maximum_over_capacity: f64,
}

impl Default for UpgradeStrategy {
    fn default() -> Self {
        Self {
            minimum_health_capacity: 1.0,
            maximum_over_capacity: 1.0,
        }
    }
}

/// Which instances are killed first when scaling down.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum KillSelection {
    /// The most recently started.
    #[default]
    YoungestFirst,
    /// The longest running.
    OldestFirst,
}

fn one() -> i32 {
    1
}
fn ten() -> i32 {
    10
}
fn full() -> f64 {
    1.0
}
fn backoff_seconds() -> f64 {
    1.0
}
fn backoff_factor() -> f64 {
    1.15
}
fn max_launch_delay() -> f64 {
    300.0
}

/// What the App controller reports.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppStatus {
    /// Instances not ended and not being killed.
    #[serde(default)]
    pub replicas: i32,
    /// Instances running and healthy (Ready).
    #[serde(default)]
    pub ready_replicas: i32,
    /// Instances of the current template.
    #[serde(default)]
    pub updated_replicas: i32,
    /// Instances available to serve (Ready).
    #[serde(default)]
    pub available_replicas: i32,
    /// The generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The label selector of the instances (for the scale subresource).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// The revision all instances ran before the current rollout began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_revision: Option<String>,
    /// The revision (template hash) instances are being moved to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_revision: Option<String>,
    /// Replacements wait while instances keep ending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch_backoff: Option<LaunchBackoff>,
    /// Where the ready instances serve: for each port name, the
    /// `host:port` of each ready instance.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub endpoints: Vec<Endpoints>,
    /// `Available`, `Progressing` and `Ready`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The templates this App has run, newest last: the current one and up
    /// to `revisionHistoryLimit` before it (what `mosaic rollout undo` goes
    /// back to).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["revision"]))]
    pub revisions: Vec<Revision>,
}

/// The addresses of one named port over an App's ready instances.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Endpoints {
    /// The port's name.
    pub name: String,
    /// `host:port` of each ready instance, sorted.
    #[serde(default)]
    pub addresses: Vec<String>,
}

/// One template an App has run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Revision {
    /// Its hash (the `mosaic.dev/revision` label of its instances).
    pub revision: String,
    /// Its number: 1 for the first template, one more for each new one (a
    /// template brought back by an undo takes the next number, as
    /// `kubectl rollout undo` does).
    pub number: i64,
    /// The template.
    pub template: InstanceTemplate,
}

/// Marathon's launch backoff: how many instances ended in a row, and when
/// the next replacement may start.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LaunchBackoff {
    /// Instances that ended in a row (reset once one stays healthy).
    pub failures: u32,
    /// No replacement starts before this (RFC 3339).
    pub next_launch_time: String,
}

/// The condition types of an App.
pub mod conditions {
    /// At least `minimumHealthCapacity` of the replicas are healthy.
    pub const AVAILABLE: &str = "Available";
    /// A rollout or scaling is under way (or has just completed).
    pub const PROGRESSING: &str = "Progressing";
}

impl AppStatus {
    /// The status an App has from its creation on (the API server writes
    /// it): not Ready, so that status checkers wait for the controller.
    pub fn created(now: k8s_openapi::jiff::Timestamp) -> AppStatus {
        AppStatus {
            conditions: vec![crate::conditions::new(
                crate::common::condition_types::READY,
                false,
                "Reconciling",
                "waiting for the App controller",
                None,
                now,
            )],
            ..AppStatus::default()
        }
    }
}
