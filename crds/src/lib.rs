//! Mosaic's resource types: the user-facing contract of `../shared/spec/resources.md` as Rust.
//!
//! Each kind lives in its own module and derives `kube::CustomResource`, so the
//! CustomResourceDefinitions (schemas, printer columns, short names, selectable
//! fields) are generated from these types. [`all_crds`] returns them in a fixed
//! order; `crds/generated/crds.yaml` is that output committed, and a test fails
//! when the two drift apart.
//!
//! A newcomer starts at [`task::TaskSpec`]: it is what users write most.

pub mod agent;
pub mod app;
pub mod binding;
pub mod common;
pub mod conditions;
pub mod constraint;
#[cfg(feature = "events")]
pub mod events;
pub mod framework;
pub mod join;
pub mod lean;
pub mod lifecycle;
pub mod offer;
pub mod ports;
pub mod reference;
pub mod reservation;
pub mod role;
pub mod status_apply;
pub mod task;

pub use agent::Agent;
pub use app::App;
pub use common::{Condition, ResourceQuantities};
pub use framework::Framework;
pub use offer::Offer;
pub use reservation::Reservation;
pub use role::Role;
pub use task::Task;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// The API group of every Mosaic kind.
pub const GROUP: &str = "mosaic.dev";
/// The served and stored version.
pub const VERSION: &str = "v1alpha1";

/// Every Mosaic CRD, in a stable order.
pub fn all_crds() -> Vec<CustomResourceDefinition> {
    vec![
        Agent::crd(),
        Role::crd(),
        Framework::crd(),
        Reservation::crd(),
        Task::crd(),
        Offer::crd(),
        App::crd(),
    ]
}

/// The status an object of a Mosaic kind has from its creation on (the API
/// server writes it, as a Pod starts Pending), so that status checkers
/// (kstatus behind `helm install --wait` and Flux; `kubectl wait`) wait for
/// its controller: `None` for kinds whose status starts empty.
pub fn initial_status(kind: &str, now: k8s_openapi::jiff::Timestamp) -> Option<serde_json::Value> {
    let status = match kind {
        "Task" => serde_json::to_value(task::TaskStatus::created(now, 1)),
        "App" => serde_json::to_value(app::AppStatus::created(now)),
        _ => return None,
    };
    Some(status.expect("a status is JSON"))
}

/// The CRDs as one multi-document YAML stream (what `mosaic crds` prints).
pub fn all_crds_yaml() -> String {
    let mut out = String::new();
    for crd in all_crds() {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(&crd).expect("a CRD always serialises to YAML"));
    }
    out
}
