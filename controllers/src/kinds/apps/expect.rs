//! What an App's reconciles did that its Task store has not shown yet (as a
//! ReplicaSet controller's expectations): an instance created is counted
//! before its watch event arrives, and one deleted counts as being killed,
//! so a reconcile that runs on a stale store neither starts instances twice
//! nor kills more than it meant to. As a ReplicaSet's, an expectation is met
//! when the watch shows the instance (its creation, its deletion), whatever
//! happened to it since: one created and deleted by someone else before the
//! next reconcile is not counted on for ever. One the watch never shows
//! lapses after a minute.

use super::plan::Instance;
use crate::index::Index;
use kube::ResourceExt;
use kube::runtime::reflector::Store;
use mosaic_crds::task::Task;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long an unmet expectation is kept.
const LAPSE: Duration = Duration::from_secs(60);

/// How often lapsed expectations of Apps no reconcile looks at are dropped
/// (not at every write: a rollout records thousands).
const SWEEP_EVERY: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Pending {
    created: HashMap<String, (Instance, Instant)>,
    deleted: HashMap<String, Instant>,
}

/// Expectations of every App, by uid.
#[derive(Default)]
pub struct Expectations(Mutex<All>);

#[derive(Default)]
struct All {
    apps: HashMap<String, Pending>,
    swept: Option<Instant>,
}

impl Expectations {
    /// Records an instance created for App `uid`.
    pub fn created(&self, uid: &str, instance: Instance) {
        let mut all = self.0.lock().expect("expectations lock");
        sweep(&mut all);
        let p = all.apps.entry(uid.to_string()).or_default();
        p.created
            .insert(instance.name.clone(), (instance, Instant::now()));
    }

    /// Records an instance of App `uid` deleted.
    pub fn deleted(&self, uid: &str, name: &str) {
        let mut all = self.0.lock().expect("expectations lock");
        sweep(&mut all);
        let p = all.apps.entry(uid.to_string()).or_default();
        p.deleted.insert(name.to_string(), Instant::now());
    }

    /// Forgets an App.
    pub fn forget(&self, uid: &str) {
        self.0.lock().expect("expectations lock").apps.remove(uid);
    }

    /// `seen` (App `uid`'s instances as the store has them) with what the
    /// store has not caught up with yet; met expectations are dropped.
    pub fn apply(&self, uid: &str, seen: &mut Vec<Instance>) {
        let mut all = self.0.lock().expect("expectations lock");
        let Some(p) = all.apps.get_mut(uid) else {
            return;
        };
        let now = Instant::now();
        // Looked up by name, not searched for: an App has thousands of
        // instances and, in a rollout, hundreds of expectations.
        {
            let names: HashSet<&str> = seen.iter().map(|i| i.name.as_str()).collect();
            p.created.retain(|name, (_, at)| {
                now.duration_since(*at) < LAPSE && !names.contains(name.as_str())
            });
        }
        seen.extend(p.created.values().map(|(i, _)| i.clone()));
        let index: HashMap<&str, usize> = seen
            .iter()
            .enumerate()
            .map(|(n, i)| (i.name.as_str(), n))
            .collect();
        let mut terminating = Vec::new();
        p.deleted.retain(|name, at| {
            let Some(&n) = index.get(name.as_str()) else {
                return false;
            };
            if seen[n].terminating || now.duration_since(*at) >= LAPSE {
                return false;
            }
            terminating.push(n);
            true
        });
        drop(index);
        for n in terminating {
            seen[n].terminating = true;
        }
        if p.created.is_empty() && p.deleted.is_empty() {
            all.apps.remove(uid);
        }
    }

    /// The watch showed `t`: what was expected of it is met (its creation;
    /// its deletion too, once it is being deleted or gone).
    fn observed(&self, t: &Task, gone: bool) {
        let deleting = gone || t.metadata.deletion_timestamp.is_some();
        let name = t.name_any();
        let mut all = self.0.lock().expect("expectations lock");
        for o in t.owner_references().iter().filter(|o| o.kind == "App") {
            let Some(p) = all.apps.get_mut(&o.uid) else {
                continue;
            };
            p.created.remove(&name);
            if deleting {
                p.deleted.remove(&name);
            }
            if p.created.is_empty() && p.deleted.is_empty() {
                all.apps.remove(&o.uid);
            }
        }
    }
}

/// Fed by the shared Task reflector, after the index of instances by App.
impl Index<Task> for Expectations {
    fn apply(&self, obj: &Arc<Task>) {
        self.observed(obj, false);
    }
    fn delete(&self, obj: &Arc<Task>) {
        self.observed(obj, true);
    }
    // A relist shows what is there; what is missing stays expected until a
    // reconcile sees it or it lapses.
    fn reset(&self, _: &Store<Task>) {}
}

/// Drops what has lapsed, for Apps no reconcile will look at again
/// (deleted ones), every [`SWEEP_EVERY`] at most.
fn sweep(all: &mut All) {
    let now = Instant::now();
    if all
        .swept
        .is_some_and(|at| now.duration_since(at) < SWEEP_EVERY)
    {
        return;
    }
    all.swept = Some(now);
    all.apps.retain(|_, p| {
        p.created
            .retain(|_, (_, at)| now.duration_since(*at) < LAPSE);
        p.deleted.retain(|_, at| now.duration_since(*at) < LAPSE);
        !p.created.is_empty() || !p.deleted.is_empty()
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::Timestamp;

    fn inst(name: &str) -> Instance {
        Instance {
            name: name.into(),
            revision: "r".into(),
            created: Timestamp::UNIX_EPOCH,
            phase: None,
            reason: None,
            ready_since: None,
            terminating: false,
            draining: false,
            host: None,
            ports: Vec::new(),
            deletion_cost: 0,
        }
    }

    #[test]
    fn a_stale_store_is_completed_until_it_catches_up() {
        let e = Expectations::default();
        e.created("app", inst("new"));
        e.deleted("app", "old");
        let mut seen = vec![inst("old")];
        e.apply("app", &mut seen);
        assert_eq!(
            seen.len(),
            2,
            "the created one counts before the store shows it"
        );
        assert!(
            seen[0].terminating,
            "the deleted one counts as being killed"
        );
        // The store caught up: both expectations are met and dropped.
        let mut old = inst("old");
        old.terminating = true;
        let mut seen = vec![old, inst("new")];
        e.apply("app", &mut seen);
        assert_eq!(seen.len(), 2);
        assert!(e.0.lock().unwrap().apps.is_empty());
    }

    fn task(name: &str, owner: &str) -> Arc<Task> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "apiVersion": "mosaic.dev/v1alpha1", "kind": "Task",
                "metadata": {"name": name, "namespace": "default", "ownerReferences": [
                    {"apiVersion": "mosaic.dev/v1alpha1", "kind": "App", "name": "a", "uid": owner}]},
                "spec": {"command": "true"}}))
            .unwrap(),
        )
    }

    #[test]
    fn an_instance_created_and_deleted_between_reconciles_is_not_counted_on() {
        let e = Expectations::default();
        e.created("app", inst("quick"));
        e.deleted("app", "old");
        // The watch shows it made, then gone, before any reconcile looks.
        Index::apply(&e, &task("quick", "app"));
        Index::delete(&e, &task("quick", "app"));
        Index::delete(&e, &task("old", "app"));
        let mut seen = Vec::new();
        e.apply("app", &mut seen);
        assert!(seen.is_empty(), "a phantom instance: {:?}", seen.len());
        assert!(e.0.lock().unwrap().apps.is_empty());
        // Another App's expectations are not touched.
        e.created("other", inst("x"));
        Index::apply(&e, &task("x", "app"));
        let mut seen = Vec::new();
        e.apply("other", &mut seen);
        assert_eq!(seen.len(), 1);
    }
}
