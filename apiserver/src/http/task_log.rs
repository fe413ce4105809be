//! `GET .../tasks/<name>/log` (as `pods/log`): a task's output, which the API
//! server fetches from the task's agent and streams back, as kube-apiserver
//! does from a kubelet. The caller's credentials never leave the API server:
//! it reaches the agent's endpoint with its own client certificate, and
//! trusts the endpoint only if the cluster CA signed its certificate for that
//! agent's identity (`system:mosaic-agent:NAME`). Query: `stream`
//! (`stdout`, the default, or `stderr`), `follow`, `attempt`.

use super::{App, Body, route::ResourceRoute};
use crate::error::{ApiError, Subject};
use bytes::Bytes;
use futures::StreamExt;
use http::Response;
use http_body_util::{BodyExt, StreamBody};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::time::Duration;

/// What the caller asked for.
struct Query {
    stream: String,
    follow: bool,
    attempt: Option<u32>,
}

fn query(raw: &str) -> Result<Query, ApiError> {
    let mut q = Query {
        stream: "stdout".into(),
        follow: false,
        attempt: None,
    };
    for (k, v) in form_urlencoded::parse(raw.as_bytes()) {
        match k.as_ref() {
            "stream" | "container" if v == "stdout" || v == "stderr" => q.stream = v.into_owned(),
            "stream" | "container" => {
                return Err(ApiError::bad_request(format!(
                    "{k} must be stdout or stderr, not {v:?}"
                )));
            }
            "follow" => q.follow = v == "true" || v == "1",
            "attempt" => {
                q.attempt = Some(v.parse().map_err(|_| {
                    ApiError::bad_request(format!("attempt must be a number, not {v:?}"))
                })?)
            }
            _ => {}
        }
    }
    Ok(q)
}

/// Streams the task's output from its agent.
pub async fn get(
    app: &App,
    r: &ResourceRoute,
    raw_query: &str,
) -> Result<Response<Body>, ApiError> {
    let q = query(raw_query)?;
    let name = r.name.as_deref().unwrap_or_default();
    let ns = r.namespace.as_deref().unwrap_or_default();
    let subject = Subject {
        group: &r.info.group,
        resource: &r.info.plural,
        kind: &r.info.kind,
        name,
    };
    let kv = app
        .store
        .get(&r.info.key(Some(ns), name))
        .await?
        .ok_or_else(|| ApiError::not_found(subject))?;
    let task: mosaic_crds::Task = serde_json::from_slice(&kv.value)
        .map_err(|e| ApiError::internal(format!("stored task {name}: {e}")))?;
    let status = task.status.clone().unwrap_or_default();
    let Some(agent_name) = status.agent.clone() else {
        return Err(ApiError::bad_request(format!(
            "task {name} has not been placed on an agent yet; it has no output"
        )));
    };
    let agents = app
        .registry
        .get(mosaic_crds::GROUP, "v1alpha1", "agents")
        .ok_or_else(|| ApiError::internal("agents are not served"))?;
    let agent: Option<mosaic_crds::Agent> =
        match app.store.get(&agents.key(None, &agent_name)).await? {
            Some(kv) => serde_json::from_slice(&kv.value).ok(),
            None => None,
        };
    let address = agent
        .and_then(|a| a.status)
        .and_then(|s| s.address)
        .ok_or_else(|| {
            ApiError::bad_request(format!("agent {agent_name} publishes no endpoint"))
        })?;
    let uid = task.metadata.uid.clone().unwrap_or_default();
    let attempt = q.attempt.or(status.attempt).unwrap_or(0);
    let path = format!(
        "/tasks/{ns}/{name}/{}?uid={uid}&attempt={attempt}&follow={}",
        q.stream, q.follow
    );
    let gateway = |why: String| {
        ApiError::new(
            502,
            "BadGateway",
            format!(
                "fetching the output of task {name} from agent {agent_name} at {address}: {why}"
            ),
        )
    };
    let stream = connect(app, &address, &agent_name)
        .await
        .map_err(&gateway)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| gateway(e.to_string()))?;
    tokio::spawn(conn);
    let req = http::Request::get(path)
        .header(http::header::HOST, "agent")
        .body(http_body_util::Empty::<Bytes>::new())
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| gateway(e.to_string()))?;
    let (parts, body) = resp.into_parts();
    let frames = body
        .into_data_stream()
        .take_while(|r| std::future::ready(r.is_ok()))
        .filter_map(|r| {
            std::future::ready(
                r.ok()
                    .map(|b| Ok::<_, Infallible>(http_body::Frame::data(b))),
            )
        });
    let mut out = Response::builder().status(parts.status);
    if let Some(ct) = parts.headers.get(http::header::CONTENT_TYPE) {
        out = out.header(http::header::CONTENT_TYPE, ct);
    }
    out.body(StreamBody::new(frames).boxed_unsync())
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// A TLS connection to the endpoint at `address` (`https://host:port`) whose
/// certificate the cluster CA signed for agent `agent`.
async fn connect(
    app: &App,
    address: &str,
    agent: &str,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, String> {
    let uri: http::Uri = address.parse().map_err(|e| format!("a bad address: {e}"))?;
    let host = uri
        .host()
        .ok_or("an address without a host")?
        .trim_matches(['[', ']']);
    let port = uri.port_u16().unwrap_or(443);
    let tcp = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::net::TcpStream::connect((host, port)),
    )
    .await
    .map_err(|_| "no connection within 10 s".to_string())?
    .map_err(|e| e.to_string())?;
    let name =
        rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(app.agent_tls.clone());
    let stream = tokio::time::timeout(Duration::from_secs(10), tls.connect(name, tcp))
        .await
        .map_err(|_| "no TLS handshake within 10 s".to_string())?
        .map_err(|e| format!("the endpoint failed verification: {e}"))?;
    let cn = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|c| crate::auth::CertificateUser::from_der(c))
        .map(|u| u.0.name);
    let want = mosaic_crds::join::user(agent);
    if cn.as_deref() != Some(want.as_str()) {
        return Err(format!(
            "the endpoint's certificate names {cn:?}, not agent {agent}'s identity {want:?}"
        ));
    }
    Ok(stream)
}
