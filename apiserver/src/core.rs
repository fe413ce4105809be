//! What lies beneath the HTTP layer: the store, what is served, and the
//! namespaces known to be active. The request handlers (`http::App`, which
//! holds one and reads its fields through it) and the work that acts on the
//! store directly (the garbage collector, a CRD's objects removed with it)
//! share it, so neither of the latter imports the HTTP layer.

use crate::namespaces::ActiveNamespaces;
use crate::registry::Registry;
use crate::store::Store;
use std::sync::Arc;

/// The store, the registry and the active namespaces.
pub struct Core {
    /// The store.
    pub store: Arc<dyn Store>,
    /// What is served.
    pub registry: Arc<Registry>,
    /// The namespaces known to be active (creates in them skip a store read).
    pub namespaces: Arc<ActiveNamespaces>,
}
