//! The HTTP face of the server: authentication, routing by Kubernetes URL
//! shape, and dispatch to the discovery, OpenAPI, object and list/watch handlers.
//!
//! [`App::handle`] takes any `http::Request` and never fails: every error is a
//! `Status` response. The TLS listener in [`crate::serve`] and the in-process
//! tower service both call it.

mod agent_certificate;
mod apply;
mod binding;
mod body;
mod budget;
mod discovery;
mod generate_name;
mod guard;
mod limits;
mod list;
mod meta;
pub mod metrics;
mod objects;
mod openapi;
mod openapi_v2;
mod ownership;
mod params;
mod protobuf;
mod reviews;
mod route;
mod scale;
pub mod seats;
mod selectors;
mod splice;
mod table;
mod task_log;
mod token_request;
mod update;
mod watch;
mod yaml;

pub use body::{Body, MAX_BODY};
pub use meta::{new_uid as now_uid, now};
pub use params::Params;
pub use route::Route;

use crate::audit::{AuditLog, Record};
use crate::auth::{self, Attributes, Authenticated, Authenticator, User};
use crate::core::Core;
use crate::error::ApiError;
use crate::rbac::cache::PolicyCache;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use std::sync::Arc;

pub use metrics::Metrics;

/// What a request was: its audit record (when there is an audit log) and
/// what its latency is counted under (none for a watch or a log stream).
#[derive(Default)]
pub struct Served {
    audit: Option<Record>,
    labels: Option<metrics::RequestLabels>,
}

/// Shared state of every request.
pub struct App {
    /// The store, what is served and the active namespaces (read through
    /// `App` itself: it dereferences to them).
    pub core: Arc<Core>,
    /// Token to user.
    pub authn: Authenticator,
    /// RBAC: what each user may do.
    pub rbac: Arc<PolicyCache>,
    /// Where each request is recorded, if anywhere.
    pub audit: Option<AuditLog>,
    /// Counters.
    pub metrics: Metrics,
    /// `https://host:port` clients should use (for discovery's server address).
    pub external_url: String,
    /// Registers more of the process's metrics (the in-process
    /// controllers') for `/metrics`.
    pub extra_metrics: Option<fn(&mut prometheus_client::registry::Registry)>,
    /// The listener's connection figures.
    pub connections: Arc<mosaic_listener::Counters>,
    /// Concurrent requests per user and in all.
    pub seats: Arc<seats::Seats>,
    /// The data dir (its CA signs agents' certificates).
    pub data_dir: std::path::PathBuf,
    /// How the API server reaches agents' endpoints (`tasks/NAME/log`): the
    /// cluster CA as the only root, its own client certificate.
    pub agent_tls: Arc<rustls::ClientConfig>,
}

impl std::ops::Deref for App {
    type Target = Core;
    fn deref(&self) -> &Core {
        &self.core
    }
}

impl App {
    /// Serves one request.
    pub async fn handle<B>(self: Arc<Self>, req: Request<B>) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        self.metrics.requests.inc();
        let started = std::time::Instant::now();
        let (parts, body) = req.into_parts();
        let mut record = Served::default();
        let resp = match self.route(&parts, body, &mut record).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(method = %parts.method, uri = %parts.uri, code = e.code, message = %e.message, "request refused");
                body::status_response(&e)
            }
        };
        if resp.status().as_u16() >= 400 {
            self.metrics.errors.inc();
        }
        if let Some(labels) = &record.labels {
            let took = started.elapsed().as_secs_f64();
            self.metrics.latency.get_or_create(labels).observe(took);
        }
        if let (Some(log), Some(r)) = (&self.audit, &record.audit) {
            let uri = parts.uri.path_and_query().map_or("", |p| p.as_str());
            log.write(r, uri, resp.status().as_u16());
        }
        resp
    }

    /// The caller an `Authorization` header names, if any.
    pub async fn authenticate(&self, header: Option<&str>) -> Option<User> {
        match self.authn.authenticate(header, &self.rbac.current()) {
            Authenticated::User(u) => Some(u),
            Authenticated::No => None,
            Authenticated::UnknownAccount => {
                match self
                    .authn
                    .authenticate(header, &*self.rbac.refresh_if_stale().await)
                {
                    Authenticated::User(u) => Some(u),
                    _ => None,
                }
            }
        }
    }

    /// Whether RBAC lets `user` do `a` (a 403 in Kubernetes's words when not).
    pub async fn authorize(&self, user: &User, a: &Attributes<'_>) -> Result<(), ApiError> {
        // An agent's own identity: the node authorizer decides, RBAC does not.
        if let Some(agent) = crate::rbac::node::agent_of(user) {
            return if crate::rbac::node::authorize(agent, a) {
                Ok(())
            } else {
                Err(auth::forbidden(user, a))
            };
        }
        if self.rbac.current().allows(user, a) || self.rbac.refresh_if_stale().await.allows(user, a)
        {
            Ok(())
        } else {
            Err(auth::forbidden(user, a))
        }
    }

    /// [`App::authorize`], noting the request for the audit log first.
    async fn allow(
        &self,
        user: &User,
        a: Attributes<'_>,
        record: &mut Served,
    ) -> Result<(), ApiError> {
        if self.audit.is_some() {
            record.audit = Some(Record::new(user, &a));
        }
        if a.verb != "watch" && a.subresource != "log" {
            record.labels = Some(metrics::RequestLabels {
                verb: a.verb.into(),
                resource: a.resource.into(),
                subresource: a.subresource.into(),
            });
        }
        self.authorize(user, &a).await
    }

    async fn route<B>(
        self: &Arc<Self>,
        parts: &http::request::Parts,
        body: B,
        record: &mut Served,
    ) -> Result<Response<Body>, ApiError>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let path = parts.uri.path();
        match path {
            "/healthz" | "/livez" => return Ok(body::text(StatusCode::OK, "ok")),
            // Not ready while the store cannot serve (etcd without a quorum).
            "/readyz" => {
                return Ok(match self.store.ready() {
                    Ok(()) => body::text(StatusCode::OK, "ok"),
                    Err(why) => body::text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        &format!("[-]store failed: {why}\nreadyz check failed"),
                    ),
                });
            }
            // go-restful serves /version/ too (the Python client and kr8s ask for it);
            // the health paths with a slash are a 404, as kube-apiserver's mux has them.
            "/version" | "/version/" => {
                return Ok(body::json(StatusCode::OK, &discovery::version()));
            }
            _ => {}
        }
        // As kube-apiserver: a verified client certificate first, then a bearer token.
        let user = match parts.extensions.get::<auth::CertificateUser>() {
            Some(c) => c.0.clone(),
            None => self
                .authenticate(header(parts, http::header::AUTHORIZATION))
                .await
                .ok_or_else(ApiError::unauthorized)?,
        };
        let params = Params::parse(parts.uri.query().unwrap_or(""))?;
        // A seat for as long as this request is answered (watches and followed logs take none).
        let long_running = params.watch
            || (path.ends_with("/log")
                && parts.uri.query().is_some_and(|q| q.contains("follow=true")));
        let _seat = self.seats.take(&user, long_running)?;
        // Re-encoded to YAML in the seat: the copy it makes counts against the limits.
        let yaml = !params.watch && yaml::wanted(header(parts, http::header::ACCEPT).unwrap_or(""));
        let out = self.serve(parts, body, record, user, params).await;
        if yaml {
            return Ok(yaml::encode(out.unwrap_or_else(|e| body::status_response(&e))).await);
        }
        out
    }

    /// Answers an authenticated request.
    async fn serve<B>(
        self: &Arc<Self>,
        parts: &http::request::Parts,
        body: B,
        record: &mut Served,
        user: User,
        params: Params,
    ) -> Result<Response<Body>, ApiError>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let path = parts.uri.path();
        let accept = header(parts, http::header::ACCEPT)
            .unwrap_or("")
            .to_string();
        let content_type = header(parts, http::header::CONTENT_TYPE)
            .unwrap_or("application/json")
            .to_string();
        let non_resource = Attributes {
            verb: non_resource_verb(&parts.method),
            path,
            ..Default::default()
        };
        if path == "/metrics" {
            self.allow(&user, non_resource, record).await?;
            let mut reg = prometheus_client::registry::Registry::default();
            self.metrics.register(
                &mut reg,
                metrics::Snapshot {
                    revision: self.store.revision(),
                    connections: self.connections.open_connections(),
                    refused: self.connections.refused_connections(),
                    idle_closed: self.connections.idle_closed_connections(),
                },
            );
            if let Some(extra) = self.extra_metrics {
                extra(&mut reg);
            }
            let text = metrics::encode(&reg);
            return Ok(body::encoded(
                StatusCode::OK,
                text.into_bytes(),
                metrics::CONTENT_TYPE,
            ));
        }
        if path == "/openapi/v2" {
            self.allow(&user, non_resource, record).await?;
            return Ok(openapi_v2::serve(&self.registry, &accept));
        }
        if path == "/openapi/v3" || path.starts_with("/openapi/v3/") {
            self.allow(&user, non_resource, record).await?;
            return openapi::serve(&self.registry, path);
        }
        if parts.method == Method::POST
            && let Some(review) = reviews::Review::of_path(path)
        {
            let (group, resource) = review.group_resource();
            let a = Attributes {
                verb: "create",
                group,
                resource,
                ..Default::default()
            };
            self.allow(&user, a, record).await?;
            let bytes = read_body(body).await?;
            return reviews::serve(self, review, &user, &content_type, &bytes).await;
        }
        let route = Route::parse(path, &self.registry)?;
        match route {
            Route::Discovery(d) => {
                self.allow(&user, non_resource, record).await?;
                discovery::serve(&self.registry, d, &accept, &self.external_url)
            }
            Route::Resource(r) => {
                let verb = verb(&parts.method, &r, &params)?;
                if r.info.builtin == crate::registry::Builtin::Review {
                    return Err(ApiError::method_not_allowed(
                        parts.method.as_str(),
                        &r.info.group_resource(),
                    ));
                }
                if r.subresource.as_deref() == Some("binding") && verb != "create" {
                    return Err(ApiError::method_not_allowed(
                        parts.method.as_str(),
                        &format!("{}/binding", r.info.group_resource()),
                    ));
                }
                let a = Attributes {
                    verb,
                    group: &r.info.group,
                    resource: &r.info.plural,
                    subresource: r.subresource.as_deref().unwrap_or(""),
                    namespace: r.namespace.as_deref().unwrap_or(""),
                    name: r.name.as_deref().unwrap_or(""),
                    path: "",
                };
                self.allow(&user, a, record).await?;
                if let Some(refused) = crate::registry::absent::refuse(&r.info, verb) {
                    return Err(refused);
                }
                if r.subresource.as_deref() == Some("token") {
                    let bytes = read_body(body).await?;
                    return token_request::create(self, &r, &content_type, &bytes).await;
                }
                if r.subresource.as_deref() == Some("log") {
                    if verb != "get" {
                        return Err(ApiError::method_not_allowed(
                            parts.method.as_str(),
                            &format!("{}/log", r.info.group_resource()),
                        ));
                    }
                    return task_log::get(self, &r, parts.uri.query().unwrap_or("")).await;
                }
                if r.subresource.as_deref() == Some(mosaic_crds::join::SUBRESOURCE) {
                    let bytes = read_body(body).await?;
                    return agent_certificate::create(self, &r, &user, &content_type, &bytes).await;
                }
                let user_agent = header(parts, http::header::USER_AGENT)
                    .unwrap_or("")
                    .to_string();
                let req = objects::Request {
                    app: self.clone(),
                    route: r,
                    params,
                    accept,
                    content_type,
                    user_agent,
                    user,
                };
                if req.route.subresource.as_deref() == Some(scale::SUBRESOURCE) {
                    if !matches!(verb, "get" | "update" | "patch") {
                        return Err(ApiError::method_not_allowed(
                            parts.method.as_str(),
                            &format!("{}/scale", req.route.info.group_resource()),
                        ));
                    }
                    return scale::serve(req, verb, read_body(body).await?).await;
                }
                match verb {
                    "get" => objects::get(req).await,
                    "list" => list::list(req).await,
                    "watch" => watch::watch(req).await,
                    "create" if req.route.subresource.as_deref() == Some("binding") => {
                        binding::create(req, read_body(body).await?).await
                    }
                    "create" => objects::create(req, read_body(body).await?).await,
                    "update" => objects::update(req, read_body(body).await?).await,
                    "patch" => objects::patch(req, read_body(body).await?).await,
                    "delete" => objects::delete(req, read_body(body).await?).await,
                    "deletecollection" => list::delete_collection(req).await,
                    _ => Err(ApiError::method_not_allowed(parts.method.as_str(), path)),
                }
            }
        }
    }
}

/// The Kubernetes verb of a request.
fn verb(
    method: &Method,
    r: &route::ResourceRoute,
    params: &Params,
) -> Result<&'static str, ApiError> {
    let collection = r.name.is_none();
    Ok(match (method, collection) {
        (&Method::GET, true) if params.watch => "watch",
        (&Method::GET, true) => "list",
        (&Method::GET, false) if params.watch => "watch",
        (&Method::GET, false) => "get",
        (&Method::POST, true) => "create",
        (&Method::POST, false)
            if matches!(
                r.subresource.as_deref(),
                Some("token" | "binding" | mosaic_crds::join::SUBRESOURCE)
            ) =>
        {
            "create"
        }
        (&Method::PUT, false) => "update",
        (&Method::PATCH, false) => "patch",
        (&Method::DELETE, false) => "delete",
        (&Method::DELETE, true) => "deletecollection",
        (m, _) => {
            return Err(ApiError::method_not_allowed(
                m.as_str(),
                &r.info.group_resource(),
            ));
        }
    })
}

/// A request header's value, when it is text.
fn header(parts: &http::request::Parts, name: http::header::HeaderName) -> Option<&str> {
    parts.headers.get(name).and_then(|h| h.to_str().ok())
}

/// The verb of a request for a path that is not a resource (`/metrics`, discovery).
fn non_resource_verb(method: &Method) -> &'static str {
    match *method {
        Method::GET | Method::HEAD => "get",
        Method::POST => "post",
        Method::PUT => "put",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "options",
    }
}

/// Reads a request body up to [`MAX_BODY`] bytes; more is a 413. The rest of an
/// oversized body is read and dropped (up to [`DRAIN_LIMIT`], for at most ten
/// seconds) so that the client, still sending, gets to read the 413.
async fn read_body<B>(body: B) -> Result<Bytes, ApiError>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut body = std::pin::pin!(body);
    let mut buf = bytes::BytesMut::new();
    let mut seen = 0usize;
    let drain = async {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                ApiError::bad_request(format!("reading the request body: {}", e.into()))
            })?;
            if let Ok(data) = frame.into_data() {
                seen += data.len();
                if seen <= MAX_BODY {
                    buf.extend_from_slice(&data);
                } else if seen > DRAIN_LIMIT {
                    break;
                }
            }
        }
        Ok::<_, ApiError>(())
    };
    match tokio::time::timeout(std::time::Duration::from_secs(10), drain).await {
        Ok(r) => r?,
        Err(_) if seen > MAX_BODY => {}
        Err(_) => {
            return Err(ApiError::new(
                408,
                "Timeout",
                "timed out reading the request body",
            ));
        }
    }
    if seen > MAX_BODY {
        return Err(ApiError::too_large(MAX_BODY));
    }
    Ok(buf.freeze())
}

/// How much of an oversized body is read and dropped before the 413.
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;
