//! AgentCertificateRequest: what an agent POSTs to `agents/<name>/certificate`
//! to get its own identity, as a kubelet's TLS bootstrap does: a client
//! certificate naming `system:mosaic-agent:<name>` in group
//! `system:mosaic-agents`, and a serving certificate for its endpoint, both
//! signed by the cluster CA for certificate signing requests whose keys never
//! leave the agent. The bootstrap credential may ask only for an agent that is
//! not running (a new one, or one whose identity was lost); an agent renews
//! its own.

use serde::{Deserialize, Serialize};

/// The subresource's name.
pub const SUBRESOURCE: &str = "certificate";
/// The kind of the request.
pub const KIND: &str = "AgentCertificateRequest";
/// The user an agent's certificate names: this prefix and the agent's name.
pub const USER_PREFIX: &str = "system:mosaic-agent:";
/// The group of every agent's own identity.
pub const GROUP: &str = "system:mosaic-agents";
/// The user of the API server's client certificate, with which it reaches
/// agents' endpoints (proxying `tasks/NAME/log` for users it has authorized).
pub const APISERVER_USER: &str = "system:mosaic-apiserver";
/// That certificate's group.
pub const APISERVER_GROUP: &str = "system:mosaic-apiservers";

/// Lease names in `mosaic-system` that no agent may hold (the controllers' leader Lease).
pub const RESERVED_LEASES: &[&str] = &["mosaic-controllers"];

/// The user name of agent `name`'s own identity.
pub fn user(name: &str) -> String {
    format!("{USER_PREFIX}{name}")
}

/// The request and, in the answer, the certificates.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentCertificateRequest {
    /// `mosaic.dev/v1alpha1`.
    pub api_version: String,
    /// `AgentCertificateRequest`.
    pub kind: String,
    /// What is asked.
    pub spec: AgentCertificateSpec,
    /// What was issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<AgentCertificateStatus>,
}

/// Two PKCS#10 requests (PEM); their subjects are ignored (the server names the agent).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentCertificateSpec {
    /// For the client certificate.
    pub client_request: String,
    /// For the endpoint's serving certificate.
    pub serving_request: String,
    /// Host names and addresses the endpoint is reached by.
    #[serde(default)]
    pub serving_hosts: Vec<String>,
}

/// The issued certificates (PEM) and the CA that signed them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentCertificateStatus {
    /// The client certificate.
    pub client_certificate: String,
    /// The serving certificate.
    pub serving_certificate: String,
    /// The cluster CA.
    pub ca: String,
    /// When both expire (RFC 3339).
    pub expiration_timestamp: String,
}
