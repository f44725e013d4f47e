//! Test fixtures shared by xks-client's and xks-mock-kms's end-to-end tests (the mock
//! includes this file with `#[path]`): our proxy on 127.0.0.1 with TLS certificates made
//! here, a slow key manager, and three misbehaving servers (one that answers HTML or any
//! canned body, one that accepts and never answers, a closed port).
#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test binary uses a different subset"
)]
#![expect(
    clippy::unwrap_used,
    reason = "fixture code of a test: a failed unwrap is a failed test"
)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use xks_keymanager::{KeyManager, KeyManagerError, NodeHealth, Sealed, SealedRef};
use xks_protocol::{KeyId, MetadataResponse, Plaintext};
use xks_server::{Config, Proxy, Server};
use xks_soft::{KeyState, SoftKeyManager, Usage};

pub const AKID: &str = "AKIAI2SFODNN7EXAMPLE";
pub const SECRET: &str = "FYtE5EFA5FT0mCc3DrGUe2sti527BitkQ0Zr9MO9fvE";
/// Another valid credential the proxy does not know.
pub const OTHER_AKID: &str = "BKIAI2SFODNN7EXAMPLE";
pub const OTHER_SECRET: &str = "GYtE5EFA5FT0mCc3DrGUe2sti527BitkQ0Zr9MO9fvE";
pub const PREFIX: &str = "/p";
pub const URI_PATH: &str = "/p/kms/xks/v1";
pub const KMS_CN: &str = "cks.kms.eu-west-1.amazonaws.com";

/// A private CA and certificates issued by it, all PEM.
pub struct Pki {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its key, PEM.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Pki {
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::new()).unwrap();
        params.distinguished_name = dn(name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Self { issuer }
    }

    pub fn ca_pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server certificate for `names`; `expired` makes it valid 2018-2020 only.
    pub fn server(&self, names: &[&str], expired: bool) -> Issued {
        self.issue(names, ExtendedKeyUsagePurpose::ServerAuth, expired)
    }

    pub fn client(&self, name: &str) -> Issued {
        self.issue(&[name], ExtendedKeyUsagePurpose::ClientAuth, false)
    }

    fn issue(&self, names: &[&str], usage: ExtendedKeyUsagePurpose, expired: bool) -> Issued {
        let sans: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(sans).unwrap();
        params.distinguished_name = dn(names[0]);
        params.extended_key_usages = vec![usage];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        if expired {
            params.not_before = rcgen::date_time_ymd(2018, 1, 1);
            params.not_after = rcgen::date_time_ymd(2020, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

fn dn(name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn
}

/// How to start the proxy.
pub struct ProxyOptions {
    pub key_manager: Arc<dyn KeyManager>,
    pub expired_certificate: bool,
    pub mtls: bool,
    pub backend_timeout: &'static str,
}

impl Default for ProxyOptions {
    fn default() -> Self {
        Self {
            key_manager: soft_keys(),
            expired_certificate: false,
            mtls: false,
            backend_timeout: "200ms",
        }
    }
}

/// Our proxy, running on 127.0.0.1 until dropped.
pub struct TestProxy {
    pub addr: SocketAddr,
    pub pki: Pki,
    pub dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TestProxy {
    pub async fn start(options: ProxyOptions) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::new("xks test CA");
        let server = pki.server(&["localhost", "127.0.0.1"], options.expired_certificate);
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let cert = write("server.pem", &server.cert_pem);
        let key = write("server.key", &server.key_pem);
        let ca = write("ca.pem", &pki.ca_pem());
        let client_auth = if options.mtls {
            format!(
                "[server.tls.client_auth]\nca = \"{}\"\nallowed_subjects = [\"{KMS_CN}\"]\n",
                ca.display()
            )
        } else {
            String::new()
        };
        let toml = format!(
            r#"
[server]
listen = ["127.0.0.1:0"]
shutdown_grace = "1s"
[server.tls]
cert = "{cert}"
key = "{key}"
{client_auth}
[limits]
backend_timeout = "{timeout}"
[[tenant]]
name = "t"
path_prefix = "{PREFIX}"
keys = ["*"]
[[tenant.credential]]
access_key_id = "{AKID}"
secret_access_key = "{SECRET}"
[backend]
type = "soft"
path = "unused"
"#,
            cert = cert.display(),
            key = key.display(),
            timeout = options.backend_timeout,
        );
        let config = Config::from_toml(&toml).unwrap();
        let env = std::collections::HashMap::<String, String>::new();
        let proxy = Proxy::with_key_manager(&config, &env, options.key_manager)
            .await
            .unwrap();
        let server = Server::bind(&config.server, proxy.tls, proxy.app)
            .await
            .unwrap();
        let addr = server.api_addrs().unwrap()[0];
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server.run(async {
            let _ = rx.await;
        }));
        Self {
            addr,
            pki,
            dir,
            stop: Some(tx),
        }
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A client certificate for mTLS, written next to the CA; returns (cert, key) paths.
    pub fn client_identity_files(&self, name: &str) -> (PathBuf, PathBuf) {
        let issued = self.pki.client(name);
        let cert = self.dir.path().join(format!("{name}.pem"));
        let key = self.dir.path().join(format!("{name}.key"));
        std::fs::write(&cert, issued.cert_pem).unwrap();
        std::fs::write(&key, issued.key_pem).unwrap();
        (cert, key)
    }
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// key-1, key-2: ENCRYPT+DECRYPT; enc-only: ENCRYPT; dec-only: DECRYPT; disabled.
pub fn soft_keys() -> Arc<dyn KeyManager> {
    let keys = [
        ("key-1", Usage::ENCRYPT_DECRYPT, KeyState::Enabled),
        ("key-2", Usage::ENCRYPT_DECRYPT, KeyState::Enabled),
        ("enc-only", Usage::ENCRYPT_ONLY, KeyState::Enabled),
        ("dec-only", Usage::DECRYPT_ONLY, KeyState::Enabled),
        ("disabled", Usage::ENCRYPT_DECRYPT, KeyState::Disabled),
    ]
    .map(|(id, usage, state)| (KeyId::new(id).unwrap(), usage, state));
    Arc::new(SoftKeyManager::ephemeral(keys).unwrap())
}

/// A key manager whose GetKeyMetadata takes `delay` (within the proxy's backend timeout).
#[derive(Debug)]
pub struct SlowMetadata {
    pub inner: Arc<dyn KeyManager>,
    pub delay: Duration,
}

#[async_trait]
impl KeyManager for SlowMetadata {
    fn backend_name(&self) -> &'static str {
        "slow"
    }
    fn vendor(&self) -> &str {
        "test"
    }
    async fn key_metadata(&self, key: &KeyId) -> Result<MetadataResponse, KeyManagerError> {
        tokio::time::sleep(self.delay).await;
        self.inner.key_metadata(key).await
    }
    async fn encrypt(&self, key: &KeyId, pt: &[u8], aad: &[u8]) -> Result<Sealed, KeyManagerError> {
        self.inner.encrypt(key, pt, aad).await
    }
    async fn decrypt(
        &self,
        key: &KeyId,
        sealed: SealedRef<'_>,
        aad: &[u8],
    ) -> Result<Plaintext, KeyManagerError> {
        self.inner.decrypt(key, sealed, aad).await
    }
    async fn health(&self) -> Vec<NodeHealth> {
        self.inner.health().await
    }
}

/// A TLS server (certificate from `pki` for localhost) that answers every request with
/// `status`, `content_type` and `body`: an HTML page, or a broken XKS answer.
pub async fn canned_server(
    pki: &Pki,
    status: u16,
    content_type: &'static str,
    body: &'static str,
) -> SocketAddr {
    let issued = pki.server(&["localhost", "127.0.0.1"], false);
    let certs = CertificateDer::pem_slice_iter(issued.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |_req| async move {
                    let response = http::Response::builder()
                        .status(status)
                        .header("content-type", content_type)
                        .body(Full::new(Bytes::from_static(body.as_bytes())))
                        .unwrap();
                    Ok::<_, std::convert::Infallible>(response)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    addr
}

/// Accepts TCP connections and never sends a byte.
pub async fn silent_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            held.push(tcp);
        }
    });
    addr
}

/// A port on 127.0.0.1 where nothing listens.
pub async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr
}

pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}
