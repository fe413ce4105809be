//! A fake API server for the controllers' unit tests, as kube-rs's
//! controller-rs fixtures do it: a kube `Client` whose requests the test
//! reads and answers itself, so what a writer sends (verb, path, field
//! manager, body) is checked in milliseconds, with no server running.

use http::{Request, Response};
use http_body_util::BodyExt;
use kube::Client;
use kube::client::Body;
use serde_json::Value;

/// The test's end of the fake API.
pub struct FakeApi(tower_test::mock::Handle<Request<Body>, Response<Body>>);

/// A request the controllers sent.
#[derive(Debug)]
pub struct Sent {
    /// Its method.
    pub method: http::Method,
    /// Its path and query.
    pub uri: String,
    /// Its content type.
    pub content_type: String,
    /// Its body, as JSON (`null` when empty).
    pub body: Value,
}

/// A client that talks to the returned fake API.
pub fn client() -> (Client, FakeApi) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(service, "default"), FakeApi(handle))
}

impl FakeApi {
    /// The next request sent, answered with `code` and `answer`.
    pub async fn next(&mut self, code: u16, answer: Value) -> Sent {
        let wait = std::time::Duration::from_secs(5);
        let (req, reply) = tokio::time::timeout(wait, self.0.next_request())
            .await
            .expect("a request within 5 s")
            .expect("the client is still there");
        let (parts, body) = req.into_parts();
        let bytes = body.collect().await.expect("a body").to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("a JSON body")
        };
        let content_type = parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        reply.send_response(
            Response::builder()
                .status(code)
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Body::from(serde_json::to_vec(&answer).expect("JSON")))
                .expect("a response"),
        );
        Sent {
            method: parts.method,
            uri: parts.uri.to_string(),
            content_type,
            body,
        }
    }
}
