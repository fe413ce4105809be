//! Role: a weighted share of the cluster, with optional quota and parent.

use crate::common::{Condition, ResourceQuantities};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A share of the cluster. The role `default` exists implicitly with weight 1.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "mosaic.dev",
    doc = "A Role is a share of the cluster: its weight in dominant resource fairness, and its quota (guarantee and limit).",
    version = "v1alpha1",
    kind = "Role",
    category = "mosaic",
    status = "RoleStatus",
    printcolumn = r#"{"name":"Weight","type":"number","jsonPath":".spec.weight"}"#,
    printcolumn = r#"{"name":"Parent","type":"string","jsonPath":".spec.parent"}"#,
    printcolumn = r#"{"name":"Share","type":"string","jsonPath":".status.dominantShare"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct RoleSpec {
    /// Weighted DRF: weight 3 gets three times the share of weight 1.
    #[serde(default = "default_weight")]
    #[schemars(range(min = 0.0))]
    pub weight: f64,
    /// Guaranteed and maximum resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<Quota>,
    /// Name of the parent role; shares nest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
}

fn default_weight() -> f64 {
    1.0
}

/// Quota of a role.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Quota {
    /// Offered to the role before other roles' pending work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guarantee: Option<ResourceQuantities>,
    /// Never exceeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<ResourceQuantities>,
}

/// What the allocator reports about a role.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleStatus {
    /// Resources allocated to the role and its descendants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocated: Option<ResourceQuantities>,
    /// The role's dominant share, as a decimal string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dominant_share: Option<String>,
    /// The generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` and `Stalled`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}
