//! Responses in YAML for a client that asks for `application/yaml` first in
//! its `Accept` header (as kube-apiserver serves it): the JSON answer,
//! re-encoded. Watches and non-JSON answers (logs, metrics) are left alone.

use super::body::{self, Body};
use bytes::Bytes;
use http::{Response, header};
use http_body_util::BodyExt;

/// Whether `accept` puts YAML first.
pub fn wanted(accept: &str) -> bool {
    accept
        .split(',')
        .next()
        .is_some_and(|a| a.trim().starts_with("application/yaml"))
}

/// `resp`, in YAML when it is a JSON answer.
pub async fn encode(resp: Response<Body>) -> Response<Body> {
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|c| c.as_bytes() == b"application/json");
    if !is_json {
        return resp;
    }
    let (mut parts, b) = resp.into_parts();
    let bytes: Bytes = match b.collect().await {
        Ok(c) => c.to_bytes(),
        Err(never) => match never {},
    };
    let yaml = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| serde_saphyr::to_string(&v).ok());
    match yaml {
        Some(text) => {
            parts.headers.insert(
                header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/yaml"),
            );
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, body::full(text))
        }
        None => Response::from_parts(parts, body::full(bytes)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn json_answers_become_yaml_and_others_stay() {
        assert!(wanted("application/yaml, application/json"));
        assert!(!wanted("application/json, application/yaml"));
        let resp = body::json(
            http::StatusCode::OK,
            &serde_json::json!({"kind": "ConfigMap", "data": {"a": "1"}}),
        );
        let out = encode(resp).await;
        assert_eq!(out.headers()[header::CONTENT_TYPE], "application/yaml");
        let text = out.into_body().collect().await.unwrap().to_bytes();
        let back: serde_json::Value =
            serde_saphyr::from_str(std::str::from_utf8(&text).unwrap()).unwrap();
        assert_eq!(back["data"]["a"], "1");
        let log = body::text(http::StatusCode::OK, "hello");
        assert_eq!(
            encode(log).await.headers()[header::CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
    }
}
