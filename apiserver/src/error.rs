//! API errors as Kubernetes `Status` objects: HTTP code, machine-readable
//! reason, a message for people, and `details.causes` with field paths.

use crate::store::StoreError;
use serde_json::{Value, json};

/// One thing wrong with a request, tied to a field when there is one.
#[derive(Clone, Debug, PartialEq)]
pub struct Cause {
    /// `FieldValueRequired`, `FieldValueInvalid`, `FieldValueTypeInvalid`, ...
    pub reason: &'static str,
    /// What is wrong, for people.
    pub message: String,
    /// The field path, e.g. `spec.resources.cpus`.
    pub field: String,
}

/// An error the API returns as a `Status` object.
#[derive(Clone, Debug)]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// Kubernetes `StatusReason`, e.g. `NotFound`.
    pub reason: &'static str,
    /// For people.
    pub message: String,
    /// `details` of the Status (name, group, kind, causes, retryAfterSeconds).
    pub details: Option<Value>,
}

/// Which object an error is about, for `details` and messages.
#[derive(Clone, Copy, Debug)]
pub struct Subject<'a> {
    /// API group ("" for core).
    pub group: &'a str,
    /// Resource (plural) for messages about collections, e.g. `tasks`.
    pub resource: &'a str,
    /// Kind, for `details.kind` (Kubernetes puts the resource there too).
    pub kind: &'a str,
    /// Object name.
    pub name: &'a str,
}

impl Subject<'_> {
    fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.resource.to_string()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }
    fn details(&self) -> Value {
        json!({"name": self.name, "group": self.group, "kind": self.resource})
    }
}

impl ApiError {
    /// An error with no details.
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 401 Unauthorized.
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    /// 403 Forbidden.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }

    /// 404 for an object.
    pub fn not_found(s: Subject<'_>) -> Self {
        Self {
            details: Some(s.details()),
            ..Self::new(
                404,
                "NotFound",
                format!("{} \"{}\" not found", s.qualified(), s.name),
            )
        }
    }

    /// 404 for a path that names nothing.
    pub fn no_route(path: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        )
    }

    /// 405.
    pub fn method_not_allowed(method: &str, what: &str) -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            format!("the server does not allow this method ({method}) on {what}"),
        )
    }

    /// 409 AlreadyExists.
    pub fn already_exists(s: Subject<'_>) -> Self {
        Self {
            details: Some(s.details()),
            ..Self::new(
                409,
                "AlreadyExists",
                format!("{} \"{}\" already exists", s.qualified(), s.name),
            )
        }
    }

    /// 409 Conflict on a stale resourceVersion.
    pub fn conflict(s: Subject<'_>) -> Self {
        Self {
            details: Some(s.details()),
            ..Self::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{}\": the object has been modified; \
                     please apply your changes to the latest version and try again",
                    s.qualified(),
                    s.name
                ),
            )
        }
    }

    /// 410 Expired: a resourceVersion or continue token older than the kept history.
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// 413.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            413,
            "RequestEntityTooLarge",
            format!("the request body is larger than the limit of {limit} bytes"),
        )
    }

    /// 415.
    pub fn unsupported_media(content_type: &str, supported: &[&str]) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format ({content_type}); accepted media types include: {}",
                supported.join(", ")
            ),
        )
    }

    /// 422 Invalid with field causes, in the message form kubectl prints.
    pub fn invalid(s: Subject<'_>, causes: Vec<Cause>) -> Self {
        let list = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect::<Vec<_>>();
        let summary = if list.len() == 1 {
            list[0].clone()
        } else {
            format!("[{}]", list.join(", "))
        };
        let kind_group = if s.group.is_empty() {
            s.kind.to_string()
        } else {
            format!("{}.{}", s.kind, s.group)
        };
        let causes: Vec<Value> = causes
            .into_iter()
            .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
            .collect();
        Self {
            details: Some(
                json!({"name": s.name, "group": s.group, "kind": s.kind, "causes": causes}),
            ),
            ..Self::new(
                422,
                "Invalid",
                format!("{kind_group} \"{}\" is invalid: {summary}", s.name),
            )
        }
    }

    /// 500.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    /// 503: the store cannot serve.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self {
            details: Some(json!({"retryAfterSeconds": 1})),
            ..Self::new(503, "ServiceUnavailable", message)
        }
    }

    /// 429: past the caller's share of concurrent requests (as kube-apiserver's text).
    pub fn too_many_requests() -> Self {
        Self {
            details: Some(json!({"retryAfterSeconds": 1})),
            ..Self::new(
                429,
                "TooManyRequests",
                "Too many requests, please try again later.",
            )
        }
    }

    /// Maps a store failure about one object to the API error Kubernetes gives.
    pub fn from_store(e: StoreError, s: Subject<'_>) -> Self {
        match e {
            StoreError::AlreadyExists(_) => Self::already_exists(s),
            StoreError::NotFound(_) => Self::not_found(s),
            StoreError::Conflict { .. } => Self::conflict(s),
            StoreError::Compacted {
                requested,
                compacted,
            } => Self::expired(format!(
                "too old resource version: {requested} ({compacted})"
            )),
            StoreError::FutureRevision(r) => {
                Self::new(504, "Timeout", format!("Too large resource version: {r}"))
            }
            StoreError::Unavailable(m) => Self::unavailable(m),
            StoreError::Sqlite(e) => Self::unavailable(format!("storage error: {e}")),
        }
    }

    /// The `Status` object.
    pub fn to_status(&self) -> Value {
        let mut v = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            v["details"] = d.clone();
        }
        v
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Self::from_store(
            e,
            Subject {
                group: "",
                resource: "",
                kind: "",
                name: "",
            },
        )
    }
}
