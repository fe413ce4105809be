//! `/openapi/v2`, as kube-apiserver still serves it. kubectl asks for it in
//! gnostic's protobuf form when its OpenAPI v3 checks cannot decide (a
//! `kind: List`, an unknown kind) and gives up with `failed to download
//! openapi` when it is missing. The protobuf answer is a valid Swagger 2.0
//! document without definitions: kubectl then leaves the validation to the
//! server (`fieldValidation=Strict`, from the v3 documents). A JSON request
//! gets the v3 documents' content as one Swagger 2.0 document.

use super::body::{self, Body};
use crate::registry::Registry;
use http::{Response, StatusCode};
use prost::Message;
use serde_json::{Map, Value, json};

/// The content type of the protobuf answer, as kube-openapi names it (kubectl
/// asks for the older `...spec.v2@v1.0+protobuf`, which is not a valid media
/// type to answer with: client-go fails to parse it).
pub const PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// gnostic's `openapi.v2.Document`, with the one field this answer fills.
#[derive(Clone, PartialEq, prost::Message)]
struct Document {
    #[prost(string, tag = "1")]
    swagger: String,
}

/// Serves `/openapi/v2`.
pub fn serve(reg: &Registry, accept: &str) -> Response<Body> {
    if accept.contains("protobuf") {
        let doc = Document {
            swagger: "2.0".into(),
        };
        return body::encoded(StatusCode::OK, doc.encode_to_vec(), PROTOBUF);
    }
    body::json(StatusCode::OK, &swagger(reg))
}

/// The v3 documents as one Swagger 2.0 document: their schemas as
/// `definitions`, their paths with each operation's response schema.
fn swagger(reg: &Registry) -> Value {
    let mut definitions = Map::new();
    let mut paths = Map::new();
    for doc in super::openapi::documents(reg).into_values() {
        let doc = v2_refs(doc);
        if let Some(schemas) = doc["components"]["schemas"].as_object() {
            definitions.extend(schemas.clone());
        }
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            let mut out = Map::new();
            for (method, op) in item.as_object().into_iter().flatten() {
                if method == "parameters" {
                    continue;
                }
                let mut op = op.clone();
                let schema =
                    op["responses"]["200"]["content"]["application/json"]["schema"].clone();
                op["responses"] = json!({"200": {"description": "OK", "schema": schema}});
                if let Some(o) = op.as_object_mut() {
                    o.remove("requestBody");
                    o.remove("parameters");
                }
                out.insert(method.clone(), op);
            }
            paths.insert(path.clone(), Value::Object(out));
        }
    }
    json!({
        "swagger": "2.0",
        "info": {"title": "Mosaic", "version": "v1.37.0"},
        "paths": paths,
        "definitions": definitions,
    })
}

/// Rewrites `#/components/schemas/X` references to `#/definitions/X`.
fn v2_refs(v: Value) -> Value {
    match v {
        Value::String(s) => Value::String(s.replace("#/components/schemas/", "#/definitions/")),
        Value::Array(a) => Value::Array(a.into_iter().map(v2_refs).collect()),
        Value::Object(m) => Value::Object(m.into_iter().map(|(k, v)| (k, v2_refs(v))).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protobuf_is_a_swagger_document_and_json_has_every_kind() {
        let reg = Registry::new();
        assert_eq!(
            Document::decode(&[0x0a, 0x03, b'2', b'.', b'0'][..]).map(|d| d.swagger),
            Ok("2.0".to_string())
        );
        let doc = swagger(&reg);
        assert_eq!(doc["swagger"], "2.0");
        let cm = &doc["definitions"]["io.k8s.api.core.v1.ConfigMap"];
        assert_eq!(
            cm["properties"]["data"]["additionalProperties"]["type"],
            "string"
        );
        assert!(!doc.to_string().contains("#/components/"));
        assert!(doc["paths"]["/api/v1/namespaces/{namespace}/configmaps"]["get"].is_object());
    }
}
