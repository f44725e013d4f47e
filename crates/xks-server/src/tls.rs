//! TLS with rustls: TLS 1.2 and 1.3, HTTP/2 and HTTP/1.1 over ALPN, optional mutual
//! TLS with a pinned CA and pinned client subject names.
//!
//! **Conformance**: the provider's default suites are all forward-secret AEAD
//! suites and include every suite the spec lists (TLS 1.3 `TLS_AES_256_GCM_SHA384`,
//! `TLS_CHACHA20_POLY1305_SHA256`; TLS 1.2 `ECDHE_RSA/ECDSA_WITH_AES_256_GCM_SHA384`),
//! fact sheet §1.1. TLS 1.1 and older are never offered.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig,
    SignatureScheme,
};

use crate::config::{ClientAuthConfig, TlsConfig};

/// Why a TLS configuration cannot be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{what} {path}: {reason}")]
    Pem {
        /// Which file: certificate, key or CA.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// rustls refused the certificate, key or CA set.
    #[error("TLS configuration rejected: {0}")]
    Rustls(String),
}

/// A client certificate verifier that chains to the configured CA (webpki) and
/// then requires one of the pinned subject names.
struct PinnedSubjectVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    allowed: Vec<String>,
}

// === impl TlsError ===

impl TlsError {
    fn pem(what: &'static str, path: &Path, reason: impl fmt::Display) -> Self {
        Self::Pem {
            what,
            path: path.to_owned(),
            reason: reason.to_string(),
        }
    }
}

/// Builds the rustls server configuration: aws-lc-rs, TLS 1.3 and 1.2, ALPN `h2`
/// then `http/1.1`, and client authentication when configured.
pub fn server_config(tls: &TlsConfig) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = load_certs("certificate", &tls.cert)?;
    let key = PrivateKeyDer::from_pem_file(&tls.key)
        .map_err(|e| TlsError::pem("private key", &tls.key, e))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let builder = match &tls.client_auth {
        None => builder.with_no_client_auth(),
        Some(auth) => builder.with_client_cert_verifier(client_verifier(auth, provider)?),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn load_certs(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| TlsError::pem(what, path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::pem(what, path, e))?;
    if certs.is_empty() {
        return Err(TlsError::pem(what, path, "no PEM certificate found"));
    }
    Ok(certs)
}

fn client_verifier(
    auth: &ClientAuthConfig,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    if auth.allowed_subjects.is_empty() {
        return Err(TlsError::Rustls(
            "client_auth.allowed_subjects must name at least one subject (e.g. cks.kms.eu-west-1.amazonaws.com)"
                .into(),
        ));
    }
    let mut roots = RootCertStore::empty();
    for cert in load_certs("client CA", &auth.ca)? {
        roots
            .add(cert)
            .map_err(|e| TlsError::pem("client CA", &auth.ca, e))?;
    }
    let inner = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    Ok(Arc::new(PinnedSubjectVerifier {
        inner,
        allowed: auth.allowed_subjects.clone(),
    }))
}

/// The subject common names and DNS subject alternative names of a certificate.
fn subject_names(der: &[u8]) -> Result<Vec<String>, rustls::Error> {
    let bad = || rustls::Error::InvalidCertificate(CertificateError::BadEncoding);
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|_| bad())?;
    let mut names: Vec<String> = cert
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok().map(str::to_owned))
        .collect();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(dns) = name {
                names.push((*dns).to_owned());
            }
        }
    }
    Ok(names)
}

// === impl PinnedSubjectVerifier ===

impl fmt::Debug for PinnedSubjectVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PinnedSubjectVerifier")
            .field("allowed", &self.allowed)
            .finish_non_exhaustive()
    }
}

impl ClientCertVerifier for PinnedSubjectVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let names = subject_names(end_entity)?;
        if names.iter().any(|n| self.allowed.iter().any(|a| a == n)) {
            Ok(verified)
        } else {
            tracing::warn!(
                presented = ?names,
                "client certificate chains to the configured CA but its subject is not allowed"
            );
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
