//! `POST .../agents/<name>/certificate` (AgentCertificateRequest,
//! `mosaic_crds::join`): an agent's own identity, as a kubelet's TLS bootstrap
//! gets one. The bootstrap credential may ask for an agent that is not
//! running (no Agent of that name, or one not Ready: a new machine, or one
//! whose identity was lost); a running agent renews only as itself. Names a
//! reserved Lease would collide with are refused.

use super::{App, body, route::ResourceRoute};
use crate::auth::User;
use crate::error::{ApiError, Subject};
use http::{Response, StatusCode};
use mosaic_crds::join::{AgentCertificateRequest, AgentCertificateStatus};

/// Signs the requested certificates for the agent the route names.
pub async fn create(
    app: &App,
    r: &ResourceRoute,
    user: &User,
    content_type: &str,
    bytes: &[u8],
) -> Result<Response<super::Body>, ApiError> {
    let name = r.name.as_deref().unwrap_or_default();
    let subject = Subject {
        group: mosaic_crds::GROUP,
        resource: "agents",
        kind: "Agent",
        name,
    };
    if let Some(c) = super::meta::check_name(name, "metadata.name") {
        return Err(ApiError::invalid(subject, vec![c]));
    }
    if mosaic_crds::join::RESERVED_LEASES.contains(&name) {
        return Err(ApiError::forbidden(format!(
            "agents.mosaic.dev \"{name}\" is forbidden: the name is reserved (a control-plane Lease has it)"
        )));
    }
    let value = super::meta::decode(content_type, bytes)?;
    let mut req: AgentCertificateRequest = serde_json::from_value(value)
        .map_err(|e| ApiError::bad_request(format!("not an AgentCertificateRequest: {e}")))?;
    if req.kind != mosaic_crds::join::KIND {
        return Err(ApiError::bad_request(format!(
            "expected kind {}, got {:?}",
            mosaic_crds::join::KIND,
            req.kind
        )));
    }
    if user.name != mosaic_crds::join::user(name) && running(app, r, name).await? {
        // 409: a retry may succeed once that agent has stopped (it is then not Ready).
        return Err(ApiError::new(
            409,
            "Conflict",
            format!(
                "agents.mosaic.dev \"{name}\": agent {name} is running: only it may renew its identity (User \"{}\" may join it once it is not Ready)",
                user.name
            ),
        ));
    }
    let issued = crate::pki::sign_agent(
        &app.data_dir,
        name,
        &req.spec.client_request,
        &req.spec.serving_request,
        &req.spec.serving_hosts,
    );
    let (client, serving) = match issued {
        Ok(pair) => pair,
        Err(e @ crate::pki::PkiError::Request(_)) => {
            return Err(ApiError::bad_request(e.to_string()));
        }
        Err(e) => return Err(ApiError::internal(e.to_string())),
    };
    let ca_path = app.data_dir.join("pki/ca.crt");
    let ca = std::fs::read_to_string(&ca_path)
        .map_err(|e| ApiError::internal(format!("{}: {e}", ca_path.display())))?;
    let expires = jiff::Timestamp::now() + crate::pki::AGENT_VALIDITY;
    req.status = Some(AgentCertificateStatus {
        client_certificate: client,
        serving_certificate: serving,
        ca,
        expiration_timestamp: expires.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
    });
    tracing::info!(agent = name, by = %user.name, "issued an agent identity");
    let bytes = serde_json::to_vec(&req).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(body::json_bytes(StatusCode::CREATED, bytes))
}

/// Whether Agent `name` exists and is Ready.
async fn running(app: &App, r: &ResourceRoute, name: &str) -> Result<bool, ApiError> {
    let key = r.info.key(None, name);
    let Some(kv) = app.store.get(&key).await? else {
        return Ok(false);
    };
    let agent: mosaic_crds::Agent = match serde_json::from_slice(&kv.value) {
        Ok(a) => a,
        Err(_) => return Ok(false),
    };
    Ok(agent
        .status
        .iter()
        .flat_map(|s| s.conditions.iter())
        .any(|c| c.type_ == "Ready" && c.status == "True"))
}
