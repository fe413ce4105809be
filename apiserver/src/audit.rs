//! The audit log (`mosaic server --audit-log FILE`): one JSON line per request
//! on the API, in the shape of Kubernetes's `audit.k8s.io/v1` Event at level
//! Metadata, stage ResponseComplete: who, which verb on which object, and the
//! response code. Each line goes to the file in one append, so readers never
//! see half a line; it is not fsynced (audit, not state).

use crate::auth::{Attributes, User};
use serde_json::json;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

/// An open audit log.
pub struct AuditLog {
    file: Mutex<std::fs::File>,
}

/// What one request was, kept until its response code is known.
#[derive(Clone, Debug, Default)]
pub struct Record {
    user: String,
    groups: Vec<String>,
    verb: String,
    group: String,
    resource: String,
    subresource: String,
    namespace: String,
    name: String,
    path: String,
}

impl Record {
    /// The request `user` made, as authorization saw it.
    pub fn new(user: &User, a: &Attributes<'_>) -> Self {
        Self {
            user: user.name.clone(),
            groups: user.groups.clone(),
            verb: a.verb.into(),
            group: a.group.into(),
            resource: a.resource.into(),
            subresource: a.subresource.into(),
            namespace: a.namespace.into(),
            name: a.name.into(),
            path: a.path.into(),
        }
    }
}

impl AuditLog {
    /// Opens (appends to) `path`.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        crate::private::tighten(path)?;
        Ok(Self {
            file: Mutex::new(file),
        })
    }

    /// Writes one event.
    pub fn write(&self, r: &Record, uri: &str, code: u16) {
        let mut object_ref = json!({
            "resource": r.resource, "apiGroup": r.group,
        });
        for (k, v) in [
            ("subresource", &r.subresource),
            ("namespace", &r.namespace),
            ("name", &r.name),
        ] {
            if !v.is_empty() {
                object_ref[k] = json!(v);
            }
        }
        let mut ev = json!({
            "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
            "auditID": crate::stamps::new_uid(), "stage": "ResponseComplete",
            "requestURI": uri, "verb": r.verb,
            "user": {"username": r.user, "groups": r.groups},
            "responseStatus": {"code": code},
            "stageTimestamp": crate::stamps::now(),
        });
        if r.resource.is_empty() {
            ev["requestURI"] = json!(r.path);
        } else {
            ev["objectRef"] = object_ref;
        }
        let mut line = serde_json::to_vec(&ev).expect("JSON");
        line.push(b'\n');
        if let Err(e) = self.file.lock().expect("audit lock").write_all(&line) {
            tracing::warn!(error = %e, "writing the audit log failed");
        }
    }
}
