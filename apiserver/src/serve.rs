//! The TLS listener: rustls (TLS 1.2 and 1.3) with ALPN for HTTP/2 and
//! HTTP/1.1, one task per connection, so a slow or stuck client holds up only
//! its own connection; the limits every Mosaic listener has come from
//! [`mosaic_listener`].

use crate::auth::CertificateUser;
use crate::http::App;
use crate::serving::ServingCert;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

pub use crate::serving::TlsError;

/// A TLS acceptor for a serving certificate and key (PEM) that asks clients
/// for a certificate signed by `client_ca_pem` (optional: token clients send none;
/// one signed by another CA fails the handshake). The certificate it presents
/// is the returned [`ServingCert`]'s, which may be replaced while it serves.
pub fn acceptor(
    cert_pem: &str,
    key_pem: &str,
    client_ca_pem: &str,
) -> Result<(TlsAcceptor, Arc<ServingCert>), TlsError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let serving = Arc::new(ServingCert::new(provider.clone(), cert_pem, key_pem)?);
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(client_ca_pem.as_bytes()) {
        roots
            .add(ca.map_err(|e| TlsError::Pem(e.to_string()))?)
            .map_err(TlsError::Rustls)?;
    }
    let clients = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()
    .map_err(|e| TlsError::Pem(format!("client CA: {e}")))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_client_cert_verifier(clients)
        .with_cert_resolver(serving.clone());
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((TlsAcceptor::from(Arc::new(cfg)), serving))
}

/// The TLS configuration with which the API server reaches agents' endpoints:
/// only the agent CA (`agent_ca_pem`) is trusted, and the server presents a
/// client certificate (`system:mosaic-apiserver`) signed by the cluster CA,
/// made at each start.
pub fn agent_client_config(
    data_dir: &std::path::Path,
    agent_ca_pem: &str,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let (cert, key) = crate::pki::user_certificate(
        data_dir,
        mosaic_crds::join::APISERVER_USER,
        Some(mosaic_crds::join::APISERVER_GROUP),
        365,
    )
    .map_err(|e| TlsError::Pem(e.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(agent_ca_pem.as_bytes()) {
        roots.add(ca.map_err(|e| TlsError::Pem(e.to_string()))?)?;
    }
    let certs = CertificateDer::pem_slice_iter(cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem(e.to_string()))?;
    let key =
        PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(|e| TlsError::Pem(e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)?;
    Ok(Arc::new(cfg))
}

/// Accepts connections until `shutdown` resolves, within `limits` (see
/// [`mosaic_listener`]: handshake, header and idle timeouts, a connection cap).
pub async fn run(
    listener: TcpListener,
    tls: TlsAcceptor,
    app: Arc<App>,
    limits: mosaic_listener::Limits,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let counters = app.connections.clone();
    let make = move |conn: &Arc<mosaic_listener::ConnInfo>, mut req: mosaic_listener::Request| {
        let app = app.clone();
        // The user a verified client certificate names, read once per connection.
        let user = conn.derived(|c| {
            c.client_certificate
                .as_deref()
                .and_then(CertificateUser::from_der)
        });
        if let Some(Some(u)) = user {
            req.extensions_mut().insert(u.clone());
        }
        async move { app.handle(req).await }
    };
    mosaic_listener::serve(listener, tls, limits, make, counters, shutdown).await
}
