//! The backend's configuration: the `[backend]` section with `type = "vault"`.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use http::Uri;
use serde::Deserialize;
use xks_protocol::KeyId;

use crate::error::{ConfigError, Error};
use crate::names::{default_transit_name, is_name_prefix, is_transit_key_name};

/// The most node addresses: GetHealthStatus reports one `ekmFleetDetails` entry
/// per node, and the spec allows at most 10.
pub const MAX_ADDRESSES: usize = 10;

/// The largest `max_batch`: 150 items of up to five JSON strings each stay
/// well inside the 1000 strings a Vault listener accepts by default.
pub const MAX_BATCH: usize = 150;

/// Configuration of the Vault / OpenBao Transit backend.
///
/// It deserializes from the fields of a TOML `[backend]` section (the proxy's
/// backend enum consumes `type = "vault"`); unknown fields are refused. Only
/// `addresses` and `auth` are required:
///
/// ```toml
/// [backend]
/// type = "vault"
/// addresses = ["https://bao-1.example:8200", "https://bao-2.example:8200"]
/// mount = "transit"                 # Transit mount path
/// namespace = "team-a"              # X-Vault-Namespace (Vault Enterprise, OpenBao)
/// request_timeout = "150ms"         # per XKS call, failover included
/// canary_key = "xks-health-canary"  # Transit key used by the deep health check
/// key_name_prefix = ""              # default mapping: prefix + external key id
/// allow_unlisted_keys = true        # serve ids without a [[backend.keys]] entry
/// coalesce = true                   # batch concurrent requests per key
///
/// [backend.tls]
/// ca_file = "/etc/xks/bao-ca.pem"
/// client_cert_file = "/etc/xks/bao-client.pem"   # optional, with client_key_file
/// client_key_file = "/etc/xks/bao-client.key"
///
/// [backend.auth]
/// method = "approle"                # or "token", with token = { env = "VAULT_TOKEN" }
/// role_id = { file = "/run/secrets/xks-role-id" }
/// secret_id = { env = "XKS_VAULT_SECRET_ID" }
///
/// [[backend.keys]]
/// id = "payments-2024"              # external key id, as KMS sends it
/// transit_key = "payments"          # Transit key name; default: the mapping
/// usage = "encrypt-decrypt"         # or "encrypt-only", "decrypt-only", "none"
/// disabled = false                  # report DISABLED and refuse crypto
/// ```
///
/// Build one in code with [`VaultConfig::new`] and set the public fields.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct VaultConfig {
    /// Base URLs of the Vault / OpenBao nodes (`http://` or `https://`, with an
    /// optional path prefix), 1 to [`MAX_ADDRESSES`]. Requests go to the active
    /// node and fail over to the others.
    pub addresses: Vec<String>,
    /// TLS to the nodes (for `https://` addresses).
    #[serde(default)]
    pub tls: TlsConfig,
    /// How the proxy authenticates to Vault.
    pub auth: AuthConfig,
    /// The namespace sent as `X-Vault-Namespace`, if any.
    #[serde(default)]
    pub namespace: Option<String>,
    /// The path the Transit secrets engine is mounted at (default `transit`).
    #[serde(default = "default_mount")]
    pub mount: String,
    /// The time budget of one key manager call, failover and retries included
    /// (default 150 ms, well inside KMS's 250 ms); past it the call fails with
    /// [`ErrorKind::Timeout`](xks_keymanager::ErrorKind::Timeout).
    #[serde(default = "default_request_timeout", with = "humantime_serde")]
    pub request_timeout: Duration,
    /// The time budget of administrative calls: login, token renewal, node
    /// health, the health canary and startup checks (default 2 s).
    #[serde(default = "default_admin_timeout", with = "humantime_serde")]
    pub admin_timeout: Duration,
    /// How long a key's description (versions, state) is cached (default 2 s).
    /// Rotations and state changes made elsewhere are seen within this time.
    #[serde(default = "default_key_cache_ttl", with = "humantime_serde")]
    pub key_cache_ttl: Duration,
    /// How often the nodes' health endpoints are polled to find the active
    /// node (default 5 s; `0s` turns polling off).
    #[serde(default = "default_node_check_interval", with = "humantime_serde")]
    pub node_check_interval: Duration,
    /// The Transit key of the deep health check (default `xks-health-canary`).
    /// It is never reachable through an external key id.
    #[serde(default = "default_canary_key")]
    pub canary_key: String,
    /// Prepended to external key ids by the default key mapping (default empty).
    #[serde(default)]
    pub key_name_prefix: String,
    /// Whether external key ids without a [`keys`](Self::keys) entry are served,
    /// through the default key mapping (default `true`). With `false`, only
    /// listed keys exist for KMS.
    #[serde(default = "default_true")]
    pub allow_unlisted_keys: bool,
    /// Explicit key entries: mapping, usage and state per external key id.
    #[serde(default)]
    pub keys: Vec<KeyConfig>,
    /// Whether concurrent requests for the same key and operation are coalesced
    /// into Transit batch calls (default `true`; see the crate documentation).
    #[serde(default = "default_true")]
    pub coalesce: bool,
    /// The most items in one coalesced batch: 1 to [`MAX_BATCH`] (default
    /// 128). Vault's listeners refuse JSON bodies with more than 1000 strings
    /// by default (`max_request_json_strings`), and each item takes up to
    /// five.
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
    /// The `ekmVendor` reported by GetHealthStatus (default `OpenBao`).
    #[serde(default = "default_vendor")]
    pub vendor: String,
}

/// TLS to the Vault nodes.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TlsConfig {
    /// PEM file of the CA certificates that sign the nodes' certificates.
    /// Required for `https://` addresses: no system trust store is used.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM certificate chain presented to the nodes (with `client_key_file`).
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key of `client_cert_file`.
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
    /// The name checked against the nodes' certificates instead of each
    /// address's host name.
    #[serde(default)]
    pub server_name: Option<String>,
}

/// How the proxy authenticates to Vault.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "method", rename_all = "lowercase", deny_unknown_fields)]
#[non_exhaustive]
pub enum AuthConfig {
    /// A Vault token, renewed before it expires when it is renewable.
    Token {
        /// Where the token is.
        token: SecretSource,
    },
    /// AppRole login; the token it gives is renewed, and the proxy logs in
    /// again when it can no longer be renewed.
    #[serde(rename = "approle")]
    AppRole {
        /// Where the AppRole auth method is mounted (default `approle`).
        #[serde(default = "default_approle_mount")]
        mount: String,
        /// Where the role id is.
        role_id: SecretSource,
        /// Where the secret id is. A file is read again at every login, so a
        /// secret id rotated by an orchestrator is picked up.
        secret_id: SecretSource,
    },
}

/// Where a secret is: `{ env = "NAME" }` or `{ file = "/path" }`. Secrets are
/// never written in the configuration file itself.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
#[non_exhaustive]
pub enum SecretSource {
    /// An environment variable.
    Env(String),
    /// A file; surrounding white space is ignored.
    File(PathBuf),
}

/// One `[[backend.keys]]` entry.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct KeyConfig {
    /// The external key id KMS sends.
    pub id: KeyId,
    /// The Transit key name; default: the default mapping of `id` (see
    /// [`default_transit_name`](crate::default_transit_name)).
    #[serde(default)]
    pub transit_key: Option<String>,
    /// What the proxy lets KMS do with the key (default `encrypt-decrypt`).
    #[serde(default)]
    pub usage: KeyUsagePolicy,
    /// Reports the key `DISABLED` and refuses encryption and decryption with
    /// [`ErrorKind::KeyDisabled`](xks_keymanager::ErrorKind::KeyDisabled)
    /// (default `false`).
    #[serde(default)]
    pub disabled: bool,
}

/// The operations the proxy allows on a key: a proxy-side policy on top of
/// Transit, whose `aes256-gcm96` keys always allow both.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum KeyUsagePolicy {
    /// Encrypt and decrypt.
    #[default]
    EncryptDecrypt,
    /// Encrypt only.
    EncryptOnly,
    /// Decrypt only.
    DecryptOnly,
    /// Neither.
    None,
}

fn default_mount() -> String {
    "transit".to_owned()
}

fn default_request_timeout() -> Duration {
    Duration::from_millis(150)
}

fn default_admin_timeout() -> Duration {
    Duration::from_secs(2)
}

fn default_key_cache_ttl() -> Duration {
    Duration::from_secs(2)
}

fn default_node_check_interval() -> Duration {
    Duration::from_secs(5)
}

fn default_canary_key() -> String {
    "xks-health-canary".to_owned()
}

fn default_true() -> bool {
    true
}

fn default_max_batch() -> usize {
    128
}

fn default_vendor() -> String {
    "OpenBao".to_owned()
}

fn default_approle_mount() -> String {
    "approle".to_owned()
}

// === impl VaultConfig ===

impl VaultConfig {
    /// A configuration with the given addresses and authentication, and every
    /// other field at its default.
    pub fn new(addresses: impl IntoIterator<Item = impl Into<String>>, auth: AuthConfig) -> Self {
        Self {
            addresses: addresses.into_iter().map(Into::into).collect(),
            tls: TlsConfig::default(),
            auth,
            namespace: None,
            mount: default_mount(),
            request_timeout: default_request_timeout(),
            admin_timeout: default_admin_timeout(),
            key_cache_ttl: default_key_cache_ttl(),
            node_check_interval: default_node_check_interval(),
            canary_key: default_canary_key(),
            key_name_prefix: String::new(),
            allow_unlisted_keys: true,
            keys: Vec::new(),
            coalesce: true,
            max_batch: default_max_batch(),
            vendor: default_vendor(),
        }
    }

    /// Checks the configuration without touching the network or the file
    /// system; [`VaultKeyManager::connect`](crate::VaultKeyManager::connect)
    /// calls it first.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the first problem found.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |what: String| Err(Error::Config(ConfigError::new(what)));
        if self.addresses.is_empty() || self.addresses.len() > MAX_ADDRESSES {
            return bad(format!(
                "`addresses` must list 1 to {MAX_ADDRESSES} node addresses"
            ));
        }
        let mut seen = HashSet::new();
        for address in &self.addresses {
            let https = check_address(address)?;
            if !seen.insert(address.trim_end_matches('/')) {
                return bad(format!("the address `{address}` is listed twice"));
            }
            if https && self.tls.ca_file.is_none() {
                return bad(format!(
                    "the https address `{address}` needs `tls.ca_file`, the CA that signs the nodes' certificates"
                ));
            }
        }
        if self.tls.client_cert_file.is_some() != self.tls.client_key_file.is_some() {
            return bad("`tls.client_cert_file` and `tls.client_key_file` go together".to_owned());
        }
        if !is_mount_path(&self.mount) {
            return bad(format!(
                "`mount` = `{}` is not a mount path (segments of A-Z a-z 0-9 _ - . separated by `/`)",
                self.mount
            ));
        }
        if let AuthConfig::AppRole { mount, .. } = &self.auth
            && !is_mount_path(mount)
        {
            return bad(format!("`auth.mount` = `{mount}` is not a mount path"));
        }
        if let Some(ns) = &self.namespace
            && !ns.split('/').all(is_transit_key_name)
        {
            return bad(format!("`namespace` = `{ns}` is not a namespace path"));
        }
        let timeouts = [
            ("request_timeout", self.request_timeout),
            ("admin_timeout", self.admin_timeout),
        ];
        for (name, value) in timeouts {
            if value < Duration::from_millis(1) || value > Duration::from_secs(60) {
                return bad(format!("`{name}` must be between 1ms and 60s"));
            }
        }
        if !is_transit_key_name(&self.canary_key) {
            return bad(format!(
                "`canary_key` = `{}` is not a Transit key name",
                self.canary_key
            ));
        }
        if !is_name_prefix(&self.key_name_prefix) {
            return bad(format!(
                "`key_name_prefix` = `{}` cannot start Transit key names",
                self.key_name_prefix
            ));
        }
        if !(1..=MAX_BATCH).contains(&self.max_batch) {
            return bad(format!("`max_batch` must be between 1 and {MAX_BATCH}"));
        }
        let mut ids = HashSet::new();
        for key in &self.keys {
            if !ids.insert(key.id.as_str()) {
                return bad(format!("the key `{}` is listed twice", key.id));
            }
            let name = self.transit_name_of(key);
            if !is_transit_key_name(&name) {
                return bad(format!(
                    "the key `{}` maps to `{name}`, which is not a Transit key name",
                    key.id
                ));
            }
            if name == self.canary_key {
                return bad(format!(
                    "the key `{}` maps to the health check canary key",
                    key.id
                ));
            }
        }
        Ok(())
    }

    /// The Transit key name of a listed key.
    pub(crate) fn transit_name_of(&self, key: &KeyConfig) -> String {
        match &key.transit_key {
            Some(name) => name.clone(),
            None => default_transit_name(&self.key_name_prefix, &key.id),
        }
    }
}

/// Checks one address; returns whether it is https.
fn check_address(address: &str) -> Result<bool, Error> {
    let bad = |why: &str| {
        Err(Error::Config(ConfigError::new(format!(
            "the address `{address}` {why}"
        ))))
    };
    let Ok(uri) = address.parse::<Uri>() else {
        return bad("is not a URL");
    };
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return bad("must start with http:// or https://"),
    };
    if uri.host().is_none_or(str::is_empty) {
        return bad("has no host");
    }
    if uri.query().is_some() || address.contains('#') {
        return bad("must not have a query or fragment");
    }
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return bad("must not carry user information");
    }
    Ok(https)
}

/// Segments of `A-Z a-z 0-9 _ - .` separated by single `/`, without `.` or
/// `..` segments.
fn is_mount_path(path: &str) -> bool {
    !path.is_empty()
        && path.split('/').all(|segment| {
            !segment.is_empty()
                && segment != "."
                && segment != ".."
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        })
}

// === impl KeyConfig ===

impl KeyConfig {
    /// An entry for external key `id` with the default mapping, both usages
    /// and enabled.
    pub fn new(id: KeyId) -> Self {
        Self {
            id,
            transit_key: None,
            usage: KeyUsagePolicy::default(),
            disabled: false,
        }
    }
}

// === impl KeyUsagePolicy ===

impl KeyUsagePolicy {
    /// Whether encryption is allowed.
    pub const fn encrypt(self) -> bool {
        matches!(self, Self::EncryptDecrypt | Self::EncryptOnly)
    }

    /// Whether decryption is allowed.
    pub const fn decrypt(self) -> bool {
        matches!(self, Self::EncryptDecrypt | Self::DecryptOnly)
    }
}

#[cfg(test)]
mod tests;
