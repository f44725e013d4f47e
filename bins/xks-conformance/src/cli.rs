//! The command line. Every setting can also come from a TOML file (`--config`); flags
//! override the file.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, Parser, ValueEnum};
use zeroize::Zeroizing;

/// `xks-conformance`: runs the XKS proxy conformance checklist against a proxy.
#[derive(Debug, Parser)]
#[command(
    name = "xks-conformance",
    version,
    about = "Checks an AWS KMS External Key Store (XKS) proxy against the XKS proxy API checklist.",
    long_about = "Checks an AWS KMS External Key Store (XKS) proxy against the XKS proxy API \
        checklist: transport and TLS, routing, SigV4, mTLS, requestMetadata, health, metadata, \
        encrypt, decrypt, tampering, malformed input, error bodies, authorization, IV \
        uniqueness and latency.\n\nExit status: 0 when no check failed (warnings and checks \
        not run allowed), 1 when a check failed or the run was cut short, 2 for invalid \
        settings or usage."
)]
pub struct Cli {
    /// TOML settings file (see docs/conformance.md); flags override its values.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// The target proxy and what to test with.
    #[command(flatten)]
    pub settings: SettingsArgs,

    /// Output format on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// Also write a JUnit XML report to FILE (for CI systems).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,

    /// List the checks (id, rows, area, grade, title) and exit.
    #[arg(long)]
    pub list: bool,

    /// Run only the checks matching: an id prefix (`sigv4.skew`), an area (`tamper`) or a
    /// checklist row (`74`). Repeatable.
    #[arg(long, value_name = "ID|AREA|ROW")]
    pub only: Vec<String>,

    /// Validate the settings (files readable, credentials well-formed) and exit.
    #[arg(long)]
    pub validate: bool,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
#[non_exhaustive]
pub enum Format {
    /// A table grouped by area, then the details of every failure and warning.
    #[default]
    Text,
    /// One JSON document.
    Json,
    /// A Markdown table (with `--list`, for documentation).
    Markdown,
}

/// The settings flags. Each overrides the same key of the `--config` file.
#[derive(Debug, Default, Args)]
pub struct SettingsArgs {
    /// The proxy's base URL, `https://host[:port]` (KMS's XksProxyUriEndpoint).
    #[arg(long, value_name = "URL", help_heading = "Target")]
    pub endpoint: Option<String>,
    /// Connect to this address instead of resolving the endpoint's host (like curl's
    /// --connect-to); Host, SigV4 and TLS still use the endpoint's name.
    #[arg(long, value_name = "IP:PORT", help_heading = "Target")]
    pub connect_to: Option<SocketAddr>,
    /// The URI path, `[/prefix]/kms/xks/v1` (KMS's XksProxyUriPath).
    #[arg(long, value_name = "PATH", help_heading = "Target")]
    pub uri_path: Option<String>,
    /// The SigV4 region (default us-east-1).
    #[arg(long, value_name = "REGION", help_heading = "Target")]
    pub region: Option<String>,
    /// Another region for the region check (row 32); default: one that differs.
    #[arg(long, value_name = "REGION", help_heading = "Target")]
    pub other_region: Option<String>,
    /// PEM file of the CA(s) the server certificate must chain to; default: the system
    /// trust store.
    #[arg(long, value_name = "FILE", help_heading = "Target")]
    pub ca_file: Option<PathBuf>,

    /// The SigV4 access key id of the URI path.
    #[arg(long, value_name = "ID", help_heading = "Credentials")]
    pub access_key_id: Option<String>,
    /// Its secret (prefer the environment variable to keep it out of `ps`).
    #[arg(
        long,
        value_name = "SECRET",
        env = "XKS_SECRET_ACCESS_KEY",
        hide_env_values = true,
        help_heading = "Credentials"
    )]
    pub secret_access_key: Option<SecretArg>,
    /// A second credential of the same URI path, for the rotation check (row 34).
    #[arg(long, value_name = "ID", help_heading = "Credentials")]
    pub second_access_key_id: Option<String>,
    /// Its secret.
    #[arg(
        long,
        value_name = "SECRET",
        env = "XKS_SECOND_SECRET_ACCESS_KEY",
        hide_env_values = true,
        help_heading = "Credentials"
    )]
    pub second_secret_access_key: Option<SecretArg>,
    /// The credential of another URI path (another tenant), for row 33.
    #[arg(long, value_name = "ID", help_heading = "Credentials")]
    pub other_access_key_id: Option<String>,
    /// Its secret.
    #[arg(
        long,
        value_name = "SECRET",
        env = "XKS_OTHER_SECRET_ACCESS_KEY",
        hide_env_values = true,
        help_heading = "Credentials"
    )]
    pub other_secret_access_key: Option<SecretArg>,
    /// The URI path that credential belongs to (to confirm it works there).
    #[arg(long, value_name = "PATH", help_heading = "Credentials")]
    pub other_uri_path: Option<String>,

    /// The main key: enabled, AES-256, ENCRYPT and DECRYPT.
    #[arg(long, value_name = "ID", help_heading = "Keys")]
    pub key_id: Option<String>,
    /// A second enabled encrypt+decrypt key (cross-key tamper check).
    #[arg(long, value_name = "ID", help_heading = "Keys")]
    pub second_key_id: Option<String>,
    /// A key with ENCRYPT only.
    #[arg(long, value_name = "ID", help_heading = "Keys")]
    pub encrypt_only_key_id: Option<String>,
    /// A key with DECRYPT only.
    #[arg(long, value_name = "ID", help_heading = "Keys")]
    pub decrypt_only_key_id: Option<String>,
    /// A key with neither ENCRYPT nor DECRYPT.
    #[arg(long, value_name = "ID", help_heading = "Keys")]
    pub no_usage_key_id: Option<String>,
    /// A disabled key.
    #[arg(long, value_name = "ID", help_heading = "Keys")]
    pub disabled_key_id: Option<String>,

    /// The client certificate (PEM) the proxy accepts; enables the mTLS checks.
    #[arg(long, value_name = "FILE", help_heading = "Mutual TLS")]
    pub client_cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, value_name = "FILE", help_heading = "Mutual TLS")]
    pub client_key: Option<PathBuf>,
    /// An expired client certificate from the accepted CA (row 38).
    #[arg(long, value_name = "FILE", help_heading = "Mutual TLS")]
    pub expired_client_cert: Option<PathBuf>,
    /// Its private key.
    #[arg(long, value_name = "FILE", help_heading = "Mutual TLS")]
    pub expired_client_key: Option<PathBuf>,
    /// A client certificate from the accepted CA with another subject CN (row 39).
    #[arg(long, value_name = "FILE", help_heading = "Mutual TLS")]
    pub wrong_cn_client_cert: Option<PathBuf>,
    /// Its private key.
    #[arg(long, value_name = "FILE", help_heading = "Mutual TLS")]
    pub wrong_cn_client_key: Option<PathBuf>,
    /// A client certificate with the accepted CN from another CA (row 40).
    #[arg(long, value_name = "FILE", help_heading = "Mutual TLS")]
    pub other_ca_client_cert: Option<PathBuf>,
    /// Its private key.
    #[arg(long, value_name = "FILE", help_heading = "Mutual TLS")]
    pub other_ca_client_key: Option<PathBuf>,

    /// A principal ARN the proxy's secondary authorization denies (rows 60, 125, 126).
    #[arg(long, value_name = "ARN", help_heading = "Proxy configuration")]
    pub denied_principal: Option<String>,
    /// The proxy has a request quota: send this many requests at once and expect 429
    /// ThrottlingException (row 127).
    #[arg(long, value_name = "N", help_heading = "Proxy configuration")]
    pub throttle_burst: Option<u32>,
    /// The load-balancer health check path answered to GET without SigV4 (row 17).
    #[arg(long, value_name = "PATH", help_heading = "Proxy configuration")]
    pub ping_path: Option<String>,
    /// The awsPrincipalArn of normal requests (a principal the proxy allows).
    #[arg(long, value_name = "ARN", help_heading = "Proxy configuration")]
    pub principal_arn: Option<String>,
    /// The kmsKeyArn of normal Encrypt and Decrypt requests.
    #[arg(long, value_name = "ARN", help_heading = "Proxy configuration")]
    pub kms_key_arn: Option<String>,

    /// Timeout of one request, connecting included (default 5s).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = "Run")]
    pub timeout: Option<Duration>,
    /// Time limit of one check (default 60s).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = "Run")]
    pub check_timeout: Option<Duration>,
    /// Time limit of the whole run (default 10m); checks not reached are reported.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = "Run")]
    pub max_duration: Option<Duration>,
    /// Encryptions of the IV uniqueness check (default 1000).
    #[arg(long, value_name = "N", help_heading = "Run")]
    pub iv_count: Option<u32>,
    /// Warm calls measured by the latency checks (default 50).
    #[arg(long, value_name = "N", help_heading = "Run")]
    pub latency_samples: Option<u32>,
}

/// A secret given on the command line or in the environment. `Debug` and `Display`
/// never show it, and it is wiped when dropped.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretArg(Zeroizing<String>);

// === impl SecretArg ===

impl SecretArg {
    /// The secret itself.
    pub fn expose(&self) -> &str {
        self.0.as_str()
    }
}

impl FromStr for SecretArg {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(Zeroizing::new(s.to_owned())))
    }
}

impl fmt::Debug for SecretArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretArg(** redacted **)")
    }
}

/// Parses `250ms`, `5s`, `10m`, `1h 30m`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime_serde::re::humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration such as 500ms, 5s or 10m: {e}"))
}
