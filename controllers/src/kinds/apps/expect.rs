//! What an App's reconciles did that its Task store has not shown yet (as a
//! ReplicaSet controller's expectations): an instance created is counted
//! before its watch event arrives, and one deleted counts as being killed,
//! so a reconcile that runs on a stale store neither starts instances twice
//! nor kills more than it meant to. An expectation the store never meets
//! lapses after a minute.

use super::plan::Instance;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
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
}
