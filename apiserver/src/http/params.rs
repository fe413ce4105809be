//! The query parameters of a Kubernetes API request.

use crate::error::ApiError;

/// Parsed query parameters (unknown ones are ignored, as kube-apiserver does).
#[derive(Clone, Debug, Default)]
pub struct Params {
    /// `watch=true`.
    pub watch: bool,
    /// `resourceVersion`.
    pub resource_version: Option<String>,
    /// `resourceVersionMatch`: `NotOlderThan` or `Exact`.
    pub resource_version_match: Option<String>,
    /// `limit`.
    pub limit: usize,
    /// `continue`.
    pub continue_token: Option<String>,
    /// `labelSelector`.
    pub label_selector: String,
    /// `fieldSelector`.
    pub field_selector: String,
    /// `timeoutSeconds`.
    pub timeout_seconds: Option<u64>,
    /// `allowWatchBookmarks=true`.
    pub allow_bookmarks: bool,
    /// `sendInitialEvents=true`.
    pub send_initial_events: Option<bool>,
    /// `dryRun=All`.
    pub dry_run: bool,
    /// `fieldValidation`: `Strict`, `Warn` (default) or `Ignore`.
    pub field_validation: String,
    /// `fieldManager`.
    pub field_manager: Option<String>,
    /// `force=true` (server-side apply).
    pub force: bool,
    /// `propagationPolicy`.
    pub propagation_policy: Option<String>,
    /// `includeObject` for tables: `None`, `Metadata` (default), `Object`.
    pub include_object: Option<String>,
}

fn boolean(v: &str) -> bool {
    matches!(v, "true" | "1" | "True")
}

impl Params {
    /// Parses a query string.
    pub fn parse(query: &str) -> Result<Self, ApiError> {
        let mut p = Params {
            field_validation: "Warn".into(),
            ..Default::default()
        };
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            match k.as_ref() {
                "watch" => p.watch = boolean(&v),
                "resourceVersion" if !v.is_empty() => p.resource_version = Some(v.into_owned()),
                "resourceVersionMatch" if !v.is_empty() => {
                    p.resource_version_match = Some(v.into_owned())
                }
                "limit" => {
                    let n: i64 = v.parse().map_err(|_| {
                        ApiError::bad_request(format!("invalid limit {v:?}: must be an integer"))
                    })?;
                    p.limit = n.max(0) as usize;
                }
                "continue" if !v.is_empty() => p.continue_token = Some(v.into_owned()),
                "labelSelector" => p.label_selector = v.into_owned(),
                "fieldSelector" => p.field_selector = v.into_owned(),
                "timeoutSeconds" => {
                    p.timeout_seconds = Some(v.parse().map_err(|_| {
                        ApiError::bad_request(format!(
                            "invalid timeoutSeconds {v:?}: must be an integer"
                        ))
                    })?)
                }
                "allowWatchBookmarks" => p.allow_bookmarks = boolean(&v),
                "sendInitialEvents" => p.send_initial_events = Some(boolean(&v)),
                "dryRun" => {
                    if v != "All" {
                        return Err(ApiError::bad_request(format!(
                            "Invalid value: {v:?}: supported values: \"All\" (dryRun)"
                        )));
                    }
                    p.dry_run = true;
                }
                "fieldValidation" => match v.as_ref() {
                    "Strict" | "Warn" | "Ignore" => p.field_validation = v.into_owned(),
                    "" => {}
                    other => {
                        return Err(ApiError::bad_request(format!(
                            "Invalid value: {other:?}: fieldValidation must be one of Ignore, Warn, Strict"
                        )));
                    }
                },
                "fieldManager" => p.field_manager = Some(v.into_owned()),
                "force" => p.force = boolean(&v),
                "propagationPolicy" => p.propagation_policy = Some(v.into_owned()),
                "includeObject" => p.include_object = Some(v.into_owned()),
                _ => {}
            }
        }
        Ok(p)
    }
}
