//! The agent's HTTPS endpoint (`--listen`): a task's stdout and stderr (with
//! follow) for `mosaic logs`, and Prometheus `/metrics`.
//!
//! TLS uses a self-signed certificate made at each start and published in the
//! Agent's `status.certificate`, which clients pin. Callers present the
//! cluster's own bearer tokens; the agent asks the API server whose a token is
//! (TokenReview) and whether that user may read the task's log
//! (SubjectAccessReview on `tasks/log`), as a kubelet does.

use crate::runner::Runner;
use bytes::Bytes;
use futures::StreamExt;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody, combinators::UnsyncBoxBody};
use k8s_openapi::api::authentication::v1::TokenReview;
use k8s_openapi::api::authorization::v1::SubjectAccessReview;
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;

type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// Why the endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// The certificate could not be made.
    #[error("making the endpoint's certificate: {0}")]
    Cert(#[from] rcgen::Error),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// The identity's serving certificate or key could not be read.
    #[error("the agent's serving certificate: {0}")]
    Pem(String),
    /// The address could not be bound.
    #[error("listening on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
}

/// A bound endpoint, ready to serve.
pub struct Endpoint {
    listener: tokio::net::TcpListener,
    tls: tokio_rustls::TlsAcceptor,
    /// `https://host:port` as published in the Agent's status.
    pub address: String,
    /// The certificate (PEM) clients pin.
    pub certificate: String,
}

/// What a request handler needs.
struct Ctx {
    client: Client,
    runner: Arc<Runner>,
    data_dir: PathBuf,
}

impl Endpoint {
    /// Binds `listen`, serving with `serving` (certificate and key PEM, from
    /// the agent's identity, signed by the cluster CA), or else with a
    /// self-signed certificate for `host` (the name clients use).
    pub async fn bind(
        listen: std::net::SocketAddr,
        host: &str,
        serving: Option<&crate::join::Serving>,
    ) -> Result<Self, EndpointError> {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| EndpointError::Bind {
                addr: listen,
                source,
            })?;
        let port = listener
            .local_addr()
            .map_err(|source| EndpointError::Bind {
                addr: listen,
                source,
            })?
            .port();
        let mut names = vec![host.to_string(), "localhost".into(), "127.0.0.1".into()];
        if !listen.ip().is_unspecified() {
            names.push(listen.ip().to_string());
        }
        names.dedup();
        let (certificate, der, key) = match serving {
            Some(s) => {
                use rustls::pki_types::pem::PemObject;
                let der =
                    rustls::pki_types::CertificateDer::from_pem_slice(s.certificate.as_bytes())
                        .map_err(|e| EndpointError::Pem(e.to_string()))?;
                let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(s.key.as_bytes())
                    .map_err(|e| EndpointError::Pem(e.to_string()))?;
                (s.certificate.clone(), der, key)
            }
            None => {
                let cert = rcgen::generate_simple_self_signed(names)?;
                let key = rustls::pki_types::PrivateKeyDer::Pkcs8(
                    cert.signing_key.serialize_der().into(),
                );
                (cert.cert.pem(), cert.cert.der().clone(), key)
            }
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        // With an identity, clients may present a certificate of the cluster
        // CA (the API server does, proxying tasks/log); token clients present none.
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
        let builder = match serving {
            Some(s) => {
                use rustls::pki_types::pem::PemObject;
                let mut roots = rustls::RootCertStore::empty();
                for ca in rustls::pki_types::CertificateDer::pem_slice_iter(s.ca.as_bytes()) {
                    roots.add(ca.map_err(|e| EndpointError::Pem(e.to_string()))?)?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .allow_unauthenticated()
                .build()
                .map_err(|e| EndpointError::Pem(format!("the cluster CA: {e}")))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut cfg = builder.with_single_cert(vec![der], key)?;
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        Ok(Self {
            listener,
            tls: tokio_rustls::TlsAcceptor::from(Arc::new(cfg)),
            address: format!("https://{host}:{port}"),
            certificate,
        })
    }

    /// Serves until the task is aborted, within `limits` (handshake, header
    /// and idle timeouts, a connection cap: [`mosaic_listener`]).
    pub async fn serve(
        self,
        client: Client,
        runner: Arc<Runner>,
        data_dir: PathBuf,
        limits: mosaic_listener::Limits,
    ) {
        let ctx = Arc::new(Ctx {
            client,
            runner,
            data_dir,
        });
        let make = move |conn: &Arc<mosaic_listener::ConnInfo>, req: mosaic_listener::Request| {
            let (ctx, conn) = (ctx.clone(), conn.clone());
            async move { handle(&ctx, &conn, req).await }
        };
        let counters = Arc::new(mosaic_listener::Counters::default());
        mosaic_listener::serve(
            self.listener,
            self.tls,
            limits,
            make,
            counters,
            std::future::pending(),
        )
        .await
    }
}

/// The DER form of a PEM certificate (as published in `status.certificate`), for clients to pin.
pub fn certificate_der(pem: &str) -> Option<Vec<u8>> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem.as_bytes())
        .ok()
        .map(|c| c.to_vec())
}

/// A plain-text answer, or for an error a Kubernetes `Status` object (so kube clients read it).
fn text(code: StatusCode, s: impl Into<String>) -> Response<Body> {
    let s: String = s.into();
    if !code.is_success() {
        let status = k8s_openapi::apimachinery::pkg::apis::meta::v1::Status {
            status: Some("Failure".into()),
            message: Some(s.trim_end().into()),
            reason: Some(code.canonical_reason().unwrap_or("").replace(' ', "")),
            code: Some(code.as_u16().into()),
            ..Default::default()
        };
        let status = serde_json::to_string(&status).expect("a Status is JSON");
        return Response::builder()
            .status(code)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(
                Full::new(Bytes::from(status))
                    .map_err(|never| match never {})
                    .boxed_unsync(),
            )
            .expect("a valid response");
    }
    let body = Full::new(Bytes::from(s))
        .map_err(|never| match never {})
        .boxed_unsync();
    Response::builder()
        .status(code)
        .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(body)
        .expect("a valid response")
}

/// Metrics, in the OpenMetrics text format.
fn metrics(text: String) -> Response<Body> {
    Response::builder()
        .header(
            http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )
        .body(
            Full::new(Bytes::from(text))
                .map_err(|never| match never {})
                .boxed_unsync(),
        )
        .expect("a valid response")
}

use mosaic_crds::join::APISERVER_USER;

/// Whether the connection presented the API server's client certificate
/// (verified against the cluster CA by the TLS layer).
fn from_apiserver(conn: &mosaic_listener::ConnInfo) -> bool {
    let Some(der) = conn.client_certificate.as_deref() else {
        return false;
    };
    x509_parser::parse_x509_certificate(der).is_ok_and(|(_, c)| {
        c.subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            == Some(APISERVER_USER)
    })
}

async fn handle(
    ctx: &Ctx,
    conn: &mosaic_listener::ConnInfo,
    req: Request<hyper::body::Incoming>,
) -> Response<Body> {
    let path = req.uri().path().to_string();
    if path == "/healthz" {
        return text(StatusCode::OK, "ok");
    }
    let query: std::collections::HashMap<String, String> = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let token = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or_default()
        .to_string();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (namespace, what) = match parts[..] {
        ["metrics"] => ("", ("agents", "metrics")),
        ["tasks", ns, _, "stdout" | "stderr"] => (ns, ("tasks", "log")),
        _ => return text(StatusCode::NOT_FOUND, format!("no such path: {path}\n")),
    };
    // The API server authorized its user already (RBAC on tasks/log); anyone
    // else is asked about to the API server.
    if !from_apiserver(conn)
        && let Err(resp) = authorize(ctx, &token, namespace, what).await
    {
        return resp;
    }
    match parts[..] {
        ["metrics"] => metrics(ctx.runner.metrics_text()),
        ["tasks", ns, name, stream] => logs(ctx, ns, name, stream, &query).await,
        _ => text(StatusCode::NOT_FOUND, format!("no such path: {path}\n")),
    }
}

/// Checks the caller's token and permission with the API server.
async fn authorize(
    ctx: &Ctx,
    token: &str,
    namespace: &str,
    (resource, subresource): (&str, &str),
) -> Result<(), Response<Body>> {
    if token.is_empty() {
        return Err(text(
            StatusCode::UNAUTHORIZED,
            "Unauthorized: no bearer token\n",
        ));
    }
    let review: TokenReview = serde_json::from_value(json!({
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}))
    .expect("a valid TokenReview");
    let reviewed = Api::<TokenReview>::all(ctx.client.clone())
        .create(&PostParams::default(), &review)
        .await
        .map_err(|e| {
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("reviewing the token: {e}\n"),
            )
        })?;
    let status = reviewed.status.unwrap_or_default();
    let Some(user) = status.user.filter(|_| status.authenticated == Some(true)) else {
        return Err(text(StatusCode::UNAUTHORIZED, "Unauthorized\n"));
    };
    let sar: SubjectAccessReview = serde_json::from_value(json!({
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": user.username, "groups": user.groups,
                 "resourceAttributes": {"verb": "get", "group": "mosaic.dev", "resource": resource,
                                        "subresource": subresource, "namespace": namespace}}}))
    .expect("a valid SubjectAccessReview");
    let decided = Api::<SubjectAccessReview>::all(ctx.client.clone())
        .create(&PostParams::default(), &sar)
        .await
        .map_err(|e| {
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("reviewing access: {e}\n"),
            )
        })?;
    if decided.status.is_some_and(|s| s.allowed) {
        Ok(())
    } else {
        Err(text(
            StatusCode::FORBIDDEN,
            format!(
                "Forbidden: user {:?} may not get {resource}/{subresource} in namespace {namespace:?}\n",
                user.username.unwrap_or_default()
            ),
        ))
    }
}

/// A task's stdout or stderr; with `follow=true`, kept open until the run ends.
async fn logs(
    ctx: &Ctx,
    ns: &str,
    name: &str,
    stream: &str,
    query: &std::collections::HashMap<String, String>,
) -> Response<Body> {
    let safe = |s: &str| !s.is_empty() && !s.contains("..") && !s.contains('/');
    let uid = query.get("uid").map(String::as_str).unwrap_or_default();
    if !safe(ns) || !safe(name) || !safe(uid) {
        return text(
            StatusCode::BAD_REQUEST,
            "the namespace, name and uid query parameter must be given and be plain names\n",
        );
    }
    let attempt: u32 = query
        .get("attempt")
        .and_then(|a| a.parse().ok())
        .unwrap_or(0);
    let file = crate::sandbox_dir(&ctx.data_dir, ns, name, uid, attempt).join(stream);
    let Some(f) = open_output(&file) else {
        return text(
            StatusCode::NOT_FOUND,
            format!("task {ns}/{name} (attempt {attempt}) has no {stream} on this agent\n"),
        );
    };
    let follow = query.get("follow").is_some_and(|v| v == "true" || v == "1");
    let ended = ctx.runner.run_ended_marker(uid, attempt);
    // State: the file, and whether the run was seen ended (then one more read
    // to the end picks up the last bytes and the stream is over).
    let chunks = futures::stream::unfold(Some((f, false)), move |state| {
        let ended = ended.clone();
        async move {
            let (mut f, mut seen_end) = state?;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match f.read(&mut buf).await {
                    Ok(0) if !follow || seen_end => return None,
                    Ok(0) => {
                        seen_end = ended.exists();
                        if !seen_end {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                    Ok(n) => {
                        buf.truncate(n);
                        let frame = hyper::body::Frame::data(Bytes::from(buf));
                        return Some((Ok(frame), Some((f, seen_end))));
                    }
                    Err(e) => return Some((Err(e), None)),
                }
            }
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(BodyExt::boxed_unsync(StreamBody::new(chunks.boxed())))
        .expect("a valid response")
}

/// Opens a task's output file as the agent (root) may, but only the file the
/// executor made: the sandbox belongs to the task, which could replace
/// `stdout` with a symbolic link to any file on the machine, or a hard link
/// to one. So: no symbolic link is followed, and the file must be a regular
/// file owned by the sandbox's owner with a single link.
fn open_output(path: &std::path::Path) -> Option<tokio::fs::File> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    let meta = f.metadata().ok()?;
    let owner = std::fs::metadata(path.parent()?).ok()?.uid();
    (meta.is_file() && meta.uid() == owner && meta.nlink() == 1)
        .then(|| tokio::fs::File::from_std(f))
}
