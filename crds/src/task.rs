//! Task: one process to run, placed by its framework and run by an agent.

use crate::common::{Condition, LabelSelector, ResourceQuantities};
use crate::constraint::Constraint;
use crate::ports::{PortSpec, TaskPort};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The transition rule that keeps a bound Task's spec as it was: the binding
/// is `status.agent`, written once by the scheduler.
pub const SPEC_IMMUTABLE_ONCE_BOUND: &str = "!has(oldSelf.status) || !has(oldSelf.status.agent) \
     || oldSelf.status.agent == '' || self.spec == oldSelf.spec";

/// The rule that a health check's `portName` names one of the task's
/// ports, over `self.spec` (a Task) or an App's spec with its template.
pub const PORT_NAME_KNOWN: &str = "!has(self.spec.healthCheck) \
     || ((!has(self.spec.healthCheck.http) || !has(self.spec.healthCheck.http.portName) \
          || (has(self.spec.ports) && self.spec.ports.exists(p, p.name == self.spec.healthCheck.http.portName))) \
      && (!has(self.spec.healthCheck.tcp) || !has(self.spec.healthCheck.tcp.portName) \
          || (has(self.spec.ports) && self.spec.ports.exists(p, p.name == self.spec.healthCheck.tcp.portName))))";

/// What a refused change of a bound Task's spec says.
pub const SPEC_IMMUTABLE_MESSAGE: &str = "a Task's spec is immutable once it is bound to an agent \
     (as a Pod's is); to run something else, create a Task under a new name and delete this one \
     (a Helm chart names its Tasks after a hash of their spec, so an upgrade replaces them: see \
     docs/gitops.md)";

/// The annotation the API server keeps on a Task whose creator may `use`
/// the Unix user its `spec.user` names (RBAC verb `use` on
/// `taskusers/<user>`): its value is that user. Only the API server writes
/// it; agents run root, or a user outside their allowed list, only with it.
pub const USER_GRANT_ANNOTATION: &str = "mosaic.dev/task-user-grant";

/// The resource RBAC names for that grant (`use` on `taskusers/<user>`).
pub const TASK_USERS_RESOURCE: &str = "taskusers";

/// One process to run. Exactly one of `command` and `args` is set.
// The rules are CEL in the CRD (`x-kubernetes-validations`), so they hold on a
// Kubernetes cluster as on `mosaic server`.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[x_kube(validation = Rule::new("has(self.command) != (has(self.args) && size(self.args) > 0)")
    .message("exactly one of spec.command and spec.args must be set"))]
#[kube(
    group = "mosaic.dev",
    doc = "A Task is one process to run on an agent, in its own cgroups and sandbox: Mosaic's unit of work. Its spec is immutable once bound to an agent.",
    version = "v1alpha1",
    kind = "Task",
    namespaced,
    shortname = "tk",
    category = "mosaic",
    category = "all",
    status = "TaskStatus",
    validation = Rule::new(SPEC_IMMUTABLE_ONCE_BOUND)
        .message(SPEC_IMMUTABLE_MESSAGE)
        .reason(Reason::FieldValueForbidden)
        .field_path(".spec"),
    validation = Rule::new(PORT_NAME_KNOWN)
        .message("the health check's portName names none of spec.ports")
        .reason(Reason::FieldValueInvalid)
        .field_path(".spec.healthCheck"),
    selectable = ".spec.framework",
    selectable = ".status.agent",
    selectable = ".status.phase",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Agent","type":"string","jsonPath":".status.agent"}"#,
    printcolumn = r#"{"name":"Framework","type":"string","jsonPath":".spec.framework"}"#,
    printcolumn = r#"{"name":"Exit","type":"integer","jsonPath":".status.exitCode"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","priority":1,"jsonPath":".status.reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct TaskSpec {
    /// The framework this task belongs to.
    #[serde(default = "default_framework")]
    pub framework: String,
    /// A shell command, run by `/bin/sh -c`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// A program and its arguments, exec'd directly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    /// Environment variables (a map-list keyed by name: server-side apply merges
    /// and owns them one by one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub env: Vec<EnvVar>,
    /// The Unix user the task runs as: a name, a uid, or `uid:gid`. Default:
    /// the agent's unprivileged task user. Root, or a user outside the
    /// agent's `--allowed-task-users`, needs RBAC's `use` verb on
    /// `taskusers/<user>` (API group mosaic.dev) for whoever creates the task;
    /// otherwise it is refused (reason `UserNotAllowed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Working directory; a per-task sandbox when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// What is allocated to the task and enforced on it (requests equal limits).
    #[serde(default = "default_resources")]
    pub resources: ResourceQuantities,
    /// Only agents whose labels match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_selector: Option<LabelSelector>,
    /// Marathon's placement constraints, all met at placement; the
    /// operators that count tasks count those with the same `mosaic.dev/app`
    /// label (an App's instances). A task none can be met for waits,
    /// Pending with reason `Unschedulable` naming the constraint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub constraints: Vec<Constraint>,
    /// Named host ports from the agent's `ports` resource: each gets a
    /// distinct port of the agent (or the fixed `hostPort` asked for),
    /// recorded in `status.ports` and exported as `PORT0`.., `PORT`,
    /// `PORT_<NAME>` and `PORTS`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub ports: Vec<PortSpec>,
    /// When to run the task again after it ends.
    #[serde(default)]
    pub restart_policy: RestartPolicy,
    /// How many restarts after failure before the task fails for good.
    #[serde(default = "default_backoff_limit")]
    pub backoff_limit: u32,
    /// SIGTERM, then after this long SIGKILL of the whole cgroup.
    #[serde(default = "default_kill_grace")]
    pub kill_grace_period_seconds: u32,
    /// A check of the running task's health.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    /// External frameworks: the Offer this task is launched on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer: Option<String>,
}

fn default_framework() -> String {
    "default".into()
}

/// The cpus (millicores) a task gets when its spec leaves them out.
pub const DEFAULT_CPUS_MILLI: u64 = 1000;
/// The memory (bytes) a task gets when its spec leaves it out.
pub const DEFAULT_MEMORY_BYTES: u64 = 128 << 20;

/// The defaults of `spec.resources`, applied here only: the schema's default
/// when a Task leaves the field out, and [`TaskSpec::cpus_milli`] /
/// [`TaskSpec::memory_bytes`] when it leaves out one resource.
fn default_resources() -> ResourceQuantities {
    ResourceQuantities::from_units(DEFAULT_CPUS_MILLI, DEFAULT_MEMORY_BYTES)
}

fn default_backoff_limit() -> u32 {
    3
}

fn default_kill_grace() -> u32 {
    30
}

/// One environment variable.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EnvVar {
    /// Variable name.
    pub name: String,
    /// Its value.
    #[serde(default)]
    pub value: String,
}

/// When a task runs again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RestartPolicy {
    /// Run once.
    #[default]
    Never,
    /// Run again after a failure, up to `backoffLimit` times.
    OnFailure,
    /// Run again whenever it ends.
    Always,
}

/// A health check: exactly one of `exec`, `http`, `tcp`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheck {
    /// Run a command in the task's environment; exit 0 is healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecCheck>,
    /// An HTTP GET on the agent's host; 2xx and 3xx are healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpCheck>,
    /// A TCP connect on the agent's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpCheck>,
    /// Wait this long after start before the first check.
    #[serde(default = "default_initial_delay")]
    pub initial_delay_seconds: u32,
    /// Time between checks.
    #[serde(default = "default_period")]
    pub period_seconds: u32,
    /// A check that takes longer fails.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u32,
    /// Consecutive failures that kill the task.
    #[serde(default = "default_failure_threshold")]
    pub failure_threshold: u32,
}

fn default_initial_delay() -> u32 {
    15
}
fn default_period() -> u32 {
    10
}
fn default_timeout() -> u32 {
    20
}
fn default_failure_threshold() -> u32 {
    3
}

/// A command health check.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ExecCheck {
    /// Run by `/bin/sh -c`.
    pub command: String,
}

/// An HTTP health check.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[x_kube(validation = Rule::new("has(self.port) != has(self.portName)")
    .message("exactly one of port and portName must be set"))]
#[serde(rename_all = "camelCase")]
pub struct HttpCheck {
    /// Port on the agent's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The name of one of the task's `spec.ports`: the host port it was
    /// given (Marathon's `portIndex`, by name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_name: Option<String>,
    /// Request path.
    #[serde(default = "default_path")]
    pub path: String,
}

fn default_path() -> String {
    "/".into()
}

/// A TCP health check.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[x_kube(validation = Rule::new("has(self.port) != has(self.portName)")
    .message("exactly one of port and portName must be set"))]
#[serde(rename_all = "camelCase")]
pub struct TcpCheck {
    /// Port on the agent's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The name of one of the task's `spec.ports`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_name: Option<String>,
}

/// The host port a check connects to: its `port`, or the port the task
/// was given for its `portName`.
pub fn check_port(
    port: Option<u16>,
    port_name: Option<&str>,
    given: &[TaskPort],
) -> Result<u16, String> {
    match (port, port_name) {
        (Some(p), _) => Ok(p),
        (None, Some(name)) => given
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.port)
            .ok_or_else(|| format!("the task was given no port named {name:?}")),
        (None, None) => Err("the check names no port".into()),
    }
}

/// Where a task is in its life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum TaskPhase {
    /// Not placed yet.
    #[default]
    Pending,
    /// Bound to an agent.
    Staging,
    /// The agent is starting it.
    Starting,
    /// Its process runs.
    Running,
    /// Being killed.
    Killing,
    /// Exited 0.
    Finished,
    /// Exited non-zero, or failed for good.
    Failed,
    /// Killed on request.
    Killed,
    /// Its agent is gone.
    Lost,
    /// Its agent stopped heartbeating and may come back.
    Unreachable,
    /// Cannot run as given.
    Error,
}

/// What the control plane and the agent report about a task.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskStatus {
    /// Where the task is in its life.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<TaskPhase>,
    /// The agent it is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Exit code of the last run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Signal that ended the last run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// When the current run started (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// When the last run ended (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_time: Option<String>,
    /// Restarts so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// The host ports it was given on its agent (with its bind), in the
    /// order of `spec.ports`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<TaskPort>,
    /// Usage sampled while running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<ResourceQuantities>,
    /// Why the task is in its phase (CamelCase, stable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A sentence for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Scheduled`, `Ready` and `Stalled`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

impl TaskStatus {
    /// The status a Task has from its creation (the API server writes it, as
    /// a Pod starts Pending): Pending and not Ready, so that status checkers
    /// (kstatus, behind `helm install --wait` and Flux; `kubectl wait`) wait
    /// for the real outcome instead of reading a bare Task as ready.
    pub fn created(now: k8s_openapi::jiff::Timestamp, generation: i64) -> TaskStatus {
        TaskStatus {
            phase: Some(TaskPhase::Pending),
            observed_generation: Some(generation),
            conditions: vec![Condition {
                type_: crate::common::condition_types::READY.into(),
                status: "False".into(),
                reason: "Pending".into(),
                message: "waiting to be scheduled".into(),
                last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now),
                observed_generation: Some(generation),
            }],
            ..TaskStatus::default()
        }
    }
}

impl TaskPhase {
    /// Whether a task in this phase has ended for good (it holds nothing
    /// and will not run again): Finished, Failed, Killed, Lost or Error.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskPhase::Finished
                | TaskPhase::Failed
                | TaskPhase::Killed
                | TaskPhase::Lost
                | TaskPhase::Error
        )
    }

    /// Whether a task in this phase is on an agent and holds its resources:
    /// Staging, Starting, Running, Killing, or Unreachable (its agent may come back).
    pub fn is_active(self) -> bool {
        matches!(
            self,
            TaskPhase::Staging
                | TaskPhase::Starting
                | TaskPhase::Running
                | TaskPhase::Killing
                | TaskPhase::Unreachable
        )
    }
}

impl TaskSpec {
    /// The cpus (millicores) the task is allocated and limited to:
    /// [`DEFAULT_CPUS_MILLI`] when left out (or unreadable: the API refuses those).
    pub fn cpus_milli(&self) -> u64 {
        let q = self.resources.cpus_milli().ok().flatten();
        q.unwrap_or(DEFAULT_CPUS_MILLI)
    }

    /// The memory (bytes) the task is allocated and limited to:
    /// [`DEFAULT_MEMORY_BYTES`] when left out.
    pub fn memory_bytes(&self) -> u64 {
        let q = self.resources.memory_bytes().ok().flatten();
        q.unwrap_or(DEFAULT_MEMORY_BYTES)
    }

    /// Whether a run that ended in `phase` is followed by another, with
    /// `attempt` restarts so far: `Always` runs again after any end but a
    /// kill, `OnFailure` after a failure; failures count against `backoffLimit`.
    pub fn restarts_after(&self, phase: TaskPhase, attempt: u32) -> bool {
        match (self.restart_policy, phase) {
            (RestartPolicy::Always, TaskPhase::Finished) => true,
            (
                RestartPolicy::Always | RestartPolicy::OnFailure,
                TaskPhase::Failed | TaskPhase::Lost,
            ) => attempt < self.backoff_limit,
            _ => false,
        }
    }

    /// How long to wait before restart number `attempt + 1`: 1 s, doubling, at most 60 s.
    pub fn restart_backoff(attempt: u32) -> std::time::Duration {
        std::time::Duration::from_secs(1u64 << attempt.min(6))
            .min(std::time::Duration::from_secs(60))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_policy() {
        let mut spec = TaskSpec {
            backoff_limit: 2,
            ..Default::default()
        };
        assert!(!spec.restarts_after(TaskPhase::Failed, 0), "Never");
        spec.restart_policy = RestartPolicy::OnFailure;
        assert!(spec.restarts_after(TaskPhase::Failed, 1));
        assert!(
            !spec.restarts_after(TaskPhase::Failed, 2),
            "backoffLimit reached"
        );
        assert!(!spec.restarts_after(TaskPhase::Finished, 0));
        spec.restart_policy = RestartPolicy::Always;
        assert!(spec.restarts_after(TaskPhase::Finished, 9));
        assert!(!spec.restarts_after(TaskPhase::Killed, 0));
        assert_eq!(TaskSpec::restart_backoff(0).as_secs(), 1);
        assert_eq!(TaskSpec::restart_backoff(3).as_secs(), 8);
        assert_eq!(TaskSpec::restart_backoff(30).as_secs(), 60);
    }
}
