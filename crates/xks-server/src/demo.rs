//! The zero-setup demo: an ephemeral software key store, a throwaway CA and server
//! certificate for `localhost`, random SigV4 credentials, one tenant on loopback.
//!
//! Nothing here is persistent or fit for production: the keys live in memory, the
//! certificate is self-issued, and the credentials are printed.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use serde::Serialize;
use xks_keymanager::KeyManager;
use xks_protocol::KeyId;
use xks_soft::{KeyState, SoftKeyManager, Usage};

use crate::config::Config;
use crate::devpki::DevCa;

/// The demo's path prefix.
pub const DEMO_PREFIX: &str = "/demo";
/// The region the demo's curl command signs for (the demo accepts any region).
pub const DEMO_REGION: &str = "us-east-1";

/// Everything the demo needs to run, and what it tells the user.
pub struct Demo {
    /// The proxy configuration (TLS files in [`Demo::dir`]).
    pub config: Config,
    /// The in-memory key manager.
    pub key_manager: Arc<dyn KeyManager>,
    access_key_id: String,
    secret: String,
    ca_path: PathBuf,
    dir: tempfile::TempDir,
}

/// What the demo prints: how to reach it and which keys it has.
#[derive(Clone, Serialize)]
pub struct DemoInfo {
    /// `https://localhost:<port>`.
    pub endpoint: String,
    /// The path prefix (`XksProxyUriPath` minus `/kms/xks/v1`).
    pub path_prefix: String,
    /// `XksProxyUriPath` for KMS: `<prefix>/kms/xks/v1`.
    pub uri_path: String,
    /// SigV4 access key id.
    pub access_key_id: String,
    /// SigV4 secret (random, printed on purpose: this is a demo).
    pub secret_access_key: String,
    /// Region for signing; any is accepted.
    pub region: String,
    /// The CA certificate that signed the server certificate (PEM file).
    pub ca_certificate: PathBuf,
    /// The demo's keys.
    pub keys: Vec<DemoKey>,
    /// A ready-to-run GetHealthStatus call with curl.
    pub curl_health: String,
    /// A ready-to-run Encrypt call with curl.
    pub curl_encrypt: String,
}

/// One demo key.
#[derive(Clone, Debug, Serialize)]
pub struct DemoKey {
    /// The external key id.
    pub id: String,
    /// What it may do.
    pub usage: &'static str,
    /// ENABLED or DISABLED.
    pub status: &'static str,
}

/// Why the demo could not be prepared.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    /// Certificate generation failed.
    #[error("could not create the demo certificates")]
    Pki(#[source] crate::devpki::DevPkiError),
    /// Writing the demo files failed.
    #[error("could not write the demo files")]
    Io(#[source] std::io::Error),
    /// The key store could not be created.
    #[error("could not create the demo key store")]
    Keys(#[source] xks_soft::Error),
    /// The OS random number generator failed.
    #[error("the OS random number generator failed")]
    Random,
    /// The generated configuration did not parse (a bug).
    #[error("the generated configuration is invalid: {0}")]
    Config(String),
}

const KEYS: [(&str, Usage, KeyState, &str, &str); 5] = [
    (
        "demo-key-1",
        Usage::ENCRYPT_DECRYPT,
        KeyState::Enabled,
        "ENCRYPT, DECRYPT",
        "ENABLED",
    ),
    (
        "demo-encrypt-only",
        Usage::ENCRYPT_ONLY,
        KeyState::Enabled,
        "ENCRYPT",
        "ENABLED",
    ),
    (
        "demo-decrypt-only",
        Usage::DECRYPT_ONLY,
        KeyState::Enabled,
        "DECRYPT",
        "ENABLED",
    ),
    (
        "demo-no-usage",
        Usage::NONE,
        KeyState::Enabled,
        "none",
        "ENABLED",
    ),
    (
        "demo-disabled",
        Usage::ENCRYPT_DECRYPT,
        KeyState::Disabled,
        "ENCRYPT, DECRYPT",
        "DISABLED",
    ),
];

// === impl Demo ===

impl Demo {
    /// Prepares a demo listening on `listen` (a loopback address).
    pub fn prepare(listen: SocketAddr) -> Result<Self, DemoError> {
        let dir = tempfile::Builder::new()
            .prefix("xks-demo-")
            .tempdir()
            .map_err(DemoError::Io)?;
        let ca = DevCa::new("xks-toolkit demo CA").map_err(DemoError::Pki)?;
        let ip = listen.ip().to_string();
        let server = ca
            .issue_server(&["localhost", ip.as_str()])
            .map_err(DemoError::Pki)?;
        let ca_path = dir.path().join("ca.pem");
        write_private(&ca_path, &ca.cert_pem())?;
        write_private(&dir.path().join("server.pem"), &server.cert_pem)?;
        write_private(&dir.path().join("server.key"), &server.key_pem)?;

        let access_key_id = random_access_key_id()?;
        let secret = random_secret()?;
        let key_list = KEYS
            .iter()
            .map(|(id, ..)| format!("{id:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        let toml = format!(
            r#"
[server]
listen = ["{listen}"]
[server.tls]
cert = "server.pem"
key = "server.key"

[[tenant]]
name = "demo"
path_prefix = "{DEMO_PREFIX}"
keys = [{key_list}]
[[tenant.credential]]
access_key_id = "{access_key_id}"
secret_access_key = "{secret}"

[backend]
type = "soft"
path = "unused-in-demo.xks"
"#
        );
        let mut config = Config::from_toml(&toml).map_err(|e| DemoError::Config(e.to_string()))?;
        config.resolve_paths(dir.path());

        let keys = KEYS.iter().map(|(id, usage, state, ..)| {
            (
                KeyId::new(id).map_err(|e| DemoError::Config(e.to_string())),
                *usage,
                *state,
            )
        });
        let mut checked = Vec::with_capacity(KEYS.len());
        for (id, usage, state) in keys {
            checked.push((id?, usage, state));
        }
        let km = SoftKeyManager::ephemeral(checked)
            .map_err(DemoError::Keys)?
            .with_vendor("xks-toolkit demo (ephemeral software keys)");

        Ok(Self {
            config,
            key_manager: Arc::new(km),
            access_key_id,
            secret,
            ca_path,
            dir,
        })
    }

    /// What to tell the user, once the listener is bound to `addr` (whose port may
    /// differ from the configured one when that was 0).
    pub fn info(&self, addr: SocketAddr) -> DemoInfo {
        let endpoint = format!("https://localhost:{}", addr.port());
        let uri_path = format!("{DEMO_PREFIX}/kms/xks/v1");
        let curl = |path: &str, body: &str| {
            format!(
                "curl -s --cacert {ca} --aws-sigv4 \"aws:amz:{DEMO_REGION}:kms-xks-proxy\" --user \"{akid}:{secret}\" -H \"Content-Type: application/json\" -d '{body}' {endpoint}{uri_path}{path}",
                ca = self.ca_path.display(),
                akid = self.access_key_id,
                secret = self.secret,
            )
        };
        DemoInfo {
            curl_health: curl(
                "/health",
                r#"{"requestMetadata":{"kmsRequestId":"demo-1","kmsOperation":"KmsHealthCheck"}}"#,
            ),
            curl_encrypt: curl(
                "/keys/demo-key-1/encrypt",
                r#"{"requestMetadata":{"awsPrincipalArn":"arn:aws:iam::111122223333:user/demo","kmsKeyArn":"arn:aws:kms:us-east-1:111122223333:key/demo","kmsOperation":"Encrypt","kmsRequestId":"demo-2"},"plaintext":"SGVsbG8gV29ybGQh","encryptionAlgorithm":"AES_GCM","ciphertextDataIntegrityValueAlgorithm":"SHA_256"}"#,
            ),
            endpoint,
            path_prefix: DEMO_PREFIX.to_owned(),
            uri_path,
            access_key_id: self.access_key_id.clone(),
            secret_access_key: self.secret.clone(),
            region: DEMO_REGION.to_owned(),
            ca_certificate: self.ca_path.clone(),
            keys: KEYS
                .iter()
                .map(|(id, _, _, usage, status)| DemoKey {
                    id: (*id).to_owned(),
                    usage,
                    status,
                })
                .collect(),
        }
    }

    /// The directory holding the demo's certificates; removed when the demo is dropped.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl fmt::Debug for Demo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Demo")
            .field("dir", &self.dir.path())
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for DemoInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DemoInfo")
            .field("endpoint", &self.endpoint)
            .field("uri_path", &self.uri_path)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

fn write_private(path: &Path, contents: &str) -> Result<(), DemoError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(DemoError::Io)?;
    file.write_all(contents.as_bytes()).map_err(DemoError::Io)
}

/// 26 characters of `A-Z2-7`, KMS's access key id alphabet.
fn random_access_key_id() -> Result<String, DemoError> {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut bytes = [0u8; 26];
    getrandom::fill(&mut bytes).map_err(|_| DemoError::Random)?;
    Ok(bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(b & 31)]))
        .collect())
}

/// 256 random bits, Base64: 44 characters, as the spec suggests.
fn random_secret() -> Result<String, DemoError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|_| DemoError::Random)?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}
