//! Placement constraints: Marathon's operators on an agent's `hostname` (its
//! name) or one of its labels, for Apps (`spec.constraints`) and plain Tasks
//! (`spec.constraints`). The rules a constraint must follow are CEL in the
//! CRD, so they hold on a Kubernetes cluster as on `mosaic server`.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// One placement constraint. `field` is `hostname` (the agent's name) or
/// an agent label such as `topology.mosaic.dev/zone`; an agent without the
/// label meets no operator but `UNLIKE`. The operators that count instances
/// (`UNIQUE`, `CLUSTER` without a value, `GROUP_BY`, `MAX_PER`) count the
/// tasks of the same App (the tasks labelled with the same `mosaic.dev/app`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[x_kube(validation = Rule::new("!has(self.value) || self.operator != 'UNIQUE'")
    .message("UNIQUE takes no value")
    .field_path(".value"))]
#[x_kube(validation = Rule::new("has(self.value) || !(self.operator in ['LIKE', 'UNLIKE', 'IS', 'MAX_PER'])")
    .message("LIKE, UNLIKE, IS and MAX_PER need a value")
    .reason(Reason::FieldValueRequired)
    .field_path(".value"))]
#[x_kube(validation = Rule::new("!has(self.value) || !(self.operator in ['GROUP_BY', 'MAX_PER']) || self.value.matches('^[0-9]+$')")
    .message("the value of GROUP_BY and MAX_PER is a count (a whole number)")
    .field_path(".value"))]
#[serde(rename_all = "camelCase")]
pub struct Constraint {
    /// `hostname`, or the name of an agent label.
    #[schemars(length(min = 1, max = 317))]
    pub field: String,
    /// What the field's value must satisfy.
    pub operator: ConstraintOperator,
    /// The operator's argument: a value (`CLUSTER`, `IS`), a regular
    /// expression matching the whole value (`LIKE`, `UNLIKE`) or a count
    /// (`GROUP_BY`: at least this many values; `MAX_PER`: at most this many
    /// tasks per value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub value: Option<String>,
}

/// Marathon's constraint operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConstraintOperator {
    /// No two of the App's tasks on agents with the same value.
    Unique,
    /// All on agents with this value (with none: the value the first got).
    Cluster,
    /// Spread evenly over the values the agents have (at least `value` of them).
    GroupBy,
    /// The value matches the regular expression.
    Like,
    /// The value does not match it, or the agent lacks the field.
    Unlike,
    /// At most `value` of the App's tasks per value.
    MaxPer,
    /// The value is exactly this.
    Is,
}
