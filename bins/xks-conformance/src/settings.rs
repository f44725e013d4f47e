//! The validated settings of a run, merged from the TOML file and the flags.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use xks_client::{ClientIdentity, Endpoint, TrustRoots};
use xks_protocol::{KeyId, Operation, Route};
use xks_sigv4::Credential;
use zeroize::Zeroizing;

use crate::{SettingsArgs, SettingsError};

const API_ROOT: &str = "/kms/xks/v1";
const DEFAULT_REGION: &str = "us-east-1";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(60);
const DEFAULT_MAX_DURATION: Duration = Duration::from_secs(600);
const DEFAULT_IV_COUNT: u32 = 1000;
const DEFAULT_LATENCY_SAMPLES: u32 = 50;
const DEFAULT_PRINCIPAL: &str = "arn:aws:iam::111122223333:user/xks-conformance";

/// Everything a run needs, validated: where the proxy is, how to authenticate, which keys
/// play which role, what the proxy is configured for, and the run's limits.
///
/// `Debug` never shows secrets or private keys.
#[derive(Clone)]
pub struct Settings {
    pub(crate) endpoint: Endpoint,
    pub(crate) connect_to: Option<SocketAddr>,
    pub(crate) uri_path: String,
    pub(crate) region: String,
    pub(crate) other_region: String,
    pub(crate) trust: TrustRoots,
    /// The CA file's PEM, for the TLS probes that do not go through xks-client.
    pub(crate) trust_pem: Option<Vec<u8>>,
    pub(crate) credential: Credential,
    pub(crate) second_credential: Option<Credential>,
    pub(crate) other_tenant: Option<OtherTenant>,
    pub(crate) keys: KeyRoles,
    pub(crate) mtls: Option<Mtls>,
    pub(crate) denied_principal: Option<String>,
    pub(crate) throttle_burst: Option<u32>,
    pub(crate) ping_path: Option<String>,
    pub(crate) principal_arn: String,
    pub(crate) kms_key_arn: String,
    pub(crate) timeout: Duration,
    pub(crate) check_timeout: Duration,
    pub(crate) max_duration: Duration,
    pub(crate) iv_count: u32,
    pub(crate) latency_samples: u32,
}

/// The external keys a run uses, by role. Only the main key is required; checks that need
/// another role are not run without it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRoles {
    /// An enabled AES-256 key with ENCRYPT and DECRYPT.
    pub main: KeyId,
    /// A second enabled encrypt+decrypt key.
    pub second: Option<KeyId>,
    /// A key with ENCRYPT only.
    pub encrypt_only: Option<KeyId>,
    /// A key with DECRYPT only.
    pub decrypt_only: Option<KeyId>,
    /// A key with neither ENCRYPT nor DECRYPT.
    pub no_usage: Option<KeyId>,
    /// A disabled key.
    pub disabled: Option<KeyId>,
}

/// A credential of another URI path (tenant).
#[derive(Debug, Clone)]
pub(crate) struct OtherTenant {
    pub(crate) uri_path: Option<String>,
    pub(crate) credential: Credential,
}

/// Client certificates for the mTLS checks.
#[derive(Debug, Clone)]
pub(crate) struct Mtls {
    pub(crate) good: Identity,
    pub(crate) expired: Option<Identity>,
    pub(crate) wrong_cn: Option<Identity>,
    pub(crate) other_ca: Option<Identity>,
}

/// A client certificate and key: for xks-client, and as PEM for the TLS probes.
#[derive(Clone)]
pub(crate) struct Identity {
    pub(crate) client: ClientIdentity,
    pub(crate) cert_pem: Vec<u8>,
    pub(crate) key_pem: Zeroizing<Vec<u8>>,
    pub(crate) source: String,
}

// --- the TOML file -------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    endpoint: Option<String>,
    connect_to: Option<SocketAddr>,
    uri_path: Option<String>,
    region: Option<String>,
    other_region: Option<String>,
    ca_file: Option<PathBuf>,
    credential: Option<FileCredential>,
    second_credential: Option<FileCredential>,
    other_credential: Option<FileOtherCredential>,
    #[serde(default)]
    keys: FileKeys,
    mtls: Option<FileMtls>,
    #[serde(default)]
    proxy: FileProxy,
    #[serde(default)]
    run: FileRun,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileCredential {
    access_key_id: Option<String>,
    secret_access_key: Option<FileSecret>,
    secret_access_key_file: Option<PathBuf>,
    secret_access_key_env: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileOtherCredential {
    uri_path: Option<String>,
    access_key_id: Option<String>,
    secret_access_key: Option<FileSecret>,
    secret_access_key_file: Option<PathBuf>,
    secret_access_key_env: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileKeys {
    main: Option<String>,
    second: Option<String>,
    encrypt_only: Option<String>,
    decrypt_only: Option<String>,
    no_usage: Option<String>,
    disabled: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileMtls {
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    expired: Option<FilePair>,
    wrong_cn: Option<FilePair>,
    other_ca: Option<FilePair>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePair {
    cert: PathBuf,
    key: PathBuf,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileProxy {
    denied_principal: Option<String>,
    throttle_burst: Option<u32>,
    ping_path: Option<String>,
    principal_arn: Option<String>,
    kms_key_arn: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRun {
    #[serde(default, with = "humantime_serde")]
    timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    check_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    max_duration: Option<Duration>,
    iv_count: Option<u32>,
    latency_samples: Option<u32>,
}

/// A secret in the settings file: wiped on drop, never printed.
struct FileSecret(Zeroizing<String>);

impl<'de> Deserialize<'de> for FileSecret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| Self(Zeroizing::new(s)))
    }
}

impl fmt::Debug for FileSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FileSecret(** redacted **)")
    }
}

/// Collects problems while building the settings.
#[derive(Default)]
struct Problems(Vec<String>);

// === impl Settings ===

impl Settings {
    /// Reads `config_file` (if any), applies the flags of `args` over it, loads every file
    /// the settings name, and checks everything.
    ///
    /// # Errors
    ///
    /// [`SettingsError`] listing every problem found, each naming the flag or TOML key.
    pub fn load(args: &SettingsArgs, config_file: Option<&Path>) -> Result<Self, SettingsError> {
        let (file, base) = match config_file {
            None => (File::default(), PathBuf::from(".")),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    SettingsError::single(format!("cannot read {}: {e}", path.display()))
                })?;
                let file: File = toml::from_str(&text).map_err(|e| {
                    SettingsError::single(format!("{}: {}", path.display(), e.message()))
                })?;
                let base = path
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
                (file, base)
            }
        };
        Self::merge(args, file, &base)
    }

    /// Like [`Settings::load`], with the file's text given (relative paths in it are
    /// relative to `base_dir`).
    ///
    /// # Errors
    ///
    /// As [`Settings::load`].
    pub fn from_toml(
        toml_text: &str,
        base_dir: &Path,
        args: &SettingsArgs,
    ) -> Result<Self, SettingsError> {
        let file: File =
            toml::from_str(toml_text).map_err(|e| SettingsError::single(e.message().to_owned()))?;
        Self::merge(args, file, base_dir)
    }

    fn merge(args: &SettingsArgs, file: File, base: &Path) -> Result<Self, SettingsError> {
        let mut p = Problems::default();
        let rel = |path: &Path| -> PathBuf {
            if path.is_absolute() {
                path.to_path_buf()
            } else {
                base.join(path)
            }
        };

        let endpoint = match args.endpoint.clone().or(file.endpoint) {
            None => p.missing("--endpoint (or `endpoint`)", "the proxy's https:// URL"),
            Some(text) => Endpoint::parse(&text)
                .map_err(|e| p.add(format!("--endpoint: {}", e.chain())))
                .ok(),
        };
        let uri_path = match args.uri_path.clone().or(file.uri_path) {
            None => p.missing("--uri-path (or `uri_path`)", "`[/prefix]/kms/xks/v1`"),
            Some(path) => check_uri_path(&path)
                .map_err(|e| p.add(format!("--uri-path: {e}")))
                .ok(),
        };
        let region = args
            .region
            .clone()
            .or(file.region)
            .unwrap_or_else(|| DEFAULT_REGION.to_owned());
        if !is_region(&region) {
            p.add(format!(
                "--region {region:?}: expected a region name such as us-east-1"
            ));
        }
        let other_region = args
            .other_region
            .clone()
            .or(file.other_region)
            .unwrap_or_else(|| {
                if region == "us-west-2" {
                    "eu-west-1".to_owned()
                } else {
                    "us-west-2".to_owned()
                }
            });
        if !is_region(&other_region) || other_region == region {
            p.add(format!(
                "--other-region {other_region:?}: expected a region name other than {region:?}"
            ));
        }

        let ca_file = args
            .ca_file
            .clone()
            .or_else(|| file.ca_file.map(|f| rel(&f)));
        let (trust, trust_pem) = match &ca_file {
            None => (TrustRoots::system(), None),
            Some(path) => match std::fs::read(path) {
                Err(e) => {
                    p.add(format!("--ca-file {}: {e}", path.display()));
                    (TrustRoots::system(), None)
                }
                Ok(pem) => match TrustRoots::from_pem(&pem) {
                    Ok(trust) => (trust, Some(pem)),
                    Err(e) => {
                        p.add(format!("--ca-file {}: {}", path.display(), e.chain()));
                        (TrustRoots::system(), None)
                    }
                },
            },
        };

        let file_cred = file.credential.unwrap_or_default();
        let credential = make_credential(
            &mut p,
            "credential",
            "--access-key-id",
            args.access_key_id.clone().or(file_cred.access_key_id),
            args.secret_access_key
                .as_ref()
                .map(|s| s.expose().to_owned()),
            SecretSources {
                inline: file_cred.secret_access_key,
                file: file_cred.secret_access_key_file.map(|f| rel(&f)),
                env: file_cred.secret_access_key_env,
            },
            true,
        );
        let second_file = file.second_credential.unwrap_or_default();
        let second_credential = make_credential(
            &mut p,
            "second_credential",
            "--second-access-key-id",
            args.second_access_key_id
                .clone()
                .or(second_file.access_key_id),
            args.second_secret_access_key
                .as_ref()
                .map(|s| s.expose().to_owned()),
            SecretSources {
                inline: second_file.secret_access_key,
                file: second_file.secret_access_key_file.map(|f| rel(&f)),
                env: second_file.secret_access_key_env,
            },
            false,
        );
        let other = file.other_credential.unwrap_or_default();
        let other_uri_path = args.other_uri_path.clone().or(other.uri_path);
        if let Some(path) = &other_uri_path
            && let Err(e) = check_uri_path(path)
        {
            p.add(format!("--other-uri-path: {e}"));
        }
        let other_credential = make_credential(
            &mut p,
            "other_credential",
            "--other-access-key-id",
            args.other_access_key_id.clone().or(other.access_key_id),
            args.other_secret_access_key
                .as_ref()
                .map(|s| s.expose().to_owned()),
            SecretSources {
                inline: other.secret_access_key,
                file: other.secret_access_key_file.map(|f| rel(&f)),
                env: other.secret_access_key_env,
            },
            false,
        );

        let mut key = |flag: &str, value: Option<String>| -> Option<KeyId> {
            let value = value?;
            KeyId::new(&value)
                .map_err(|e| p.add(format!("{flag} {value:?}: {e}")))
                .ok()
        };
        let main = key("--key-id", args.key_id.clone().or(file.keys.main));
        let second = key(
            "--second-key-id",
            args.second_key_id.clone().or(file.keys.second),
        );
        let encrypt_only = key(
            "--encrypt-only-key-id",
            args.encrypt_only_key_id.clone().or(file.keys.encrypt_only),
        );
        let decrypt_only = key(
            "--decrypt-only-key-id",
            args.decrypt_only_key_id.clone().or(file.keys.decrypt_only),
        );
        let no_usage = key(
            "--no-usage-key-id",
            args.no_usage_key_id.clone().or(file.keys.no_usage),
        );
        let disabled = key(
            "--disabled-key-id",
            args.disabled_key_id.clone().or(file.keys.disabled),
        );
        if main.is_none() && !p.0.iter().any(|m| m.starts_with("--key-id")) {
            p.missing::<()>(
                "--key-id (or `keys.main`)",
                "an enabled encrypt+decrypt key",
            );
        }

        let file_mtls = file.mtls.unwrap_or_default();
        let pair = |flag_cert: &Option<PathBuf>,
                    flag_key: &Option<PathBuf>,
                    file_pair: Option<(PathBuf, PathBuf)>|
         -> Option<(PathBuf, PathBuf, bool)> {
            match (flag_cert, flag_key) {
                (Some(c), Some(k)) => Some((c.clone(), k.clone(), true)),
                (None, None) => file_pair.map(|(c, k)| (rel(&c), rel(&k), true)),
                (Some(c), None) => Some((c.clone(), PathBuf::new(), false)),
                (None, Some(k)) => Some((PathBuf::new(), k.clone(), false)),
            }
        };
        let good_pair = pair(
            &args.client_cert,
            &args.client_key,
            match (file_mtls.cert, file_mtls.key) {
                (Some(c), Some(k)) => Some((c, k)),
                (None, None) => None,
                _ => {
                    p.add("[mtls]: give both `cert` and `key`".to_owned());
                    None
                }
            },
        );
        let expired_pair = pair(
            &args.expired_client_cert,
            &args.expired_client_key,
            file_mtls.expired.map(|f| (f.cert, f.key)),
        );
        let wrong_cn_pair = pair(
            &args.wrong_cn_client_cert,
            &args.wrong_cn_client_key,
            file_mtls.wrong_cn.map(|f| (f.cert, f.key)),
        );
        let other_ca_pair = pair(
            &args.other_ca_client_cert,
            &args.other_ca_client_key,
            file_mtls.other_ca.map(|f| (f.cert, f.key)),
        );
        let good = identity(&mut p, "--client-cert/--client-key", good_pair);
        let expired = identity(
            &mut p,
            "--expired-client-cert/--expired-client-key",
            expired_pair,
        );
        let wrong_cn = identity(
            &mut p,
            "--wrong-cn-client-cert/--wrong-cn-client-key",
            wrong_cn_pair,
        );
        let other_ca = identity(
            &mut p,
            "--other-ca-client-cert/--other-ca-client-key",
            other_ca_pair,
        );
        let mtls = match good {
            Some(good) => Some(Mtls {
                good,
                expired,
                wrong_cn,
                other_ca,
            }),
            None => {
                if expired.is_some() || wrong_cn.is_some() || other_ca.is_some() {
                    p.add(
                        "the negative client certificates need the accepted one too: give \
                         --client-cert and --client-key"
                            .to_owned(),
                    );
                }
                None
            }
        };

        let denied_principal = args
            .denied_principal
            .clone()
            .or(file.proxy.denied_principal);
        let throttle_burst = args.throttle_burst.or(file.proxy.throttle_burst);
        if let Some(n) = throttle_burst
            && !(1..=10_000).contains(&n)
        {
            p.add(format!("--throttle-burst {n}: expected 1 to 10000"));
        }
        let ping_path = args.ping_path.clone().or(file.proxy.ping_path);
        if let Some(path) = &ping_path
            && (!path.starts_with('/') || path.contains(char::is_whitespace))
        {
            p.add(format!(
                "--ping-path {path:?}: expected a path such as /ping"
            ));
        }
        let principal_arn = args
            .principal_arn
            .clone()
            .or(file.proxy.principal_arn)
            .unwrap_or_else(|| DEFAULT_PRINCIPAL.to_owned());
        let kms_key_arn = args
            .kms_key_arn
            .clone()
            .or(file.proxy.kms_key_arn)
            .unwrap_or_else(|| {
                format!(
                    "arn:aws:kms:{region}:111122223333:key/0c8e3c52-4c3b-4a5e-9f0e-6d1c2b3a4f5e"
                )
            });

        let timeout = args.timeout.or(file.run.timeout).unwrap_or(DEFAULT_TIMEOUT);
        let check_timeout = args
            .check_timeout
            .or(file.run.check_timeout)
            .unwrap_or(DEFAULT_CHECK_TIMEOUT);
        let max_duration = args
            .max_duration
            .or(file.run.max_duration)
            .unwrap_or(DEFAULT_MAX_DURATION);
        for (name, d) in [
            ("--timeout", timeout),
            ("--check-timeout", check_timeout),
            ("--max-duration", max_duration),
        ] {
            if d.is_zero() {
                p.add(format!("{name}: must be more than zero"));
            }
        }
        let iv_count = args
            .iv_count
            .or(file.run.iv_count)
            .unwrap_or(DEFAULT_IV_COUNT);
        if !(2..=1_000_000).contains(&iv_count) {
            p.add(format!("--iv-count {iv_count}: expected 2 to 1000000"));
        }
        let latency_samples = args
            .latency_samples
            .or(file.run.latency_samples)
            .unwrap_or(DEFAULT_LATENCY_SAMPLES);
        if !(1..=100_000).contains(&latency_samples) {
            p.add(format!(
                "--latency-samples {latency_samples}: expected 1 to 100000"
            ));
        }

        match (endpoint, uri_path, credential, main, p.0.is_empty()) {
            (Some(endpoint), Some(uri_path), Some(credential), Some(main), true) => Ok(Self {
                endpoint,
                connect_to: args.connect_to.or(file.connect_to),
                uri_path,
                region,
                other_region,
                trust,
                trust_pem,
                credential,
                second_credential,
                other_tenant: other_credential.map(|credential| OtherTenant {
                    uri_path: other_uri_path,
                    credential,
                }),
                keys: KeyRoles {
                    main,
                    second,
                    encrypt_only,
                    decrypt_only,
                    no_usage,
                    disabled,
                },
                mtls,
                denied_principal,
                throttle_burst,
                ping_path,
                principal_arn,
                kms_key_arn,
                timeout,
                check_timeout,
                max_duration,
                iv_count,
                latency_samples,
            }),
            _ => Err(SettingsError::new(p.0)),
        }
    }

    /// The proxy's base URL.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The URI path, `[/prefix]/kms/xks/v1`.
    pub fn uri_path(&self) -> &str {
        &self.uri_path
    }

    /// The SigV4 region.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The keys by role.
    pub fn keys(&self) -> &KeyRoles {
        &self.keys
    }

    /// The time limit of the whole run.
    pub fn max_duration(&self) -> Duration {
        self.max_duration
    }

    /// Every secret of these settings, for redaction.
    pub(crate) fn secrets(&self) -> Vec<String> {
        let mut out = vec![
            self.credential
                .secret_access_key()
                .expose_secret()
                .to_owned(),
        ];
        if let Some(c) = &self.second_credential {
            out.push(c.secret_access_key().expose_secret().to_owned());
        }
        if let Some(t) = &self.other_tenant {
            out.push(t.credential.secret_access_key().expose_secret().to_owned());
        }
        out
    }

    /// The path prefix: the URI path without `/kms/xks/v1`.
    pub(crate) fn prefix(&self) -> &str {
        self.uri_path
            .strip_suffix(API_ROOT)
            .unwrap_or(&self.uri_path)
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("endpoint", &self.endpoint)
            .field("connect_to", &self.connect_to)
            .field("uri_path", &self.uri_path)
            .field("region", &self.region)
            .field("trust", &self.trust)
            .field("credential", &self.credential)
            .field("second_credential", &self.second_credential)
            .field("other_tenant", &self.other_tenant)
            .field("keys", &self.keys)
            .field("mtls", &self.mtls)
            .field("denied_principal", &self.denied_principal)
            .field("throttle_burst", &self.throttle_burst)
            .field("ping_path", &self.ping_path)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("source", &self.source)
            .field("key", &format_args!("** redacted **"))
            .finish()
    }
}

// === impl Problems ===

impl Problems {
    fn add(&mut self, problem: String) {
        self.0.push(problem);
    }

    fn missing<T>(&mut self, what: &str, hint: &str) -> Option<T> {
        self.0.push(format!("{what} is required: {hint}"));
        None
    }
}

/// Where a secret may come from in the file.
struct SecretSources {
    inline: Option<FileSecret>,
    file: Option<PathBuf>,
    env: Option<String>,
}

/// Builds a credential from an access key id and the first secret found: the flag (or its
/// environment variable), the file's inline value, its file, its environment variable.
fn make_credential(
    p: &mut Problems,
    section: &str,
    flag: &str,
    access_key_id: Option<String>,
    flag_secret: Option<String>,
    sources: SecretSources,
    required: bool,
) -> Option<Credential> {
    let flag_secret = flag_secret.map(Zeroizing::new);
    let Some(access_key_id) = access_key_id else {
        if required {
            p.add(format!(
                "{flag} (or `{section}.access_key_id`) is required: the SigV4 access key id"
            ));
        }
        return None;
    };
    let secret: Option<Zeroizing<String>> = if let Some(s) = flag_secret {
        Some(s)
    } else if let Some(s) = sources.inline {
        Some(s.0)
    } else if let Some(path) = &sources.file {
        match std::fs::read_to_string(path) {
            Ok(text) => Some(Zeroizing::new(
                text.trim_end_matches(['\r', '\n']).to_owned(),
            )),
            Err(e) => {
                p.add(format!(
                    "`{section}.secret_access_key_file` {}: {e}",
                    path.display()
                ));
                return None;
            }
        }
    } else if let Some(var) = &sources.env {
        match std::env::var(var) {
            Ok(value) => Some(Zeroizing::new(value)),
            Err(_) => {
                p.add(format!(
                    "`{section}.secret_access_key_env`: the environment variable {var} is not set"
                ));
                return None;
            }
        }
    } else {
        None
    };
    let Some(secret) = secret else {
        p.add(format!(
            "{section}: no secret for access key id {access_key_id}: give the secret flag (or \
             its environment variable), or `secret_access_key_env` / `secret_access_key_file`"
        ));
        return None;
    };
    Credential::from_config(access_key_id.clone(), secret.as_str())
        .map_err(|e| p.add(format!("{section} ({access_key_id}): {e}")))
        .ok()
}

fn identity(
    p: &mut Problems,
    flags: &str,
    pair: Option<(PathBuf, PathBuf, bool)>,
) -> Option<Identity> {
    let (cert, key, complete) = pair?;
    if !complete {
        p.add(format!("{flags}: give both the certificate and the key"));
        return None;
    }
    let cert_pem = match std::fs::read(&cert) {
        Ok(pem) => pem,
        Err(e) => {
            p.add(format!("{flags}: {}: {e}", cert.display()));
            return None;
        }
    };
    let key_pem = match std::fs::read(&key) {
        Ok(pem) => Zeroizing::new(pem),
        Err(e) => {
            p.add(format!("{flags}: {}: {e}", key.display()));
            return None;
        }
    };
    match ClientIdentity::from_pem(&cert_pem, &key_pem) {
        Ok(client) => Some(Identity {
            client,
            cert_pem,
            key_pem,
            source: cert.display().to_string(),
        }),
        Err(e) => {
            p.add(format!("{flags}: {}", e.chain()));
            None
        }
    }
}

/// Checks `[/prefix]/kms/xks/v1` and returns it without a trailing slash.
fn check_uri_path(path: &str) -> Result<String, String> {
    let path = path.trim_end_matches('/');
    let prefix = path
        .strip_suffix(API_ROOT)
        .ok_or_else(|| format!("{path:?} must end with {API_ROOT}"))?;
    Route::new(prefix, Operation::Health).map_err(|e| format!("{path:?}: {e}"))?;
    Ok(path.to_owned())
}

fn is_region(region: &str) -> bool {
    !region.is_empty()
        && region.len() <= 32
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}
