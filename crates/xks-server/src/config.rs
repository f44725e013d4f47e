//! The proxy's TOML configuration, and its validation before any port is bound.
//!
//! See `docs/configuration.md` for the reference with a full example.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The whole configuration file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Listeners, TLS and connection handling.
    pub server: ServerConfig,
    /// Request size limits and the key manager deadline.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// What GetHealthStatus reports, and how often the deep check runs.
    #[serde(default)]
    pub health: HealthConfig,
    /// Request log format.
    #[serde(default)]
    pub logging: LoggingConfig,
    /// One tenant per URI path prefix (an external key store in KMS).
    #[serde(rename = "tenant")]
    pub tenants: Vec<TenantConfig>,
    /// The key manager.
    pub backend: BackendConfig,
}

/// Listeners, TLS and connection handling.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Addresses of the XKS API listeners (HTTPS).
    pub listen: Vec<SocketAddr>,
    /// Server certificate, key, and optional client authentication. Required unless
    /// `insecure_plain_http` is set.
    pub tls: Option<TlsConfig>,
    /// Serve the XKS API over plain HTTP. For local testing only: KMS only talks
    /// HTTPS, and SigV4 secrets and plaintext would cross the network in the clear.
    #[serde(default)]
    pub insecure_plain_http: bool,
    /// The unauthenticated load-balancer health check path, answered on the API
    /// listeners for GET (default `/ping`). Must not be an XKS API path.
    #[serde(default = "default_ping_path")]
    pub ping_path: String,
    /// An optional separate plain-HTTP listener for load-balancer checks (`GET <ping_path>`).
    pub ping_listen: Option<SocketAddr>,
    /// How long shutdown waits for in-flight requests (default 10 s).
    #[serde(default = "default_shutdown_grace", with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// Time allowed for a TLS handshake and for reading request headers (default 10 s).
    #[serde(default = "default_handshake_timeout", with = "humantime_serde")]
    pub handshake_timeout: Duration,
    /// Keep-alive connections idle longer than this are closed (default 5 min).
    #[serde(default = "default_idle_timeout", with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Connections accepted at once; more wait in the kernel's backlog (default 20,000).
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Threads serving requests (the async runtime's workers). Default: one per
    /// CPU the process may use. Fewer leave cores to other processes on the host.
    pub worker_threads: Option<usize>,
}

/// The server certificate and optional mutual TLS.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the server certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM file with the server's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// Require client certificates (mTLS).
    pub client_auth: Option<ClientAuthConfig>,
}

/// Mutual TLS: which CA and which subject names a client certificate must have.
///
/// **Conformance**: the customer configures both the root CA and the subject name,
/// and any other certificate aborts the handshake (fact sheet §8.7). KMS presents
/// `cks.kms.<region>.amazonaws.com`, issued under Amazon Trust Services.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientAuthConfig {
    /// PEM file with the CA certificates client certificates must chain to.
    pub ca: PathBuf,
    /// Accepted client subject names, matched exactly against the certificate's
    /// subject common name or a DNS subject alternative name.
    pub allowed_subjects: Vec<String>,
}

/// Implementation limits (above the spec's minimums) and the key manager deadline.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest plaintext accepted by Encrypt, in bytes (at least 4300).
    #[serde(default = "default_max_plaintext")]
    pub max_plaintext_bytes: usize,
    /// Largest ciphertext accepted by Decrypt, in bytes (at least 4300).
    #[serde(default = "default_max_ciphertext")]
    pub max_ciphertext_bytes: usize,
    /// Largest additional authenticated data, in bytes (8192 to 65,535).
    #[serde(default = "default_max_aad")]
    pub max_aad_bytes: usize,
    /// Deadline for one key manager call; KMS gives the whole request 250 ms
    /// (default 200 ms, at most 240 ms).
    #[serde(default = "default_backend_timeout", with = "humantime_serde")]
    pub backend_timeout: Duration,
}

/// GetHealthStatus: the reported identity and the deep-check schedule.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// Number of proxy instances serving this key store (`xksProxyFleetSize`).
    #[serde(default = "default_fleet_size")]
    pub fleet_size: u32,
    /// `xksProxyVendor`.
    #[serde(default = "default_proxy_vendor")]
    pub proxy_vendor: String,
    /// `xksProxyModel`.
    #[serde(default = "default_proxy_model")]
    pub proxy_model: String,
    /// Interval of the background deep check (default 15 s). A cached result is
    /// never served older than 60 s.
    #[serde(default = "default_health_interval", with = "humantime_serde")]
    pub interval: Duration,
    /// Deadline of one deep check (default 5 s).
    #[serde(default = "default_health_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

/// Request log settings. The level filter comes from `RUST_LOG` (default `info`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingConfig {
    /// `text` (default) or `json`.
    #[serde(default)]
    pub format: LogFormat,
}

/// Log line format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// One tenant: a URI path prefix with its credentials, regions and keys.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// A name for logs.
    pub name: String,
    /// The URI path prefix before `/kms/xks/v1`: `""` or like `/keystores/a1`.
    pub path_prefix: String,
    /// SigV4 regions accepted in the credential scope; absent means any region.
    pub regions: Option<Vec<String>>,
    /// External key ids this tenant may use, or `["*"]` for every key of the backend.
    pub keys: Vec<String>,
    /// SigV4 credentials; several may be live at once during rotation.
    #[serde(rename = "credential")]
    pub credentials: Vec<CredentialConfig>,
}

/// One SigV4 credential. The secret comes from exactly one of three places.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialConfig {
    /// The access key id: 20 to 30 characters of `A-Z` and `2-7`.
    pub access_key_id: String,
    /// The secret, inline (avoid outside tests: the file then holds a secret).
    pub secret_access_key: Option<String>,
    /// A file holding the secret (trailing newline ignored).
    pub secret_access_key_file: Option<PathBuf>,
    /// An environment variable holding the secret.
    pub secret_access_key_env: Option<String>,
}

/// The key manager, selected by `type`.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
#[non_exhaustive]
pub enum BackendConfig {
    /// The software key store (`xks-soft`).
    Soft(SoftBackendConfig),
    /// An HSM over PKCS#11 (`xks-pkcs11`); see that crate for the settings.
    Pkcs11(Box<xks_pkcs11::Pkcs11Config>),
    /// HashiCorp Vault or OpenBao Transit (`xks-vault`); see that crate for the settings.
    Vault(Box<xks_vault::VaultConfig>),
}

/// The software key store.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SoftBackendConfig {
    /// The encrypted key store file.
    pub path: PathBuf,
    /// `ekmVendor` reported by GetHealthStatus.
    #[serde(default = "default_soft_vendor")]
    pub vendor: String,
}

/// Everything wrong with a configuration, each with where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors {
    problems: Vec<ConfigProblem>,
}

/// One configuration problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Where: a dotted path such as `tenant[0].credential[1].access_key_id`.
    pub at: String,
    /// What is wrong and what to do about it.
    pub message: String,
}

/// A source of environment variables, injected so tests need not mutate the
/// process environment.
pub trait Env: Sync {
    /// The value of `name`, if set and valid UTF-8.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessEnv;

fn default_ping_path() -> String {
    "/ping".into()
}
fn default_shutdown_grace() -> Duration {
    Duration::from_secs(10)
}
fn default_handshake_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_idle_timeout() -> Duration {
    Duration::from_secs(300)
}
fn default_max_connections() -> usize {
    20_000
}
fn default_max_plaintext() -> usize {
    xks_protocol::Limits::default().max_plaintext_bytes()
}
fn default_max_ciphertext() -> usize {
    xks_protocol::Limits::default().max_ciphertext_bytes()
}
fn default_max_aad() -> usize {
    xks_protocol::Limits::default().max_aad_bytes()
}
fn default_backend_timeout() -> Duration {
    Duration::from_millis(200)
}
fn default_fleet_size() -> u32 {
    1
}
fn default_proxy_vendor() -> String {
    "xks-toolkit".into()
}
fn default_proxy_model() -> String {
    concat!("xks-proxy ", env!("CARGO_PKG_VERSION")).into()
}
fn default_health_interval() -> Duration {
    Duration::from_secs(15)
}
fn default_health_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_soft_vendor() -> String {
    "xks-toolkit software key store".into()
}

/// Largest XKS API URI path KMS accepts (`XksProxyUriPath`, fact sheet §1.2).
const MAX_URI_PATH: usize = 128;
const API_SUFFIX: &str = "/kms/xks/v1";

// === impl Config ===

impl Config {
    /// Parses a TOML document. Syntax and type errors name the offending key.
    pub fn from_toml(text: &str) -> Result<Self, ConfigErrors> {
        toml::from_str(text).map_err(|e| ConfigErrors::single("", e.message().to_owned()))
    }

    /// Reads and parses a TOML file. Relative paths inside it are resolved against
    /// the file's directory.
    pub fn from_file(path: &Path) -> Result<Self, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors::single("", format!("cannot read {}: {e}", path.display()))
        })?;
        let mut config = Self::from_toml(&text)?;
        if let Some(dir) = path.parent() {
            config.resolve_paths(dir);
        }
        Ok(config)
    }

    pub(crate) fn resolve_paths(&mut self, dir: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        };
        if let Some(tls) = &mut self.server.tls {
            fix(&mut tls.cert);
            fix(&mut tls.key);
            if let Some(ca) = &mut tls.client_auth {
                fix(&mut ca.ca);
            }
        }
        for tenant in &mut self.tenants {
            for cred in &mut tenant.credentials {
                if let Some(f) = &mut cred.secret_access_key_file {
                    fix(f);
                }
            }
        }
        match &mut self.backend {
            BackendConfig::Soft(soft) => fix(&mut soft.path),
            BackendConfig::Pkcs11(_) | BackendConfig::Vault(_) => {}
        }
    }

    /// Checks everything that can be checked without binding a port: values,
    /// formats, uniqueness, and that referenced files and variables exist. All
    /// problems are reported at once.
    pub fn validate(&self, env: &dyn Env) -> Result<(), ConfigErrors> {
        let mut p = Problems::default();
        self.check_service(env, &mut p);
        match &self.backend {
            BackendConfig::Pkcs11(pkcs11) => {
                if let Err(e) = pkcs11.validate() {
                    p.add("backend", e.to_string());
                }
            }
            BackendConfig::Vault(vault) => {
                if let Err(e) = vault.validate() {
                    p.add("backend", xks_vault::DisplayChain(&e).to_string());
                }
            }
            BackendConfig::Soft(soft) => {
                if !soft.path.is_file() {
                    p.add(
                        "backend.path",
                        format!(
                            "key store {} does not exist; create it with `xks-proxy soft init --store {}`",
                            soft.path.display(),
                            soft.path.display()
                        ),
                    );
                }
            }
        }
        p.into_result()
    }

    /// Like [`Config::validate`], without the `[backend]` section: for a key manager
    /// built by the caller.
    pub fn validate_service(&self, env: &dyn Env) -> Result<(), ConfigErrors> {
        let mut p = Problems::default();
        self.check_service(env, &mut p);
        p.into_result()
    }

    fn check_service(&self, env: &dyn Env, p: &mut Problems) {
        self.validate_server(p);
        self.validate_limits(p);
        self.validate_health(p);
        self.validate_tenants(env, p);
    }

    /// The protocol limits this configuration sets.
    pub fn protocol_limits(&self) -> Result<xks_protocol::Limits, ConfigErrors> {
        xks_protocol::Limits::default()
            .with_max_plaintext_bytes(self.limits.max_plaintext_bytes)
            .and_then(|l| l.with_max_ciphertext_bytes(self.limits.max_ciphertext_bytes))
            .and_then(|l| l.with_max_aad_bytes(self.limits.max_aad_bytes))
            .map_err(|e| ConfigErrors::single("limits", e.to_string()))
    }

    fn validate_server(&self, p: &mut Problems) {
        let s = &self.server;
        if s.listen.is_empty() {
            p.add("server.listen", "at least one listen address is needed");
        }
        match (&s.tls, s.insecure_plain_http) {
            (None, false) => p.add(
                "server.tls",
                "TLS is required: set server.tls.cert and server.tls.key (or, for local testing only, server.insecure_plain_http = true)",
            ),
            (Some(_), true) => p.add(
                "server.insecure_plain_http",
                "set either server.tls or server.insecure_plain_http, not both",
            ),
            (Some(tls), false) => {
                if let Err(e) = crate::tls::server_config(tls) {
                    p.add("server.tls", e.to_string());
                }
            }
            (None, true) => {}
        }
        if !s.ping_path.starts_with('/') || s.ping_path.contains("/kms/xks/") {
            p.add(
                "server.ping_path",
                "must start with '/' and must not be an XKS API path",
            );
        }
        if s.max_connections == 0 {
            p.add("server.max_connections", "must be at least 1");
        }
        if matches!(s.worker_threads, Some(n) if n == 0 || n > 1024) {
            p.add("server.worker_threads", "must be between 1 and 1024");
        }
        for (name, d) in [
            ("server.handshake_timeout", s.handshake_timeout),
            ("server.idle_timeout", s.idle_timeout),
        ] {
            if d.is_zero() {
                p.add(name, "must be longer than zero");
            }
        }
    }

    fn validate_limits(&self, p: &mut Problems) {
        if let Err(e) = self.protocol_limits() {
            p.extend(e);
        }
        let t = self.limits.backend_timeout;
        if t.is_zero() || t > Duration::from_millis(240) {
            p.add(
                "limits.backend_timeout",
                "must be between 1 ms and 240 ms: KMS abandons a request after 250 ms",
            );
        }
    }

    fn validate_health(&self, p: &mut Problems) {
        let h = &self.health;
        if h.fleet_size == 0 {
            p.add("health.fleet_size", "must be at least 1");
        }
        for (name, v) in [
            ("health.proxy_vendor", &h.proxy_vendor),
            ("health.proxy_model", &h.proxy_model),
        ] {
            if v.trim().is_empty() {
                p.add(name, "must not be empty");
            }
        }
        if h.interval.is_zero()
            || h.timeout.is_zero()
            || h.interval + h.timeout > Duration::from_secs(60)
        {
            p.add(
                "health",
                "interval + timeout must be at most 60 s: a cached deep check is never older than a minute",
            );
        }
    }

    fn validate_tenants(&self, env: &dyn Env, p: &mut Problems) {
        if self.tenants.is_empty() {
            p.add("tenant", "at least one [[tenant]] is needed");
        }
        let mut prefixes = HashMap::new();
        let mut key_ids = HashSet::new();
        for (i, t) in self.tenants.iter().enumerate() {
            let at = format!("tenant[{i}]");
            if let Err(msg) = check_prefix(&t.path_prefix) {
                p.add(format!("{at}.path_prefix"), msg);
            }
            if let Some(other) = prefixes.insert(t.path_prefix.as_str(), i) {
                p.add(
                    format!("{at}.path_prefix"),
                    format!("the same prefix is already used by tenant[{other}]"),
                );
            }
            if let Some(regions) = &t.regions {
                if regions.is_empty() {
                    p.add(
                        format!("{at}.regions"),
                        "list at least one region, or remove the setting to accept any",
                    );
                }
                for r in regions {
                    if !is_region(r) {
                        p.add(
                            format!("{at}.regions"),
                            format!("{r:?} is not an AWS region name"),
                        );
                    }
                }
            }
            if t.keys.is_empty() {
                p.add(
                    format!("{at}.keys"),
                    "list the external key ids, or [\"*\"] for all",
                );
            }
            for k in &t.keys {
                if let (true, Err(e)) = (k != "*", xks_protocol::KeyId::new(k)) {
                    p.add(format!("{at}.keys"), format!("{k:?}: {e}"));
                }
            }
            if t.keys.len() > 1 && t.keys.iter().any(|k| k == "*") {
                p.add(format!("{at}.keys"), "\"*\" must be the only entry");
            }
            if t.credentials.is_empty() {
                p.add(
                    format!("{at}.credential"),
                    "at least one [[tenant.credential]] is needed",
                );
            }
            for (j, c) in t.credentials.iter().enumerate() {
                let at = format!("{at}.credential[{j}]");
                if !key_ids.insert(c.access_key_id.as_str()) {
                    p.add(
                        format!("{at}.access_key_id"),
                        "access key ids must be unique across all tenants",
                    );
                }
                if let Err(msg) = c.to_credential(env) {
                    p.add(at, msg);
                }
            }
        }
    }
}

fn check_prefix(prefix: &str) -> Result<(), String> {
    if prefix.is_empty() {
        return Ok(());
    }
    if !prefix.starts_with('/') || prefix.ends_with('/') || prefix.contains("//") {
        return Err(
            "must be empty or start with '/', with no trailing '/' and no empty segment".into(),
        );
    }
    if !prefix
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_'))
    {
        return Err("may only contain a-z A-Z 0-9 / - _".into());
    }
    if prefix.len() + API_SUFFIX.len() > MAX_URI_PATH {
        return Err(format!(
            "prefix + {API_SUFFIX} must be at most {MAX_URI_PATH} characters (KMS's XksProxyUriPath limit)"
        ));
    }
    let health = format!("{prefix}{API_SUFFIX}/health");
    if xks_protocol::Route::parse(&health).map(|r| r.prefix() == prefix) != Ok(true) {
        return Err("the prefix makes XKS paths ambiguous".into());
    }
    Ok(())
}

fn is_region(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 32
        && r.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

// === impl CredentialConfig ===

impl CredentialConfig {
    /// Builds the credential, reading the secret from where the configuration says.
    pub fn to_credential(&self, env: &dyn Env) -> Result<xks_sigv4::Credential, String> {
        let secret = match (
            &self.secret_access_key,
            &self.secret_access_key_file,
            &self.secret_access_key_env,
        ) {
            (Some(s), None, None) => s.clone(),
            (None, Some(file), None) => std::fs::read_to_string(file)
                .map(|s| s.trim_end_matches(['\r', '\n']).to_owned())
                .map_err(|e| {
                    format!("cannot read secret_access_key_file {}: {e}", file.display())
                })?,
            (None, None, Some(var)) => env.var(var).ok_or_else(|| {
                format!("environment variable {var} (secret_access_key_env) is not set")
            })?,
            _ => {
                return Err(
                    "set exactly one of secret_access_key, secret_access_key_file, secret_access_key_env"
                        .into(),
                );
            }
        };
        xks_sigv4::Credential::from_config(self.access_key_id.as_str(), secret)
            .map_err(|e| e.to_string())
    }
}

impl fmt::Debug for CredentialConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialConfig")
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .field("secret_access_key_file", &self.secret_access_key_file)
            .field("secret_access_key_env", &self.secret_access_key_env)
            .finish()
    }
}

// === impl LimitsConfig, HealthConfig ===

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_plaintext_bytes: default_max_plaintext(),
            max_ciphertext_bytes: default_max_ciphertext(),
            max_aad_bytes: default_max_aad(),
            backend_timeout: default_backend_timeout(),
        }
    }
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            fleet_size: default_fleet_size(),
            proxy_vendor: default_proxy_vendor(),
            proxy_model: default_proxy_model(),
            interval: default_health_interval(),
            timeout: default_health_timeout(),
        }
    }
}

// === impl ConfigErrors ===

impl ConfigErrors {
    pub(crate) fn single(at: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            problems: vec![ConfigProblem {
                at: at.into(),
                message: message.into(),
            }],
        }
    }

    /// The problems, in the order of the file.
    pub fn problems(&self) -> &[ConfigProblem] {
        &self.problems
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.at.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.at, self.message)
        }
    }
}

#[derive(Default)]
struct Problems(Vec<ConfigProblem>);

impl Problems {
    fn add(&mut self, at: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigProblem {
            at: at.into(),
            message: message.into(),
        });
    }

    fn extend(&mut self, errors: ConfigErrors) {
        self.0.extend(errors.problems);
    }

    fn into_result(self) -> Result<(), ConfigErrors> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors { problems: self.0 })
        }
    }
}

// === impl Env ===

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Env for HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

#[cfg(test)]
mod tests;
