//! The kinds with a controller of their own, each a kube-runtime
//! `Controller` in its own module, registered here with one line in
//! [`CONTROLLERS`]; the manager (`crate::manager`) runs them all beside the
//! scheduler.

use crate::index::Registry;
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
    /// Runs it until the process ends, reading the kinds it watches from
    /// the shared reflectors.
    pub run: fn(Client, Registry) -> BoxFuture<'static, ()>,
}

/// Every kind's controller.
pub const CONTROLLERS: &[Registration] = &[
    Registration {
        name: "apps",
        run: |c, r| Box::pin(apps::run(c, r)),
    },
    Registration {
        name: "drain",
        run: |c, r| Box::pin(drain::run(c, r)),
    },
    Registration {
        name: "maintenance",
        run: |c, r| Box::pin(maintenance::run(c, r)),
    },
];
