//! Types shared by several kinds: resource quantities and status conditions.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// An amount of each resource Mosaic allocates, as Kubernetes quantity strings
/// (`cpus: "500m"`, `memory: 256Mi`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ResourceQuantities {
    /// CPU cores; `500m` is half a core.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<Quantity>,
    /// Memory in bytes, with binary or decimal suffixes (`128Mi`, `1G`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Quantity>,
    /// Scratch disk in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<Quantity>,
}

/// The condition types every Mosaic kind reports.
pub mod condition_types {
    /// The object has reached what its spec asks for.
    pub const READY: &str = "Ready";
    /// The object failed for good and will not make progress without a change.
    pub const STALLED: &str = "Stalled";
    /// A Task was bound to an agent.
    pub const SCHEDULED: &str = "Scheduled";
}
