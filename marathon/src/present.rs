//! Apps and their instances as Marathon shows them: an App as an app
//! (`/v2/apps`), its instances as tasks, and a rollout or scaling under way
//! as a deployment.

use crate::model::{
    Action, AppOut, DeploymentOut, DeploymentRef, HealthCheck, HealthCheckResult, PortDefinition,
    Step, TaskOut, UpgradeStrategy, VersionInfo,
};
use crate::translate::ID_ANNOTATION;
use kube::ResourceExt;
use mosaic_crds::app::{App, KillSelection};
use mosaic_crds::constraint::ConstraintOperator;
use mosaic_crds::task::{Task, TaskPhase};
use std::collections::BTreeMap;

/// A time as Marathon writes it: `2026-12-06T05:00:00.000Z`.
pub fn time(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// An App's Marathon id.
pub fn id_of(app: &App) -> String {
    app.annotations()
        .get(ID_ANNOTATION)
        .cloned()
        .unwrap_or_else(|| format!("/{}", app.name_any().replace('.', "/")))
}

/// When an App's spec last changed (its latest managed write), else its creation.
pub fn version_of(app: &App) -> String {
    let latest = app
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|m| m.subresource.is_none())
        .filter_map(|m| m.time.as_ref().map(|t| t.0))
        .max();
    let t = latest
        .or_else(|| app.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .unwrap_or_default();
    time(t)
}

/// The id of the deployment an App is in (its uid and generation), if a
/// rollout or scaling is under way.
pub fn deployment_of(app: &App) -> Option<String> {
    let want = app.spec.replicas;
    let st = app.status.clone().unwrap_or_default();
    // A forced cancel pauses the App where it is: no deployment then.
    let settled = app.spec.paused
        || st.observed_generation == app.metadata.generation
            && st.replicas == want
            && st.updated_replicas == want
            && st.ready_replicas == want;
    (!settled).then(|| deployment_id(app))
}

/// The id a change of `app` at its generation is known by.
pub fn deployment_id(app: &App) -> String {
    format!(
        "{}-{}",
        app.uid().unwrap_or_default(),
        app.metadata.generation.unwrap_or_default()
    )
}

/// A deployment under way, as `/v2/deployments` lists it.
pub fn deployment(app: &App, id: String) -> DeploymentOut {
    let rolling = app
        .status
        .as_ref()
        .is_some_and(|s| s.update_revision != s.current_revision);
    let action = |a: &str| Action {
        action: a.into(),
        app: id_of(app),
        readiness_check_results: Vec::new(),
    };
    let name = if rolling {
        "RestartApplication"
    } else {
        "ScaleApplication"
    };
    DeploymentOut {
        id,
        version: version_of(app),
        affected_apps: vec![id_of(app)],
        affected_pods: Vec::new(),
        steps: vec![Step {
            actions: vec![action(name)],
        }],
        current_actions: vec![action(name)],
        current_step: 1,
        total_steps: 1,
    }
}

/// Marathon's name for a task's phase.
fn state(phase: Option<TaskPhase>) -> &'static str {
    match phase {
        None | Some(TaskPhase::Pending | TaskPhase::Staging) => "TASK_STAGING",
        Some(TaskPhase::Starting) => "TASK_STARTING",
        Some(TaskPhase::Running) => "TASK_RUNNING",
        Some(TaskPhase::Killing) => "TASK_KILLING",
        Some(TaskPhase::Finished) => "TASK_FINISHED",
        Some(TaskPhase::Failed) => "TASK_FAILED",
        Some(TaskPhase::Killed) => "TASK_KILLED",
        Some(TaskPhase::Lost) => "TASK_GONE",
        Some(TaskPhase::Unreachable) => "TASK_UNREACHABLE",
        Some(TaskPhase::Error) => "TASK_ERROR",
    }
}

/// Whether a task's Ready condition is True, and since when.
fn ready_since(t: &Task) -> Option<jiff::Timestamp> {
    t.status.as_ref()?.conditions.iter().find_map(|c| {
        (c.type_ == "Ready" && c.status == "True").then_some(c.last_transition_time.0)
    })
}

/// A bound instance as a task; `hosts` maps agents to the host they serve at.
pub fn task(app_id: &str, version: &str, t: &Task, hosts: &BTreeMap<String, String>) -> TaskOut {
    let st = t.status.clone().unwrap_or_default();
    let agent = st.agent.clone().unwrap_or_default();
    let staged = t.metadata.creation_timestamp.as_ref().map(|c| time(c.0));
    let started = st
        .start_time
        .as_deref()
        .and_then(|s| s.parse::<jiff::Timestamp>().ok())
        .map(time);
    let health = t.spec.health_check.as_ref().map(|_| {
        let since = ready_since(t);
        HealthCheckResult {
            alive: since.is_some(),
            consecutive_failures: 0,
            first_success: since.map(time),
            last_success: since.map(|_| time(jiff::Timestamp::now())),
            last_failure: None,
            last_failure_cause: None,
            task_id: t.name_any(),
        }
    });
    TaskOut {
        id: t.name_any(),
        app_id: app_id.to_string(),
        host: hosts.get(&agent).cloned().unwrap_or_else(|| agent.clone()),
        ports: st.ports.iter().map(|p| p.port).collect(),
        slave_id: agent,
        state: state(st.phase).into(),
        staged_at: staged,
        started_at: started,
        version: version.to_string(),
        health_check_results: health.into_iter().collect(),
    }
}

/// An App as Marathon shows an app, with its (bound) instances when `embed`.
pub fn app(a: &App, instances: &[&Task], hosts: &BTreeMap<String, String>, embed: bool) -> AppOut {
    let spec = &a.spec;
    let t = &spec.template.spec;
    let id = id_of(a);
    let version = version_of(a);
    let cpus = t.resources.cpus_milli().ok().flatten().unwrap_or(0) as f64 / 1000.0;
    let mib = |b: Option<u64>| b.unwrap_or(0) as f64 / 1048576.0;
    let mem = mib(t.resources.memory_bytes().ok().flatten());
    let disk = t.resources.disk.as_ref().and_then(|d| {
        mosaic_crds::ResourceQuantities {
            memory: Some(d.clone()),
            ..Default::default()
        }
        .memory_bytes()
        .ok()
        .flatten()
    });
    let ports = if spec.ports.is_empty() {
        &t.ports
    } else {
        &spec.ports
    };
    let index = |name: &Option<String>| {
        name.as_ref()
            .and_then(|n| ports.iter().position(|p| &p.name == n))
    };
    let health_checks = t
        .health_check
        .iter()
        .map(|h| {
            let mut out = HealthCheck {
                grace_period_seconds: Some(h.initial_delay_seconds),
                interval_seconds: Some(h.period_seconds),
                timeout_seconds: Some(h.timeout_seconds),
                max_consecutive_failures: Some(h.failure_threshold),
                ..Default::default()
            };
            if let Some(http) = &h.http {
                out.protocol = Some("HTTP".into());
                out.path = Some(http.path.clone());
                out.port = http.port;
                out.port_index = index(&http.port_name);
            } else if let Some(tcp) = &h.tcp {
                out.protocol = Some("TCP".into());
                out.port = tcp.port;
                out.port_index = index(&tcp.port_name);
            } else if let Some(e) = &h.exec {
                out.protocol = Some("COMMAND".into());
                out.command = Some(crate::model::Command::Value {
                    value: e.command.clone(),
                });
            }
            out
        })
        .collect();
    let bound: Vec<&&Task> = instances
        .iter()
        .filter(|t| t.status.as_ref().and_then(|s| s.agent.as_ref()).is_some())
        .collect();
    let phase = |t: &Task| t.status.as_ref().and_then(|s| s.phase);
    let live = |t: &Task| t.metadata.deletion_timestamp.is_none();
    let running: Vec<&&&Task> = bound
        .iter()
        .filter(|t| live(t) && phase(t) == Some(TaskPhase::Running))
        .collect();
    let checked = t.health_check.is_some();
    AppOut {
        id: id.clone(),
        cmd: t.command.clone(),
        args: t.args.clone(),
        cpus,
        mem,
        disk: mib(disk),
        instances: spec.replicas,
        env: t
            .env
            .iter()
            .map(|e| (e.name.clone(), e.value.clone()))
            .collect(),
        labels: spec
            .template
            .metadata
            .as_ref()
            .map(|m| m.labels.clone())
            .unwrap_or_default(),
        port_definitions: ports
            .iter()
            .map(|p| PortDefinition {
                port: p.host_port.unwrap_or(0),
                protocol: Some("tcp".into()),
                name: Some(p.name.clone()),
                labels: None,
                rest: Default::default(),
            })
            .collect(),
        require_ports: ports.iter().any(|p| p.host_port.is_some_and(|h| h != 0)),
        health_checks,
        constraints: spec
            .constraints
            .iter()
            .chain(&t.constraints)
            .map(|c| {
                let op = match c.operator {
                    ConstraintOperator::Unique => "UNIQUE",
                    ConstraintOperator::Cluster => "CLUSTER",
                    ConstraintOperator::GroupBy => "GROUP_BY",
                    ConstraintOperator::Like => "LIKE",
                    ConstraintOperator::Unlike => "UNLIKE",
                    ConstraintOperator::MaxPer => "MAX_PER",
                    ConstraintOperator::Is => "IS",
                };
                let mut v = vec![c.field.clone(), op.to_string()];
                v.extend(c.value.clone());
                v
            })
            .collect(),
        upgrade_strategy: UpgradeStrategy {
            minimum_health_capacity: Some(spec.upgrade_strategy.minimum_health_capacity),
            maximum_over_capacity: Some(spec.upgrade_strategy.maximum_over_capacity),
            rest: Default::default(),
        },
        backoff_seconds: spec.backoff_seconds,
        backoff_factor: spec.backoff_factor,
        max_launch_delay_seconds: spec.max_launch_delay_seconds,
        kill_selection: match spec.kill_selection {
            KillSelection::YoungestFirst => "YOUNGEST_FIRST",
            KillSelection::OldestFirst => "OLDEST_FIRST",
        }
        .into(),
        task_kill_grace_period_seconds: t.kill_grace_period_seconds,
        user: t.user.clone(),
        version: version.clone(),
        version_info: VersionInfo {
            last_scaling_at: version.clone(),
            last_config_change_at: version.clone(),
        },
        tasks_staged: bound
            .iter()
            .filter(|t| {
                live(t) && matches!(phase(t), Some(TaskPhase::Staging | TaskPhase::Starting))
            })
            .count(),
        tasks_running: running.len(),
        tasks_healthy: if checked {
            running.iter().filter(|t| ready_since(t).is_some()).count()
        } else {
            0
        },
        tasks_unhealthy: if checked {
            running.iter().filter(|t| ready_since(t).is_none()).count()
        } else {
            0
        },
        deployments: deployment_of(a)
            .map(|id| DeploymentRef { id })
            .into_iter()
            .collect(),
        tasks: embed.then(|| {
            bound
                .iter()
                .map(|t| task(&id, &version, t, hosts))
                .collect()
        }),
    }
}
