//! Agent: one machine that runs tasks. Created and kept up to date by the node agent.

use crate::common::{Condition, ResourceQuantities};
use crate::ports::PortRanges;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What an operator may change on an Agent.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[x_kube(validation = Rule::new("!has(self.drain) || self.unschedulable")
    .message("a draining agent is cordoned too: set spec.unschedulable: true with spec.drain (mosaic drain does both)")
    .field_path(".unschedulable"))]
#[kube(
    group = "mosaic.dev",
    doc = "An Agent is one machine that runs tasks: the node agent registers it, reports what it offers and its health, and runs the tasks bound to it.",
    version = "v1alpha1",
    kind = "Agent",
    shortname = "ag",
    category = "mosaic",
    status = "AgentStatus",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"CPUs","type":"string","jsonPath":".status.capacity.cpus"}"#,
    printcolumn = r#"{"name":"Memory","type":"string","jsonPath":".status.capacity.memory"}"#,
    printcolumn = r#"{"name":"Cgroup","type":"string","jsonPath":".status.cgroup"}"#,
    printcolumn = r#"{"name":"Ports","type":"string","priority":1,"jsonPath":".status.capacity.ports"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct AgentSpec {
    /// Cordon: when true no new offers are made from this agent; running tasks stay.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unschedulable: bool,
    /// Drain: work moves off this (cordoned) agent. App instances are started
    /// elsewhere before these are killed, within each App's upgrade strategy;
    /// other tasks may finish until the deadline, then are killed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain: Option<Drain>,
    /// A planned maintenance window: at its start the agent is cordoned
    /// and drained (as `mosaic drain` with a deadline of 10 minutes, or the
    /// window's end if sooner); at its end it is uncordoned again, unless it
    /// was cordoned before the window began. Status shows the window and a
    /// `Maintenance` condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<MaintenanceWindow>,
}

/// A drain under way.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Drain {
    /// When the tasks still on the agent are killed (RFC 3339).
    pub deadline: String,
}

/// A planned maintenance window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceWindow {
    /// When the window starts (RFC 3339, e.g. `2026-12-24T22:00:00Z`).
    #[schemars(pattern(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$"))]
    pub start: String,
    /// How long it lasts (at most a year).
    #[schemars(range(min = 1, max = 31_536_000))]
    pub duration_seconds: i64,
}

/// The maintenance window the control plane acts on, as it reads it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceStatus {
    /// When it starts (RFC 3339).
    pub start: String,
    /// When it ends (RFC 3339).
    pub end: String,
}

/// The condition an Agent with a maintenance window has: True during the
/// window (reason `InMaintenance`), False before it (`Scheduled`) and after
/// it (`WindowEnded`).
pub const MAINTENANCE_CONDITION: &str = "Maintenance";

/// What an agent has: quantities, and host port ranges.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentResources {
    /// CPU cores; `500m` is half a core.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<Quantity>,
    /// Memory in bytes, with binary or decimal suffixes (`128Mi`, `1G`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Quantity>,
    /// Scratch disk in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<Quantity>,
    /// Host port ranges tasks may be given, in Mesos's notation
    /// (`[31000-32000,40000-40010]`). Unset: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096), pattern(r"^\[[0-9,\- ]*\]$"))]
    pub ports: Option<String>,
}

impl AgentResources {
    /// Its quantities.
    pub fn quantities(&self) -> ResourceQuantities {
        ResourceQuantities {
            cpus: self.cpus.clone(),
            memory: self.memory.clone(),
            disk: self.disk.clone(),
        }
    }

    /// Its port ranges (none when unset or unreadable: an agent's word
    /// that does not parse gives it no ports).
    pub fn port_ranges(&self) -> PortRanges {
        self.ports
            .as_deref()
            .and_then(|p| p.parse().ok())
            .unwrap_or_default()
    }

    /// `quantities` with `ports`.
    pub fn new(quantities: ResourceQuantities, ports: &PortRanges) -> Self {
        Self {
            cpus: quantities.cpus,
            memory: quantities.memory,
            disk: quantities.disk,
            ports: Some(ports.to_string()),
        }
    }
}

/// What the node agent and the control plane report about an Agent.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentStatus {
    /// Everything the machine has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<AgentResources>,
    /// What may be allocated to tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocatable: Option<AgentResources>,
    /// What is allocated to tasks now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocated: Option<ResourceQuantities>,
    /// The agent's HTTPS endpoint (logs, metrics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The agent endpoint's self-signed certificate (PEM), which clients of
    /// `address` pin: the Agent object is written only by the agent identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// `v1`, `v2` or `none` (no enforcement available).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
    /// The agent's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The maintenance window of `spec.maintenance`, as acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<MaintenanceStatus>,
    /// `Ready` is False when heartbeats stop; `Maintenance` while the
    /// agent has a maintenance window.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

impl AgentStatus {
    /// What a node agent reports of itself when it registers: what it
    /// offers (`resources`, all allocatable), its cgroup mode, its version,
    /// where its endpoint listens (address and certificate), and Ready.
    pub fn registered(
        resources: AgentResources,
        cgroup: &str,
        version: &str,
        endpoint: Option<(String, String)>,
        generation: Option<i64>,
        now: k8s_openapi::jiff::Timestamp,
    ) -> AgentStatus {
        let (address, certificate) = endpoint.unzip();
        AgentStatus {
            capacity: Some(resources.clone()),
            allocatable: Some(resources),
            cgroup: Some(cgroup.into()),
            version: Some(version.into()),
            address,
            certificate,
            observed_generation: generation,
            conditions: vec![crate::conditions::new(
                crate::common::condition_types::READY,
                true,
                "Heartbeating",
                "the agent is running and renewing its lease",
                generation,
                now,
            )],
            ..AgentStatus::default()
        }
    }

    /// The host the agent is reached at: that of its endpoint's `address`
    /// (`https://10.0.0.5:5051` gives `10.0.0.5`, `https://[::1]:5051` gives
    /// `::1`); `None` without one.
    pub fn host(&self) -> Option<&str> {
        let address = self.address.as_deref()?;
        let rest = address.split_once("://").map_or(address, |(_, r)| r);
        let authority = rest.split('/').next()?;
        let host = match authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next()?,
            None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
        };
        (!host.is_empty()).then_some(host)
    }
}

#[cfg(test)]
mod host_tests {
    use super::AgentStatus;

    #[test]
    fn the_host_is_that_of_the_address() {
        let host = |a: &str| {
            AgentStatus {
                address: Some(a.into()),
                ..Default::default()
            }
            .host()
            .map(str::to_string)
        };
        assert_eq!(host("https://10.0.0.5:5051").as_deref(), Some("10.0.0.5"));
        assert_eq!(host("https://[::1]:5051/x").as_deref(), Some("::1"));
        assert_eq!(host("node-1:5051").as_deref(), Some("node-1"));
        assert_eq!(host("https://:5051"), None);
        assert_eq!(AgentStatus::default().host(), None);
    }
}
