//! Real sockets on loopback: TLS 1.2 and 1.3 with the spec's suites, HTTP/2 through
//! ALPN and the HTTP/1.1 fallback, keep-alive, mutual TLS with a pinned CA and
//! subject, and graceful shutdown with a request in flight.
#![expect(
    clippy::unwrap_used,
    reason = "test fixtures: a failed unwrap is a failed test"
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{CipherSuite, ClientConfig, ProtocolVersion, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use xks_keymanager::{KeyManager, KeyManagerError, NodeHealth, Sealed, SealedRef};
use xks_protocol::{HealthStatus, KeyId, MetadataResponse, Plaintext};
use xks_server::devpki::{DevCa, Issued, Validity, self_signed_client};
use xks_server::{Config, Proxy, Server};
use xks_sigv4::{Credential, Signer};
use xks_soft::{KeyState, SoftKeyManager, Usage};

const AKID: &str = "AKIAI2SFODNN7EXAMPLE";
const SECRET: &str = "FYtE5EFA5FT0mCc3DrGUe2sti527BitkQ0Zr9MO9fvE";
const KMS_CN: &str = "cks.kms.eu-west-1.amazonaws.com";
const HEALTH_BODY: &str =
    r#"{"requestMetadata":{"kmsRequestId":"tls-test","kmsOperation":"KmsHealthCheck"}}"#;

/// The suites the spec accepts (fact sheet §1.1).
const SPEC_SUITES: [CipherSuite; 4] = [
    CipherSuite::TLS13_AES_256_GCM_SHA384,
    CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
    CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
];

struct Running {
    addr: SocketAddr,
    ping: SocketAddr,
    ca: DevCa,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

/// Starts a TLS proxy on 127.0.0.1 with a fresh CA; with `mtls`, client
/// certificates must chain to that CA and name `KMS_CN`.
async fn start(mtls: bool, km: Arc<dyn KeyManager>) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let ca = DevCa::new("test CA").unwrap();
    let server = ca.issue_server(&["localhost", "127.0.0.1"]).unwrap();
    std::fs::write(dir.path().join("server.pem"), &server.cert_pem).unwrap();
    std::fs::write(dir.path().join("server.key"), &server.key_pem).unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca.cert_pem()).unwrap();
    let client_auth = if mtls {
        format!(
            "[server.tls.client_auth]\nca = \"{}\"\nallowed_subjects = [\"{KMS_CN}\"]\n",
            dir.path().join("ca.pem").display()
        )
    } else {
        String::new()
    };
    let toml = format!(
        r#"
[server]
listen = ["127.0.0.1:0"]
ping_listen = "127.0.0.1:0"
shutdown_grace = "5s"
[server.tls]
cert = "{cert}"
key = "{key}"
{client_auth}
[limits]
backend_timeout = "200ms"
[[tenant]]
name = "t"
path_prefix = "/p"
keys = ["*"]
[[tenant.credential]]
access_key_id = "{AKID}"
secret_access_key = "{SECRET}"
[backend]
type = "soft"
path = "unused"
"#,
        cert = dir.path().join("server.pem").display(),
        key = dir.path().join("server.key").display(),
    );
    let config = Config::from_toml(&toml).unwrap();
    let env = std::collections::HashMap::<String, String>::new();
    let proxy = Proxy::with_key_manager(&config, &env, km).await.unwrap();
    let server = Server::bind(&config.server, proxy.tls, proxy.app)
        .await
        .unwrap();
    let addr = server.api_addrs().unwrap()[0];
    let ping = server.ping_addr().unwrap().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async {
        let _ = rx.await;
    }));
    Running {
        addr,
        ping,
        ca,
        stop: Some(tx),
        task,
        _dir: dir,
    }
}

fn soft() -> Arc<dyn KeyManager> {
    let key = KeyId::new("key-1").unwrap();
    Arc::new(SoftKeyManager::ephemeral([(key, Usage::ENCRYPT_DECRYPT, KeyState::Enabled)]).unwrap())
}

struct ClientOptions<'a> {
    version: &'static rustls::SupportedProtocolVersion,
    alpn: &'a [&'a [u8]],
    identity: Option<&'a Issued>,
}

fn client_config(ca_pem: &str, options: &ClientOptions<'_>) -> ClientConfig {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[options.version])
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match options.identity {
        None => builder.with_no_client_auth(),
        Some(id) => {
            let certs = CertificateDer::pem_slice_iter(id.cert_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_slice(id.key_pem.as_bytes()).unwrap();
            builder.with_client_auth_cert(certs, key).unwrap()
        }
    };
    config.alpn_protocols = options.alpn.iter().map(|p| p.to_vec()).collect();
    config
}

/// What one connection negotiated, and the answers to the requests sent on it.
struct Outcome {
    version: ProtocolVersion,
    suite: CipherSuite,
    alpn: Option<Vec<u8>>,
    statuses: Vec<StatusCode>,
}

fn signed_health(addr: SocketAddr) -> Request<Full<Bytes>> {
    let mut req = Request::post(format!(
        "https://localhost:{}/p/kms/xks/v1/health",
        addr.port()
    ))
    .header("host", format!("localhost:{}", addr.port()))
    .body(Bytes::from_static(HEALTH_BODY.as_bytes()))
    .unwrap();
    let signer = Signer::new(&Credential::from_config(AKID, SECRET).unwrap(), "eu-west-1").unwrap();
    signer.sign_request(&mut req, SystemTime::now()).unwrap();
    req.map(Full::new)
}

/// Connects, handshakes, and sends `requests` signed health checks on one connection.
async fn call(
    running: &Running,
    options: &ClientOptions<'_>,
    requests: usize,
) -> Result<Outcome, String> {
    let connector = TlsConnector::from(Arc::new(client_config(&running.ca.cert_pem(), options)));
    let tcp = TcpStream::connect(running.addr)
        .await
        .map_err(|e| e.to_string())?;
    let tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let (_, session) = tls.get_ref();
    let version = session.protocol_version().unwrap();
    let suite = session.negotiated_cipher_suite().unwrap().suite();
    let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
    let mut statuses = Vec::new();
    let io = TokioIo::new(tls);
    if alpn.as_deref() == Some(b"h2") {
        let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(|e| format!("h2: {e}"))?;
        tokio::spawn(conn);
        for _ in 0..requests {
            let mut req = signed_health(running.addr);
            req.headers_mut().remove("host");
            let resp = sender
                .send_request(req)
                .await
                .map_err(|e| format!("h2 request: {e}"))?;
            statuses.push(resp.status());
            resp.into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?;
        }
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| format!("http1: {e}"))?;
        tokio::spawn(conn);
        for _ in 0..requests {
            let resp = sender
                .send_request(signed_health(running.addr))
                .await
                .map_err(|e| format!("http1 request: {e}"))?;
            statuses.push(resp.status());
            resp.into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(Outcome {
        version,
        suite,
        alpn,
        statuses,
    })
}

/// Checklist 1, 2, 5: TLS 1.3 and 1.2 each negotiate a spec suite; HTTP/2 is chosen
/// through ALPN, HTTP/1.1 works without it; several requests share a connection.
#[tokio::test]
async fn tls_versions_suites_alpn_and_keep_alive() {
    let running = start(false, soft()).await;
    for (version, alpn, expect_alpn) in [
        (
            &rustls::version::TLS13,
            &[&b"h2"[..], b"http/1.1"][..],
            Some(&b"h2"[..]),
        ),
        (&rustls::version::TLS13, &[][..], None),
        (
            &rustls::version::TLS12,
            &[&b"http/1.1"[..]][..],
            Some(&b"http/1.1"[..]),
        ),
        (&rustls::version::TLS12, &[&b"h2"[..]][..], Some(&b"h2"[..])),
    ] {
        let options = ClientOptions {
            version,
            alpn,
            identity: None,
        };
        let outcome = call(&running, &options, 3).await.unwrap();
        assert_eq!(outcome.version, version.version);
        assert!(SPEC_SUITES.contains(&outcome.suite), "{:?}", outcome.suite);
        assert_eq!(outcome.alpn.as_deref(), expect_alpn);
        assert_eq!(outcome.statuses, [StatusCode::OK; 3]);
    }
}

/// Checklist 36-41: with mTLS, only a certificate from the configured CA with the
/// configured subject gets through; everything else fails before any HTTP answer.
#[tokio::test]
async fn mutual_tls_pins_ca_and_subject() {
    let running = start(true, soft()).await;
    let other_ca = DevCa::new("another CA").unwrap();
    let good = running.ca.issue_client(KMS_CN, Validity::Current).unwrap();
    let cases: [(&str, Option<Issued>); 5] = [
        ("no certificate", None),
        ("self-signed", Some(self_signed_client(KMS_CN).unwrap())),
        (
            "expired",
            Some(running.ca.issue_client(KMS_CN, Validity::Expired).unwrap()),
        ),
        (
            "wrong subject",
            Some(
                running
                    .ca
                    .issue_client("cks.kms.evil.example.com", Validity::Current)
                    .unwrap(),
            ),
        ),
        (
            "other CA",
            Some(other_ca.issue_client(KMS_CN, Validity::Current).unwrap()),
        ),
    ];
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        for (what, identity) in &cases {
            let options = ClientOptions {
                version,
                alpn: &[b"http/1.1"],
                identity: identity.as_ref(),
            };
            // TLS 1.3 clients learn of the rejection on their first read, after the
            // handshake; either way no HTTP answer may arrive.
            let result = call(&running, &options, 1).await;
            assert!(
                result.is_err(),
                "{what} over {:?} was accepted",
                version.version
            );
        }
        let options = ClientOptions {
            version,
            alpn: &[b"h2"],
            identity: Some(&good),
        };
        let outcome = call(&running, &options, 2).await.unwrap();
        assert_eq!(outcome.statuses, [StatusCode::OK; 2]);
    }
}

/// A key manager that takes its time: long enough to still be running when
/// shutdown starts, well inside the deadline.
#[derive(Debug)]
struct Slow(Arc<dyn KeyManager>);

#[async_trait]
impl KeyManager for Slow {
    fn backend_name(&self) -> &'static str {
        "slow"
    }
    fn vendor(&self) -> &str {
        "test"
    }
    async fn key_metadata(&self, key: &KeyId) -> Result<MetadataResponse, KeyManagerError> {
        tokio::time::sleep(Duration::from_millis(150)).await;
        self.0.key_metadata(key).await
    }
    async fn encrypt(&self, key: &KeyId, pt: &[u8], aad: &[u8]) -> Result<Sealed, KeyManagerError> {
        self.0.encrypt(key, pt, aad).await
    }
    async fn decrypt(
        &self,
        key: &KeyId,
        sealed: SealedRef<'_>,
        aad: &[u8],
    ) -> Result<Plaintext, KeyManagerError> {
        self.0.decrypt(key, sealed, aad).await
    }
    async fn health(&self) -> Vec<NodeHealth> {
        vec![NodeHealth {
            id: "slow-1".into(),
            model: "test".into(),
            status: HealthStatus::Active,
        }]
    }
}

/// SIGTERM semantics: a request in flight when shutdown starts still gets its
/// answer, then the server stops and refuses new connections.
#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_requests() {
    let mut running = start(false, Arc::new(Slow(soft()))).await;
    let config = Arc::new(client_config(
        &running.ca.cert_pem(),
        &ClientOptions {
            version: &rustls::version::TLS13,
            alpn: &[b"http/1.1"],
            identity: None,
        },
    ));
    let tcp = TcpStream::connect(running.addr).await.unwrap();
    let tls = TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);

    let body = r#"{"requestMetadata":{"awsPrincipalArn":"arn:aws:iam::1:user/a","kmsOperation":"CreateKey","kmsRequestId":"r1"}}"#;
    let mut req = Request::post(format!(
        "https://localhost:{}/p/kms/xks/v1/keys/key-1/metadata",
        running.addr.port()
    ))
    .header("host", format!("localhost:{}", running.addr.port()))
    .body(Bytes::from_static(body.as_bytes()))
    .unwrap();
    Signer::new(&Credential::from_config(AKID, SECRET).unwrap(), "eu-west-1")
        .unwrap()
        .sign_request(&mut req, SystemTime::now())
        .unwrap();
    let in_flight = tokio::spawn(sender.send_request(req.map(Full::new)));
    // Let the request reach the slow key manager, then ask the server to stop.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let _ = running.stop.take().unwrap().send(());

    let response = in_flight.await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    tokio::time::timeout(Duration::from_secs(5), &mut running.task)
        .await
        .expect("server stops after draining")
        .unwrap();
    assert!(TcpStream::connect(running.addr).await.is_err());
}

/// Checklist 17: the separate plain-HTTP listener answers the ping path without
/// SigV4, and nothing else (the XKS API is never served without TLS there).
#[tokio::test]
async fn ping_listener_answers_only_the_ping_path() {
    let running = start(false, soft()).await;
    let tcp = TcpStream::connect(running.ping).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    for (path, status) in [
        ("/ping", StatusCode::OK),
        ("/p/kms/xks/v1/health", StatusCode::NOT_FOUND),
    ] {
        let req = Request::get(path)
            .header("host", "localhost")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = sender.send_request(req).await.unwrap();
        assert_eq!(response.status(), status, "{path}");
        response.into_body().collect().await.unwrap();
    }
}
