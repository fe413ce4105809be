//! The controllers' Task watches decode [`LeanTask`]s (Tasks without their
//! managedFields, skipped unparsed) and hand on Tasks.

use kube::runtime::watcher;
pub use mosaic_crds::lean::LeanTask;
use mosaic_crds::task::Task;

/// A watch event of lean Tasks as one of Tasks.
pub fn task_event(e: watcher::Event<LeanTask>) -> watcher::Event<Task> {
    match e {
        watcher::Event::Apply(t) => watcher::Event::Apply(t.0),
        watcher::Event::Delete(t) => watcher::Event::Delete(t.0),
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitApply(t) => watcher::Event::InitApply(t.0),
        watcher::Event::InitDone => watcher::Event::InitDone,
    }
}
