//! Response bodies: whole JSON or text, `Status` errors, and streams for watches.

use crate::error::ApiError;
use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use std::convert::Infallible;

/// The largest request body accepted (as kube-apiserver: 3 MiB).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// Every response body.
pub type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>;

/// A whole body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

/// A JSON response.
pub fn json(status: StatusCode, v: &Value) -> Response<Body> {
    json_typed(status, v, "application/json")
}

/// A response of JSON already encoded.
pub fn json_bytes(status: StatusCode, bytes: Vec<u8>) -> Response<Body> {
    encoded(status, bytes, "application/json")
}

/// A JSON response with a given content type.
pub fn json_typed(status: StatusCode, v: &Value, content_type: &str) -> Response<Body> {
    let bytes = serde_json::to_vec(v).expect("a JSON value always serialises");
    encoded(status, bytes, content_type)
}

/// A response of bytes already encoded, with their content type.
pub fn encoded(status: StatusCode, bytes: Vec<u8>, content_type: &str) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .body(full(bytes))
        .expect("static response parts are valid")
}

/// A plain-text response.
pub fn text(status: StatusCode, s: &str) -> Response<Body> {
    encoded(status, s.as_bytes().to_vec(), "text/plain; charset=utf-8")
}

/// A `Status` response for an error.
pub fn status_response(e: &ApiError) -> Response<Body> {
    let code = StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = json(code, &e.to_status());
    // Clients back off by the header (client-go and kube-rs read it on 429 and 503).
    if let Some(secs) = e
        .details
        .as_ref()
        .and_then(|d| d["retryAfterSeconds"].as_u64())
    {
        resp.headers_mut()
            .insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
    }
    resp
}
