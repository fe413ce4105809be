//! The agent's own identity (see `mosaic_crds::join`): at start, an agent with
//! no identity in `DATA_DIR/identity/`, or one expiring within 30 days, makes
//! two keys and asks the API server, with the credentials it was started
//! with (the bootstrap credential, or its current identity), to sign them:
//! a client certificate naming it and a serving certificate for its endpoint.
//! The keys never leave the machine; the files are 0600 in a 0700 directory.
//! A server that issues no identities (a real Kubernetes cluster, or one
//! whose RBAC does not grant it) leaves the agent with its credentials.

use mosaic_crds::join::{AgentCertificateRequest, AgentCertificateSpec};
use rustls::pki_types::pem::PemObject;
use std::path::{Path, PathBuf};

/// An agent's identity (PEM).
#[derive(Clone, Debug)]
pub struct Identity {
    /// The client certificate.
    pub client_certificate: String,
    /// Its key.
    pub client_key: String,
    /// The endpoint's serving certificate.
    pub serving_certificate: String,
    /// Its key.
    pub serving_key: String,
    /// The cluster CA that signed them.
    pub ca: String,
}

/// What the agent's endpoint serves with: its identity's serving certificate
/// and key, and the CA whose client certificates it accepts (the API server's).
#[derive(Clone, Debug)]
pub struct Serving {
    /// The serving certificate (PEM).
    pub certificate: String,
    /// Its key (PEM).
    pub key: String,
    /// The cluster CA (PEM).
    pub ca: String,
}

impl Identity {
    /// The endpoint's part of it.
    pub fn serving(&self) -> Serving {
        Serving {
            certificate: self.serving_certificate.clone(),
            key: self.serving_key.clone(),
            ca: self.ca.clone(),
        }
    }
}

/// Why joining failed.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// An agent of this name is running (409): another machine has the name,
    /// or this agent's previous run has not yet been seen to stop.
    #[error("agent {0} is running elsewhere or has not yet been seen to stop: {1}")]
    Running(String, String),
    /// The request failed.
    #[error("asking for agent {0}'s identity: {1}")]
    Api(String, #[source] kube::Error),
    /// Keys or requests could not be made.
    #[error("making agent {0}'s keys: {1}")]
    Keys(String, #[source] rcgen::Error),
    /// The files could not be written.
    #[error("writing {0}: {1}")]
    Io(PathBuf, #[source] std::io::Error),
}

const FILES: [&str; 5] = [
    "client.crt",
    "client.key",
    "serving.crt",
    "serving.key",
    "ca.crt",
];

fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("identity")
}

/// The identity kept in `data_dir`, when there is one valid for 30 more days.
pub fn load(data_dir: &Path) -> Option<Identity> {
    let d = dir(data_dir);
    let read = |f: &str| std::fs::read_to_string(d.join(f)).ok();
    let id = Identity {
        client_certificate: read(FILES[0])?,
        client_key: read(FILES[1])?,
        serving_certificate: read(FILES[2])?,
        serving_key: read(FILES[3])?,
        ca: read(FILES[4])?,
    };
    let der =
        rustls::pki_types::CertificateDer::from_pem_slice(id.client_certificate.as_bytes()).ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).ok()?;
    let left = cert.validity().not_after.timestamp() - jiff::Timestamp::now().as_second();
    (left > 30 * 86_400).then_some(id)
}

/// Asks the server `client` reaches to sign a new identity for agent `name`
/// reached at `hosts`; `Ok(None)` when the server issues none.
pub async fn request(
    client: &kube::Client,
    name: &str,
    hosts: &[String],
) -> Result<Option<Identity>, JoinError> {
    let keys = || -> Result<(rcgen::KeyPair, String), rcgen::Error> {
        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, mosaic_crds::join::user(name));
        let csr = params.serialize_request(&key)?.pem()?;
        Ok((key, csr))
    };
    let (client_key, client_csr) = keys().map_err(|e| JoinError::Keys(name.into(), e))?;
    let (serving_key, serving_csr) = keys().map_err(|e| JoinError::Keys(name.into(), e))?;
    let body = AgentCertificateRequest {
        api_version: format!("{}/v1alpha1", mosaic_crds::GROUP),
        kind: mosaic_crds::join::KIND.into(),
        spec: AgentCertificateSpec {
            client_request: client_csr,
            serving_request: serving_csr,
            serving_hosts: hosts.to_vec(),
        },
        status: None,
    };
    let req = http::Request::post(format!(
        "/apis/{}/v1alpha1/agents/{name}/{}",
        mosaic_crds::GROUP,
        mosaic_crds::join::SUBRESOURCE
    ))
    .header(http::header::CONTENT_TYPE, "application/json")
    .body(serde_json::to_vec(&body).expect("a request serialises"))
    .expect("a valid request");
    let answer: AgentCertificateRequest = match client.request(req).await {
        Ok(a) => a,
        Err(kube::Error::Api(s)) if s.code == 409 => {
            return Err(JoinError::Running(name.into(), s.message));
        }
        Err(kube::Error::Api(s)) if (403..=405).contains(&s.code) => {
            tracing::info!(
                agent = name,
                code = s.code,
                "the server issues no agent identities: keeping the credentials the agent was given"
            );
            return Ok(None);
        }
        Err(e) => return Err(JoinError::Api(name.into(), e)),
    };
    let Some(status) = answer.status else {
        return Ok(None);
    };
    Ok(Some(Identity {
        client_certificate: status.client_certificate,
        client_key: client_key.serialize_pem(),
        serving_certificate: status.serving_certificate,
        serving_key: serving_key.serialize_pem(),
        ca: status.ca,
    }))
}

/// Keeps `id` in `data_dir` (files 0600 in a 0700 directory; each written whole).
pub fn save(data_dir: &Path, id: &Identity) -> Result<(), JoinError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let d = dir(data_dir);
    crate::private_dir(&d).map_err(|e| JoinError::Io(d.clone(), e))?;
    let contents = [
        &id.client_certificate,
        &id.client_key,
        &id.serving_certificate,
        &id.serving_key,
        &id.ca,
    ];
    for (f, text) in FILES.iter().zip(contents) {
        let tmp = d.join(format!(".{f}.tmp"));
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&tmp, d.join(f))
        };
        write().map_err(|e| JoinError::Io(d.join(f), e))?;
    }
    Ok(())
}

/// `base` (a kubeconfig's cluster and CA) authenticating as `id` instead of
/// whatever credential it had.
pub fn client_config(base: &kube::Config, id: &Identity) -> kube::Config {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let mut cfg = base.clone();
    cfg.auth_info = kube::config::AuthInfo {
        client_certificate_data: Some(b64(&id.client_certificate)),
        client_key_data: Some(b64(&id.client_key).into()),
        ..Default::default()
    };
    cfg
}
