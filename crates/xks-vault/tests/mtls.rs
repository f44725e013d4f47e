//! Client certificates (`[backend.tls] client_cert_file`, `client_key_file`)
//! against a real OpenBao server on 127.0.0.1 whose API listener requires and
//! verifies them (`tls_require_and_verify_client_cert`, `tls_client_ca_file`).
//!
//! The server is a dev server (in-memory, unsealed) with a second listener
//! from a configuration file; the harness uses the plain dev listener and the
//! key manager the mutual-TLS one. Every certificate is made here: a CA for
//! the server certificate, the client CA the listener trusts, and a rogue CA
//! with the same name as the client CA but another key.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs;
use std::future::Future;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use tempfile::TempDir;
use xks_keymanager::KeyManager;
use xks_protocol::{HealthStatus, KeyId};
use xks_vault::testing::DevServer;
use xks_vault::{AuthConfig, DisplayChain, Error, SecretSource, VaultConfig, VaultKeyManager};

const TOKEN_VAR: &str = "XKS_TEST_VAULT_TOKEN";

/// The key manager's budget for login and the other setup calls.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(2);

/// The longest a `connect` may take before the test calls it a hang: the
/// admin budget and slack for a loaded machine.
const BOUND: Duration = Duration::from_secs(10);

/// The name the client CA and the rogue CA share.
const CLIENT_CA_NAME: &str = "xks-vault test client CA";

/// The certificates and keys of the test, as PEM files in a temporary
/// directory.
struct Pki {
    dir: TempDir,
}

/// A certificate and key pair, as PEM files.
struct Identity {
    cert: PathBuf,
    key: PathBuf,
}

impl Pki {
    fn new() -> Self {
        let pki = Self {
            dir: tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}")),
        };
        let server_ca = ca("xks-vault test server CA");
        pki.write("server-ca.pem", &server_ca.pem());
        let (cert, key) = leaf(&server_ca, "127.0.0.1", ExtendedKeyUsagePurpose::ServerAuth);
        pki.write("server.pem", &cert);
        pki.write("server.key", &key);
        let client_ca = ca(CLIENT_CA_NAME);
        pki.write("client-ca.pem", &client_ca.pem());
        let (cert, key) = leaf(&client_ca, "xks-proxy", ExtendedKeyUsagePurpose::ClientAuth);
        pki.write("client.pem", &cert);
        pki.write("client.key", &key);
        let rogue_ca = ca(CLIENT_CA_NAME);
        let (cert, key) = leaf(&rogue_ca, "xks-proxy", ExtendedKeyUsagePurpose::ClientAuth);
        pki.write("rogue.pem", &cert);
        pki.write("rogue.key", &key);
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, pem: &str) {
        let path = self.path(name);
        fs::write(&path, pem).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }

    fn identity(&self, name: &str) -> Identity {
        Identity {
            cert: self.path(&format!("{name}.pem")),
            key: self.path(&format!("{name}.key")),
        }
    }

    /// The body of the listener block: TLS with the server certificate, and
    /// client certificates of the client CA required.
    fn listener_settings(&self) -> String {
        let quoted = |name: &str| format!("{:?}", self.path(name).display().to_string());
        format!(
            "  tls_cert_file = {}\n  tls_key_file = {}\n  tls_client_ca_file = {}\n  tls_require_and_verify_client_cert = true",
            quoted("server.pem"),
            quoted("server.key"),
            quoted("client-ca.pem"),
        )
    }
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap_or_else(|e| panic!("{e}"));
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
    CertifiedIssuer::self_signed(params, key).unwrap_or_else(|e| panic!("{e}"))
}

/// A certificate for `name` (an IP address becomes an IP SAN) and its key, in
/// PEM.
fn leaf(
    issuer: &CertifiedIssuer<'_, KeyPair>,
    name: &str,
    usage: ExtendedKeyUsagePurpose,
) -> (String, String) {
    let mut params =
        CertificateParams::new(vec![name.to_owned()]).unwrap_or_else(|e| panic!("{e}"));
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
    let cert = params
        .signed_by(&key, issuer)
        .unwrap_or_else(|e| panic!("{e}"));
    (cert.pem(), key.serialize_pem())
}

fn env(token: &str) -> impl Fn(&str) -> Option<OsString> + use<> {
    let vars = HashMap::from([(TOKEN_VAR.to_owned(), OsString::from(token))]);
    move |name| vars.get(name).cloned()
}

fn config(address: &str, ca_file: &Path, client: Option<&Identity>) -> VaultConfig {
    let mut config = VaultConfig::new(
        [address],
        AuthConfig::Token {
            token: SecretSource::Env(TOKEN_VAR.to_owned()),
        },
    );
    config.tls.ca_file = Some(ca_file.to_owned());
    config.tls.client_cert_file = client.map(|c| c.cert.clone());
    config.tls.client_key_file = client.map(|c| c.key.clone());
    config.request_timeout = Duration::from_secs(1);
    config.admin_timeout = ADMIN_TIMEOUT;
    config
}

/// Runs `connect` within [`BOUND`]; panics on a hang.
async fn bounded<T>(what: &str, connect: impl Future<Output = T>) -> (T, Duration) {
    let started = Instant::now();
    match tokio::time::timeout(BOUND, connect).await {
        Ok(result) => (result, started.elapsed()),
        Err(_) => panic!("{what}: connect hung for {BOUND:?}"),
    }
}

/// Checks that `connect` failed because the node dropped the TLS session
/// after the handshake: the login call got no answer (a transport failure,
/// neither a timeout nor an HTTP status), yet the connection was made, so the
/// node's certificate was accepted.
///
/// With TLS 1.3 the client's handshake is over before the server checks the
/// client certificate; its alert comes with the first read. The HTTP/2 client
/// often reports the dead connection only as "channel closed" or "canceled",
/// and a reset can beat the alert, so the alert's name is not asserted.
fn assert_refused(what: &str, result: Result<VaultKeyManager, Error>, address: &str) {
    let Err(err) = result else {
        panic!("{what}: connect succeeded");
    };
    let chain = DisplayChain(&err).to_string();
    let Error::Auth(call) = &err else {
        panic!("{what}: expected Error::Auth, got {chain} ({err:?})");
    };
    assert!(
        call.is_transport() && !call.is_connect() && !call.is_timeout() && call.status().is_none(),
        "{what}: expected a connection dropped after the handshake, got {chain}"
    );
    assert_eq!(call.node(), Some(address), "{what}: {chain}");
    assert_eq!(call.path(), "auth/token/lookup-self", "{what}: {chain}");
    let expected = format!(
        "vault authentication failed: GET /v1/auth/token/lookup-self on {address}: the connection failed: "
    );
    assert!(chain.starts_with(&expected), "{what}: {chain}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_that_requires_client_certificates() {
    let pki = Pki::new();
    let settings = pki.listener_settings();
    let server = tokio::task::spawn_blocking(move || DevServer::start_with_listener(&settings))
        .await
        .unwrap_or_else(|e| panic!("starting OpenBao: {e}"));
    server.create_key("mtls-key");
    let port = server
        .listener_port()
        .unwrap_or_else(|| panic!("no second listener"));
    let address = format!("https://127.0.0.1:{port}");
    let server_ca = pki.path("server-ca.pem");

    // (1) A certificate of the client CA: connect, encrypt, decrypt.
    let trusted = config(&address, &server_ca, Some(&pki.identity("client")));
    let (result, _) = bounded(
        "trusted client certificate",
        VaultKeyManager::connect(&trusted, env(server.root_token())),
    )
    .await;
    let km = result.unwrap_or_else(|e| {
        panic!(
            "connect with a trusted client certificate: {}",
            DisplayChain(&e)
        )
    });
    let key = KeyId::new("mtls-key").unwrap_or_else(|e| panic!("{e}"));
    let sealed = km
        .encrypt(&key, b"over mutual tls", b"aad")
        .await
        .unwrap_or_else(|e| panic!("encrypt: {}", DisplayChain(&e)));
    let opened = km
        .decrypt(&key, sealed.as_ref(), b"aad")
        .await
        .unwrap_or_else(|e| panic!("decrypt: {}", DisplayChain(&e)));
    assert_eq!(opened.as_bytes(), b"over mutual tls");
    let health = km.health().await;
    assert!(
        health.iter().all(|n| n.status == HealthStatus::Active),
        "{health:?}"
    );
    drop(km);

    // (2) No client certificate: the server refuses the session.
    let anonymous = config(&address, &server_ca, None);
    let (result, took) = bounded(
        "no client certificate",
        VaultKeyManager::connect(&anonymous, env(server.root_token())),
    )
    .await;
    assert_refused("no client certificate", result, &address);
    assert!(took < ADMIN_TIMEOUT, "no client certificate: took {took:?}");

    // (3) A certificate of another CA with the client CA's name: refused too.
    let rogue = config(&address, &server_ca, Some(&pki.identity("rogue")));
    let (result, took) = bounded(
        "client certificate of another CA",
        VaultKeyManager::connect(&rogue, env(server.root_token())),
    )
    .await;
    assert_refused("client certificate of another CA", result, &address);
    assert!(
        took < ADMIN_TIMEOUT,
        "client certificate of another CA: took {took:?}"
    );

    // (4) A client key that is not the certificate's, and a missing
    // certificate: refused before any connection.
    let mut mismatched = config(&address, &server_ca, Some(&pki.identity("client")));
    mismatched.tls.client_key_file = Some(pki.path("rogue.key"));
    let (result, _) = bounded(
        "mismatched client key",
        VaultKeyManager::connect(&mismatched, env(server.root_token())),
    )
    .await;
    match result {
        Err(Error::Tls(e)) => assert_eq!(e.to_string(), "unusable client certificate or key"),
        Err(e) => panic!("mismatched client key: {}", DisplayChain(&e)),
        Ok(_) => panic!("mismatched client key: connect succeeded"),
    }
    let mut missing = config(&address, &server_ca, Some(&pki.identity("client")));
    missing.tls.client_cert_file = Some(pki.path("missing.pem"));
    let (result, _) = bounded(
        "missing client certificate file",
        VaultKeyManager::connect(&missing, env(server.root_token())),
    )
    .await;
    match result {
        Err(Error::Tls(e)) => assert!(
            e.to_string()
                .starts_with("cannot read the client certificate `"),
            "{e}"
        ),
        Err(e) => panic!("missing client certificate file: {}", DisplayChain(&e)),
        Ok(_) => panic!("missing client certificate file: connect succeeded"),
    }

    // The server is killed (by PID) and reaped when dropped.
    drop(server);
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "OpenBao still listens after it was dropped"
    );
}
