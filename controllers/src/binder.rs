//! Binds written in the background, as kube-scheduler's "assume" does: a cycle
//! records each placement here and goes on; the writes (finalizer, status,
//! event) run concurrently, many in flight at once, while later cycles
//! already count the placed task as bound. An entry goes when the store shows
//! the task bound, or when its bind fails (the task changed or went), and the
//! task is then placed again from what the store says.

use crate::allocator::Resources;
use mosaic_crds::Task;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// How many per-task writes are in flight at once.
const IN_FLIGHT: usize = 256;

/// A placement whose bind is written but not yet seen in the store.
#[derive(Clone, Debug)]
pub struct Assumed {
    /// The agent.
    pub agent: String,
    /// What the task holds.
    pub resources: Resources,
    /// The host ports it is given.
    pub ports: Vec<u16>,
}

/// The background writer of binds and other per-task status writes.
pub struct Binder {
    client: kube::Client,
    path: crate::binding::Path,
    assumed: Arc<Mutex<HashMap<String, Assumed>>>,
    /// Tasks whose bind failed since the scheduler last looked.
    failed: Arc<Mutex<Vec<String>>>,
    permits: Arc<Semaphore>,
    /// Aborted with the binder (a leader stepping down stops its writes).
    writes: JoinSet<()>,
}

impl Binder {
    /// A binder writing through `client`.
    pub fn new(client: kube::Client, path: crate::binding::Path) -> Self {
        Self {
            client,
            path,
            assumed: Default::default(),
            failed: Default::default(),
            permits: Arc::new(Semaphore::new(IN_FLIGHT)),
            writes: JoinSet::new(),
        }
    }

    /// The placement assumed for a task (by `namespace/name`), if its bind is under way.
    pub fn assumed(&self, key: &str) -> Option<Assumed> {
        self.assumed.lock().expect("not poisoned").get(key).cloned()
    }

    /// The store shows the task bound (or gone): nothing to assume any more.
    pub fn confirm(&self, key: &str) {
        self.assumed.lock().expect("not poisoned").remove(key);
    }

    /// Binds in the background, with the host `ports` given (in the order
    /// of the task's `spec.ports`), assuming the placement meanwhile.
    pub fn bind(
        &mut self,
        key: String,
        t: Arc<Task>,
        agent: String,
        resources: Resources,
        ports: Vec<u16>,
    ) {
        self.assumed.lock().expect("not poisoned").insert(
            key.clone(),
            Assumed {
                agent: agent.clone(),
                resources,
                ports: ports.clone(),
            },
        );
        let (client, path, assumed, failed, permits) = (
            self.client.clone(),
            self.path,
            self.assumed.clone(),
            self.failed.clone(),
            self.permits.clone(),
        );
        self.writes.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let ports = mosaic_crds::ports::named(&t.spec.ports, &ports);
            if !crate::binding::bind_to(&client, path, &t, &agent, ports).await {
                // Placed again by a later cycle, from what the store says then.
                assumed.lock().expect("not poisoned").remove(&key);
                failed.lock().expect("not poisoned").push(key);
            }
        });
        self.reap();
    }

    /// Runs any other per-task write in the background, within the same limit.
    pub fn write(&mut self, f: impl Future<Output = ()> + Send + 'static) {
        let permits = self.permits.clone();
        self.writes.spawn(async move {
            let _permit = permits.acquire_owned().await;
            f.await
        });
        self.reap();
    }

    /// The tasks whose bind failed since the last call: the scheduler looks at them again.
    pub fn take_failed(&self) -> Vec<String> {
        std::mem::take(&mut *self.failed.lock().expect("not poisoned"))
    }

    /// Writes not yet finished.
    pub fn in_flight(&self) -> usize {
        self.writes.len()
    }

    fn reap(&mut self) {
        while self.writes.try_join_next().is_some() {}
    }
}
