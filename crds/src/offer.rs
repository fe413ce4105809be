//! Offer: resources offered to an External framework.

use crate::agent::AgentResources;
use crate::common::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A slice of one agent offered to an External framework. Accept by creating
/// Tasks with `spec.offer`; decline by deleting the Offer. What the control
/// plane offered is not to be edited (its tasks are held to it).
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[x_kube(validation = Rule::new("self == oldSelf")
    .message("an Offer's spec is immutable: it is what the control plane offered")
    .reason(Reason::FieldValueForbidden))]
#[kube(
    group = "mosaic.dev",
    doc = "An Offer is a slice of one agent offered to an External framework. Accept it by creating Tasks with spec.offer; decline it by deleting the Offer.",
    version = "v1alpha1",
    kind = "Offer",
    namespaced,
    category = "mosaic",
    status = "OfferStatus",
    selectable = ".spec.framework",
    selectable = ".spec.agent",
    printcolumn = r#"{"name":"Framework","type":"string","jsonPath":".spec.framework"}"#,
    printcolumn = r#"{"name":"Agent","type":"string","jsonPath":".spec.agent"}"#,
    printcolumn = r#"{"name":"CPUs","type":"string","jsonPath":".spec.resources.cpus"}"#,
    printcolumn = r#"{"name":"Memory","type":"string","jsonPath":".spec.resources.memory"}"#,
    printcolumn = r#"{"name":"Ports","type":"string","priority":1,"jsonPath":".spec.resources.ports"}"#,
    printcolumn = r#"{"name":"Expires","type":"date","jsonPath":".spec.expiresAt"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct OfferSpec {
    /// The framework this offer is made to.
    pub framework: String,
    /// The agent whose resources are offered.
    pub agent: String,
    /// What is offered: cpus and memory, and the agent's free host ports
    /// (`ports`, in Mesos's notation), all of them, as a Mesos offer carries
    /// them. A task launched on the offer is given its `spec.ports` from these.
    pub resources: AgentResources,
    /// When the offer is rescinded if unanswered (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

/// What the control plane reports about an offer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OfferStatus {
    /// The generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` and `Stalled`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}
