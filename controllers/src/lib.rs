//! Mosaic's control loops.
//!
//! Today this crate holds the allocator core ([`allocator`]): hierarchical
//! weighted Dominant Resource Fairness across roles and then frameworks, with
//! quota guarantees and limits, reservations, refuse filters and suppression,
//! as plain data structures with no API client, so it is tested and measured
//! on its own. The kube-rs reconcilers that feed it from the API (Roles,
//! Frameworks, Reservations, Tasks, Agents) and write its decisions back
//! (bindings, Offer objects, status) build on it.
//!
//! A newcomer starts at [`allocator::Allocator::allocate`].

pub mod allocator;
pub mod liveness;
pub mod scheduler;
