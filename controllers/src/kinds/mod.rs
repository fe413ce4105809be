//! The kinds with a controller of their own, each a kube-runtime
//! `Controller` in its own module, registered here with one line in
//! [`CONTROLLERS`]; the manager (`crate::manager`) runs them all beside the
//! scheduler.

use futures::future::BoxFuture;
use kube::Client;

pub mod agent_specs;
pub mod apps;
pub mod drain;
pub mod maintenance;

/// A kind's controller: its name (in logs) and how to run it.
pub struct Registration {
    /// What the logs call it.
    pub name: &'static str,
    /// Runs it until the process ends.
    pub run: fn(Client) -> BoxFuture<'static, ()>,
}

/// Every kind's controller.
pub const CONTROLLERS: &[Registration] = &[
    Registration {
        name: "apps",
        run: |c| Box::pin(apps::run(c)),
    },
    Registration {
        name: "drain",
        run: |c| Box::pin(drain::run(c)),
    },
    Registration {
        name: "maintenance",
        run: |c| Box::pin(maintenance::run(c)),
    },
];
