//! The API server's serving certificate, renewed while it runs: valid a year
//! ([`crate::pki::SERVING_VALIDITY`]), made anew at every start, and re-signed
//! by the cluster CA when less than a third of its life is left, then swapped
//! into the TLS acceptor without a restart (new handshakes get the new one).

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The PEM could not be read.
    #[error("reading PEM: {0}")]
    Pem(String),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The certificate the acceptor presents, replaceable.
#[derive(Debug)]
pub struct ServingCert {
    provider: Arc<rustls::crypto::CryptoProvider>,
    current: RwLock<(Arc<CertifiedKey>, i64)>,
}

fn certified(
    provider: &rustls::crypto::CryptoProvider,
    cert_pem: &str,
    key_pem: &str,
) -> Result<(Arc<CertifiedKey>, i64), TlsError> {
    let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem(e.to_string()))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| TlsError::Pem(e.to_string()))?;
    let not_after = certs
        .first()
        .and_then(|c| x509_parser::parse_x509_certificate(c).ok())
        .map(|(_, c)| c.validity().not_after.timestamp())
        .ok_or_else(|| TlsError::Pem("no readable certificate".into()))?;
    let key = CertifiedKey::from_der(certs, key, provider)?;
    Ok((Arc::new(key), not_after))
}

impl ServingCert {
    /// The certificate and key (PEM) to present.
    pub fn new(
        provider: Arc<rustls::crypto::CryptoProvider>,
        cert_pem: &str,
        key_pem: &str,
    ) -> Result<Self, TlsError> {
        let current = RwLock::new(certified(&provider, cert_pem, key_pem)?);
        Ok(Self { provider, current })
    }

    /// Presents this certificate from the next handshake on.
    pub fn replace(&self, cert_pem: &str, key_pem: &str) -> Result<(), TlsError> {
        let next = certified(&self.provider, cert_pem, key_pem)?;
        *self.current.write().expect("serving cert lock") = next;
        Ok(())
    }

    /// When the certificate presented now expires (Unix seconds).
    pub fn not_after(&self) -> i64 {
        self.current.read().expect("serving cert lock").1
    }

    /// Whether less than a third of a serving certificate's life is left at `now`.
    pub fn due(&self, now: i64) -> bool {
        let third = (crate::pki::SERVING_VALIDITY.as_secs() / 3) as i64;
        self.not_after() - now < third
    }
}

impl rustls::server::ResolvesServerCert for ServingCert {
    fn resolve(&self, _: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().expect("serving cert lock").0.clone())
    }
}

/// Checks every `every` whether the certificate is due, and renews it for
/// `hosts` with the CA in `data_dir` when it is.
pub async fn renew(cert: Arc<ServingCert>, data_dir: PathBuf, hosts: Vec<String>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        if !cert.due(jiff::Timestamp::now().as_second()) {
            continue;
        }
        let renewed = crate::pki::ca_key(&data_dir)
            .and_then(|key| crate::pki::serving_certificate(key, &hosts))
            .map_err(|e| e.to_string())
            .and_then(|(c, k)| cert.replace(&c, &k).map_err(|e| e.to_string()));
        match renewed {
            Ok(()) => tracing::info!(
                not_after = cert.not_after(),
                "renewed the serving certificate"
            ),
            Err(e) => tracing::warn!(error = %e, "renewing the serving certificate failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_serving_certificate_lasts_a_year_and_is_renewed_in_its_last_third() {
        let dir = tempfile::tempdir().unwrap();
        let pki = crate::pki::load_or_create(dir.path(), &["example.test".into()]).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cert = ServingCert::new(provider, &pki.serving_cert_pem, &pki.serving_key_pem).unwrap();
        let now = jiff::Timestamp::now().as_second();
        let year = crate::pki::SERVING_VALIDITY.as_secs() as i64;
        assert!((cert.not_after() - now - year).abs() < 600, "valid a year");
        assert!(!cert.due(now));
        assert!(cert.due(now + year * 2 / 3 + 60));
        // A renewal is presented from then on.
        let key = crate::pki::ca_key(dir.path()).unwrap();
        let (c, k) = crate::pki::serving_certificate(key, &[]).unwrap();
        cert.replace(&c, &k).unwrap();
        assert!(cert.not_after() >= now + year - 600);
        // The CA allows no intermediate below it.
        let ca = CertificateDer::pem_slice_iter(pki.ca_pem.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        let (_, ca) = x509_parser::parse_x509_certificate(&ca).unwrap();
        let bc = ca.basic_constraints().unwrap().unwrap().value;
        assert!(bc.ca);
        assert_eq!(bc.path_len_constraint, Some(0));
    }
}
