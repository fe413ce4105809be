//! The cluster's identity: a CA made on first start, a serving certificate
//! signed by it on every start (for the addresses in use then), the bearer
//! tokens of the admin and agent identities, the key ServiceAccount tokens are
//! signed with, and the kubeconfig files that
//! carry them. Everything lives under `DATA_DIR/pki` and is written atomically.

use base64::Engine;
use rand::Rng;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// Why the PKI could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// Certificate generation failed.
    #[error("certificate generation failed: {0}")]
    Cert(#[from] rcgen::Error),
    /// A stored file is not what it should be.
    #[error("{path} is corrupt: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A certificate signing request could not be used.
    #[error("the certificate signing request is not usable: {0}")]
    Request(String),
}

/// The credentials a server serves with.
#[derive(Clone)]
pub struct Pki {
    /// The CA certificate, PEM.
    pub ca_pem: String,
    /// The agent CA (PEM): it signs agents' serving certificates only.
    pub agent_ca_pem: String,
    /// The serving certificate, PEM.
    pub serving_cert_pem: String,
    /// The serving key, PEM.
    pub serving_key_pem: String,
    /// The admin identity's bearer token.
    pub admin_token: String,
    /// The agent identity's bearer token.
    pub agent_token: String,
    /// The secret ServiceAccount tokens are signed with (HMAC-SHA256).
    pub service_account_key: String,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes a file atomically (temp file, fsync, rename, fsync of the directory).
pub fn write_atomic(path: &Path, contents: &[u8], private: bool) -> Result<(), PkiError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let tmp = path.with_extension("tmp");
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(if private { 0o600 } else { 0o644 });
        }
        let mut f = opts.open(&tmp).map_err(io(&tmp))?;
        f.write_all(contents).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(io(path))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn ca_params() -> Result<CertificateParams, PkiError> {
    ca_named("mosaic-ca")
}

/// The agent CA: it signs only agents' serving certificates, and only the API
/// server trusts it (for `tasks/NAME/log`), so no agent's certificate can
/// pass for the API server's with clients that trust the cluster CA.
fn agent_ca_params() -> Result<CertificateParams, PkiError> {
    ca_named("mosaic-agent-ca")
}

fn ca_named(name: &str) -> Result<CertificateParams, PkiError> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.distinguished_name.push(DnType::CommonName, name);
    // It signs only end-entity certificates: no intermediate CA below it.
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    // Ten years, as kubeadm's CA.
    let now = std::time::SystemTime::now();
    p.not_before = (now - std::time::Duration::from_secs(300)).into();
    p.not_after = (now + std::time::Duration::from_secs(10 * 365 * 86_400)).into();
    Ok(p)
}

fn random_token() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn read_or_make(
    path: &Path,
    private: bool,
    make: impl FnOnce() -> Result<String, PkiError>,
) -> Result<String, PkiError> {
    match std::fs::read_to_string(path) {
        Ok(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        Ok(_) => Err(PkiError::Corrupt {
            path: path.into(),
            message: "empty file".into(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let s = make()?;
            write_atomic(path, s.as_bytes(), private)?;
            Ok(s)
        }
        Err(e) => Err(io(path)(e)),
    }
}

/// Loads the cluster identity from `data_dir/pki`, making what is missing, and
/// signs a serving certificate for `hosts` (DNS names and IP addresses).
pub fn load_or_create(data_dir: &Path, hosts: &[String]) -> Result<Pki, PkiError> {
    let dir = data_dir.join("pki");
    crate::private::dir(&dir).map_err(io(&dir))?;
    let ca_key_path = dir.join("ca.key");
    let ca_key_pem = read_or_make(&ca_key_path, true, || {
        Ok(KeyPair::generate()?.serialize_pem())
    })?;
    let ca_key = KeyPair::from_pem(&ca_key_pem).map_err(|e| PkiError::Corrupt {
        path: ca_key_path.clone(),
        message: e.to_string(),
    })?;
    let ca_pem = read_or_make(&dir.join("ca.crt"), false, || {
        Ok(ca_params()?.self_signed(&ca_key)?.pem())
    })?;
    let agent_ca_key = read_or_make(&dir.join("agent-ca.key"), true, || {
        Ok(KeyPair::generate()?.serialize_pem())
    })?;
    let agent_ca_pem = read_or_make(&dir.join("agent-ca.crt"), false, || {
        let key = KeyPair::from_pem(&agent_ca_key)?;
        Ok(agent_ca_params()?.self_signed(&key)?.pem())
    })?;
    let admin_token = read_or_make(&dir.join("admin.token"), true, || Ok(random_token()))?;
    let agent_token = read_or_make(&dir.join("agent.token"), true, || Ok(random_token()))?;
    let service_account_key =
        read_or_make(
            &dir.join("service-account.key"),
            true,
            || Ok(random_token()),
        )?;
    let (serving_cert_pem, serving_key_pem) = serving_certificate(ca_key, hosts)?;
    Ok(Pki {
        ca_pem,
        agent_ca_pem,
        serving_cert_pem,
        serving_key_pem,
        admin_token,
        agent_token,
        service_account_key,
    })
}

/// The admin and agent bearer tokens as `data_dir/pki` holds them now.
pub fn tokens(data_dir: &Path) -> Result<(String, String), PkiError> {
    let read = |name: &str| {
        let path = data_dir.join("pki").join(name);
        std::fs::read_to_string(&path)
            .map(|s| s.trim().to_string())
            .map_err(io(&path))
    };
    Ok((read("admin.token")?, read("agent.token")?))
}

/// Replaces the admin and agent bearer tokens with new random ones, and the
/// token in `kubeconfig` and `agent.kubeconfig`. A running server takes them
/// within seconds (and refuses the old ones from then on).
pub fn rotate_tokens(data_dir: &Path) -> Result<(), PkiError> {
    for (token, kubeconfig) in [
        ("admin.token", "kubeconfig"),
        ("agent.token", "agent.kubeconfig"),
    ] {
        let new = random_token();
        let kc = data_dir.join(kubeconfig);
        if let Ok(text) = std::fs::read_to_string(&kc) {
            let replaced: String = text
                .lines()
                .map(|l| match l.split_once("token: ") {
                    Some((indent, _)) if indent.trim().is_empty() => {
                        format!("{indent}token: {new}\n")
                    }
                    _ => format!("{l}\n"),
                })
                .collect();
            write_atomic(&kc, replaced.as_bytes(), true)?;
        }
        write_atomic(&data_dir.join("pki").join(token), new.as_bytes(), true)?;
    }
    Ok(())
}

/// How long a serving certificate is valid.
pub const SERVING_VALIDITY: std::time::Duration = std::time::Duration::from_secs(365 * 86_400);

/// The CA key in `data_dir/pki`.
pub fn ca_key(data_dir: &Path) -> Result<KeyPair, PkiError> {
    let path = data_dir.join("pki").join("ca.key");
    let pem = std::fs::read_to_string(&path).map_err(io(&path))?;
    KeyPair::from_pem(&pem).map_err(|e| PkiError::Corrupt {
        path,
        message: e.to_string(),
    })
}

/// A serving certificate and key (PEM) for `hosts` (and localhost), signed by
/// the CA whose key is `ca_key`, valid for [`SERVING_VALIDITY`] from now.
pub fn serving_certificate(
    ca_key: KeyPair,
    hosts: &[String],
) -> Result<(String, String), PkiError> {
    let issuer = Issuer::new(ca_params()?, ca_key);
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.distinguished_name
        .push(DnType::CommonName, "mosaic-apiserver");
    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    names.extend(hosts.iter().cloned());
    names.sort();
    names.dedup();
    for h in names {
        let san = match h.parse::<IpAddr>() {
            Ok(ip) if !ip.is_unspecified() => SanType::IpAddress(ip),
            Ok(_) => continue,
            Err(_) => SanType::DnsName(h.as_str().try_into()?),
        };
        p.subject_alt_names.push(san);
    }
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let now = std::time::SystemTime::now();
    p.not_before = (now - std::time::Duration::from_secs(300)).into();
    p.not_after = (now + SERVING_VALIDITY).into();
    let key = KeyPair::generate()?;
    let cert = p.signed_by(&key, &issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// A client certificate and key (PEM) for `user` in `group` (the subject's
/// CommonName and Organization, as Kubernetes reads them), signed by the CA in
/// `data_dir/pki`, valid for `days`.
pub fn user_certificate(
    data_dir: &Path,
    user: &str,
    group: Option<&str>,
    days: u32,
) -> Result<(String, String), PkiError> {
    let ca_key_path = data_dir.join("pki").join("ca.key");
    let ca_key_pem = std::fs::read_to_string(&ca_key_path).map_err(io(&ca_key_path))?;
    let ca_key = KeyPair::from_pem(&ca_key_pem).map_err(|e| PkiError::Corrupt {
        path: ca_key_path.clone(),
        message: e.to_string(),
    })?;
    let issuer = Issuer::new(ca_params()?, ca_key);
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.distinguished_name.push(DnType::CommonName, user);
    if let Some(g) = group {
        p.distinguished_name.push(DnType::OrganizationName, g);
    }
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let now = std::time::SystemTime::now();
    p.not_before = (now - std::time::Duration::from_secs(300)).into();
    p.not_after = (now + std::time::Duration::from_secs(u64::from(days) * 86_400)).into();
    let key = KeyPair::generate()?;
    let cert = p.signed_by(&key, &issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// A kubeconfig for a user who authenticates with a client certificate.
pub fn kubeconfig_with_certificate(
    server: &str,
    ca_pem: &str,
    user: &str,
    cert_pem: &str,
    key_pem: &str,
) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: mosaic\n  cluster:\n    server: {server}\n    \
         certificate-authority-data: {}\nusers:\n- name: {user}\n  user:\n    client-certificate-data: {}\n    \
         client-key-data: {}\ncontexts:\n- name: mosaic\n  context:\n    cluster: mosaic\n    user: {user}\n    namespace: default\n\
         current-context: mosaic\n",
        b64(ca_pem),
        b64(cert_pem),
        b64(key_pem)
    )
}

/// A kubeconfig for one user of the cluster at `server` (an https URL).
pub fn kubeconfig(server: &str, ca_pem: &str, user: &str, token: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: mosaic\n  cluster:\n    server: {server}\n    \
         certificate-authority-data: {ca}\nusers:\n- name: {user}\n  user:\n    token: {token}\n\
         contexts:\n- name: mosaic\n  context:\n    cluster: mosaic\n    user: {user}\n    namespace: default\n\
         current-context: mosaic\n"
    )
}

/// How long an agent's certificates are valid.
pub const AGENT_VALIDITY: std::time::Duration = std::time::Duration::from_secs(365 * 86_400);

/// Signs agent `name`'s client certificate (CommonName `system:mosaic-agent:NAME`,
/// Organization `system:mosaic-agents`, by the cluster CA) and serving
/// certificate (the same CommonName, `hosts` as alternative names, by the
/// agent CA, which only the API server trusts) for the keys of two PKCS#10
/// requests (PEM), whose signatures prove the agent holds them; whatever
/// else the requests ask is ignored. Returns (client, serving) PEM.
pub fn sign_agent(
    data_dir: &Path,
    name: &str,
    client_request: &str,
    serving_request: &str,
    hosts: &[String],
) -> Result<(String, String), PkiError> {
    let issuer = Issuer::new(ca_params()?, ca_key(data_dir)?);
    let user = mosaic_crds::join::user(name);
    let now = std::time::SystemTime::now();
    let base = || -> Result<CertificateParams, PkiError> {
        let mut p = CertificateParams::new(Vec::<String>::new())?;
        p.distinguished_name.push(DnType::CommonName, user.as_str());
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        p.not_before = (now - std::time::Duration::from_secs(300)).into();
        p.not_after = (now + AGENT_VALIDITY).into();
        Ok(p)
    };
    let parse = |pem: &str| {
        rcgen::CertificateSigningRequestParams::from_pem(pem)
            .map_err(|e| PkiError::Request(e.to_string()))
    };
    let mut client = base()?;
    client
        .distinguished_name
        .push(DnType::OrganizationName, mosaic_crds::join::GROUP);
    client.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let client = client.signed_by(&parse(client_request)?.public_key, &issuer)?;
    let mut serving = base()?;
    serving.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    for h in hosts {
        let san = match h.parse::<IpAddr>() {
            Ok(ip) if !ip.is_unspecified() => SanType::IpAddress(ip),
            Ok(_) => continue,
            Err(_) => SanType::DnsName(
                h.as_str()
                    .try_into()
                    .map_err(|_| PkiError::Request(format!("{h:?} is not a host name")))?,
            ),
        };
        serving.subject_alt_names.push(san);
    }
    let agent_key_path = data_dir.join("pki").join("agent-ca.key");
    let agent_ca =
        KeyPair::from_pem(&std::fs::read_to_string(&agent_key_path).map_err(io(&agent_key_path))?)
            .map_err(|e| PkiError::Corrupt {
                path: agent_key_path.clone(),
                message: e.to_string(),
            })?;
    let agent_issuer = Issuer::new(agent_ca_params()?, agent_ca);
    let serving = serving.signed_by(&parse(serving_request)?.public_key, &agent_issuer)?;
    Ok((client.pem(), serving.pem()))
}
