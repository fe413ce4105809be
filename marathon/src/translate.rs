//! A Marathon app definition into an App: the fields Mosaic honours are
//! translated, any other is refused with its path (never dropped), unless it
//! says nothing (an empty list, a default).

use crate::error::MarathonError;
use crate::model::{AppIn, HealthCheck};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use mosaic_crds::app::{AppSpec, KillSelection};
use mosaic_crds::constraint::{Constraint, ConstraintOperator};
use mosaic_crds::ports::PortSpec;
use mosaic_crds::task::{EnvVar, ExecCheck, HttpCheck, TcpCheck};
use serde_json::Value;

/// The annotation holding an App's Marathon id (`/group/app`).
pub const ID_ANNOTATION: &str = "mosaic.dev/marathon-id";

/// A Marathon id's canonical form (`/a/b`) and the App's name (`a.b`).
pub fn name_of(id: &str) -> Result<(String, String), MarathonError> {
    let segments: Vec<&str> = id.split('/').filter(|s| !s.is_empty()).collect();
    let name = segments.join(".");
    let ok = !name.is_empty()
        && name.len() <= 63
        && segments.iter().all(|s| {
            s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !s.starts_with('-')
                && !s.ends_with('-')
        });
    if !ok {
        return Err(MarathonError::field(
            "/id",
            format!(
                "{id:?} is not an id Mosaic can name an App after: path segments of lower-case letters, digits and '-', at most 63 characters in all"
            ),
        ));
    }
    Ok((format!("/{}", segments.join("/")), name))
}

/// The keys of an app definition this API does not translate but accepts
/// when they say nothing: the value they say nothing with.
fn says_nothing(key: &str, v: &Value) -> bool {
    let empty = match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::String(s) => s.is_empty(),
        _ => false,
    };
    empty
        || match key {
            // What Marathon reports and a client may send back.
            "version" | "versionInfo" | "tasksStaged" | "tasksRunning" | "tasksHealthy"
            | "tasksUnhealthy" | "deployments" | "tasks" | "lastTaskFailure" | "taskStats" => true,
            "acceptedResourceRoles" => v == &serde_json::json!(["*"]),
            "role" => v == "*",
            "gpus" => v == 0,
            "networks" => v == &serde_json::json!([{"mode": "host"}]),
            "unreachableStrategy" => v == "disabled",
            _ => false,
        }
}

/// The spec a new App starts from, before what a definition says: the
/// CRD's defaults (1 instance of 1 cpu and 128 MiB, as Marathon's).
pub fn new_spec() -> AppSpec {
    serde_json::from_value(serde_json::json!({"template": {"spec": {}}}))
        .expect("the defaults of an App's spec")
}

/// Sets on `spec` what `app` says (only the fields it has: a partial
/// update leaves the others as they are). Every field it cannot honour is
/// reported, with its path.
pub fn apply(spec: &mut AppSpec, app: AppIn) -> Result<(), MarathonError> {
    let mut bad: Vec<(String, String)> = Vec::new();
    let mut refuse = |path: &str, why: String| bad.push((path.to_string(), why));
    for (k, v) in &app.rest {
        if !says_nothing(k, v) {
            let why = match k.as_str() {
                "container" => "containers are not supported by Mosaic yet".to_string(),
                _ => format!("{k} is not supported by Mosaic"),
            };
            refuse(&format!("/{k}"), why);
        }
    }
    let t = &mut spec.template.spec;
    match (app.cmd, app.args) {
        (Some(_), Some(a)) if !a.is_empty() => {
            refuse("/args", "cmd and args may not both be set".into());
        }
        (Some(c), _) => {
            t.command = Some(c);
            t.args = None;
        }
        (None, Some(a)) if !a.is_empty() => {
            t.args = Some(a);
            t.command = None;
        }
        _ => {}
    }
    let r = &mut t.resources;
    if let Some(c) = app.cpus {
        match c {
            c if c.is_finite() && (0.001..=1e6).contains(&c) => {
                r.cpus = Some(Quantity(format!("{}m", (c * 1000.0).round() as u64)))
            }
            _ => refuse("/cpus", "must be a number of cores, at least 0.001".into()),
        }
    }
    for (path, v, slot) in [
        ("/mem", app.mem, &mut r.memory),
        ("/disk", app.disk, &mut r.disk),
    ] {
        match v {
            Some(m) if (0.0..=1e12).contains(&m) => {
                *slot = Some(Quantity(if m.fract() == 0.0 {
                    format!("{}Mi", m as u64)
                } else {
                    ((m * 1048576.0).round() as u64).to_string()
                }))
            }
            Some(_) => refuse(path, "must be a number of MiB, 0 or more".into()),
            None => {}
        }
    }
    if let Some(env) = app.env {
        let mut vars = Vec::new();
        for (k, v) in env {
            match v {
                Value::String(s) => vars.push(EnvVar { name: k, value: s }),
                _ => refuse(
                    &format!("/env/{k}"),
                    "only string values are supported by Mosaic (no secret references)".into(),
                ),
            }
        }
        t.env = vars;
    }
    if let Some(labels) = app.labels {
        spec.template
            .metadata
            .get_or_insert_with(Default::default)
            .labels = labels;
    }
    let t = &mut spec.template.spec;
    if let Some(u) = app.user {
        t.user = Some(u);
    }
    if let Some(g) = app.task_kill_grace_period_seconds {
        t.kill_grace_period_seconds = g;
    }
    if let Some(n) = app.instances {
        match i32::try_from(n) {
            Ok(n) if n >= 0 => spec.replicas = n,
            _ => refuse("/instances", "must be 0 or more".into()),
        }
    }
    let require = app.require_ports.unwrap_or(false);
    if app.port_definitions.is_some() && app.ports.as_ref().is_some_and(|p| !p.is_empty()) {
        refuse("/ports", "give portDefinitions or ports, not both".into());
    }
    let defs = match (app.port_definitions, app.ports) {
        (Some(d), _) => Some(d),
        (None, Some(ports)) => Some(
            ports
                .into_iter()
                .map(|port| crate::model::PortDefinition {
                    port,
                    ..Default::default()
                })
                .collect(),
        ),
        (None, None) => None,
    };
    if let Some(defs) = defs {
        let mut ports = Vec::new();
        for (i, d) in defs.iter().enumerate() {
            let at = format!("/portDefinitions({i})");
            if let Some(p) = d.protocol.as_deref()
                && p != "tcp"
            {
                refuse(
                    &format!("{at}/protocol"),
                    format!("{p}: Mosaic's host ports are tcp ports"),
                );
            }
            if d.labels.as_ref().is_some_and(|l| !l.is_empty()) {
                refuse(
                    &format!("{at}/labels"),
                    "port labels are not supported by Mosaic".into(),
                );
            }
            if d.port != 0 && !require {
                refuse(
                    &format!("{at}/port"),
                    "service ports are not supported by Mosaic: use 0 for any host port, or requirePorts: true for this host port".into(),
                );
            }
            for k in d.rest.keys() {
                refuse(
                    &format!("{at}/{k}"),
                    format!("{k} is not supported by Mosaic"),
                );
            }
            ports.push(PortSpec {
                name: d.name.clone().unwrap_or_else(|| format!("port{i}")),
                host_port: (require && d.port != 0).then_some(d.port),
            });
        }
        spec.ports = ports;
        spec.template.spec.ports = Vec::new();
    }
    if let Some(hcs) = app.health_checks {
        if hcs.len() > 1 {
            refuse(
                "/healthChecks",
                "Mosaic runs one health check per instance".into(),
            );
        }
        let names: Vec<String> = spec.ports.iter().map(|p| p.name.clone()).collect();
        spec.template.spec.health_check = match hcs.into_iter().next() {
            Some(h) => match health_check(h, &names) {
                Ok(h) => Some(h),
                Err((path, why)) => {
                    refuse(&format!("/healthChecks(0){path}"), why);
                    None
                }
            },
            None => None,
        };
    }
    if let Some(cs) = app.constraints {
        let mut out = Vec::new();
        for (i, c) in cs.into_iter().enumerate() {
            match constraint(&c) {
                Some(c) => out.push(c),
                None => refuse(
                    &format!("/constraints({i})"),
                    format!(
                        "{c:?} is not [field, OPERATOR] or [field, OPERATOR, value] with one of Marathon's operators"
                    ),
                ),
            }
        }
        spec.constraints = out;
    }
    if let Some(u) = app.upgrade_strategy {
        for k in u.rest.keys() {
            refuse(
                &format!("/upgradeStrategy/{k}"),
                format!("{k} is not supported by Mosaic"),
            );
        }
        let s = &mut spec.upgrade_strategy;
        for (path, v, slot) in [
            (
                "/upgradeStrategy/minimumHealthCapacity",
                u.minimum_health_capacity,
                &mut s.minimum_health_capacity,
            ),
            (
                "/upgradeStrategy/maximumOverCapacity",
                u.maximum_over_capacity,
                &mut s.maximum_over_capacity,
            ),
        ] {
            match v {
                Some(x) if (0.0..=1.0).contains(&x) => *slot = x,
                Some(_) => refuse(path, "must be between 0 and 1".into()),
                None => {}
            }
        }
    }
    for (path, v, slot) in [
        (
            "/backoffSeconds",
            app.backoff_seconds,
            &mut spec.backoff_seconds,
        ),
        (
            "/backoffFactor",
            app.backoff_factor,
            &mut spec.backoff_factor,
        ),
        (
            "/maxLaunchDelaySeconds",
            app.max_launch_delay_seconds,
            &mut spec.max_launch_delay_seconds,
        ),
    ] {
        let least = if path == "/backoffFactor" { 1.0 } else { 0.0 };
        match v {
            Some(x) if x.is_finite() && x >= least => *slot = x,
            Some(_) => refuse(path, format!("must be a number, {least} or more")),
            None => {}
        }
    }
    if let Some(k) = app.kill_selection {
        match k.as_str() {
            "YOUNGEST_FIRST" => spec.kill_selection = KillSelection::YoungestFirst,
            "OLDEST_FIRST" => spec.kill_selection = KillSelection::OldestFirst,
            _ => refuse(
                "/killSelection",
                "must be YOUNGEST_FIRST or OLDEST_FIRST".into(),
            ),
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(MarathonError::Invalid(bad))
    }
}

/// A Marathon health check as a Task's, or the sub-path and why not.
fn health_check(
    h: HealthCheck,
    ports: &[String],
) -> Result<mosaic_crds::task::HealthCheck, (String, String)> {
    let port_name = |index: Option<usize>| {
        let i = index.unwrap_or(0);
        ports
            .get(i)
            .cloned()
            .ok_or_else(|| ("/portIndex".to_string(), format!("the app has no port {i}")))
    };
    if let Some(k) = h.rest.keys().next() {
        return Err((format!("/{k}"), format!("{k} is not supported by Mosaic")));
    }
    if h.ignore_http1xx == Some(true) {
        return Err((
            "/ignoreHttp1xx".into(),
            "Mosaic's HTTP checks count 1xx answers as failures".into(),
        ));
    }
    if h.max_consecutive_failures == Some(0) {
        return Err((
            "/maxConsecutiveFailures".into(),
            "0 (never kill) is not supported by Mosaic: an unhealthy instance is killed".into(),
        ));
    }
    if h.port.is_some() && h.port_index.is_some() {
        return Err(("/port".into(), "give port or portIndex, not both".into()));
    }
    // Marathon's defaults.
    let mut out = mosaic_crds::task::HealthCheck {
        initial_delay_seconds: h.grace_period_seconds.unwrap_or(300),
        period_seconds: h.interval_seconds.unwrap_or(60),
        timeout_seconds: h.timeout_seconds.unwrap_or(20),
        failure_threshold: h.max_consecutive_failures.unwrap_or(3),
        ..Default::default()
    };
    let protocol = h.protocol.as_deref().unwrap_or("HTTP");
    let http = matches!(protocol, "HTTP" | "MESOS_HTTP");
    if h.path.is_some() && !http {
        return Err(("/path".into(), format!("a {protocol} check has no path")));
    }
    if h.command.is_some() && protocol != "COMMAND" {
        return Err((
            "/command".into(),
            format!("a {protocol} check has no command"),
        ));
    }
    match protocol {
        "HTTP" | "MESOS_HTTP" => {
            let (port, port_name) = match h.port {
                Some(p) => (Some(p), None),
                None => (None, Some(port_name(h.port_index)?)),
            };
            out.http = Some(HttpCheck {
                port,
                port_name,
                path: h.path.unwrap_or_else(|| "/".into()),
            });
        }
        "TCP" | "MESOS_TCP" => {
            let (port, port_name) = match h.port {
                Some(p) => (Some(p), None),
                None => (None, Some(port_name(h.port_index)?)),
            };
            out.tcp = Some(TcpCheck { port, port_name });
        }
        "COMMAND" => {
            let Some(c) = h.command else {
                return Err(("/command".into(), "a COMMAND check needs a command".into()));
            };
            out.exec = Some(ExecCheck {
                command: c.text().to_string(),
            });
        }
        other => {
            return Err((
                "/protocol".into(),
                format!(
                    "{other} is not supported by Mosaic (HTTP, TCP, COMMAND, MESOS_HTTP, MESOS_TCP)"
                ),
            ));
        }
    }
    Ok(out)
}

/// `[field, OPERATOR, value?]` as a constraint.
fn constraint(c: &[String]) -> Option<Constraint> {
    let (field, op, value) = match c {
        [f, o] => (f, o, None),
        [f, o, v] => (f, o, Some(v.clone())),
        _ => return None,
    };
    let operator = match op.as_str() {
        "UNIQUE" => ConstraintOperator::Unique,
        "CLUSTER" => ConstraintOperator::Cluster,
        "GROUP_BY" => ConstraintOperator::GroupBy,
        "LIKE" => ConstraintOperator::Like,
        "UNLIKE" => ConstraintOperator::Unlike,
        "MAX_PER" => ConstraintOperator::MaxPer,
        "IS" => ConstraintOperator::Is,
        _ => return None,
    };
    Some(Constraint {
        field: field.clone(),
        operator,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(json: &str) -> AppIn {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn marathons_basic_example_becomes_an_app() {
        let mut spec = new_spec();
        apply(
            &mut spec,
            app(r#"{"id":"basic-0","cmd":"while [ true ] ; do echo 'Hello Marathon' ; sleep 5 ; done","cpus":0.1,"mem":10.0,"instances":1}"#),
        )
        .unwrap();
        assert_eq!(spec.replicas, 1);
        let t = &spec.template.spec;
        assert!(t.command.as_deref().unwrap().contains("Hello Marathon"));
        assert_eq!(t.resources.cpus, Some(Quantity("100m".into())));
        assert_eq!(t.resources.memory, Some(Quantity("10Mi".into())));
        assert_eq!(
            name_of("basic-0").unwrap(),
            ("/basic-0".into(), "basic-0".into())
        );
        assert_eq!(name_of("//prod/web").unwrap().1, "prod.web");
        assert!(name_of("/Web").is_err());
    }

    #[test]
    fn what_cannot_be_honoured_is_refused_by_path() {
        let mut spec = AppSpec::default();
        let err = apply(
            &mut spec,
            app(r#"{"cmd":"x","container":{"docker":{"image":"nginx"}},"fetch":[],"acceptedResourceRoles":["*"],
                "healthChecks":[{"protocol":"HTTPS"}],"constraints":[["hostname","NEAR"]],"env":{"P":{"secret":"s"}}}"#),
        )
        .unwrap_err();
        let MarathonError::Invalid(fields) = err else {
            panic!("not invalid")
        };
        let paths: Vec<&str> = fields.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/container",
                "/env/P",
                "/healthChecks(0)/protocol",
                "/constraints(0)"
            ]
        );
    }

    #[test]
    fn nested_fields_are_refused_rather_than_dropped() {
        let mut spec = new_spec();
        let err = apply(
            &mut spec,
            app(r#"{"cmd":"x","portDefinitions":[{"port":10001,"protocol":"udp","labels":{"vip":"a"},"extra":1}],
                "healthChecks":[{"protocol":"TCP","path":"/","ignoreHttp1xx":true}],
                "upgradeStrategy":{"minimumHealthCapacity":1,"drain":true},
                "unreachableStrategy":{"inactiveAfterSeconds":900,"expungeAfterSeconds":3600},
                "backoffFactor":0.5,"cpus":0.0001}"#),
        )
        .unwrap_err();
        let MarathonError::Invalid(fields) = err else {
            panic!("not invalid")
        };
        let paths: Vec<&str> = fields.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/unreachableStrategy",
                "/cpus",
                "/portDefinitions(0)/protocol",
                "/portDefinitions(0)/labels",
                "/portDefinitions(0)/port",
                "/portDefinitions(0)/extra",
                "/healthChecks(0)/ignoreHttp1xx",
                "/upgradeStrategy/drain",
                "/backoffFactor"
            ]
        );
    }

    #[test]
    fn ports_health_checks_and_strategy_translate() {
        let mut spec = AppSpec::default();
        apply(
            &mut spec,
            app(r#"{"cmd":"x","portDefinitions":[{"port":0,"name":"http"},{"port":8080,"protocol":"tcp"}],"requirePorts":true,
                "healthChecks":[{"protocol":"HTTP","path":"/health","portIndex":0,"gracePeriodSeconds":3,"intervalSeconds":2}],
                "constraints":[["hostname","UNIQUE"],["zone","GROUP_BY","2"]],
                "upgradeStrategy":{"minimumHealthCapacity":0.5,"maximumOverCapacity":0.2},"killSelection":"OLDEST_FIRST"}"#),
        )
        .unwrap();
        assert_eq!(spec.ports[0].name, "http");
        assert_eq!(spec.ports[0].host_port, None);
        assert_eq!(
            (spec.ports[1].name.as_str(), spec.ports[1].host_port),
            ("port1", Some(8080))
        );
        let hc = spec.template.spec.health_check.as_ref().unwrap();
        assert_eq!(hc.http.as_ref().unwrap().port_name.as_deref(), Some("http"));
        assert_eq!((hc.initial_delay_seconds, hc.period_seconds), (3, 2));
        assert_eq!(spec.constraints.len(), 2);
        assert_eq!(spec.upgrade_strategy.minimum_health_capacity, 0.5);
        assert_eq!(spec.kill_selection, KillSelection::OldestFirst);
        // A partial update changes what it names only.
        apply(&mut spec, app(r#"{"instances":5}"#)).unwrap();
        assert_eq!(spec.replicas, 5);
        assert_eq!(spec.ports.len(), 2);
    }
}
