//! What the scheduler subscribes to the shared reflectors
//! ([`crate::index`]): for each kind, the set of objects that changed since
//! it last looked and a wake-up on every change; for Offers, each deletion
//! too.

use crate::index::{Index, Shared};
use kube::runtime::reflector::{ObjectRef, Store};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// Aborts its tasks when dropped, so stopping the scheduler (a leader that
/// steps down) stops its watches too.
pub struct AbortOnDrop(pub Vec<tokio::task::AbortHandle>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for h in &self.0 {
            h.abort();
        }
    }
}

/// The objects of one kind that changed since the scheduler last looked.
pub struct Changes<K: kube::Resource<DynamicType = ()> + 'static> {
    inner: Mutex<(HashSet<ObjectRef<K>>, bool)>,
    notify: Arc<Notify>,
}

impl<K: kube::Resource<DynamicType = ()> + 'static> Changes<K> {
    /// Changes of `shared`'s kind from now on, `notify` woken on each.
    pub fn of(shared: &Shared<K>, notify: Arc<Notify>) -> Arc<Self>
    where
        K: Clone + Send + Sync + 'static,
    {
        let changes = Arc::new(Self {
            inner: Mutex::new((HashSet::new(), false)),
            notify,
        });
        shared.subscribe(changes.clone());
        changes
    }

    fn changed(&self, obj: &K) {
        self.inner
            .lock()
            .expect("not poisoned")
            .0
            .insert(ObjectRef::from_obj(obj));
        self.notify.notify_one();
    }

    /// The changed objects (each once, however often it changed), and whether
    /// the watch listed everything again (then every object may have changed).
    pub fn take(&self) -> (HashSet<ObjectRef<K>>, bool) {
        let mut g = self.inner.lock().expect("not poisoned");
        (std::mem::take(&mut g.0), std::mem::take(&mut g.1))
    }

    /// Whether anything changed (forgetting what).
    pub fn any(&self) -> bool {
        let (keys, relisted) = self.take();
        relisted || !keys.is_empty()
    }
}

impl<K: kube::Resource<DynamicType = ()> + Send + Sync + 'static> Index<K> for Changes<K> {
    fn apply(&self, obj: &Arc<K>) {
        self.changed(obj);
    }
    fn delete(&self, obj: &Arc<K>) {
        self.changed(obj);
    }
    fn reset(&self, _: &Store<K>) {
        self.inner.lock().expect("not poisoned").1 = true;
        self.notify.notify_one();
    }
}

/// Each deleted object, sent on (a framework declines an Offer by deleting
/// it, maybe before a cycle saw it).
pub struct Deletions<K>(tokio::sync::mpsc::UnboundedSender<K>);

impl<K: kube::Resource<DynamicType = ()> + Clone + Send + Sync + 'static> Deletions<K> {
    /// The deletions of `shared`'s kind from now on, and where they arrive.
    pub fn of(shared: &Shared<K>) -> (Arc<Self>, tokio::sync::mpsc::UnboundedReceiver<K>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let d = Arc::new(Self(tx));
        shared.subscribe(d.clone());
        (d, rx)
    }
}

impl<K: kube::Resource<DynamicType = ()> + Clone + Send + Sync + 'static> Index<K>
    for Deletions<K>
{
    fn apply(&self, _: &Arc<K>) {}
    fn delete(&self, obj: &Arc<K>) {
        let _ = self.0.send(K::clone(obj));
    }
    fn reset(&self, _: &Store<K>) {}
}
