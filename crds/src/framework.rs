//! Framework: a scheduler that receives offers (Builtin or External).

use crate::common::{Condition, ResourceQuantities};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A framework receives offers of agent resources for its role.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "mosaic.dev",
    doc = "A Framework receives offers of agent resources for its role and decides what to launch, as a Mesos framework does; the Builtin scheduler places its Tasks itself.",
    version = "v1alpha1",
    kind = "Framework",
    namespaced,
    shortname = "fw",
    category = "mosaic",
    category = "all",
    status = "FrameworkStatus",
    selectable = ".spec.role",
    printcolumn = r#"{"name":"Role","type":"string","jsonPath":".spec.role"}"#,
    printcolumn = r#"{"name":"Scheduler","type":"string","jsonPath":".spec.scheduler"}"#,
    printcolumn = r#"{"name":"Share","type":"string","jsonPath":".status.dominantShare"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct FrameworkSpec {
    /// The role whose share this framework draws on.
    #[serde(default = "default_role")]
    pub role: String,
    /// Who places this framework's tasks.
    #[serde(default)]
    pub scheduler: SchedulerKind,
    /// How the Builtin scheduler spreads tasks over agents.
    #[serde(default)]
    pub placement: Placement,
    /// After an offer is declined, that agent is not re-offered to this framework for this long.
    #[serde(default = "default_refuse_seconds")]
    pub refuse_seconds: u32,
    /// External only: an unanswered offer is rescinded after this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer_timeout_seconds: Option<u32>,
    /// External only: stop receiving offers.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suppressed: bool,
}

fn default_role() -> String {
    "default".into()
}

fn default_refuse_seconds() -> u32 {
    5
}

/// Who places a framework's tasks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum SchedulerKind {
    /// The control plane places Task objects on the offers this framework receives.
    #[default]
    Builtin,
    /// The framework's own program receives Offer objects and accepts them.
    External,
}

/// Placement strategy of the Builtin scheduler.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Placement {
    /// Prefer the least-loaded agent.
    #[default]
    Spread,
    /// Fill one agent before the next.
    BinPack,
}

/// What the control plane reports about a framework.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FrameworkStatus {
    /// Task counts per phase.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tasks: BTreeMap<String, u32>,
    /// Resources allocated to this framework's tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocated: Option<ResourceQuantities>,
    /// The framework's dominant share within its role, as a decimal string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dominant_share: Option<String>,
    /// Offers made and not yet answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outstanding_offers: Option<u32>,
    /// The generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` and `Stalled`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// A merge patch of a Framework's status, as the scheduler writes it: what
/// it reports, with the task counts of phases no task is in any more written
/// as null (a merge patch keeps the keys it does not name).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FrameworkStatusPatch {
    /// Task counts per phase; `None` removes a phase's count.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tasks: BTreeMap<String, Option<u32>>,
    /// The rest of what it reports (its `tasks` unused).
    #[serde(flatten)]
    pub rest: FrameworkStatus,
}

impl FrameworkStatusPatch {
    /// The patch that takes the status from `have` to `want`.
    pub fn between(have: &FrameworkStatus, mut want: FrameworkStatus) -> Self {
        let mut tasks: BTreeMap<String, Option<u32>> = BTreeMap::new();
        if have.tasks != want.tasks {
            tasks.extend(have.tasks.keys().map(|k| (k.clone(), None)));
            tasks.extend(want.tasks.iter().map(|(k, n)| (k.clone(), Some(*n))));
        }
        want.tasks.clear();
        FrameworkStatusPatch { tasks, rest: want }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_framework_patch_removes_the_counts_of_phases_no_task_is_in() {
        let have = FrameworkStatus {
            tasks: [("Pending".to_string(), 2), ("Running".to_string(), 1)].into(),
            ..FrameworkStatus::default()
        };
        let want = FrameworkStatus {
            tasks: [("Running".to_string(), 3)].into(),
            outstanding_offers: Some(0),
            ..FrameworkStatus::default()
        };
        let v = serde_json::to_value(FrameworkStatusPatch::between(&have, want)).unwrap();
        assert_eq!(
            v,
            json!({"tasks": {"Pending": null, "Running": 3}, "outstandingOffers": 0})
        );
        // Counts that did not change are not written.
        let same = FrameworkStatusPatch::between(&have, have.clone());
        assert!(serde_json::to_value(same).unwrap().get("tasks").is_none());
    }
}
