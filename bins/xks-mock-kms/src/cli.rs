//! The command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Plays AWS KMS against an XKS proxy: the calls KMS makes, with KMS's checks, its 250 ms
/// timeout and its error reporting; and a load generator.
///
/// Connection settings come from flags, a profile file (`--profile`, TOML or JSON with
/// the same names in snake_case), or both; flags win.
#[derive(Debug, Parser)]
#[command(name = "xks-mock-kms", version, about, max_term_width = 100)]
pub struct Cli {
    /// Threads of the async runtime (default: one per CPU). With `bench` on the
    /// proxy's machine, 1 leaves the other cores to the proxy.
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: Option<u16>,
    /// Connection and identity settings.
    #[command(flatten)]
    pub settings: SettingsArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Connection and identity settings, shared by every subcommand.
#[derive(Debug, Clone, Default, Args)]
pub struct SettingsArgs {
    /// Profile file (TOML, or JSON if it ends in .json) with any of the settings below.
    #[arg(long, global = true, value_name = "FILE")]
    pub profile: Option<PathBuf>,
    /// XksProxyUriEndpoint: https://HOST (a port is accepted for testing).
    #[arg(long, global = true, value_name = "URL")]
    pub endpoint: Option<String>,
    /// XksProxyUriPath: [/PREFIX]/kms/xks/v1.
    #[arg(long, global = true, value_name = "PATH")]
    pub uri_path: Option<String>,
    /// SigV4 access key id (20-30 of A-Z 2-7).
    #[arg(long, global = true, value_name = "ID")]
    pub access_key_id: Option<String>,
    /// SigV4 secret access key. Prefer the environment variable or a file.
    #[arg(
        long,
        global = true,
        env = "XKS_SECRET_ACCESS_KEY",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub secret_access_key: Option<String>,
    /// File holding the SigV4 secret access key.
    #[arg(long, global = true, value_name = "FILE")]
    pub secret_access_key_file: Option<PathBuf>,
    /// AWS region KMS calls from (the SigV4 region; default us-east-1).
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// PEM file of the CA(s) to trust for the proxy's certificate (default: system roots).
    #[arg(long, global = true, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain for mTLS (with --client-key).
    #[arg(long, global = true, value_name = "FILE", requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// PEM private key of the client certificate.
    #[arg(long, global = true, value_name = "FILE", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
    /// Connect to this address instead of resolving the endpoint's host (like curl
    /// --connect-to); the Host header, SigV4 and the TLS name stay the endpoint's.
    #[arg(long, global = true, value_name = "IP:PORT")]
    pub connect_to: Option<SocketAddr>,
    /// Timeout of one call to the proxy, connecting included (default 250ms, as KMS).
    #[arg(long, global = true, value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Option<Duration>,
    /// HTTP versions to offer: auto (h2 and http/1.1 by ALPN), http1, http2.
    #[arg(long, global = true, value_enum)]
    pub http: Option<HttpArg>,
    /// AWS account id of the key store (default 111122223333).
    #[arg(long, global = true, value_name = "ID")]
    pub account_id: Option<String>,
    /// awsPrincipalArn sent in requestMetadata (default arn:aws:iam::ACCOUNT:user/xks-mock-kms).
    #[arg(long, global = true, value_name = "ARN")]
    pub principal_arn: Option<String>,
    /// kmsViaService sent with Encrypt and Decrypt (e.g. ebs); absent by default.
    #[arg(long, global = true, value_name = "SERVICE")]
    pub via_service: Option<String>,
    /// File of the mock's internal AES-256 key (Base64), created if missing
    /// (default ~/.xks-mock-kms/internal-key).
    #[arg(long, global = true, value_name = "FILE")]
    pub internal_key_file: Option<PathBuf>,
    /// The internal key itself, Base64 of 32 bytes (overrides the file).
    #[arg(
        long,
        global = true,
        env = "XKS_MOCK_KMS_INTERNAL_KEY",
        hide_env_values = true,
        value_name = "BASE64"
    )]
    pub internal_key: Option<String>,
    /// Print results as JSON (KMS API field names) on standard output.
    #[arg(long, global = true)]
    pub json: bool,
}

/// `--http`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HttpArg {
    /// Offer h2 and http/1.1.
    Auto,
    /// HTTP/1.1 only.
    Http1,
    /// HTTP/2 only.
    Http2,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// CreateCustomKeyStore: check the settings' formats, the TLS handshake (reported),
    /// then GetHealthStatus, checking every field of the answer.
    CreateKeyStore {
        /// CustomKeyStoreName.
        #[arg(long, default_value = "xks-mock")]
        name: String,
    },
    /// ConnectCustomKeyStore: the same checks; reports CONNECTED or FAILED with the
    /// ConnectionErrorCode.
    Connect,
    /// CreateKey in the external key store: GetKeyMetadata, accepted only for AES_256,
    /// ENCRYPT and DECRYPT, ENABLED.
    CreateKey {
        /// The external key id (XksKeyId).
        #[arg(long)]
        xks_key_id: String,
    },
    /// Encrypt: internal layer, then XKS Encrypt (CDIV requested and checked).
    Encrypt {
        /// The external key id of the KMS key.
        #[arg(long)]
        xks_key_id: String,
        /// The plaintext.
        #[command(flatten)]
        plaintext: PlaintextArgs,
        /// Encryption context pair NAME=VALUE (repeatable).
        #[arg(long = "encryption-context", value_parser = parse_pair, value_name = "NAME=VALUE")]
        context: Vec<(String, String)>,
    },
    /// Decrypt a ciphertext blob: XKS Decrypt, then the internal layer.
    Decrypt {
        /// The ciphertext blob (Base64), or @FILE to read it from a file.
        #[arg(long, value_name = "BASE64|@FILE")]
        ciphertext_blob: String,
        /// Encryption context pair used at encryption (repeatable).
        #[arg(long = "encryption-context", value_parser = parse_pair, value_name = "NAME=VALUE")]
        context: Vec<(String, String)>,
        /// Fail with IncorrectKeyException unless the blob is for this external key id.
        #[arg(long)]
        xks_key_id: Option<String>,
    },
    /// GenerateDataKey: a random data key, returned in plaintext and encrypted.
    GenerateDataKey {
        /// The external key id of the KMS key.
        #[arg(long)]
        xks_key_id: String,
        /// Data key length in bytes (1-1024).
        #[arg(long, default_value_t = 32)]
        number_of_bytes: usize,
        /// GenerateDataKeyWithoutPlaintext: return only the encrypted data key.
        #[arg(long)]
        without_plaintext: bool,
        /// Encryption context pair NAME=VALUE (repeatable).
        #[arg(long = "encryption-context", value_parser = parse_pair, value_name = "NAME=VALUE")]
        context: Vec<(String, String)>,
    },
    /// ReEncrypt: decrypt a ciphertext blob and encrypt it under another external key.
    ReEncrypt {
        /// The ciphertext blob (Base64), or @FILE.
        #[arg(long, value_name = "BASE64|@FILE")]
        ciphertext_blob: String,
        /// Encryption context of the source ciphertext (repeatable).
        #[arg(long = "source-encryption-context", value_parser = parse_pair, value_name = "NAME=VALUE")]
        source_context: Vec<(String, String)>,
        /// The destination external key id.
        #[arg(long)]
        destination_xks_key_id: String,
        /// Encryption context of the new ciphertext (repeatable).
        #[arg(long = "destination-encryption-context", value_parser = parse_pair, value_name = "NAME=VALUE")]
        destination_context: Vec<(String, String)>,
    },
    /// KMS's periodic health check: GetHealthStatus with kmsOperation KmsHealthCheck.
    HealthPoll {
        /// Number of polls.
        #[arg(long, default_value_t = 1)]
        count: u32,
        /// Time between polls (KMS: every few minutes).
        #[arg(long, value_parser = parse_duration, default_value = "60s")]
        interval: Duration,
    },
    /// Load generator: closed loop (fixed concurrency) or open loop (fixed rate).
    Bench(BenchArgs),
}

/// The plaintext of `encrypt`: exactly one source.
#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false)]
pub struct PlaintextArgs {
    /// Plaintext as UTF-8 text.
    #[arg(long)]
    pub plaintext: Option<String>,
    /// Plaintext as Base64.
    #[arg(long)]
    pub plaintext_base64: Option<String>,
    /// Plaintext read from a file.
    #[arg(long, value_name = "FILE")]
    pub plaintext_file: Option<PathBuf>,
}

/// `bench` options.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// closed: `--concurrency` requests always in flight; open: `--rate` requests per
    /// second sent on schedule whatever the latency.
    #[arg(long, value_enum, default_value_t = LoadMode::Closed)]
    pub mode: LoadMode,
    /// Closed loop: requests in flight.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Open loop: requests per second (KMS's default quota per key store is 1800).
    #[arg(long, default_value_t = 1800.0)]
    pub rate: f64,
    /// Open loop: at most this many requests in flight; later ones are counted as
    /// dropped instead of sent.
    #[arg(long, default_value_t = 2000)]
    pub max_in_flight: usize,
    /// Stop after this long.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub duration: Duration,
    /// Stop after this many requests (default 10,000,000).
    #[arg(long)]
    pub requests: Option<u64>,
    /// Operation mix: weights of encrypt, decrypt, metadata and health,
    /// e.g. encrypt=8,decrypt=2.
    #[arg(long, default_value = "encrypt=1")]
    pub mix: String,
    /// Encrypt plaintext size in bytes.
    #[arg(long, default_value_t = 32)]
    pub plaintext_size: usize,
    /// AAD size in bytes (0: no AAD).
    #[arg(long, default_value_t = 64)]
    pub aad_size: usize,
    /// External key id to use (repeatable; requests rotate over them).
    #[arg(long = "xks-key-id", required = true)]
    pub keys: Vec<String>,
    /// Do not request the ciphertext data integrity value (KMS always does).
    #[arg(long)]
    pub no_cdiv: bool,
    /// Also report this process's CPU time per request (the proxy's pid).
    #[arg(long, value_name = "PID")]
    pub proxy_pid: Option<u32>,
    /// No live progress line on standard error.
    #[arg(long)]
    pub quiet: bool,
}

/// `--mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LoadMode {
    /// Fixed concurrency.
    Closed,
    /// Fixed request rate.
    Open,
}

/// Parses `250ms`, `2s`, `1.5s`, `1m`, `100us`.
///
/// # Errors
///
/// Not a number followed by one of `us`, `ms`, `s`, `m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 250ms, 2s or 1m"))?;
    let seconds = match unit.trim() {
        "us" | "µs" => value / 1e6,
        "ms" => value / 1e3,
        "s" | "" => value,
        "m" | "min" => value * 60.0,
        other => {
            return Err(format!(
                "unknown duration unit {other:?} (use us, ms, s or m)"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{text:?}: {e}"))
}

/// Parses `NAME=VALUE`.
///
/// # Errors
///
/// No `=`.
pub fn parse_pair(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{text:?} is not NAME=VALUE"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("100us"), Ok(Duration::from_micros(100)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("3h").is_err());
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }
}
