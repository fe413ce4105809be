//! WATCH: newline-delimited JSON events over a streamed response.
//!
//! Without a resourceVersion (or with "0") the stream starts with an ADDED event
//! per existing object; with `sendInitialEvents=true` those are followed by a
//! BOOKMARK annotated `k8s.io/initial-events-end`. With resourceVersion N it
//! carries every change after N, or one ERROR event (410 Expired) when N is
//! older than the kept history. Selectors are applied per event, turning an
//! object that stops (starts) matching into DELETED (ADDED), as Kubernetes does.

use super::body::{self, Body};
use super::list::{Selectors, collect};
use super::objects::Request;
use super::{meta, table};
use crate::error::ApiError;
use crate::store::{Event, EventKind};
use bytes::Bytes;
use http::{Response, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::mpsc;

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
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let as_table = table::wants_table(&req.accept);
    let mut initial_objects = Vec::new();
    let start = if rv.is_none() || initial {
        // Synthetic ADDED events for the current state, then changes after it.
        req.params.limit = 0;
        req.params.continue_token = None;
        let (items, rev, _) = collect(&req, &sel).await?;
        initial_objects = items;
        rev
    } else {
        rv.unwrap_or_default()
    };
    let prefix = req
        .route
        .info
        .collection_prefix(req.route.namespace.as_deref());
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
        Some(f) => req.app.store.watch_field(prefix, start, f).await,
        None => req.app.store.watch(prefix, start).await,
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
    app.metrics.watches.fetch_add(1, Ordering::Relaxed);
    let w = Watch {
        req: Arc::new(req),
        sel,
        as_table,
        headers_sent: false,
        last_rev: start,
        tx,
    };
    tokio::spawn(async move {
        if let Some(events) = events {
            let _ = tokio::time::timeout(timeout, w.run(initial_objects, initial, events)).await;
        }
        app.metrics.watches.fetch_sub(1, Ordering::Relaxed);
    });
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body::stream(rx))
        .expect("static response parts are valid"))
}

struct Watch {
    req: Arc<Request>,
    sel: Selectors,
    as_table: bool,
    headers_sent: bool,
    last_rev: i64,
    tx: mpsc::Sender<Bytes>,
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
        let object = e.shared.get_or_init(|| {
            if let Some(b) = super::splice::with_resource_version(&e.kv.value, e.kv.mod_revision) {
                return Bytes::from(b);
            }
            match meta::from_store(&e.kv) {
                Ok(obj) => Bytes::from(serde_json::to_vec(&obj).expect("JSON serialises")),
                Err(_) => Bytes::new(),
            }
        });
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
        initial: Vec<Value>,
        initial_end: bool,
        mut events: mpsc::Receiver<Arc<Event>>,
    ) {
        for obj in initial {
            if self.send("ADDED", obj).await.is_err() {
                return;
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
        if self.sel.is_everything() && !self.as_table && self.req.route.info.view.is_stored() {
            return self.send_shared(e).await;
        }
        let Ok(obj) = self.req.load(&e.kv) else {
            return Ok(());
        };
        let now_matches = self.sel.matches(&obj);
        let created = e.kv.create_revision == e.kv.mod_revision;
        let was = match &e.prev {
            Some(p) => self.req.load(p).is_ok_and(|p| self.sel.matches(&p)),
            // The previous value is compacted away: assume it matched as the new one does.
            None => !created && now_matches,
        };
        let kind = match e.kind {
            EventKind::Delete if was || now_matches => "DELETED",
            EventKind::Delete => return Ok(()),
            EventKind::Put if created && now_matches => "ADDED",
            EventKind::Put if now_matches && was => "MODIFIED",
            EventKind::Put if now_matches => "ADDED",
            EventKind::Put if was => "DELETED",
            EventKind::Put | EventKind::Progress => return Ok(()),
        };
        self.send(kind, obj).await
    }
}
