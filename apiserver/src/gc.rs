//! The server's own collectors, as kube-controller-manager's garbage collector
//! and namespace controller run beside kube-apiserver:
//!
//! - Garbage collection by `metadata.ownerReferences`: an index of owners to
//!   their dependents, built at start and kept from a watch of the whole store.
//!   When an owner is gone (Background deletion), dependents with no other live
//!   owner are deleted. An owner deleted in the Foreground carries the
//!   `foregroundDeletion` finalizer: its dependents are deleted first, and it
//!   goes once they are gone. An owner deleted with the Orphan policy carries
//!   `orphan`: its dependents lose the reference to it, then it goes.
//! - Namespace termination: a deleted namespace is `Terminating`; every object
//!   in it is deleted (finalizers honoured, so running tasks are killed first),
//!   creates in it are refused meanwhile, and the namespace goes once empty.
//!
//! Deletes here honour finalizers as the API does: an object with finalizers is
//! only marked with a deletionTimestamp.

use crate::core::Core;
use crate::paths::Paths;
use crate::registry::Builtin;
use crate::store::{EventKind, ListRequest, Precondition, Store, StoreError};
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// The finalizer of a Foreground deletion.
pub const FOREGROUND: &str = "foregroundDeletion";
/// The finalizer of an Orphan deletion.
pub const ORPHAN: &str = "orphan";

/// Owner uid -> keys of the objects that name it.
#[derive(Default)]
struct Index {
    dependents: HashMap<String, BTreeSet<String>>,
    /// Dependent key -> the owner uids it names.
    owners_of: HashMap<String, Vec<String>>,
    /// uid -> key of the objects being deleted (Foreground and Orphan owners).
    keys: HashMap<String, String>,
}

impl Index {
    fn forget(&mut self, key: &str) {
        if let Some(owners) = self.owners_of.remove(key) {
            for o in owners {
                if let Some(d) = self.dependents.get_mut(&o) {
                    d.remove(key);
                    if d.is_empty() {
                        self.dependents.remove(&o);
                    }
                }
            }
        }
    }

    /// The keys of the objects that name `uid` as an owner.
    fn dependents_of(&self, uid: &str) -> Vec<String> {
        self.dependents
            .get(uid)
            .map(|d| d.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn put(&mut self, key: &str, obj: &Value) {
        self.forget(key);
        if let Some(uid) = obj["metadata"]["uid"].as_str() {
            self.keys.insert(uid.to_string(), key.to_string());
        }
        let owners: Vec<String> = obj["metadata"]["ownerReferences"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["uid"].as_str().map(str::to_string))
            .collect();
        for o in &owners {
            self.dependents
                .entry(o.clone())
                .or_default()
                .insert(key.to_string());
        }
        if !owners.is_empty() {
            self.owners_of.insert(key.to_string(), owners);
        }
    }
}

fn parse(bytes: &[u8]) -> Option<Value> {
    serde_json::from_slice(bytes).ok()
}

/// What of a stored object the index and the deletion marks look at: the
/// metadata fields below, read from the bytes without building the rest.
fn observed(bytes: &[u8]) -> Option<Value> {
    static PATHS: std::sync::LazyLock<Paths> = std::sync::LazyLock::new(|| {
        let mut p = Paths::none();
        for f in [
            "uid",
            "name",
            "ownerReferences",
            "deletionTimestamp",
            "finalizers",
        ] {
            p.add(&["metadata", f]);
        }
        p
    });
    PATHS.read_stored(bytes)
}

fn finalizers(obj: &Value) -> Vec<String> {
    obj["metadata"]["finalizers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f.as_str().map(str::to_string))
        .collect()
}

/// Deletes `key` as the API would: marks it when it has finalizers.
async fn delete(store: &dyn Store, key: &str) -> Result<(), StoreError> {
    edit(store, key, |obj| {
        if !obj["metadata"]["deletionTimestamp"].is_string() {
            obj["metadata"]["deletionTimestamp"] = json!(crate::stamps::now());
            obj["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        }
    })
    .await
}

/// Rewrites `key` with `change` (nothing when it changes nothing); removes it
/// when that leaves a deleted object without finalizers.
async fn edit(store: &dyn Store, key: &str, change: impl Fn(&mut Value)) -> Result<(), StoreError> {
    for _ in 0..8 {
        let Some(kv) = store.get(key).await? else {
            return Ok(());
        };
        let Some(before) = parse(&kv.value) else {
            return Ok(());
        };
        let mut obj = before.clone();
        change(&mut obj);
        let gone = obj["metadata"]["deletionTimestamp"].is_string() && finalizers(&obj).is_empty();
        if obj == before && !gone {
            return Ok(());
        }
        let pre = Precondition::ModRevision(kv.mod_revision);
        let r = if gone {
            store.delete(key.to_string(), pre).await.map(drop)
        } else {
            store
                .update(
                    key.to_string(),
                    serde_json::to_vec(&obj).expect("JSON"),
                    pre,
                )
                .await
                .map(drop)
        };
        match r {
            Err(StoreError::Conflict { .. }) => continue,
            Err(StoreError::NotFound(_)) => return Ok(()),
            other => return other,
        }
    }
    Ok(())
}

fn drop_finalizer(name: &'static str) -> impl Fn(&mut Value) {
    move |obj| {
        if let Some(f) = obj["metadata"]["finalizers"].as_array_mut() {
            f.retain(|x| x != name);
        }
    }
}

/// Starts the collectors; they stop when the server's state is dropped.
pub fn spawn(app: &Arc<Core>) {
    tokio::spawn(run(Arc::downgrade(app)));
}

struct State {
    index: Index,
    /// Owners whose deletion waits for their dependents.
    foreground: BTreeSet<String>,
    /// Owners that are gone, whose dependents are still to be deleted.
    gone: BTreeSet<String>,
    /// Every owner seen gone while something named it.
    gone_uids: std::collections::HashSet<String>,
    /// Namespaces being terminated.
    terminating: BTreeSet<String>,
}

async fn run(app: Weak<Core>) {
    loop {
        let Some(a) = app.upgrade() else { return };
        let store = a.store.clone();
        drop(a);
        let mut st = State {
            index: Index::default(),
            foreground: BTreeSet::new(),
            gone: BTreeSet::new(),
            gone_uids: Default::default(),
            terminating: BTreeSet::new(),
        };
        let from = store.revision();
        if let Err(e) = scan(store.as_ref(), &mut st).await {
            tracing::warn!(error = %e, "garbage collector: reading the store failed; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        let mut events = match store.watch("/".into(), from).await {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "garbage collector: watching failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                ev = events.recv() => {
                    let Some(ev) = ev else { break };
                    observe(&mut st, &ev);
                }
                _ = tick.tick() => {
                    let Some(a) = app.upgrade() else { return };
                    if let Err(e) = collect(&a, &mut st).await {
                        tracing::warn!(error = %e, "garbage collection pass failed");
                    }
                }
            }
        }
        // The store dropped a slow watcher: start over from a fresh scan.
    }
}

async fn scan(store: &dyn Store, st: &mut State) -> Result<(), StoreError> {
    let mut after: Option<String> = None;
    loop {
        let page = store
            .list(ListRequest {
                prefix: "/",
                after: after.as_deref(),
                limit: 1000,
                ..Default::default()
            })
            .await?;
        for kv in &page.items {
            observe_put(st, &kv.key, &kv.value);
        }
        match page.more_after {
            Some(k) => after = Some(k),
            None => return Ok(()),
        }
    }
}

/// Sees every write: a vectorised substring search, so that most objects are never parsed.
fn contains(hay: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(hay, needle).is_some()
}

fn observe_put(st: &mut State, key: &str, value: &[u8]) {
    let owns = contains(value, b"\"ownerReferences\"");
    let deleting = contains(value, b"\"deletionTimestamp\"");
    let is_ns = key.starts_with("/core/namespaces/");
    if !owns && !deleting && !is_ns && !st.index.owners_of.contains_key(key) {
        // The common case: nothing to collect. Only owners that someone names need their uid.
        return;
    }
    let Some(obj) = observed(value) else { return };
    st.index.put(key, &obj);
    if obj["metadata"]["deletionTimestamp"].is_string() {
        let fins = finalizers(&obj);
        let uid = obj["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if fins.iter().any(|f| f == FOREGROUND || f == ORPHAN) {
            st.foreground.insert(uid);
        }
        if is_ns && let Some(name) = obj["metadata"]["name"].as_str() {
            st.terminating.insert(name.to_string());
        }
    }
}

fn observe(st: &mut State, ev: &crate::store::Event) {
    match ev.kind {
        EventKind::Put => {
            observe_put(st, &ev.kv.key, &ev.kv.value);
        }
        EventKind::Delete => {
            st.index.forget(&ev.kv.key);
            if !st.index.dependents.is_empty()
                && let Some(uid) = uid_of(&ev.kv.value)
            {
                st.index.keys.remove(&uid);
                if st.index.dependents.contains_key(&uid) {
                    st.gone_uids.insert(uid.clone());
                    st.gone.insert(uid);
                }
            }
        }
        // Whole-store watches get no progress notifications.
        EventKind::Progress => {}
    }
}

fn uid_of(value: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Meta {
        uid: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Obj {
        metadata: Option<Meta>,
    }
    serde_json::from_slice::<Obj>(value).ok()?.metadata?.uid
}

/// One pass: collect what is due.
async fn collect(app: &Core, st: &mut State) -> Result<(), StoreError> {
    let store = app.store.as_ref();
    // Dependents of owners that are gone, unless another owner still lives.
    for uid in std::mem::take(&mut st.gone) {
        for key in st.index.dependents_of(&uid) {
            let others_live = st.index.owners_of.get(&key).is_some_and(|owners| {
                owners
                    .iter()
                    .any(|o| *o != uid && !st.gone_uids.contains(o))
            });
            if !others_live {
                delete(store, &key).await?;
            }
        }
    }
    st.gone_uids.retain(|u| st.index.dependents.contains_key(u));
    // Foreground and Orphan deletions.
    for uid in st.foreground.clone() {
        let Some(key) = st.index.keys.get(&uid).cloned() else {
            st.foreground.remove(&uid);
            continue;
        };
        let Some(kv) = store.get(&key).await? else {
            st.foreground.remove(&uid);
            continue;
        };
        let Some(owner) = parse(&kv.value) else {
            continue;
        };
        let fins = finalizers(&owner);
        let deps = st.index.dependents_of(&uid);
        if fins.iter().any(|f| f == ORPHAN) {
            for key in &deps {
                let u = uid.clone();
                edit(store, key, move |o| {
                    if let Some(refs) = o["metadata"]["ownerReferences"].as_array_mut() {
                        refs.retain(|r| r["uid"] != u.as_str());
                        if refs.is_empty()
                            && let Some(m) = o["metadata"].as_object_mut()
                        {
                            m.remove("ownerReferences");
                        }
                    }
                })
                .await?;
            }
            edit(store, &key, drop_finalizer(ORPHAN)).await?;
            st.foreground.remove(&uid);
        } else if fins.iter().any(|f| f == FOREGROUND) {
            if deps.is_empty() {
                edit(store, &key, drop_finalizer(FOREGROUND)).await?;
                st.foreground.remove(&uid);
            } else {
                for d in &deps {
                    delete(store, d).await?;
                }
            }
        } else {
            st.foreground.remove(&uid);
        }
    }
    // Namespaces being terminated.
    for ns in st.terminating.clone() {
        let mut left = 0usize;
        let mut prefixes = BTreeSet::new();
        for info in app.registry.all() {
            if info.namespaced && info.builtin != Builtin::Namespace {
                prefixes.insert(info.collection_prefix(Some(&ns)));
            }
        }
        for prefix in &prefixes {
            let page = store
                .list(ListRequest {
                    prefix,
                    limit: 500,
                    ..Default::default()
                })
                .await?;
            left += page.items.len();
            for kv in page.items {
                delete(store, &kv.key).await?;
            }
        }
        if left == 0 {
            let key = format!("/core/namespaces/{ns}");
            edit(store, &key, |o| {
                if let Some(f) = o["spec"]["finalizers"].as_array_mut() {
                    f.retain(|x| x != "kubernetes");
                }
            })
            .await?;
            delete(store, &key).await?;
            st.terminating.remove(&ns);
        }
    }
    Ok(())
}
