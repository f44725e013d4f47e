//! How the client connects: endpoint, trust roots, client certificate, TLS and HTTP
//! versions, timeouts, pooling.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::{Endpoint, Error};

/// KMS's timeout for one call to an XKS proxy (fact sheet §9.5).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(250);

/// Largest answer body read; larger answers fail with [`Error::Http`]. An XKS answer is
/// a few kilobytes at most.
pub const DEFAULT_MAX_ANSWER_BYTES: usize = 1 << 20;

/// Everything a [`Client`](crate::Client) needs to reach a proxy.
///
/// ```
/// use std::time::Duration;
/// use xks_client::{ClientConfig, Endpoint, HttpVersions};
///
/// let config = ClientConfig::new(Endpoint::parse("https://xks.example.com")?)
///     .with_http_versions(HttpVersions::Http1)
///     .with_timeout(Duration::from_millis(500))
///     .with_connect_to("127.0.0.1:8443".parse().unwrap());
/// assert_eq!(config.timeout(), Duration::from_millis(500));
/// # Ok::<(), xks_client::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub(crate) endpoint: Endpoint,
    pub(crate) trust: TrustRoots,
    pub(crate) identity: Option<ClientIdentity>,
    pub(crate) http: HttpVersions,
    pub(crate) tls_versions: TlsVersions,
    pub(crate) timeout: Duration,
    pub(crate) connect_to: Option<SocketAddr>,
    pub(crate) pool_idle_timeout: Duration,
    pub(crate) pool_max_idle_per_host: usize,
    pub(crate) max_answer_bytes: usize,
}

/// The certificates a server certificate must chain to.
#[derive(Clone)]
pub struct TrustRoots(Trust);

#[derive(Clone)]
enum Trust {
    System,
    Certificates(Arc<[CertificateDer<'static>]>),
}

/// A client certificate chain and its private key, for mutual TLS.
///
/// `Debug` shows the number of certificates, never the key.
#[derive(Clone)]
pub struct ClientIdentity {
    chain: Arc<[CertificateDer<'static>]>,
    key: Arc<PrivateKeyDer<'static>>,
}

/// Which HTTP versions the client offers, through TLS ALPN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum HttpVersions {
    /// Offer `h2` and `http/1.1`; use what the proxy picks. The default.
    #[default]
    Auto,
    /// Offer only `http/1.1`.
    Http1,
    /// Offer no ALPN at all and speak HTTP/1.1 (fact sheet §14 check 2).
    Http1WithoutAlpn,
    /// Offer only `h2` and speak HTTP/2 (plain `http` endpoints: prior knowledge).
    Http2,
}

/// Which TLS versions the client accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TlsVersions {
    /// TLS 1.2 and 1.3, as KMS. The default.
    #[default]
    Tls12AndTls13,
    /// TLS 1.2 only.
    Tls12Only,
    /// TLS 1.3 only.
    Tls13Only,
}

// === impl ClientConfig ===

impl ClientConfig {
    /// A configuration for `endpoint` with the defaults: system trust roots, no client
    /// certificate, HTTP/2 or HTTP/1.1 by ALPN, TLS 1.2 and 1.3, a 250 ms timeout, idle
    /// pooled connections kept for 90 s.
    pub fn new(endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            trust: TrustRoots::system(),
            identity: None,
            http: HttpVersions::Auto,
            tls_versions: TlsVersions::Tls12AndTls13,
            timeout: DEFAULT_TIMEOUT,
            connect_to: None,
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_host: 1024,
            max_answer_bytes: DEFAULT_MAX_ANSWER_BYTES,
        }
    }

    /// Trusts `trust` instead of the system roots.
    #[must_use]
    pub fn with_trust(mut self, trust: TrustRoots) -> Self {
        self.trust = trust;
        self
    }

    /// Presents `identity` when the proxy asks for a client certificate.
    #[must_use]
    pub fn with_client_identity(mut self, identity: ClientIdentity) -> Self {
        self.identity = Some(identity);
        self
    }

    /// Sets the HTTP versions offered.
    #[must_use]
    pub fn with_http_versions(mut self, http: HttpVersions) -> Self {
        self.http = http;
        self
    }

    /// Sets the TLS versions accepted.
    #[must_use]
    pub fn with_tls_versions(mut self, versions: TlsVersions) -> Self {
        self.tls_versions = versions;
        self
    }

    /// Sets the per-request timeout (default 250 ms, like KMS). It covers the whole
    /// exchange: connecting, the TLS handshake, sending, and reading the full answer.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Connects to `addr` instead of resolving the endpoint's host, like curl's
    /// `--connect-to`: the `Host` header, the SigV4 `host` and the TLS server name stay
    /// the endpoint's.
    #[must_use]
    pub fn with_connect_to(mut self, addr: SocketAddr) -> Self {
        self.connect_to = Some(addr);
        self
    }

    /// How long an idle pooled connection is kept (default 90 s).
    #[must_use]
    pub fn with_pool_idle_timeout(mut self, idle: Duration) -> Self {
        self.pool_idle_timeout = idle;
        self
    }

    /// How many idle connections are kept per host (default 1024; 0 disables reuse).
    #[must_use]
    pub fn with_pool_max_idle_per_host(mut self, max: usize) -> Self {
        self.pool_max_idle_per_host = max;
        self
    }

    /// The largest answer body read (default 1 MiB).
    #[must_use]
    pub fn with_max_answer_bytes(mut self, max: usize) -> Self {
        self.max_answer_bytes = max;
        self
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The per-request timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The HTTP versions offered.
    pub fn http_versions(&self) -> HttpVersions {
        self.http
    }

    /// The `--connect-to` address, if set.
    pub fn connect_to(&self) -> Option<SocketAddr> {
        self.connect_to
    }

    /// Builds the rustls configuration (aws-lc-rs) for this client.
    pub(crate) fn rustls_config(&self) -> Result<rustls::ClientConfig, Error> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let versions: &[&'static rustls::SupportedProtocolVersion] = match self.tls_versions {
            TlsVersions::Tls12AndTls13 => &[&rustls::version::TLS13, &rustls::version::TLS12],
            TlsVersions::Tls12Only => &[&rustls::version::TLS12],
            TlsVersions::Tls13Only => &[&rustls::version::TLS13],
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .map_err(|e| Error::config_with("unsupported TLS versions", e))?
            .with_root_certificates(self.trust.root_store()?);
        let mut config = match &self.identity {
            None => builder.with_no_client_auth(),
            Some(identity) => builder
                .with_client_auth_cert(identity.chain.to_vec(), identity.key.clone_key())
                .map_err(|e| Error::config_with("the client certificate or key is unusable", e))?,
        };
        config.alpn_protocols = match self.http {
            HttpVersions::Auto => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            HttpVersions::Http1 => vec![b"http/1.1".to_vec()],
            HttpVersions::Http1WithoutAlpn => Vec::new(),
            HttpVersions::Http2 => vec![b"h2".to_vec()],
        };
        Ok(config)
    }
}

// === impl TrustRoots ===

impl TrustRoots {
    /// The operating system's trust store, loaded when the client is built. KMS trusts a
    /// fixed list of public CAs (fact sheet §8.6); most of them are in system stores.
    pub fn system() -> Self {
        Self(Trust::System)
    }

    /// The certificates in a PEM document, such as a private test CA.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if the document holds no certificate or a malformed one.
    pub fn from_pem(pem: &[u8]) -> Result<Self, Error> {
        let certs = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::config_with("invalid PEM certificate", e))?;
        if certs.is_empty() {
            return Err(Error::config("no certificate in the PEM trust roots"));
        }
        Ok(Self(Trust::Certificates(certs.into())))
    }

    /// The certificates in a PEM file.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if the file cannot be read or holds no valid certificate.
    pub fn from_pem_file(path: &Path) -> Result<Self, Error> {
        let pem = std::fs::read(path)
            .map_err(|e| Error::config_with(format!("cannot read {}", path.display()), e))?;
        Self::from_pem(&pem).map_err(|e| match e {
            Error::Config(inner) => {
                Error::config_with(format!("CA file {}", path.display()), inner)
            }
            other => other,
        })
    }

    /// Whether these are the system roots.
    pub fn is_system(&self) -> bool {
        matches!(self.0, Trust::System)
    }

    fn root_store(&self) -> Result<RootCertStore, Error> {
        let mut store = RootCertStore::empty();
        match &self.0 {
            Trust::Certificates(certs) => {
                for cert in certs.iter() {
                    store
                        .add(cert.clone())
                        .map_err(|e| Error::config_with("unusable trust root certificate", e))?;
                }
            }
            Trust::System => {
                let loaded = rustls_native_certs::load_native_certs();
                // Unparseable system certificates are skipped, as browsers do.
                let _ = store.add_parsable_certificates(loaded.certs);
                if store.is_empty() {
                    return Err(Error::config(
                        "no trust roots found in the system trust store; give a CA file",
                    ));
                }
            }
        }
        Ok(store)
    }
}

impl fmt::Debug for TrustRoots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Trust::System => f.write_str("TrustRoots::System"),
            Trust::Certificates(certs) => write!(f, "TrustRoots({} certificates)", certs.len()),
        }
    }
}

// === impl ClientIdentity ===

impl ClientIdentity {
    /// A certificate chain (leaf first) and its private key (PKCS#8, PKCS#1 or SEC1),
    /// both PEM.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if either document is malformed or empty.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, Error> {
        let chain = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::config_with("invalid PEM client certificate", e))?;
        if chain.is_empty() {
            return Err(Error::config(
                "no certificate in the client certificate PEM",
            ));
        }
        // The PEM parser's error never quotes key material.
        let key = PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|e| Error::config_with("invalid PEM client key", e))?;
        Ok(Self {
            chain: chain.into(),
            key: Arc::new(key),
        })
    }

    /// Like [`ClientIdentity::from_pem`], reading both files.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if a file cannot be read or is malformed.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, Error> {
        let read = |path: &Path| {
            std::fs::read(path)
                .map_err(|e| Error::config_with(format!("cannot read {}", path.display()), e))
        };
        let key_pem = zeroize::Zeroizing::new(read(key)?);
        Self::from_pem(&read(cert)?, &key_pem)
    }
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("certificates", &self.chain.len())
            .field("key", &format_args!("** redacted **"))
            .finish()
    }
}
