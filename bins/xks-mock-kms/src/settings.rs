//! Settings: a profile file, then flags on top.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use xks_client::HttpVersions;
use zeroize::Zeroizing;

use crate::Error;
use crate::cli::{HttpArg, SettingsArgs};
use crate::envelope::InternalKey;

/// The default account id of the simulated key store.
pub const DEFAULT_ACCOUNT_ID: &str = "111122223333";

/// A profile file: any of the flags' settings, snake_case. Relative paths are resolved
/// against the file's directory.
///
/// ```toml
/// endpoint = "https://xks.example.com"
/// uri_path = "/example/kms/xks/v1"
/// access_key_id = "AKIAI2SFODNN7EXAMPLE"
/// secret_access_key_file = "secret.txt"   # or secret_access_key, secret_access_key_env
/// region = "eu-west-1"
/// ca_file = "ca.pem"
/// timeout = "250ms"
/// ```
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    endpoint: Option<String>,
    uri_path: Option<String>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    secret_access_key_file: Option<PathBuf>,
    secret_access_key_env: Option<String>,
    region: Option<String>,
    ca_file: Option<PathBuf>,
    client_cert: Option<PathBuf>,
    client_key: Option<PathBuf>,
    connect_to: Option<SocketAddr>,
    #[serde(default, with = "humantime_serde")]
    timeout: Option<Duration>,
    http: Option<HttpArg>,
    account_id: Option<String>,
    principal_arn: Option<String>,
    via_service: Option<String>,
    internal_key_file: Option<PathBuf>,
}

/// Resolved settings. `Debug` redacts the secrets.
#[derive(Clone)]
pub struct Settings {
    /// `XksProxyUriEndpoint`.
    pub endpoint: String,
    /// `XksProxyUriPath`.
    pub uri_path: String,
    /// SigV4 access key id.
    pub access_key_id: String,
    secret_access_key: Zeroizing<String>,
    /// SigV4 region.
    pub region: String,
    /// Trust roots instead of the system's.
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key for mTLS.
    pub client_identity: Option<(PathBuf, PathBuf)>,
    /// `--connect-to`.
    pub connect_to: Option<SocketAddr>,
    /// Timeout per call (default 250 ms).
    pub timeout: Duration,
    /// HTTP versions offered.
    pub http: HttpVersions,
    /// The key store's account.
    pub account_id: String,
    /// `awsPrincipalArn`.
    pub principal_arn: String,
    /// `kmsViaService`.
    pub via_service: Option<String>,
    internal_key: InternalKeySource,
}

#[derive(Clone)]
enum InternalKeySource {
    Inline(Zeroizing<String>),
    File(PathBuf),
}

// === impl Profile ===

impl Profile {
    /// Reads a profile: JSON if the name ends in `.json`, TOML otherwise.
    ///
    /// # Errors
    ///
    /// [`Error::Usage`] if the file cannot be read or parsed (the message never quotes
    /// values).
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| Error::usage(format!("cannot read {}: {e}", path.display())))?,
        );
        let is_json = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        let mut profile: Self = if is_json {
            serde_json::from_str(&text).map_err(|e| {
                Error::usage(format!(
                    "{}: invalid profile at line {}, column {}",
                    path.display(),
                    e.line(),
                    e.column()
                ))
            })?
        } else {
            toml::from_str(&text)
                .map_err(|e| Error::usage(format!("{}: {}", path.display(), e.message())))?
        };
        if let Some(dir) = path.parent() {
            for p in [
                &mut profile.secret_access_key_file,
                &mut profile.ca_file,
                &mut profile.client_cert,
                &mut profile.client_key,
                &mut profile.internal_key_file,
            ]
            .into_iter()
            .flatten()
            {
                if p.is_relative() {
                    *p = dir.join(&*p);
                }
            }
        }
        Ok(profile)
    }
}

impl fmt::Debug for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Profile")
            .field("endpoint", &self.endpoint)
            .field("uri_path", &self.uri_path)
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

// === impl Settings ===

impl Settings {
    /// The profile (if any) with the flags on top. The secret comes from, in order:
    /// `--secret-access-key` (or `XKS_SECRET_ACCESS_KEY`), `--secret-access-key-file`,
    /// then the profile's `secret_access_key`, `secret_access_key_file` or
    /// `secret_access_key_env`.
    ///
    /// # Errors
    ///
    /// [`Error::Usage`] naming every missing setting, or an unreadable file.
    pub fn resolve(args: &SettingsArgs) -> Result<Self, Error> {
        let profile = match &args.profile {
            Some(path) => Profile::load(path)?,
            None => Profile::default(),
        };
        let pick =
            |flag: &Option<String>, file: &Option<String>| flag.clone().or_else(|| file.clone());
        let endpoint = pick(&args.endpoint, &profile.endpoint);
        let uri_path = pick(&args.uri_path, &profile.uri_path);
        let access_key_id = pick(&args.access_key_id, &profile.access_key_id);
        // An empty XKS_SECRET_ACCESS_KEY counts as unset.
        let flag_secret = args.secret_access_key.as_ref().filter(|s| !s.is_empty());
        let secret = match (flag_secret, &args.secret_access_key_file) {
            (Some(secret), _) => Some(Zeroizing::new(secret.clone())),
            (None, Some(file)) => Some(read_secret(file)?),
            (None, None) => match (
                &profile.secret_access_key,
                &profile.secret_access_key_file,
                &profile.secret_access_key_env,
            ) {
                (Some(secret), _, _) => Some(Zeroizing::new(secret.clone())),
                (None, Some(file), _) => Some(read_secret(file)?),
                (None, None, Some(var)) => {
                    Some(Zeroizing::new(std::env::var(var).map_err(|_| {
                        Error::usage(format!("environment variable {var} is not set"))
                    })?))
                }
                (None, None, None) => None,
            },
        };
        let mut missing = Vec::new();
        if endpoint.is_none() {
            missing.push("--endpoint");
        }
        if uri_path.is_none() {
            missing.push("--uri-path");
        }
        if access_key_id.is_none() {
            missing.push("--access-key-id");
        }
        if secret.is_none() {
            missing
                .push("--secret-access-key (or XKS_SECRET_ACCESS_KEY, --secret-access-key-file)");
        }
        let (Some(endpoint), Some(uri_path), Some(access_key_id), Some(secret_access_key)) =
            (endpoint, uri_path, access_key_id, secret)
        else {
            return Err(Error::usage(format!(
                "missing settings (flags or profile): {}",
                missing.join(", ")
            )));
        };
        let account_id = pick(&args.account_id, &profile.account_id)
            .unwrap_or_else(|| DEFAULT_ACCOUNT_ID.to_owned());
        let principal_arn = pick(&args.principal_arn, &profile.principal_arn)
            .unwrap_or_else(|| format!("arn:aws:iam::{account_id}:user/xks-mock-kms"));
        let client_identity = match (
            args.client_cert.clone().or(profile.client_cert),
            args.client_key.clone().or(profile.client_key),
        ) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => {
                return Err(Error::usage(
                    "a client certificate needs both client_cert and client_key",
                ));
            }
        };
        let internal_key = match (&args.internal_key, &args.internal_key_file) {
            (Some(inline), _) => InternalKeySource::Inline(Zeroizing::new(inline.clone())),
            (None, Some(file)) => InternalKeySource::File(file.clone()),
            (None, None) => InternalKeySource::File(
                profile
                    .internal_key_file
                    .clone()
                    .unwrap_or_else(default_internal_key_file),
            ),
        };
        let http = match args.http.or(profile.http).unwrap_or(HttpArg::Auto) {
            HttpArg::Auto => HttpVersions::Auto,
            HttpArg::Http1 => HttpVersions::Http1,
            HttpArg::Http2 => HttpVersions::Http2,
        };
        Ok(Self {
            endpoint,
            uri_path,
            access_key_id,
            secret_access_key,
            region: pick(&args.region, &profile.region).unwrap_or_else(|| "us-east-1".to_owned()),
            ca_file: args.ca_file.clone().or(profile.ca_file),
            client_identity,
            connect_to: args.connect_to.or(profile.connect_to),
            timeout: args
                .timeout
                .or(profile.timeout)
                .unwrap_or(xks_client::DEFAULT_TIMEOUT),
            http,
            account_id,
            principal_arn,
            via_service: pick(&args.via_service, &profile.via_service),
            internal_key,
        })
    }

    /// The SigV4 secret access key. Never log it.
    pub fn secret_access_key(&self) -> &str {
        &self.secret_access_key
    }

    /// Loads the internal key (creating its file on first use).
    ///
    /// # Errors
    ///
    /// [`Error::Usage`] if the key or its file is unusable.
    pub fn internal_key(&self) -> Result<InternalKey, Error> {
        match &self.internal_key {
            InternalKeySource::Inline(text) => InternalKey::from_base64(text).map_err(Error::usage),
            InternalKeySource::File(path) => {
                InternalKey::load_or_create(path).map_err(Error::usage)
            }
        }
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("endpoint", &self.endpoint)
            .field("uri_path", &self.uri_path)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &format_args!("** redacted **"))
            .field("region", &self.region)
            .field("connect_to", &self.connect_to)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

fn read_secret(path: &Path) -> Result<Zeroizing<String>, Error> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| Error::usage(format!("cannot read {}: {e}", path.display())))?,
    );
    Ok(Zeroizing::new(
        text.trim_end_matches(['\n', '\r']).to_owned(),
    ))
}

fn default_internal_key_file() -> PathBuf {
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home)
            .join(".xks-mock-kms")
            .join("internal-key"),
        None => PathBuf::from("xks-mock-kms-internal-key"),
    }
}
