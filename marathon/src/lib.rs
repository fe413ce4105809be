//! Marathon's v2 REST API over Mosaic's App kind, for the tooling people
//! kept from Marathon (its Python client, scripts, deploy tools).
//!
//! A gateway: every call is translated to calls on Apps and their instances
//! (Tasks) in one namespace, made to the API server through a Kubernetes
//! client **as the caller** (the caller's token is the client's only
//! credential, [`auth`]), so the API server authenticates it and RBAC
//! authorizes each call; nothing here trusts the caller otherwise, and it
//! never imports the API server. It runs beside `mosaic server` (`mosaic
//! server --marathon-listen ADDR`) or against any cluster with Mosaic's CRDs.
//!
//! - [`model`]: Marathon's JSON; [`translate`]: an app definition into an
//!   App (what cannot be honoured is refused, by path); [`present`]: Apps,
//!   instances and rollouts as Marathon's apps, tasks and deployments;
//!   [`routes`]: the calls, [`kills`] the kills, with what they share in
//!   [`call`]; [`error`]: Marathon's error answers.
//! - Served through `mosaic-listener` (timeouts, connection cap): plain HTTP
//!   only on a loopback address, TLS elsewhere (the caller decides, see
//!   [`serve`]). Request bodies are limited to [`MAX_BODY`].

pub mod auth;
pub mod call;
pub mod clients;
pub mod error;
pub mod kills;
pub mod model;
pub mod present;
pub mod routes;
pub mod translate;

use bytes::Bytes;
use error::MarathonError;
use http_body_util::{BodyExt, Full, Limited};
use std::collections::HashMap;
use std::sync::Arc;

/// The largest request body taken (an app definition is a few KiB).
pub const MAX_BODY: usize = 1 << 20;

/// How long a request body may take to arrive.
pub const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// What the gateway serves from.
pub struct Gateway {
    /// Callers' clients of the API server.
    pub clients: clients::Clients,
    /// The namespace whose Apps Marathon's apps are.
    pub namespace: String,
    /// The port it listens on (for `/v2/info`).
    pub port: u16,
}

pub use tokio_rustls::TlsAcceptor;

/// A TLS acceptor serving `cert_pem` (a chain) with `key_pem`.
pub fn tls_acceptor(cert_pem: &str, key_pem: &str) -> Result<TlsAcceptor, rustls::Error> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |e: rustls::pki_types::pem::Error| rustls::Error::General(e.to_string());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(bad)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(bad)?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(certs, key)?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Plain HTTP was asked for on an address other than loopback.
    #[error("the Marathon API serves plain HTTP on loopback addresses only; {0} needs TLS")]
    PlainOffLoopback(std::net::SocketAddr),
}

/// Serves the gateway on `listener` until `shutdown`: with TLS when `tls`
/// is given, else plain HTTP, which only a loopback address may have.
pub async fn serve(
    gateway: Arc<Gateway>,
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: mosaic_listener::Limits,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ServeError> {
    if tls.is_none() {
        let addr = listener
            .local_addr()
            .unwrap_or_else(|_| std::net::SocketAddr::from(([0, 0, 0, 0], 0)));
        if !addr.ip().is_loopback() {
            return Err(ServeError::PlainOffLoopback(addr));
        }
    }
    let make = move |_conn: &Arc<mosaic_listener::ConnInfo>, req: mosaic_listener::Request| {
        let gw = gateway.clone();
        async move { handle(&gw, req).await }
    };
    mosaic_listener::serve_maybe_tls(
        listener,
        tls,
        limits,
        make,
        Arc::new(Default::default()),
        shutdown,
    )
    .await;
    Ok(())
}

/// A path with repeated slashes made one (Marathon's clients send
/// `/v2/apps//web` for the app `/web`).
fn normalize(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if !(c == '/' && out.ends_with('/')) {
            out.push(c);
        }
    }
    out
}

fn query(q: Option<&str>) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for (k, v) in form_urlencoded::parse(q.unwrap_or("").as_bytes()) {
        out.entry(k.into_owned()).or_default().push(v.into_owned());
    }
    out
}

fn respond(a: call::Answer) -> http::Response<Full<Bytes>> {
    let mut r = http::Response::builder().status(a.code).header(
        http::header::CONTENT_TYPE,
        if a.text {
            "text/plain; charset=utf-8"
        } else {
            "application/json"
        },
    );
    for (k, v) in a.headers {
        r = r.header(k, v);
    }
    r.body(Full::new(Bytes::from(a.body))).unwrap_or_else(|_| {
        let mut r = http::Response::new(Full::new(Bytes::new()));
        *r.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
        r
    })
}

fn failed(e: MarathonError) -> http::Response<Full<Bytes>> {
    let mut a = call::Answer::json(e.code(), &e.body());
    if e.code() == 401 {
        a.headers.push((
            "WWW-Authenticate",
            "Basic realm=\"Mosaic Marathon API\"".into(),
        ));
    }
    respond(a)
}

/// Answers one request.
async fn handle(gw: &Gateway, req: mosaic_listener::Request) -> http::Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let path = normalize(parts.uri.path());
    if path == "/ping" {
        // As Marathon's: a liveness probe, open to all, saying nothing.
        return respond(call::Answer {
            code: 200,
            body: b"pong".to_vec(),
            text: true,
            headers: Vec::new(),
        });
    }
    let authorization = parts
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let Some(token) = auth::token(authorization) else {
        return failed(MarathonError::Unauthorized(
            "credentials are required: Authorization: token=<token>, or HTTP Basic with the token as the password".into(),
        ));
    };
    let client = match gw.clients.for_token(&token) {
        Ok(c) => c,
        Err(e) => return failed(MarathonError::Api(500, format!("making a client: {e}"))),
    };
    let read = tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, MAX_BODY).collect());
    let body = match read.await {
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return failed(MarathonError::TooLarge(format!(
                "the request body is over {MAX_BODY} bytes"
            )));
        }
        Ok(Err(_)) => {
            return failed(MarathonError::BadRequest(
                "the request body was cut off".into(),
            ));
        }
        Err(_) => {
            return failed(MarathonError::BadRequest(format!(
                "the request body did not arrive within {} s",
                BODY_TIMEOUT.as_secs()
            )));
        }
    };
    let call = call::Call {
        client,
        namespace: &gw.namespace,
        method: &parts.method,
        path: &path,
        query: query(parts.uri.query()),
        body: &body,
        port: gw.port,
    };
    match routes::route(&call).await {
        Ok(a) => respond(a),
        Err(e) => {
            tracing::debug!(method = %parts.method, path, error = %e, "Marathon call refused");
            failed(e)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn paths_and_queries_as_clients_send_them() {
        assert_eq!(
            super::normalize("/v2/apps//web//tasks"),
            "/v2/apps/web/tasks"
        );
        let q = super::query(Some("embed=app.tasks&embed=app.counts&force=False"));
        assert_eq!(q["embed"], ["app.tasks", "app.counts"]);
        assert_eq!(q["force"], ["False"]);
        // Percent-encoded, as requests sends `host=*`.
        let q = super::query(Some("host=%2A&scale=True&label=a%3Db+c"));
        assert_eq!(q["host"], ["*"]);
        assert_eq!(q["label"], ["a=b c"]);
    }
}
