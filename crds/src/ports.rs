//! Host ports: what a Task (or each instance of an App) asks of its agent's
//! `ports` resource, and what it was given. Agents offer port ranges as Mesos
//! agents do (`[31000-32000]` by default); the scheduler gives each task
//! distinct ports of its agent and records them in `status.ports`; the agent
//! exports them to the process as Marathon does (`PORT0`.., `PORT`,
//! `PORT_<NAME>`, `PORTS`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use mosaic_allocator::{PortRanges, PortRangesError};

/// The most ports one task may ask for.
pub const MAX_PORTS: usize = 64;

/// One named host port a task needs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortSpec {
    /// Its name: lower-case letters, digits and `-`, at most 15 characters
    /// (as a Kubernetes container port's). The process finds the port in
    /// `PORT_<NAME>` (upper-cased, `-` as `_`); a health check names it by
    /// `portName`.
    #[schemars(length(min = 1, max = 15), pattern(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub name: String,
    /// A fixed port on the agent's host (one of the ports its agent offers);
    /// unset or 0: any free port of the agent. A task whose fixed port is
    /// taken on every agent with room waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 65535))]
    pub host_port: Option<u16>,
}

/// A host port a task was given.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TaskPort {
    /// The name of the port in `spec.ports`.
    pub name: String,
    /// The port on the agent's host.
    pub port: u16,
}

/// What the allocator is asked for: each port in order, `0` for any.
pub fn request(ports: &[PortSpec]) -> Vec<u16> {
    ports.iter().map(|p| p.host_port.unwrap_or(0)).collect()
}

/// The ports given, named as asked (`given` in the order of `ports`).
pub fn named(ports: &[PortSpec], given: &[u16]) -> Vec<TaskPort> {
    ports
        .iter()
        .zip(given)
        .map(|(p, g)| TaskPort {
            name: p.name.clone(),
            port: *g,
        })
        .collect()
}

/// The environment a task's process gets for its ports, as Marathon sets it:
/// `PORT0`..`PORT{n-1}` by position, `PORT` (the first), `PORT_<NAME>` by
/// name, and `PORTS` (all, comma-separated).
pub fn env(given: &[TaskPort]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = given
        .iter()
        .enumerate()
        .map(|(i, p)| (format!("PORT{i}"), p.port.to_string()))
        .collect();
    if let Some(first) = given.first() {
        env.push(("PORT".into(), first.port.to_string()));
    }
    env.extend(
        given
            .iter()
            .map(|p| (format!("PORT_{}", env_name(&p.name)), p.port.to_string())),
    );
    if !given.is_empty() {
        let all: Vec<String> = given.iter().map(|p| p.port.to_string()).collect();
        env.push(("PORTS".into(), all.join(",")));
    }
    env
}

/// A port name as it appears in an environment variable's name.
fn env_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_is_marathons() {
        let given = vec![
            TaskPort {
                name: "http".into(),
                port: 31005,
            },
            TaskPort {
                name: "admin-api".into(),
                port: 8080,
            },
        ];
        let env = env(&given);
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("PORT0"), Some("31005"));
        assert_eq!(get("PORT1"), Some("8080"));
        assert_eq!(get("PORT"), Some("31005"));
        assert_eq!(get("PORT_HTTP"), Some("31005"));
        assert_eq!(get("PORT_ADMIN_API"), Some("8080"));
        assert_eq!(get("PORTS"), Some("31005,8080"));
        assert!(super::env(&[]).is_empty());
        let spec = vec![
            PortSpec {
                name: "a".into(),
                host_port: None,
            },
            PortSpec {
                name: "b".into(),
                host_port: Some(9000),
            },
        ];
        assert_eq!(request(&spec), vec![0, 9000]);
        assert_eq!(named(&spec, &[31000, 9000])[1].port, 9000);
    }
}
