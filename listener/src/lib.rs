//! Every Mosaic HTTPS listener (the API server's, each agent's endpoint)
//! serves through [`serve`], which gives it the limits a shared, hostile
//! network needs, as kube-apiserver's Go server has them:
//!
//! - a TLS handshake must finish within [`Limits::handshake`], and an HTTP/1
//!   request's headers arrive within [`Limits::header_read`];
//! - a connection with no request under way and no byte either way for
//!   [`Limits::idle`] is closed (HTTP/1) or sent GOAWAY (HTTP/2); a request
//!   under way (a watch, a followed log) keeps its connection;
//! - at most [`Limits::max_connections`] connections are served at once;
//!   past that, a few more are answered `503 Service Unavailable` with a
//!   Kubernetes `Status` saying why, and the rest are closed at once.
//!
//! [`raise_open_files_limit`] lifts the soft limit on open files to the hard
//! one, so the cap, not the process's descriptors, is what runs out first.

mod activity;

use activity::{Activity, Connection as Tracker, Tracked};
use bytes::Bytes;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

pub use activity::Counters;

/// The limits of one listener.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Connections served at once.
    pub max_connections: usize,
    /// Connections past the cap that are still answered 503 (the rest are closed).
    pub max_refusals: usize,
    /// Time to finish the TLS handshake.
    pub handshake: Duration,
    /// Time for an HTTP/1 request's headers to arrive.
    pub header_read: Duration,
    /// A connection with nothing under way and no traffic for this long is closed.
    pub idle: Duration,
}

impl Default for Limits {
    /// kube-apiserver's timeouts (10 s handshake, 32 s headers, 90 s idle)
    /// and a cap of 10,000 connections.
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            max_refusals: 64,
            handshake: Duration::from_secs(10),
            header_read: Duration::from_secs(32),
            idle: Duration::from_secs(90),
        }
    }
}

/// A request as the listener hands it to the service.
pub type Request = http::Request<Incoming>;

/// The service behind a listener: answers each request, knowing the
/// connection it came on (for a client certificate).
pub trait MakeService: Send + Sync + 'static {
    /// The response body.
    type Body: http_body::Body<Data = Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
        + Send
        + Unpin
        + 'static;
    /// The service's future.
    type Future: Future<Output = http::Response<Self::Body>> + Send + 'static;
    /// Answers one request that came on the connection `conn`.
    fn call(&self, conn: &Arc<ConnInfo>, req: Request) -> Self::Future;
}

/// What a service may know of the connection a request came on.
#[derive(Debug, Default)]
pub struct ConnInfo {
    /// The client certificate (DER), when the client sent one the TLS layer verified.
    pub client_certificate: Option<Vec<u8>>,
    /// The peer's address.
    pub peer: Option<std::net::SocketAddr>,
    /// What the service derived from the connection once (the user a
    /// certificate names, say), for its later requests.
    pub derived: std::sync::OnceLock<Box<dyn std::any::Any + Send + Sync>>,
}

impl ConnInfo {
    /// The value `derive` makes of this connection, made on first use.
    pub fn derived<T: std::any::Any + Send + Sync>(
        &self,
        derive: impl FnOnce(&Self) -> T,
    ) -> Option<&T> {
        self.derived
            .get_or_init(|| Box::new(derive(self)))
            .downcast_ref()
    }
}

impl<F, Fut, B> MakeService for F
where
    F: Fn(&Arc<ConnInfo>, Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = http::Response<B>> + Send + 'static,
    B: http_body::Body<Data = Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
        + Send
        + Unpin
        + 'static,
{
    type Body = B;
    type Future = Fut;
    fn call(&self, conn: &Arc<ConnInfo>, req: Request) -> Fut {
        self(conn, req)
    }
}

/// Raises this process's soft limit on open files to its hard limit.
/// Returns the limit now in force.
pub fn raise_open_files_limit() -> std::io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit write and read the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(lim.rlim_cur)
}

/// Accepts connections on `listener` until `shutdown` resolves, serving each
/// through TLS and HTTP/1.1 or HTTP/2 with `make`, within `limits`.
pub async fn serve<M: MakeService>(
    listener: TcpListener,
    tls: TlsAcceptor,
    limits: Limits,
    make: M,
    counters: Arc<Counters>,
    shutdown: impl Future<Output = ()>,
) {
    serve_maybe_tls(listener, Some(tls), limits, make, counters, shutdown).await
}

/// As [`serve`], with TLS only when `tls` is given: plain HTTP is for
/// listeners on loopback addresses, which the caller checks.
pub async fn serve_maybe_tls<M: MakeService>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    limits: Limits,
    make: M,
    counters: Arc<Counters>,
    shutdown: impl Future<Output = ()>,
) {
    let make = Arc::new(make);
    let served = Arc::new(Semaphore::new(limits.max_connections));
    let refusing = Arc::new(Semaphore::new(limits.max_refusals));
    let limits = Arc::new(limits);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            biased;
            // Cancellation-safe: nothing is half-done when shutdown wins.
            _ = &mut shutdown => return,
            // Cancellation-safe: accept() loses no connection when dropped.
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of descriptors, say: wait, rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let (tls, limits, make, counters) =
            (tls.clone(), limits.clone(), make.clone(), counters.clone());
        match served.clone().try_acquire_owned() {
            Ok(permit) => {
                tokio::spawn(async move {
                    let _permit = permit;
                    counters.open(1);
                    connection(tcp, peer, tls, &limits, make, &counters).await;
                    counters.open(-1);
                });
            }
            Err(_) => {
                counters.refused();
                let Ok(permit) = refusing.clone().try_acquire_owned() else {
                    drop(tcp);
                    continue;
                };
                tokio::spawn(async move {
                    let _permit = permit;
                    refuse(tcp, tls, &limits).await;
                });
            }
        }
    }
}

/// Serves one connection until it ends or idles out.
async fn connection<M: MakeService>(
    tcp: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    tls: Option<TlsAcceptor>,
    limits: &Limits,
    make: Arc<M>,
    counters: &Counters,
) {
    let Some(tls) = tls else {
        let info = Arc::new(ConnInfo {
            client_certificate: None,
            peer: Some(peer),
            derived: Default::default(),
        });
        return drive(tcp, peer, info, limits, make, counters).await;
    };
    let stream = match tokio::time::timeout(limits.handshake, tls.accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let info = Arc::new(ConnInfo {
        client_certificate: stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.to_vec()),
        peer: Some(peer),
        derived: Default::default(),
    });
    drive(stream, peer, info, limits, make, counters).await
}

/// Serves HTTP on one connection (its TLS, if any, set up) until it ends or
/// idles out.
async fn drive<M: MakeService, IO>(
    stream: IO,
    peer: std::net::SocketAddr,
    info: Arc<ConnInfo>,
    limits: &Limits,
    make: Arc<M>,
    counters: &Counters,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let tracker = Arc::new(Tracker::new());
    let io = TokioIo::new(Activity::new(stream, tracker.clone()));
    let t = tracker.clone();
    let svc = hyper::service::service_fn(move |req: Request| {
        let guard = t.request();
        let fut = make.call(&info, req);
        async move {
            let resp = fut.await;
            Ok::<_, Infallible>(resp.map(|b| Tracked::new(b, guard)))
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(1000);
    let conn = builder.serve_connection(io, svc);
    tokio::pin!(conn);
    let tick = (limits.idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
    let mut closing = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = tokio::time::sleep(tick), if !closing => {
                if tracker.idle_for() >= limits.idle {
                    tracing::debug!(%peer, "closing an idle connection");
                    counters.idled();
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
            // A connection told to close that still does not: dropped.
            _ = tokio::time::sleep(limits.handshake), if closing => return,
        }
    }
}

/// Answers every request of a connection past the cap with 503, briefly.
async fn refuse(tcp: tokio::net::TcpStream, tls: Option<TlsAcceptor>, limits: &Limits) {
    let budget = limits.handshake.min(Duration::from_secs(5));
    let _ = tokio::time::timeout(budget, async move {
        let svc = hyper::service::service_fn(|_req: Request| async {
            Ok::<_, Infallible>(too_many_connections())
        });
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder.http1().keep_alive(false);
        match tls {
            Some(tls) => {
                let Ok(stream) = tls.accept(tcp).await else {
                    return;
                };
                let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
            }
            None => {
                let _ = builder.serve_connection(TokioIo::new(tcp), svc).await;
            }
        }
    })
    .await;
}

/// The 503 a connection past the cap gets, as a Kubernetes `Status`.
fn too_many_connections() -> http::Response<http_body_util::Full<Bytes>> {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, StatusDetails};
    let status = Status {
        status: Some("Failure".into()),
        message: Some("the server is serving as many connections as it allows; retry later".into()),
        reason: Some("ServiceUnavailable".into()),
        code: Some(503),
        details: Some(StatusDetails {
            retry_after_seconds: Some(1),
            ..Default::default()
        }),
        ..Default::default()
    };
    http::Response::builder()
        .status(http::StatusCode::SERVICE_UNAVAILABLE)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::RETRY_AFTER, "1")
        .header(http::header::CONNECTION, "close")
        .body(http_body_util::Full::new(Bytes::from(
            serde_json::to_vec(&status).unwrap_or_default(),
        )))
        .expect("a valid response")
}

#[cfg(test)]
mod tests;
