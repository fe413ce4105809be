//! WATCH: newline-delimited JSON events over a streamed response.
//!
//! Without a resourceVersion (or with "0") the stream starts with an ADDED event
//! per existing object; with `sendInitialEvents=true` those are followed by a
//! BOOKMARK annotated `k8s.io/initial-events-end`. With resourceVersion N it
//! carries every change after N, or one ERROR event (410 Expired) when N is
//! older than the kept history. Selectors are applied per event, turning an
//! object that stops (starts) matching into DELETED (ADDED), as Kubernetes does.
//! The selectors read only the fields they look at ([`crate::paths`]), and the
//! object goes out in the bytes every watcher of the change shares.
//!
//! A watch holds little of its own, however slowly its client reads: the
//! initial state is read a page at a time at one revision and each object
//! encoded as it is sent, never the whole list decoded at once; what waits for
//! the client is bounded in bytes ([`super::budget`]); the store drops a
//! watch whose queue of changes fills.

use super::body::Body;
use super::budget;
use super::list::{Selectors, collect};
use super::objects::Request;
use super::{meta, table};
use crate::error::ApiError;
use crate::paths::Paths;
use crate::store::{Event, EventKind, KeyValue, ListRequest, ListResult};
use bytes::Bytes;
use http::{Response, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;

use std::time::Duration;
use tokio::sync::mpsc;

/// Objects read at a time for a watch's initial events.
const PAGE: usize = 256;

/// A watch's initial events.
enum Initial {
    /// None (a watch from a resourceVersion).
    Nothing,
    /// Already read and decoded (a watch of one name: at most one object).
    Objects(Vec<Value>),
    /// The first page of the collection at the watch's start revision; the
    /// rest is read as it is sent.
    Pages(ListResult),
}

/// How often an idle watch with bookmarks allowed gets one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(15);

fn line(kind: &str, object: Value) -> Bytes {
    let mut b =
        serde_json::to_vec(&json!({"type": kind, "object": object})).expect("JSON serialises");
    b.push(b'\n');
    Bytes::from(b)
}

/// GET with `watch=true`.
pub async fn watch(mut req: Request) -> Result<Response<Body>, ApiError> {
    let sel = Selectors::of(&req)?;
    let initial = req.params.send_initial_events == Some(true);
    if initial && req.params.resource_version_match.as_deref() != Some("NotOlderThan") {
        return Err(ApiError::invalid(
            req.subject(""),
            vec![crate::error::Cause {
                reason: "FieldValueInvalid",
                message:
                    "Invalid value: sendInitialEvents requires resourceVersionMatch=NotOlderThan"
                        .into(),
                field: "resourceVersionMatch".into(),
            }],
        ));
    }
    let rv = match req.params.resource_version.as_deref() {
        None | Some("0") => None,
        Some(s) => Some(
            s.parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {s:?}")))?,
        ),
    };
    let (tx, body) = budget::channel(budget::WATCH_BYTES);
    let as_table = table::wants_table(&req.accept);
    let prefix = req
        .route
        .info
        .collection_prefix(req.route.namespace.as_deref());
    let mut initial_objects = Initial::Nothing;
    let start = if rv.is_none() || initial {
        // Synthetic ADDED events for the current state, then changes after it.
        req.params.limit = 0;
        req.params.continue_token = None;
        if sel.fields.pinned_name().is_some() {
            let (items, rev, _) = collect(&req, &sel).await?;
            initial_objects = Initial::Objects(items);
            rev
        } else {
            let first = req
                .app
                .store
                .list(ListRequest {
                    prefix: &prefix,
                    after: None,
                    limit: PAGE,
                    revision: None,
                })
                .await?;
            let rev = first.revision;
            initial_objects = Initial::Pages(first);
            rev
        }
    } else {
        rv.unwrap_or_default()
    };
    // A watch of one field's value (an agent's Tasks) is filed under that value
    // in the store, so other changes never reach it; the selectors below still
    // decide what it is sent. Other views convert first, so they see everything.
    let filter = (sel.fields.equality())
        .filter(|_| req.route.info.view.is_stored())
        .map(|(path, value)| crate::store::FieldFilter {
            path: path.to_owned(),
            value: value.to_owned(),
        });
    let watched = match filter {
        Some(f) => req.app.store.watch_field(prefix.clone(), start, f).await,
        None => req.app.store.watch(prefix.clone(), start).await,
    };
    let events = match watched {
        Ok(e) => Some(e),
        Err(crate::store::StoreError::Compacted {
            requested,
            compacted,
        }) => {
            let status = ApiError::expired(format!(
                "too old resource version: {requested} ({compacted})"
            ))
            .to_status();
            let _ = tx.try_send(line("ERROR", status));
            None
        }
        Err(e) => return Err(e.into()),
    };
    let timeout = Duration::from_secs(req.params.timeout_seconds.unwrap_or(1800).max(1));
    let app = req.app.clone();
    app.metrics.watches.inc();
    let paths = sel.paths();
    let w = Watch {
        req: Arc::new(req),
        sel,
        paths,
        as_table,
        headers_sent: false,
        last_rev: start,
        tx,
        prefix,
    };
    tokio::spawn(async move {
        if let Some(events) = events {
            let _ = tokio::time::timeout(timeout, w.run(initial_objects, initial, events)).await;
        }
        app.metrics.watches.dec();
    });
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body)
        .expect("static response parts are valid"))
}

struct Watch {
    req: Arc<Request>,
    sel: Selectors,
    /// What of an object the selectors read.
    paths: Paths,
    as_table: bool,
    headers_sent: bool,
    last_rev: i64,
    tx: budget::Sender,
    /// The watched collection's store prefix.
    prefix: String,
}

impl Watch {
    fn object(&mut self, obj: Value) -> Value {
        if !self.as_table {
            return obj;
        }
        let rv = obj["metadata"]["resourceVersion"].clone();
        let t = table::table(
            &self.req.route.info,
            &[obj],
            &self.req.params,
            json!({"resourceVersion": rv}),
            !self.headers_sent,
        );
        self.headers_sent = true;
        t
    }

    async fn send(&mut self, kind: &str, obj: Value) -> Result<(), ()> {
        let obj = self.object(obj);
        self.tx.send(line(kind, obj)).await.map_err(|_| ())
    }

    /// Sends an event every watcher of the kind sees alike: the object is
    /// decoded and encoded once, by whichever watcher comes first, not once
    /// per watcher (a Task change reaches the scheduler, the agents and users).
    async fn send_shared(&mut self, e: &Event) -> Result<(), ()> {
        let kind = match e.kind {
            EventKind::Delete => "DELETED",
            EventKind::Put if e.kv.create_revision == e.kv.mod_revision => "ADDED",
            EventKind::Put => "MODIFIED",
            EventKind::Progress => return Ok(()),
        };
        let object = e.shared.get_or_init(|| stored_json(&e.kv));
        self.send_stored(kind, object).await
    }

    /// Sends an event whose object is `object`, JSON as stored (resourceVersion in).
    async fn send_stored(&mut self, kind: &str, object: &[u8]) -> Result<(), ()> {
        if object.is_empty() {
            return Ok(());
        }
        let head = format!(r#"{{"type":"{kind}","object":"#);
        let mut line = Vec::with_capacity(head.len() + object.len() + 2);
        line.extend_from_slice(head.as_bytes());
        line.extend_from_slice(object);
        line.extend_from_slice(b"}\n");
        self.tx.send(Bytes::from(line)).await.map_err(|_| ())
    }

    /// Whether objects go out as the store holds them (no table or
    /// conversion), and the selectors can be decided on the stored bytes
    /// (which carry no resourceVersion: the revision is it).
    fn stored_form(&self) -> bool {
        !self.as_table
            && self.req.route.info.view.is_stored()
            && !self
                .sel
                .fields
                .keys()
                .any(|k| k == "metadata.resourceVersion")
    }

    /// Whether events go out as the store holds them (no selector, table or conversion).
    fn as_stored(&self) -> bool {
        self.sel.is_everything() && self.stored_form()
    }

    /// Whether the selectors take a stored value, read only as far as they
    /// look (`None`: it is not JSON). Only for the stored form.
    fn selects(&self, kv: &KeyValue) -> Option<bool> {
        Some(self.sel.matches(&self.paths.read_stored(&kv.value)?))
    }

    /// One object of the initial state, as ADDED if the selectors take it.
    async fn initial(&mut self, kv: &KeyValue) -> Result<(), ()> {
        if self.as_stored() {
            return self.send_stored("ADDED", &stored_json(kv)).await;
        }
        if self.stored_form() {
            return match self.selects(kv) {
                Some(true) => self.send_stored("ADDED", &stored_json(kv)).await,
                _ => Ok(()),
            };
        }
        match self.req.load(kv) {
            Ok(obj) if self.sel.matches(&obj) => self.send("ADDED", obj).await,
            _ => Ok(()),
        }
    }

    /// The initial state, a page at a time at the watch's start revision.
    async fn pages(&mut self, mut page: ListResult) -> Result<(), ()> {
        let rev = page.revision;
        loop {
            for kv in &page.items {
                self.initial(kv).await?;
            }
            let Some(after) = page.more_after.take() else {
                return Ok(());
            };
            let next = self
                .req
                .app
                .store
                .list(ListRequest {
                    prefix: &self.prefix,
                    after: Some(&after),
                    limit: PAGE,
                    revision: Some(rev),
                })
                .await;
            page = match next {
                Ok(p) => p,
                Err(e) => {
                    // Compacted meanwhile, say: the client lists again.
                    let status = ApiError::from(e).to_status();
                    let _ = self.tx.send(line("ERROR", status)).await;
                    return Err(());
                }
            };
        }
    }

    fn bookmark(&self, initial_end: bool) -> Value {
        let info = &self.req.route.info;
        let mut m = json!({"resourceVersion": self.last_rev.to_string()});
        if initial_end {
            m["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        json!({"kind": info.kind, "apiVersion": info.api_version(), "metadata": m})
    }

    async fn run(
        mut self,
        initial: Initial,
        initial_end: bool,
        mut events: mpsc::Receiver<Arc<Event>>,
    ) {
        match initial {
            Initial::Nothing => {}
            Initial::Objects(objects) => {
                for obj in objects {
                    if self.send("ADDED", obj).await.is_err() {
                        return;
                    }
                }
            }
            Initial::Pages(first) => {
                if self.pages(first).await.is_err() {
                    return;
                }
            }
        }
        if initial_end && self.req.params.allow_bookmarks {
            let b = self.bookmark(true);
            if self.tx.send(line("BOOKMARK", b)).await.is_err() {
                return;
            }
        }
        let mut ticker = tokio::time::interval(BOOKMARK_EVERY);
        ticker.tick().await;
        loop {
            tokio::select! {
                e = events.recv() => {
                    let Some(e) = e else { return };
                    if self.event(&e).await.is_err() {
                        return;
                    }
                }
                _ = ticker.tick(), if self.req.params.allow_bookmarks => {
                    let b = self.bookmark(false);
                    if self.tx.send(line("BOOKMARK", b)).await.is_err() {
                        return;
                    }
                }
                _ = self.tx.closed() => return,
            }
        }
    }

    async fn event(&mut self, e: &Event) -> Result<(), ()> {
        self.last_rev = e.kv.mod_revision;
        // Progress only moves the revision the next bookmark carries.
        if e.kind == EventKind::Progress {
            return Ok(());
        }
        // The shared encoding is of the stored form; other views convert their own.
        if self.as_stored() {
            return self.send_shared(e).await;
        }
        // The stored form: the selectors read only what they look at, and
        // the object goes out as every other watcher of it gets it.
        if self.stored_form() {
            let Some(now_matches) = self.selects(&e.kv) else {
                return Ok(());
            };
            let was = e.prev.as_ref().map(|p| self.selects(p) == Some(true));
            let Some(kind) = change(e, now_matches, was) else {
                return Ok(());
            };
            let object = e.shared.get_or_init(|| stored_json(&e.kv));
            return self.send_stored(kind, object).await;
        }
        let Ok(obj) = self.req.load(&e.kv) else {
            return Ok(());
        };
        let now_matches = self.sel.matches(&obj);
        let was = e
            .prev
            .as_ref()
            .map(|p| self.req.load(p).is_ok_and(|p| self.sel.matches(&p)));
        match change(e, now_matches, was) {
            Some(kind) => self.send(kind, obj).await,
            None => Ok(()),
        }
    }
}

/// What a change is to a watcher with selectors, given whether the object
/// matches now and whether it did before (`None`: the previous value is
/// compacted away); `None` when the watcher is not told.
fn change(e: &Event, now_matches: bool, was: Option<bool>) -> Option<&'static str> {
    let created = e.kv.create_revision == e.kv.mod_revision;
    // The previous value unknown: assume it matched as the new one does.
    let was = was.unwrap_or(!created && now_matches);
    let kind = match e.kind {
        EventKind::Delete if was || now_matches => "DELETED",
        EventKind::Delete => return None,
        EventKind::Put if created && now_matches => "ADDED",
        EventKind::Put if now_matches && was => "MODIFIED",
        EventKind::Put if now_matches => "ADDED",
        EventKind::Put if was => "DELETED",
        EventKind::Put | EventKind::Progress => return None,
    };
    Some(kind)
}

/// A stored object as JSON with its resourceVersion (empty if it is not JSON).
fn stored_json(kv: &KeyValue) -> Bytes {
    if let Some(b) = super::splice::with_resource_version(&kv.value, kv.mod_revision) {
        return Bytes::from(b);
    }
    match meta::from_store(kv) {
        Ok(obj) => Bytes::from(serde_json::to_vec(&obj).expect("JSON serialises")),
        Err(_) => Bytes::new(),
    }
}
