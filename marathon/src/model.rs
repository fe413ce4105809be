//! Marathon's v2 JSON, typed: an app definition as clients send it, and
//! the apps, tasks, deployments, info and errors Marathon answers with.
//! Only the keys Marathon's clients know are written (the `marathon`
//! Python client refuses any other key in an answer).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// An app definition, as POSTed, PUT or PATCHed. `rest` holds the keys
/// this API does not translate: each is refused unless it says nothing
/// (see [`crate::translate`]).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppIn {
    pub id: Option<String>,
    pub cmd: Option<String>,
    pub args: Option<Vec<String>>,
    pub cpus: Option<f64>,
    pub mem: Option<f64>,
    pub disk: Option<f64>,
    pub instances: Option<i64>,
    pub env: Option<BTreeMap<String, Value>>,
    pub labels: Option<BTreeMap<String, String>>,
    pub port_definitions: Option<Vec<PortDefinition>>,
    pub ports: Option<Vec<u16>>,
    pub require_ports: Option<bool>,
    pub health_checks: Option<Vec<HealthCheck>>,
    pub constraints: Option<Vec<Vec<String>>>,
    pub upgrade_strategy: Option<UpgradeStrategy>,
    pub backoff_seconds: Option<f64>,
    pub backoff_factor: Option<f64>,
    pub max_launch_delay_seconds: Option<f64>,
    pub kill_selection: Option<String>,
    pub task_kill_grace_period_seconds: Option<u32>,
    pub user: Option<String>,
    #[serde(flatten)]
    pub rest: BTreeMap<String, Value>,
}

/// One of an app's ports.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct PortDefinition {
    /// With `requirePorts`, the host port itself; else 0 (any).
    #[serde(default)]
    pub port: u16,
    /// `tcp`, `udp` or `udp,tcp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Its name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Labels (kept by Marathon for service discovery; not translated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Keys not translated (refused unless they say nothing).
    #[serde(flatten, skip_serializing)]
    pub rest: BTreeMap<String, Value>,
}

/// A health check.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheck {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_index: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Command>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_period_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_consecutive_failures: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_http1xx: Option<bool>,
    /// Keys not translated (refused unless they say nothing).
    #[serde(flatten, skip_serializing)]
    pub rest: BTreeMap<String, Value>,
}

/// A COMMAND health check's command: `{"value": ...}` or, from older
/// clients, a bare string.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Command {
    /// `{"value": "curl -f ..."}`.
    Value {
        /// The command.
        value: String,
    },
    /// `"curl -f ..."`.
    Bare(String),
}

impl Command {
    /// The command.
    pub fn text(&self) -> &str {
        match self {
            Command::Value { value } | Command::Bare(value) => value,
        }
    }
}

/// Marathon's upgrade strategy.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeStrategy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_health_capacity: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum_over_capacity: Option<f64>,
    /// Keys not translated (refused).
    #[serde(flatten, skip_serializing)]
    pub rest: BTreeMap<String, Value>,
}

/// An app as Marathon answers with it.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppOut {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cmd: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    pub cpus: f64,
    pub mem: f64,
    pub disk: f64,
    pub instances: i32,
    pub env: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub port_definitions: Vec<PortDefinition>,
    pub require_ports: bool,
    pub health_checks: Vec<HealthCheck>,
    pub constraints: Vec<Vec<String>>,
    pub upgrade_strategy: UpgradeStrategy,
    pub backoff_seconds: f64,
    pub backoff_factor: f64,
    pub max_launch_delay_seconds: f64,
    pub kill_selection: String,
    pub task_kill_grace_period_seconds: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    pub version: String,
    pub version_info: VersionInfo,
    pub tasks_staged: usize,
    pub tasks_running: usize,
    pub tasks_healthy: usize,
    pub tasks_unhealthy: usize,
    pub deployments: Vec<DeploymentRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tasks: Option<Vec<TaskOut>>,
}

/// When an app last changed.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionInfo {
    pub last_scaling_at: String,
    pub last_config_change_at: String,
}

/// A deployment an app takes part in.
#[derive(Debug, Serialize)]
pub struct DeploymentRef {
    pub id: String,
}

/// A task (an App's instance) as Marathon answers with it.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskOut {
    pub id: String,
    pub app_id: String,
    pub host: String,
    pub ports: Vec<u16>,
    pub slave_id: String,
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub staged_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    pub version: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub health_check_results: Vec<HealthCheckResult>,
}

/// A task's health, as its health check last found it.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheckResult {
    pub alive: bool,
    pub consecutive_failures: u32,
    pub first_success: Option<String>,
    pub last_success: Option<String>,
    pub last_failure: Option<String>,
    pub last_failure_cause: Option<String>,
    pub task_id: String,
}

/// A deployment under way.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentOut {
    pub id: String,
    pub version: String,
    pub affected_apps: Vec<String>,
    pub affected_pods: Vec<String>,
    pub steps: Vec<Step>,
    pub current_actions: Vec<Action>,
    pub current_step: u32,
    pub total_steps: u32,
}

/// A deployment's step.
#[derive(Debug, Serialize)]
pub struct Step {
    pub actions: Vec<Action>,
}

/// One action of a deployment.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Action {
    pub action: String,
    pub app: String,
    pub readiness_check_results: Vec<Value>,
}

/// What a change answers with: the deployment it started.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentResult {
    pub deployment_id: String,
    pub version: String,
}

/// `GET /v2/info`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Info {
    pub name: String,
    pub version: String,
    pub buildref: String,
    pub elected: bool,
    pub leader: String,
    pub framework_id: String,
    pub marathon_config: BTreeMap<String, Value>,
    pub zookeeper_config: BTreeMap<String, Value>,
    pub http_config: HttpConfig,
}

/// The listener, as `/v2/info` describes it.
#[derive(Debug, Serialize)]
pub struct HttpConfig {
    pub http_port: u16,
    pub https_port: u16,
}

/// Marathon's error body.
#[derive(Debug, Serialize)]
pub struct ErrorBody {
    pub message: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<ErrorDetail>,
}

/// One invalid field.
#[derive(Debug, Serialize)]
pub struct ErrorDetail {
    pub path: String,
    pub errors: Vec<String>,
}

/// `{"app": ...}`.
#[derive(Debug, Serialize)]
pub struct OneApp {
    pub app: AppOut,
}

/// `{"apps": [...]}`.
#[derive(Debug, Serialize)]
pub struct Apps {
    pub apps: Vec<AppOut>,
}

/// `{"tasks": [...]}`.
#[derive(Debug, Serialize)]
pub struct Tasks {
    pub tasks: Vec<TaskOut>,
}

/// `{"task": ...}`.
#[derive(Debug, Serialize)]
pub struct OneTask {
    pub task: TaskOut,
}
