//! The API as a tower `Service`, for clients in the same process (the
//! controllers under `mosaic server` and `mosaic up`): `kube::Client::new`
//! takes it, and requests reach [`crate::http::App::handle`] with no socket,
//! no TLS and no serialisation beyond the JSON bodies, as the user it is
//! made for (carried as a request extension, as a verified client
//! certificate's user is: no network client can set one, and rotating the
//! bearer tokens does not cut the controllers off).

use crate::http::{App, Body};
use bytes::Bytes;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// A tower service that hands requests to the API server in this process.
#[derive(Clone)]
pub struct InProcess {
    app: Arc<App>,
    user: crate::auth::CertificateUser,
}

impl InProcess {
    /// Requests are made as `user`.
    pub fn new(app: Arc<App>, user: crate::auth::User) -> Self {
        Self {
            app,
            user: crate::auth::CertificateUser(user),
        }
    }
}

impl<B> tower_service::Service<http::Request<B>> for InProcess
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        req.extensions_mut().insert(self.user.clone());
        // The field manager of its writes, when they name none.
        if !req.headers().contains_key(http::header::USER_AGENT) {
            req.headers_mut().insert(
                http::header::USER_AGENT,
                http::HeaderValue::from_static("mosaic-controllers"),
            );
        }
        let app = self.app.clone();
        Box::pin(async move { Ok(app.handle(req).await) })
    }
}
