//! What the controllers read off Tasks: the resources a task holds in the
//! allocator's units, a framework's and a task's cache keys.

use crate::allocator::Resources;
use kube::runtime::reflector::ObjectRef;
use mosaic_crds::Task;

/// The resources `t` is allocated, in the allocator's units.
pub(crate) fn task_resources(t: &Task) -> Resources {
    Resources::new(t.spec.cpus_milli(), t.spec.memory_bytes())
}

/// A framework's key: `namespace/name`.
pub(crate) fn framework_key(ns: &str, name: &str) -> String {
    format!("{ns}/{name}")
}

/// The cache key of a task's `namespace/name`.
pub(crate) fn task_ref(key: &str) -> ObjectRef<Task> {
    let (ns, name) = key.split_once('/').unwrap_or(("", key));
    ObjectRef::new(name).within(ns)
}

/// A quantity in the allocator's units (what cannot be read counts as none).
pub(crate) fn quantities(q: &mosaic_crds::ResourceQuantities) -> Resources {
    Resources::new(
        q.cpus_milli().ok().flatten().unwrap_or(0),
        q.memory_bytes().ok().flatten().unwrap_or(0),
    )
}
