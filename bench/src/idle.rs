//! Idle connections held open against a server, as a careless or hostile
//! client holds them: TLS handshakes completed (trusting the cluster CA of
//! the kubeconfig), then nothing sent.

use anyhow::{Context, Result};
use base64::Engine;
use std::path::Path;
use std::sync::Arc;

/// A held connection.
pub type Held = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

/// Opens `n` idle TLS connections to the server `kubeconfig` names.
pub async fn hold(kubeconfig: &Path, n: usize) -> Result<Vec<Held>> {
    // As a daemon does: the soft open-files limit up to the hard one.
    let lim = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    rustix::process::setrlimit(
        rustix::process::Resource::Nofile,
        rustix::process::Rlimit {
            current: lim.maximum,
            maximum: lim.maximum,
        },
    )?;
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)?;
    let cluster = kc
        .clusters
        .first()
        .and_then(|c| c.cluster.clone())
        .context("a cluster in the kubeconfig")?;
    let server: http::Uri = cluster.server.context("a server URL")?.parse()?;
    let addr = format!(
        "{}:{}",
        server.host().context("a host")?,
        server.port_u16().unwrap_or(443)
    );
    let ca = base64::engine::general_purpose::STANDARD.decode(
        cluster
            .certificate_authority_data
            .context("the cluster CA")?,
    )?;
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(&ca) {
        roots.add(c?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let name =
        rustls::pki_types::ServerName::try_from(server.host().unwrap_or("localhost").to_string())?;
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        let tcp = tokio::net::TcpStream::connect(&addr).await?;
        held.push(tls.connect(name.clone(), tcp).await?);
    }
    Ok(held)
}
