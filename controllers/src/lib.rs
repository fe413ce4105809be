//! Mosaic's control loops.
//!
//! The allocator core ([`allocator`], the `mosaic-allocator` crate):
//! hierarchical weighted Dominant Resource Fairness across roles and then
//! frameworks, with quota guarantees and limits, reservations, refuse
//! filters and suppression, as plain data structures with no API client (the
//! crate depends on no API client), so it is tested and measured on its own.
//! Every controller reads the API through one shared watch and cache per kind
//! ([`index`]). The scheduler loop ([`scheduler`]) keeps the allocator up to
//! date from what changed ([`watches`]) through a view that follows what changed ([`view`]:
//! Roles, Frameworks, Reservations via [`reservations`], Tasks, Agents and
//! their liveness via [`liveness`]) and writes its decisions back (bindings,
//! in the background through [`binder`], reservation and task status).
//!
//! A newcomer starts at [`scheduler::run`], then [`allocator::Allocator::allocate`].

/// The allocator, its own crate (`allocator/`): plain data, no API client.
pub use mosaic_allocator as allocator;
pub mod binder;
pub mod binding;
pub mod constraints;
pub mod events;
pub mod index;
pub mod keys;
pub mod kinds;
pub mod leader;
pub mod lean;
pub mod liveness;
pub mod manager;
pub mod metrics;
pub mod offers;
pub mod refused;
pub mod reservations;
pub mod scheduler;
pub mod status;
pub mod task_writes;
pub mod view;
pub mod watches;

#[cfg(test)]
mod fake_api;
#[cfg(test)]
mod reservations_tests;
#[cfg(test)]
mod view_tests;
#[cfg(test)]
mod writers_tests;
