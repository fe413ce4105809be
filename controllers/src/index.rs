//! The index registry: one watch and one cache per kind for every controller
//! in the process, in the style of linkerd2's policy-controller index. A
//! controller does not start a watch of its own: it asks the [`Registry`] for
//! a kind's [`Shared`] reflector (started on first use), reads its
//! [`Store`], and subscribes an [`Index`], a small `apply`/`delete`/`reset`
//! implementation that keeps what it needs (the scheduler's set of changed
//! objects, an App's instances by owner, a queue for a kube-runtime
//! `Controller`). An index is held weakly: dropping it unsubscribes.

use crate::lean::LeanTask;
use futures::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource};
use mosaic_crds::{Agent, Framework, Offer, Reservation, Role, Task};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use tokio::sync::Notify;

/// What a subscriber keeps of a kind, told of each change as the shared
/// cache has taken it.
pub trait Index<K: Resource<DynamicType = ()> + 'static>: Send + Sync {
    /// `obj` was added or changed (the cache already holds it).
    fn apply(&self, obj: &Arc<K>);
    /// `obj` was deleted (the cache no longer holds it).
    fn delete(&self, obj: &Arc<K>);
    /// The watch listed everything again (or the index just subscribed):
    /// `store` is the whole truth now, and a deletion in between was not seen.
    fn reset(&self, store: &Store<K>);
}

/// The subscribers of one kind.
struct Subscribers<K: Resource<DynamicType = ()> + 'static> {
    /// Whether the first list is done (a late subscriber is then reset at once).
    listed: bool,
    indexes: Vec<Weak<dyn Index<K>>>,
}

impl<K: Resource<DynamicType = ()> + 'static> Subscribers<K> {
    /// Calls `f` on each live index, forgetting the dropped ones.
    fn each(&mut self, f: impl Fn(&dyn Index<K>)) {
        self.indexes.retain(|w| match w.upgrade() {
            Some(ix) => {
                f(ix.as_ref());
                true
            }
            None => false,
        });
    }
}

/// One kind's shared reflector: its cache, and the indexes it feeds.
pub struct Shared<K: Resource<DynamicType = ()> + 'static> {
    store: Store<K>,
    subscribers: Arc<Mutex<Subscribers<K>>>,
    /// True once the first list is done.
    listed: tokio::sync::watch::Receiver<bool>,
}

impl<K: Resource<DynamicType = ()> + 'static> Clone for Shared<K> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            subscribers: self.subscribers.clone(),
            listed: self.listed.clone(),
        }
    }
}

impl<K> Shared<K>
where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    /// Starts feeding a cache and its indexes from `events` (a watch); the
    /// handle stops it.
    pub fn start<S>(events: S) -> (Self, tokio::task::AbortHandle)
    where
        S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    {
        let (store, writer) = reflector::store();
        let subscribers = Arc::new(Mutex::new(Subscribers {
            listed: false,
            indexes: Vec::new(),
        }));
        let (subs, reader) = (subscribers.clone(), store.clone());
        let (listed_tx, listed) = tokio::sync::watch::channel(false);
        let stream = events.reflect(writer);
        let task = tokio::spawn(async move {
            futures::pin_mut!(stream);
            while let Some(ev) = stream.next().await {
                // A panic in an index must not freeze every reader's cache.
                let mut g = subs.lock().unwrap_or_else(|p| p.into_inner());
                match ev {
                    Ok(watcher::Event::Apply(o)) => {
                        let o = Arc::new(o);
                        g.each(|ix| ix.apply(&o));
                    }
                    Ok(watcher::Event::Delete(o)) => {
                        let o = Arc::new(o);
                        g.each(|ix| ix.delete(&o));
                    }
                    // The cache is replaced whole when the list is done.
                    Ok(watcher::Event::InitDone) => {
                        g.listed = true;
                        g.each(|ix| ix.reset(&reader));
                        listed_tx.send_replace(true);
                    }
                    Ok(_) => {}
                    Err(e) => tracing::debug!(error = %e, "watch error (retrying)"),
                }
            }
        });
        (
            Self {
                store,
                subscribers,
                listed,
            },
            task.abort_handle(),
        )
    }

    /// Waits until the first list is done (the cache holds every object);
    /// `false` if the watch stopped first. Wait here, not on the cache's
    /// `Store::wait_until_ready`: kube-runtime's readiness wakes only the
    /// last of several tasks waiting on one cache at once, and a shared
    /// cache has several (the scheduler's, a `Controller`'s).
    pub async fn ready(&self) -> bool {
        let mut listed = self.listed.clone();
        listed.wait_for(|l| *l).await.is_ok()
    }

    /// The shared cache (hand it to a kube-runtime `Controller` only once
    /// [`Shared::ready`]).
    pub fn store(&self) -> Store<K> {
        self.store.clone()
    }

    /// Feeds `index` every change from now on (reset at once with the cache
    /// if the first list is done) until it is dropped.
    pub fn subscribe(&self, index: Arc<dyn Index<K>>) {
        let mut g = self.subscribers.lock().unwrap_or_else(|p| p.into_inner());
        if g.listed {
            index.reset(&self.store);
        }
        g.indexes.push(Arc::downgrade(&index));
    }

    /// A stream of the changed objects (deleted ones too), each once however
    /// often it changed before it was taken, for a kube-runtime
    /// `Controller` (`for_shared_stream`, `watches_shared_stream`, ...);
    /// `keep` chooses which.
    pub fn stream(&self, keep: fn(&K) -> bool) -> impl Stream<Item = Arc<K>> + Send + 'static {
        let pending = Arc::new(Pending {
            keep,
            objects: Mutex::new(HashMap::new()),
            notify: Notify::new(),
        });
        self.subscribe(pending.clone());
        futures::stream::unfold(
            (pending, Vec::new()),
            |(pending, mut batch): (Arc<Pending<K>>, Vec<Arc<K>>)| async move {
                while batch.is_empty() {
                    batch = pending.take();
                    if batch.is_empty() {
                        pending.notify.notified().await;
                    }
                }
                let next = batch.pop().expect("not empty");
                Some((next, (pending, batch)))
            },
        )
    }
}

/// The changed objects a [`Shared::stream`] has not handed on yet.
struct Pending<K: Resource<DynamicType = ()> + 'static> {
    keep: fn(&K) -> bool,
    objects: Mutex<HashMap<ObjectRef<K>, Arc<K>>>,
    notify: Notify,
}

impl<K: Resource<DynamicType = ()> + 'static> Pending<K> {
    fn take(&self) -> Vec<Arc<K>> {
        let mut g = self.objects.lock().expect("not poisoned");
        g.drain().map(|(_, o)| o).collect()
    }

    fn put(&self, obj: &Arc<K>) {
        if (self.keep)(obj) {
            let mut g = self.objects.lock().expect("not poisoned");
            g.insert(ObjectRef::from_obj(obj.as_ref()), obj.clone());
            drop(g);
            self.notify.notify_one();
        }
    }
}

impl<K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static> Index<K> for Pending<K> {
    fn apply(&self, obj: &Arc<K>) {
        self.put(obj);
    }
    fn delete(&self, obj: &Arc<K>) {
        self.put(obj);
    }
    fn reset(&self, store: &Store<K>) {
        for o in store.state() {
            self.put(&o);
        }
    }
}

/// The objects of a kind by the uid of their owner of one kind (an App's
/// instances, by the App's uid), so a controller reads an owner's objects
/// without walking all of them.
pub struct ByOwner<K: Resource<DynamicType = ()> + 'static> {
    owner_kind: &'static str,
    owned: Mutex<HashMap<String, HashSet<ObjectRef<K>>>>,
}

impl<K> ByOwner<K>
where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    /// `shared`'s objects by their owner of kind `owner_kind`, kept from now on.
    pub fn of(shared: &Shared<K>, owner_kind: &'static str) -> Arc<Self> {
        let ix = Arc::new(Self {
            owner_kind,
            owned: Mutex::new(HashMap::new()),
        });
        shared.subscribe(ix.clone());
        ix
    }

    /// The objects owned by the owner with `uid` (an object whose owner
    /// changed may still be listed under the old one: check it).
    pub fn owned(&self, uid: &str) -> Vec<ObjectRef<K>> {
        let g = self.owned.lock().expect("not poisoned");
        g.get(uid)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Files `obj` under each of its owners of the kind.
    fn add(&self, owned: &mut HashMap<String, HashSet<ObjectRef<K>>>, obj: &K) {
        for uid in self.owners(obj) {
            owned
                .entry(uid.to_string())
                .or_default()
                .insert(ObjectRef::from_obj(obj));
        }
    }

    fn owners<'a>(&self, obj: &'a K) -> impl Iterator<Item = &'a str> {
        let kind = self.owner_kind;
        obj.meta()
            .owner_references
            .iter()
            .flatten()
            .filter(move |o| o.kind == kind)
            .map(|o| o.uid.as_str())
    }
}

impl<K> Index<K> for ByOwner<K>
where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    fn apply(&self, obj: &Arc<K>) {
        self.add(&mut self.owned.lock().expect("not poisoned"), obj);
    }
    fn delete(&self, obj: &Arc<K>) {
        let mut g = self.owned.lock().expect("not poisoned");
        let key = ObjectRef::from_obj(obj.as_ref());
        for uid in self.owners(obj) {
            if let Some(set) = g.get_mut(uid) {
                set.remove(&key);
                if set.is_empty() {
                    g.remove(uid);
                }
            }
        }
    }
    fn reset(&self, store: &Store<K>) {
        let mut fresh = HashMap::new();
        for o in store.state() {
            self.add(&mut fresh, &o);
        }
        *self.owned.lock().expect("not poisoned") = fresh;
    }
}

/// Aborts the registry's watches when the last holder lets it go.
struct Watches(Mutex<Vec<tokio::task::AbortHandle>>);

impl Drop for Watches {
    fn drop(&mut self) {
        for h in self.0.get_mut().expect("not poisoned").iter() {
            h.abort();
        }
    }
}

/// Field ownership is no business of the controllers: their caches leave it
/// out (as controller-runtime's default transform does), which keeps every
/// cached object, and every copy a cycle makes, small.
fn drop_managed_fields<K: Resource>(o: &mut K) {
    o.meta_mut().managed_fields = None;
}

/// Every kind the controllers read, one shared reflector each, started on
/// first use; dropping the last handle stops the watches.
#[derive(Clone)]
pub struct Registry(Arc<Kinds>);

struct Kinds {
    client: Client,
    watches: Watches,
    tasks: OnceLock<Shared<Task>>,
    agents: OnceLock<Shared<Agent>>,
    frameworks: OnceLock<Shared<Framework>>,
    roles: OnceLock<Shared<Role>>,
    reservations: OnceLock<Shared<Reservation>>,
    offers: OnceLock<Shared<Offer>>,
    leases: OnceLock<Shared<Lease>>,
}

/// The namespace of the agents' heartbeat Leases.
const LEASE_NAMESPACE: &str = "mosaic-system";

impl Registry {
    /// A registry watching through `client`.
    pub fn new(client: Client) -> Self {
        Self(Arc::new(Kinds {
            client,
            watches: Watches(Mutex::new(Vec::new())),
            tasks: OnceLock::new(),
            agents: OnceLock::new(),
            frameworks: OnceLock::new(),
            roles: OnceLock::new(),
            reservations: OnceLock::new(),
            offers: OnceLock::new(),
            leases: OnceLock::new(),
        }))
    }

    fn started<K, S>(&self, cell: &OnceLock<Shared<K>>, events: impl FnOnce() -> S) -> Shared<K>
    where
        K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
        S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    {
        cell.get_or_init(|| {
            let (shared, handle) = Shared::start(events());
            self.0.watches.0.lock().expect("not poisoned").push(handle);
            shared
        })
        .clone()
    }

    fn all<K>(&self, cell: &OnceLock<Shared<K>>, api: Api<K>) -> Shared<K>
    where
        K: Resource<DynamicType = ()>
            + Clone
            + std::fmt::Debug
            + serde::de::DeserializeOwned
            + Send
            + Sync
            + 'static,
    {
        self.started(cell, || {
            watcher(api, watcher::Config::default())
                .default_backoff()
                .modify(drop_managed_fields)
        })
    }

    /// All Tasks, decoded without their managedFields ([`crate::lean`]).
    pub fn tasks(&self) -> Shared<Task> {
        let api = Api::<LeanTask>::all(self.0.client.clone());
        self.started(&self.0.tasks, || {
            watcher(api, watcher::Config::default())
                .default_backoff()
                .map_ok(crate::lean::task_event)
        })
    }

    /// All Agents.
    pub fn agents(&self) -> Shared<Agent> {
        self.all(&self.0.agents, Api::all(self.0.client.clone()))
    }

    /// All Frameworks.
    pub fn frameworks(&self) -> Shared<Framework> {
        self.all(&self.0.frameworks, Api::all(self.0.client.clone()))
    }

    /// All Roles.
    pub fn roles(&self) -> Shared<Role> {
        self.all(&self.0.roles, Api::all(self.0.client.clone()))
    }

    /// All Reservations.
    pub fn reservations(&self) -> Shared<Reservation> {
        self.all(&self.0.reservations, Api::all(self.0.client.clone()))
    }

    /// All Offers.
    pub fn offers(&self) -> Shared<Offer> {
        self.all(&self.0.offers, Api::all(self.0.client.clone()))
    }

    /// The agents' heartbeat Leases (namespace `mosaic-system`).
    pub fn leases(&self) -> Shared<Lease> {
        let api = Api::namespaced(self.0.client.clone(), LEASE_NAMESPACE);
        self.all(&self.0.leases, api)
    }
}

#[cfg(test)]
mod tests;
