//! `POST .../serviceaccounts/<name>/token` (TokenRequest, authentication.k8s.io/v1):
//! a signed token for an existing ServiceAccount, valid for
//! `spec.expirationSeconds` (default an hour, at least ten minutes), as
//! `kubectl create token` asks for it.

use super::{App, body, route::ResourceRoute};
use crate::error::{ApiError, Cause, Subject};
use crate::tokens::Claims;
use http::{Response, StatusCode};
use serde_json::{Value, json};

/// The default lifetime of a token.
const DEFAULT_SECONDS: i64 = 3600;
/// The shortest lifetime Kubernetes issues.
const MIN_SECONDS: i64 = 600;

/// Issues a token for the ServiceAccount the route names.
pub async fn create(
    app: &App,
    r: &ResourceRoute,
    content_type: &str,
    bytes: &[u8],
) -> Result<Response<super::Body>, ApiError> {
    let name = r.name.as_deref().unwrap_or_default();
    let ns = r.namespace.as_deref().unwrap_or_default();
    let subject = Subject {
        group: "",
        resource: "serviceaccounts",
        kind: "ServiceAccount",
        name,
    };
    let mut req: Value = if bytes.is_empty() {
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}})
    } else {
        super::meta::decode(content_type, bytes)?
    };
    if req["kind"] != "TokenRequest" {
        return Err(ApiError::bad_request(format!(
            "expected kind TokenRequest, got {}",
            req["kind"]
        )));
    }
    let seconds = match &req["spec"]["expirationSeconds"] {
        Value::Null => DEFAULT_SECONDS,
        v => v.as_i64().unwrap_or(-1),
    };
    if seconds < MIN_SECONDS {
        return Err(ApiError::invalid(
            Subject {
                group: "authentication.k8s.io",
                resource: "tokenrequests",
                kind: "TokenRequest",
                name,
            },
            vec![Cause {
                reason: "FieldValueInvalid",
                message: format!(
                    "Invalid value: {}: may not specify a duration less than 10 minutes",
                    req["spec"]["expirationSeconds"]
                ),
                field: "spec.expirationSeconds".into(),
            }],
        ));
    }
    let key = r.info.key(Some(ns), name);
    let sa = app
        .store
        .get(&key)
        .await
        .map_err(|e| ApiError::from_store(e, subject))?
        .ok_or_else(|| ApiError::not_found(subject))?;
    let sa: Value = serde_json::from_slice(&sa.value)
        .map_err(|e| ApiError::new(500, "InternalError", format!("stored object: {e}")))?;
    let now = jiff::Timestamp::now().as_second();
    let audiences: Vec<String> = req["spec"]["audiences"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .filter(|a: &Vec<String>| !a.is_empty())
        .unwrap_or_else(|| vec!["https://kubernetes.default.svc".into()]);
    let claims = Claims {
        namespace: ns.into(),
        name: name.into(),
        uid: sa["metadata"]["uid"].as_str().unwrap_or_default().into(),
        expires: now + seconds,
    };
    let token = app.authn.signer().issue(&claims, &audiences, now);
    let expires = jiff::Timestamp::from_second(claims.expires)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default();
    req["metadata"] = json!({"name": name, "namespace": ns, "creationTimestamp": null});
    req["spec"]["audiences"] = json!(audiences);
    req["spec"]["expirationSeconds"] = json!(seconds);
    req["status"] = json!({"token": token, "expirationTimestamp": expires});
    Ok(body::json(StatusCode::CREATED, &req))
}
