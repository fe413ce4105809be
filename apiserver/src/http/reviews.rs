//! The review APIs, answered from the server's own authentication and RBAC:
//! `TokenReview` (authentication.k8s.io/v1: whose is this bearer token) and
//! `SubjectAccessReview` (authorization.k8s.io/v1: may this user do that), as
//! node agents use them to guard their endpoint (delegated auth, granted by
//! `system:auth-delegator`); `SelfSubjectAccessReview` and
//! `SelfSubjectRulesReview`, which `kubectl auth can-i` (and `--list`) send for
//! the caller itself; `SelfSubjectReview` (who am I: `kubectl auth whoami`).
//! Every authenticated caller may ask about itself.

use super::{App, body};
use crate::auth::{Attributes, User};
use crate::error::ApiError;
use http::{Response, StatusCode};
use serde_json::{Value, json};

/// A review API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Review {
    /// TokenReview.
    Token,
    /// SubjectAccessReview.
    Access,
    /// SelfSubjectAccessReview.
    SelfAccess,
    /// SelfSubjectRulesReview.
    SelfRules,
    /// SelfSubjectReview.
    SelfSubject,
}

impl Review {
    /// The review a POST to `path` asks for.
    pub fn of_path(path: &str) -> Option<Self> {
        Some(match path {
            "/apis/authentication.k8s.io/v1/tokenreviews" => Self::Token,
            "/apis/authorization.k8s.io/v1/subjectaccessreviews" => Self::Access,
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews" => Self::SelfAccess,
            "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews" => Self::SelfRules,
            "/apis/authentication.k8s.io/v1/selfsubjectreviews" => Self::SelfSubject,
            _ => return None,
        })
    }

    /// The API group and resource RBAC checks `create` on.
    pub fn group_resource(self) -> (&'static str, &'static str) {
        match self {
            Self::Token => ("authentication.k8s.io", "tokenreviews"),
            Self::Access => ("authorization.k8s.io", "subjectaccessreviews"),
            Self::SelfAccess => ("authorization.k8s.io", "selfsubjectaccessreviews"),
            Self::SelfRules => ("authorization.k8s.io", "selfsubjectrulesreviews"),
            Self::SelfSubject => ("authentication.k8s.io", "selfsubjectreviews"),
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Self::Token => "TokenReview",
            Self::Access => "SubjectAccessReview",
            Self::SelfAccess => "SelfSubjectAccessReview",
            Self::SelfRules => "SelfSubjectRulesReview",
            Self::SelfSubject => "SelfSubjectReview",
        }
    }
}

fn parse(content_type: &str, bytes: &[u8], kind: &str) -> Result<Value, ApiError> {
    let v = super::meta::decode(content_type, bytes)?;
    if v["kind"] != kind {
        return Err(ApiError::bad_request(format!(
            "expected kind {kind}, got {}",
            v["kind"]
        )));
    }
    Ok(v)
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|g| {
            g.iter()
                .filter_map(|g| g.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Answers one review for `caller`: the review with `status` filled in.
pub async fn serve(
    app: &App,
    review: Review,
    caller: &User,
    content_type: &str,
    bytes: &[u8],
) -> Result<Response<super::Body>, ApiError> {
    let mut v = parse(content_type, bytes, review.kind())?;
    v["status"] = match review {
        Review::Token => {
            let token = v["spec"]["token"].as_str().unwrap_or_default();
            match app.authenticate(Some(&format!("Bearer {token}"))).await {
                Some(u) => {
                    json!({"authenticated": true, "user": {"username": u.name, "groups": u.groups}})
                }
                None => json!({"authenticated": false, "error": "the token is not valid"}),
            }
        }
        Review::Access => {
            let spec = &v["spec"];
            let subject = User {
                name: spec["user"].as_str().unwrap_or_default().to_string(),
                groups: strings(&spec["groups"]),
            };
            decide(app, &subject, spec).await
        }
        Review::SelfAccess => decide(app, caller, &v["spec"]).await,
        Review::SelfRules => rules(app, caller, v["spec"]["namespace"].as_str().unwrap_or("")),
        Review::SelfSubject => who(caller),
    };
    Ok(body::json(StatusCode::CREATED, &v))
}

/// The caller as the server authenticated it.
fn who(caller: &User) -> Value {
    use k8s_openapi::api::authentication::v1::{SelfSubjectReviewStatus, UserInfo};
    let status = SelfSubjectReviewStatus {
        user_info: Some(UserInfo {
            username: Some(caller.name.clone()),
            groups: Some(caller.groups.clone()),
            ..Default::default()
        }),
    };
    serde_json::to_value(status).expect("a status is JSON")
}

async fn decide(app: &App, user: &User, spec: &Value) -> Value {
    let ra = &spec["resourceAttributes"];
    let nra = &spec["nonResourceAttributes"];
    let s = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_string();
    let (verb, group, resource, sub, ns, name, path) = if ra.is_object() {
        (
            s(ra, "verb"),
            s(ra, "group"),
            s(ra, "resource"),
            s(ra, "subresource"),
            s(ra, "namespace"),
            s(ra, "name"),
            String::new(),
        )
    } else {
        let none = String::new;
        (
            s(nra, "verb"),
            none(),
            none(),
            none(),
            none(),
            none(),
            s(nra, "path"),
        )
    };
    let a = Attributes {
        verb: &verb,
        group: &group,
        resource: &resource,
        subresource: &sub,
        namespace: &ns,
        name: &name,
        path: &path,
    };
    match app.authorize(user, &a).await {
        Ok(()) => json!({"allowed": true, "reason": "RBAC: allowed by a binding"}),
        // As Kubernetes's RBAC, no matching rule is no opinion, with no reason.
        Err(_) => json!({"allowed": false}),
    }
}

/// What `user` may do in `namespace`, as `kubectl auth can-i --list` shows it.
fn rules(app: &App, user: &User, namespace: &str) -> Value {
    if user.groups.iter().any(|g| g == crate::rbac::MASTERS) {
        return json!({
            "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
            "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
            "incomplete": false,
        });
    }
    let policy = app.rbac.current();
    let mut resource_rules = Vec::new();
    let mut non_resource_rules = Vec::new();
    for r in policy.rules_of(user, namespace) {
        if let Some(urls) = r.non_resource_urls.as_ref().filter(|u| !u.is_empty()) {
            non_resource_rules.push(json!({"verbs": r.verbs, "nonResourceURLs": urls}));
        } else {
            let mut rule = json!({"verbs": r.verbs, "apiGroups": r.api_groups,
                "resources": r.resources});
            if let Some(names) = r.resource_names.as_ref().filter(|n| !n.is_empty()) {
                rule["resourceNames"] = json!(names);
            }
            resource_rules.push(rule);
        }
    }
    json!({"resourceRules": resource_rules, "nonResourceRules": non_resource_rules, "incomplete": false})
}
