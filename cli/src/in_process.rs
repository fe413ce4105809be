//! Kube clients over the API server in this process (`mosaic server`,
//! `mosaic up`). The controllers' client retries 429 Too Many Requests and
//! 503 with backoff, honouring `Retry-After`, as client-go and kube's own
//! `Config` clients do: the controllers run as a rate-limited identity,
//! and a burst of binds must not lose its Scheduled events.

use kube::client::retry::RetryPolicy;
use mosaic_apiserver::RunningServer;
use tower::retry::RetryLayer;
use tower::{BoxError, ServiceBuilder};

/// A client acting as the controllers' own identity, retrying as client-go does.
pub fn controllers(server: &RunningServer) -> kube::Client {
    let service = ServiceBuilder::new()
        .layer(RetryLayer::new(RetryPolicy::server_retry()))
        .map_err(BoxError::from)
        .service(server.controllers());
    kube::Client::new(service, "default")
}

/// A client acting as the admin (exempt from the request limits).
pub fn admin(server: &RunningServer) -> kube::Client {
    kube::Client::new(server.in_process(), "default")
}
