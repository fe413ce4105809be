//! The scheduler's watches: a reflector cache per kind, a wake-up on every
//! change, and for the kinds the scheduler follows by delta (Tasks, Agents,
//! Leases) the set of objects that changed since it last looked.

use crate::lean::LeanTask;
use futures::{StreamExt, TryStreamExt};
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use mosaic_crds::task::Task;
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

/// Field ownership is no business of the controllers: their caches leave it
/// out (as controller-runtime's default transform does), which keeps every
/// cached object, and every copy a cycle makes, small.
fn drop_managed_fields<K: kube::Resource>(o: &mut K) {
    o.meta_mut().managed_fields = None;
}

/// The watch of all Agents that the drain, maintenance and App controllers
/// cache, without managedFields (as [`reflect`] leaves them out).
pub fn agents(
    client: kube::Client,
) -> impl futures::Stream<Item = Result<watcher::Event<mosaic_crds::Agent>, watcher::Error>> {
    watcher(Api::all(client), watcher::Config::default())
        .default_backoff()
        .modify(drop_managed_fields)
}

/// The objects of one kind that changed since the scheduler last looked.
pub struct Changes<K: kube::Resource<DynamicType = ()>> {
    inner: Arc<Mutex<(HashSet<ObjectRef<K>>, bool)>>,
}

impl<K: kube::Resource<DynamicType = ()>> Changes<K> {
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

/// A cache of `api`'s objects, the changes to them, and `notify` woken on
/// each; with `deleted`, each deletion the watch sees is passed on too (a
/// framework declines an Offer by deleting it, maybe before a cycle saw it).
pub fn reflect<K>(
    api: Api<K>,
    notify: Arc<Notify>,
    deleted: Option<tokio::sync::mpsc::UnboundedSender<K>>,
    bg: &mut Vec<tokio::task::AbortHandle>,
) -> (Store<K>, Changes<K>)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let events = watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(drop_managed_fields);
    reflect_events(events, notify, deleted, bg)
}

/// [`reflect`] for Tasks, decoded without their managedFields ([`crate::lean`]).
pub fn reflect_tasks(
    client: &kube::Client,
    notify: Arc<Notify>,
    deleted: Option<tokio::sync::mpsc::UnboundedSender<Task>>,
    bg: &mut Vec<tokio::task::AbortHandle>,
) -> (Store<Task>, Changes<Task>) {
    let events = watcher(
        Api::<LeanTask>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .map_ok(crate::lean::task_event);
    reflect_events(events, notify, deleted, bg)
}

fn reflect_events<K, S>(
    events: S,
    notify: Arc<Notify>,
    deleted: Option<tokio::sync::mpsc::UnboundedSender<K>>,
    bg: &mut Vec<tokio::task::AbortHandle>,
) -> (Store<K>, Changes<K>)
where
    K: kube::Resource<DynamicType = ()> + Clone + std::fmt::Debug + Send + Sync + 'static,
    S: futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
{
    let (reader, writer) = reflector::store();
    let changes = Changes {
        inner: Arc::new(Mutex::new((HashSet::new(), false))),
    };
    let inner = changes.inner.clone();
    let stream = events.reflect(writer);
    let task = tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(watcher::Event::Apply(o)) => {
                    inner
                        .lock()
                        .expect("not poisoned")
                        .0
                        .insert(ObjectRef::from_obj(&o));
                }
                Ok(watcher::Event::Delete(o)) => {
                    inner
                        .lock()
                        .expect("not poisoned")
                        .0
                        .insert(ObjectRef::from_obj(&o));
                    if let Some(tx) = &deleted {
                        let _ = tx.send(o);
                    }
                }
                // The cache is replaced whole when the relist is done.
                Ok(watcher::Event::InitDone) => inner.lock().expect("not poisoned").1 = true,
                Ok(_) => continue,
                Err(e) => {
                    tracing::debug!(error = %e, "watch error (retrying)");
                    continue;
                }
            }
            notify.notify_one();
        }
    });
    bg.push(task.abort_handle());
    (reader, changes)
}
