//! Request bodies in Kubernetes's protobuf encoding, for the built-in kinds
//! kubectl sends that way (`kubectl create serviceaccount|role|rolebinding|
//! clusterrole|clusterrolebinding|secret|configmap|namespace|token` and
//! `kubectl auth can-i` and `kubectl auth whoami` use typed clients, which encode protobuf and do not
//! fall back to JSON). The envelope is the `k8s\0` magic and a `runtime.Unknown`
//! (type meta + raw message); the messages are those of k8s.io/api's
//! `generated.proto` (field numbers as there), limited to the fields Mosaic
//! keeps. The result is the object as JSON, as if the client had sent JSON.
//! Responses are JSON, which these clients accept.

use crate::error::ApiError;
use base64::Engine;
use prost::Message;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// The first bytes of every protobuf-encoded object.
pub const MAGIC: &[u8] = b"k8s\0";

/// Go's `omitempty` on ObjectMeta's strings: protobuf carries "" for unset ones.
fn none_or_empty(v: &Option<String>) -> bool {
    v.as_deref().is_none_or(str::is_empty)
}

fn is_empty<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

fn base64_map<S: serde::Serializer>(
    m: &BTreeMap<String, Vec<u8>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    let e = base64::engine::general_purpose::STANDARD;
    s.collect_map(m.iter().map(|(k, v)| (k, e.encode(v))))
}

#[derive(Clone, PartialEq, Message)]
struct TypeMeta {
    #[prost(string, optional, tag = "1")]
    api_version: Option<String>,
    #[prost(string, optional, tag = "2")]
    kind: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
struct Unknown {
    #[prost(message, optional, tag = "1")]
    type_meta: Option<TypeMeta>,
    #[prost(bytes = "vec", optional, tag = "2")]
    raw: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, Message, Serialize)]
#[serde(rename_all = "camelCase")]
struct OwnerReference {
    #[prost(string, optional, tag = "5")]
    #[serde(skip_serializing_if = "Option::is_none")]
    api_version: Option<String>,
    #[prost(string, optional, tag = "1")]
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    #[prost(string, optional, tag = "3")]
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[prost(string, optional, tag = "4")]
    #[serde(skip_serializing_if = "Option::is_none")]
    uid: Option<String>,
    #[prost(bool, optional, tag = "6")]
    #[serde(skip_serializing_if = "Option::is_none")]
    controller: Option<bool>,
    #[prost(bool, optional, tag = "7")]
    #[serde(skip_serializing_if = "Option::is_none")]
    block_owner_deletion: Option<bool>,
}

#[derive(Clone, PartialEq, Message, Serialize)]
#[serde(rename_all = "camelCase")]
struct ObjectMeta {
    #[prost(string, optional, tag = "1")]
    #[serde(skip_serializing_if = "none_or_empty")]
    name: Option<String>,
    #[prost(string, optional, tag = "2")]
    #[serde(skip_serializing_if = "none_or_empty")]
    generate_name: Option<String>,
    #[prost(string, optional, tag = "3")]
    #[serde(skip_serializing_if = "none_or_empty")]
    namespace: Option<String>,
    #[prost(string, optional, tag = "5")]
    #[serde(skip_serializing_if = "none_or_empty")]
    uid: Option<String>,
    #[prost(string, optional, tag = "6")]
    #[serde(skip_serializing_if = "none_or_empty")]
    resource_version: Option<String>,
    #[prost(btree_map = "string, string", tag = "11")]
    #[serde(skip_serializing_if = "is_empty")]
    labels: BTreeMap<String, String>,
    #[prost(btree_map = "string, string", tag = "12")]
    #[serde(skip_serializing_if = "is_empty")]
    annotations: BTreeMap<String, String>,
    #[prost(message, repeated, tag = "13")]
    #[serde(skip_serializing_if = "is_empty")]
    owner_references: Vec<OwnerReference>,
    #[prost(string, repeated, tag = "14")]
    #[serde(skip_serializing_if = "is_empty")]
    finalizers: Vec<String>,
}

/// An object whose only field Mosaic reads from protobuf is its metadata
/// (ServiceAccount, Namespace).
#[derive(Clone, PartialEq, Message, Serialize)]
struct MetaOnly {
    #[prost(message, optional, tag = "1")]
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<ObjectMeta>,
}

#[derive(Clone, PartialEq, Message, Serialize)]
#[serde(rename_all = "camelCase")]
struct Secret {
    #[prost(message, optional, tag = "1")]
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<ObjectMeta>,
    #[prost(bool, optional, tag = "5")]
    #[serde(skip_serializing_if = "Option::is_none")]
    immutable: Option<bool>,
    #[prost(btree_map = "string, bytes", tag = "2")]
    #[serde(skip_serializing_if = "is_empty", serialize_with = "base64_map")]
    data: BTreeMap<String, Vec<u8>>,
    #[prost(btree_map = "string, string", tag = "4")]
    #[serde(skip_serializing_if = "is_empty")]
    string_data: BTreeMap<String, String>,
    #[prost(string, optional, tag = "3")]
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    type_: Option<String>,
}

#[derive(Clone, PartialEq, Message, Serialize)]
#[serde(rename_all = "camelCase")]
struct ConfigMap {
    #[prost(message, optional, tag = "1")]
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<ObjectMeta>,
    #[prost(bool, optional, tag = "4")]
    #[serde(skip_serializing_if = "Option::is_none")]
    immutable: Option<bool>,
    #[prost(btree_map = "string, string", tag = "2")]
    #[serde(skip_serializing_if = "is_empty")]
    data: BTreeMap<String, String>,
    #[prost(btree_map = "string, bytes", tag = "3")]
    #[serde(skip_serializing_if = "is_empty", serialize_with = "base64_map")]
    binary_data: BTreeMap<String, Vec<u8>>,
}

#[derive(Clone, PartialEq, Message, Serialize)]
#[serde(rename_all = "camelCase")]
struct PolicyRule {
    #[prost(string, repeated, tag = "1")]
    verbs: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    #[serde(skip_serializing_if = "is_empty")]
    api_groups: Vec<String>,
    #[prost(string, repeated, tag = "3")]
    #[serde(skip_serializing_if = "is_empty")]
    resources: Vec<String>,
    #[prost(string, repeated, tag = "4")]
    #[serde(skip_serializing_if = "is_empty")]
    resource_names: Vec<String>,
    #[prost(string, repeated, tag = "5")]
    #[serde(rename = "nonResourceURLs", skip_serializing_if = "is_empty")]
    non_resource_urls: Vec<String>,
}

#[derive(Clone, PartialEq, Message, Serialize)]
struct RoleObject {
    #[prost(message, optional, tag = "1")]
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<ObjectMeta>,
    #[prost(message, repeated, tag = "2")]
    rules: Vec<PolicyRule>,
}

#[derive(Clone, PartialEq, Message, Serialize)]
#[serde(rename_all = "camelCase")]
struct Subject {
    #[prost(string, optional, tag = "1")]
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    #[prost(string, optional, tag = "2")]
    #[serde(skip_serializing_if = "Option::is_none")]
    api_group: Option<String>,
    #[prost(string, optional, tag = "3")]
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[prost(string, optional, tag = "4")]
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
}

#[derive(Clone, PartialEq, Message, Serialize)]
#[serde(rename_all = "camelCase")]
struct RoleRef {
    #[prost(string, optional, tag = "1")]
    #[serde(skip_serializing_if = "Option::is_none")]
    api_group: Option<String>,
    #[prost(string, optional, tag = "2")]
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    #[prost(string, optional, tag = "3")]
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
}

#[derive(Clone, PartialEq, Message, Serialize)]
#[serde(rename_all = "camelCase")]
struct Binding {
    #[prost(message, optional, tag = "1")]
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<ObjectMeta>,
    #[prost(message, repeated, tag = "2")]
    #[serde(skip_serializing_if = "is_empty")]
    subjects: Vec<Subject>,
    #[prost(message, optional, tag = "3")]
    #[serde(skip_serializing_if = "Option::is_none")]
    role_ref: Option<RoleRef>,
}

#[derive(Clone, PartialEq, Message, Serialize)]
#[serde(rename_all = "camelCase")]
struct TokenRequestSpec {
    #[prost(string, repeated, tag = "1")]
    #[serde(skip_serializing_if = "is_empty")]
    audiences: Vec<String>,
    #[prost(int64, optional, tag = "4")]
    #[serde(skip_serializing_if = "Option::is_none")]
    expiration_seconds: Option<i64>,
}

#[derive(Clone, PartialEq, Message, Serialize)]
struct TokenRequest {
    #[prost(message, optional, tag = "2")]
    spec: Option<TokenRequestSpec>,
}

#[derive(Clone, PartialEq, Message, Serialize)]
struct TokenReviewSpec {
    #[prost(string, optional, tag = "1")]
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
    #[prost(string, repeated, tag = "2")]
    #[serde(skip_serializing_if = "is_empty")]
    audiences: Vec<String>,
}

#[derive(Clone, PartialEq, Message, Serialize)]
struct TokenReview {
    #[prost(message, optional, tag = "2")]
    spec: Option<TokenReviewSpec>,
}

#[derive(Clone, PartialEq, Message, Serialize)]
struct ResourceAttributes {
    #[prost(string, optional, tag = "1")]
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
    #[prost(string, optional, tag = "2")]
    #[serde(skip_serializing_if = "Option::is_none")]
    verb: Option<String>,
    #[prost(string, optional, tag = "3")]
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<String>,
    #[prost(string, optional, tag = "4")]
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[prost(string, optional, tag = "5")]
    #[serde(skip_serializing_if = "Option::is_none")]
    resource: Option<String>,
    #[prost(string, optional, tag = "6")]
    #[serde(skip_serializing_if = "Option::is_none")]
    subresource: Option<String>,
    #[prost(string, optional, tag = "7")]
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
}

#[derive(Clone, PartialEq, Message, Serialize)]
struct NonResourceAttributes {
    #[prost(string, optional, tag = "1")]
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    #[prost(string, optional, tag = "2")]
    #[serde(skip_serializing_if = "Option::is_none")]
    verb: Option<String>,
}

#[derive(Clone, PartialEq, Message, Serialize)]
#[serde(rename_all = "camelCase")]
struct AccessReviewSpec {
    #[prost(message, optional, tag = "1")]
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_attributes: Option<ResourceAttributes>,
    #[prost(message, optional, tag = "2")]
    #[serde(skip_serializing_if = "Option::is_none")]
    non_resource_attributes: Option<NonResourceAttributes>,
    #[prost(string, optional, tag = "3")]
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    #[prost(string, repeated, tag = "4")]
    #[serde(skip_serializing_if = "is_empty")]
    groups: Vec<String>,
}

/// SubjectAccessReview and SelfSubjectAccessReview (whose spec has only the
/// first two fields).
#[derive(Clone, PartialEq, Message, Serialize)]
struct AccessReview {
    #[prost(message, optional, tag = "2")]
    spec: Option<AccessReviewSpec>,
}

#[derive(Clone, PartialEq, Message, Serialize)]
struct RulesReviewSpec {
    #[prost(string, optional, tag = "1")]
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
}

#[derive(Clone, PartialEq, Message, Serialize)]
struct RulesReview {
    #[prost(message, optional, tag = "2")]
    spec: Option<RulesReviewSpec>,
}

#[derive(Clone, PartialEq, Message, Serialize)]
#[serde(rename_all = "camelCase")]
struct Preconditions {
    #[prost(string, optional, tag = "1")]
    #[serde(skip_serializing_if = "Option::is_none")]
    uid: Option<String>,
    #[prost(string, optional, tag = "2")]
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_version: Option<String>,
}

#[derive(Clone, PartialEq, Message, Serialize)]
#[serde(rename_all = "camelCase")]
struct DeleteOptions {
    #[prost(int64, optional, tag = "1")]
    #[serde(skip_serializing_if = "Option::is_none")]
    grace_period_seconds: Option<i64>,
    #[prost(message, optional, tag = "2")]
    #[serde(skip_serializing_if = "Option::is_none")]
    preconditions: Option<Preconditions>,
    #[prost(bool, optional, tag = "3")]
    #[serde(skip_serializing_if = "Option::is_none")]
    orphan_dependents: Option<bool>,
    #[prost(string, optional, tag = "4")]
    #[serde(skip_serializing_if = "Option::is_none")]
    propagation_policy: Option<String>,
    #[prost(string, repeated, tag = "5")]
    #[serde(skip_serializing_if = "is_empty")]
    dry_run: Vec<String>,
}

fn to_json<M: Message + Default + Serialize>(raw: &[u8]) -> Result<Value, prost::DecodeError> {
    let m = M::decode(raw)?;
    Ok(serde_json::to_value(&m).expect("a decoded message serializes"))
}

/// The JSON form of a protobuf-encoded request body.
pub fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let bad = |e: String| {
        ApiError::bad_request(format!("couldn't decode the protobuf request body: {e}"))
    };
    let envelope = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| bad("it does not start with the k8s protobuf magic".into()))?;
    let unknown = Unknown::decode(envelope).map_err(|e| bad(e.to_string()))?;
    let tm = unknown.type_meta.unwrap_or_default();
    let kind = tm.kind.unwrap_or_default();
    let raw = unknown.raw.unwrap_or_default();
    let decoded = match kind.as_str() {
        "ServiceAccount" | "Namespace" | "SelfSubjectReview" => to_json::<MetaOnly>(&raw),
        "Secret" => to_json::<Secret>(&raw),
        "ConfigMap" => to_json::<ConfigMap>(&raw),
        "Role" | "ClusterRole" => to_json::<RoleObject>(&raw),
        "RoleBinding" | "ClusterRoleBinding" => to_json::<Binding>(&raw),
        "TokenRequest" => to_json::<TokenRequest>(&raw),
        "TokenReview" => to_json::<TokenReview>(&raw),
        "SubjectAccessReview" | "SelfSubjectAccessReview" => to_json::<AccessReview>(&raw),
        "SelfSubjectRulesReview" => to_json::<RulesReview>(&raw),
        "DeleteOptions" => to_json::<DeleteOptions>(&raw),
        _ => {
            return Err(ApiError::unsupported_media(
                &format!("application/vnd.kubernetes.protobuf for kind {kind:?}"),
                &["application/json", "application/yaml"],
            ));
        }
    };
    let mut v = decoded.map_err(|e| bad(format!("{kind}: {e}")))?;
    v["apiVersion"] = Value::String(tm.api_version.unwrap_or_default());
    v["kind"] = Value::String(kind);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        Unknown {
            type_meta: Some(TypeMeta {
                api_version: Some(api_version.into()),
                kind: Some(kind.into()),
            }),
            raw: Some(raw),
        }
        .encode(&mut out)
        .unwrap();
        out
    }

    #[test]
    fn a_role_binding_decodes_to_its_json_form() {
        let b = Binding {
            // kubectl sends the unset strings as "" (Go's zero values).
            metadata: Some(ObjectMeta {
                name: Some("alice".into()),
                namespace: Some("team-a".into()),
                generate_name: Some(String::new()),
                uid: Some(String::new()),
                ..Default::default()
            }),
            subjects: vec![Subject {
                kind: Some("ServiceAccount".into()),
                name: Some("alice".into()),
                namespace: Some("team-a".into()),
                ..Default::default()
            }],
            role_ref: Some(RoleRef {
                api_group: Some("rbac.authorization.k8s.io".into()),
                kind: Some("Role".into()),
                name: Some("tasks".into()),
            }),
        };
        let v = decode(&envelope(
            "rbac.authorization.k8s.io/v1",
            "RoleBinding",
            b.encode_to_vec(),
        ))
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": "alice", "namespace": "team-a"},
                "subjects": [{"kind": "ServiceAccount", "name": "alice", "namespace": "team-a"}],
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "tasks"}})
        );
    }

    #[test]
    fn secret_bytes_become_base64_and_unknown_kinds_are_415() {
        let mut s = Secret::default();
        s.data.insert("k".into(), b"hi".to_vec());
        let v = decode(&envelope("v1", "Secret", s.encode_to_vec())).unwrap();
        assert_eq!(v["data"]["k"], "aGk=");
        let e = decode(&envelope("apps/v1", "Deployment", vec![])).unwrap_err();
        assert_eq!(e.code, 415);
        let e = decode(b"{\"kind\":\"Secret\"}").unwrap_err();
        assert_eq!(e.code, 400);
    }
}
