//! Delegated authentication and authorization, as a kubelet uses them:
//! `TokenReview` (authentication.k8s.io/v1) says whose a bearer token is, and
//! `SubjectAccessReview` (authorization.k8s.io/v1) says whether a user may do
//! something. Node agents use both to guard their logs and metrics endpoint
//! with the cluster's own credentials and rules.

use super::body;
use crate::auth::{self, Attributes, Authenticator, User};
use crate::error::ApiError;
use http::{Response, StatusCode};
use serde_json::{Value, json};

/// The paths served here.
pub const TOKEN_REVIEWS: &str = "/apis/authentication.k8s.io/v1/tokenreviews";
/// See [`TOKEN_REVIEWS`].
pub const ACCESS_REVIEWS: &str = "/apis/authorization.k8s.io/v1/subjectaccessreviews";

/// Only the admin and agents may ask.
fn may_review(caller: &User) -> Result<(), ApiError> {
    if caller
        .groups
        .iter()
        .any(|g| g == "system:masters" || g == "mosaic:agents")
    {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "User \"{}\" cannot create reviews of tokens or access",
            caller.name
        )))
    }
}

fn parse(bytes: &[u8], kind: &str) -> Result<Value, ApiError> {
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("the {kind} is not valid JSON: {e}")))?;
    if v["kind"] != kind {
        return Err(ApiError::bad_request(format!(
            "expected kind {kind}, got {}",
            v["kind"]
        )));
    }
    Ok(v)
}

/// POST tokenreviews: the review with `status` filled in.
pub fn token_review(
    caller: &User,
    authn: &Authenticator,
    bytes: &[u8],
) -> Result<Response<super::Body>, ApiError> {
    may_review(caller)?;
    let mut review = parse(bytes, "TokenReview")?;
    let token = review["spec"]["token"].as_str().unwrap_or_default();
    review["status"] = match authn.authenticate(Some(&format!("Bearer {token}"))) {
        Some(u) => json!({"authenticated": true, "user": {"username": u.name, "groups": u.groups}}),
        None => json!({"authenticated": false, "error": "the token is not valid"}),
    };
    Ok(body::json(StatusCode::CREATED, &review))
}

/// POST subjectaccessreviews: the review with `status.allowed` filled in.
pub fn access_review(caller: &User, bytes: &[u8]) -> Result<Response<super::Body>, ApiError> {
    may_review(caller)?;
    let mut review = parse(bytes, "SubjectAccessReview")?;
    let spec = &review["spec"];
    let subject = User {
        name: spec["user"].as_str().unwrap_or_default().to_string(),
        groups: spec["groups"]
            .as_array()
            .map(|g| {
                g.iter()
                    .filter_map(|g| g.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
    };
    let ra = &spec["resourceAttributes"];
    let s = |k: &str| ra[k].as_str().unwrap_or_default();
    let decision = auth::authorize(
        &subject,
        Attributes {
            verb: s("verb"),
            group: s("group"),
            resource: s("resource"),
            subresource: s("subresource"),
            namespace: s("namespace"),
        },
    );
    review["status"] = match decision {
        Ok(()) => json!({"allowed": true}),
        Err(e) => json!({"allowed": false, "reason": e.to_status()["message"]}),
    };
    Ok(body::json(StatusCode::CREATED, &review))
}
