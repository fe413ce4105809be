//! Reservation: resources on an agent set aside for a role.

use crate::common::condition_types::{READY, STALLED};
use crate::common::{Condition, LabelSelector, ResourceQuantities};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Resources set aside for a role on one agent.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "mosaic.dev",
    doc = "A Reservation sets resources aside for a role on one agent, as a Mesos reservation does.",
    version = "v1alpha1",
    kind = "Reservation",
    category = "mosaic",
    status = "ReservationStatus",
    printcolumn = r#"{"name":"Role","type":"string","jsonPath":".spec.role"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Agent","type":"string","jsonPath":".status.agent"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ReservationSpec {
    /// The role the resources are reserved for (and its descendants).
    pub role: String,
    /// The agent to reserve on, by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Or: any agent whose labels match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_selector: Option<LabelSelector>,
    /// What is reserved.
    pub resources: ResourceQuantities,
}

/// Where a reservation stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ReservationPhase {
    /// Not bound to an agent yet.
    #[default]
    Pending,
    /// Bound to `status.agent`.
    Bound,
    /// No agent can hold it.
    Unsatisfiable,
}

/// What the control plane reports about a reservation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReservationStatus {
    /// Pending, Bound or Unsatisfiable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<ReservationPhase>,
    /// The agent holding the reservation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// The generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` and `Stalled`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// A merge patch of a Reservation's status, as the reservation controller
/// writes it: bound to an agent, or unsatisfiable (its agent cleared).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ReservationStatusPatch {
    /// What it sets.
    #[serde(flatten)]
    pub set: ReservationStatus,
    /// Clears `agent` (written as null).
    #[serde(
        rename = "agent",
        skip_serializing_if = "crate::lifecycle::not",
        serialize_with = "crate::lifecycle::null"
    )]
    pub clear_agent: bool,
}

impl ReservationStatusPatch {
    /// Bound to `agent` (`message` says what is reserved there).
    pub fn bound(
        agent: &str,
        message: &str,
        generation: Option<i64>,
        now: k8s_openapi::jiff::Timestamp,
    ) -> Self {
        ReservationStatusPatch {
            set: ReservationStatus {
                phase: Some(ReservationPhase::Bound),
                agent: Some(agent.into()),
                observed_generation: generation,
                conditions: vec![crate::conditions::new(
                    READY, true, "Bound", message, generation, now,
                )],
            },
            clear_agent: false,
        }
    }

    /// No agent can hold it (`why`): not bound, Stalled.
    pub fn unsatisfiable(
        why: &str,
        generation: Option<i64>,
        now: k8s_openapi::jiff::Timestamp,
    ) -> Self {
        let r = "Unsatisfiable";
        ReservationStatusPatch {
            set: ReservationStatus {
                phase: Some(ReservationPhase::Unsatisfiable),
                agent: None,
                observed_generation: generation,
                conditions: vec![
                    crate::conditions::new(READY, false, r, why, generation, now),
                    crate::conditions::new(STALLED, true, r, why, generation, now),
                ],
            },
            clear_agent: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unsatisfiable_reservation_loses_its_agent_and_stalls() {
        let now = k8s_openapi::jiff::Timestamp::from_second(1_800_000_000).unwrap();
        let v = serde_json::to_value(ReservationStatusPatch::unsatisfiable(
            "no room",
            Some(3),
            now,
        ))
        .unwrap();
        assert_eq!(v["phase"], "Unsatisfiable");
        assert!(v.get("agent").is_some_and(|a| a.is_null()), "{v}");
        assert_eq!(v["conditions"][1]["type"], "Stalled");
        assert_eq!(v["conditions"][1]["status"], "True");
        let v = serde_json::to_value(ReservationStatusPatch::bound("a1", "4 cpus", Some(3), now))
            .unwrap();
        assert_eq!(
            (v["phase"].as_str(), v["agent"].as_str()),
            (Some("Bound"), Some("a1"))
        );
        assert_eq!(v["observedGeneration"], 3);
    }
}
