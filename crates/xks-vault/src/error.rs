//! The one error type of this crate, and the context it carries.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use http::Method;

/// An error from connecting to Vault, checking the setup, or an operator
/// operation.
///
/// Variants say what went wrong in terms an operator can act on; the cause, if
/// any, is in the [`source`](StdError::source) chain and never repeated in
/// `Display`. No variant carries a token, a secret id or key material.
///
/// The errors of the [`KeyManager`](xks_keymanager::KeyManager) calls are
/// [`KeyManagerError`](xks_keymanager::KeyManagerError)s, with a
/// [`VaultError`] in their source chain when Vault answered or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid.
    #[error("invalid vault backend configuration")]
    Config(#[source] ConfigError),

    /// A token, role id or secret id could not be read.
    #[error("cannot read a vault credential")]
    Secret(#[source] SecretError),

    /// The TLS setup (CA file, client certificate or key) is unusable.
    #[error("cannot set up TLS to the vault nodes")]
    Tls(#[source] TlsError),

    /// Vault refused the credentials, or login failed.
    #[error("vault authentication failed")]
    Auth(#[source] VaultError),

    /// A call to Vault failed: no node answered, an unexpected status, or an
    /// answer that could not be read.
    #[error("vault request failed")]
    Request(#[source] VaultError),

    /// Encrypting with a missing key would silently create it (Transit's
    /// "upsert"): the mount does not set `disable_upsert` and the token may
    /// create keys.
    #[error(
        "encrypt on the transit mount `{mount}` would create missing keys; set `disable_upsert` on the mount (`{mount}/config/keys`) or use a token that cannot create keys"
    )]
    #[non_exhaustive]
    UpsertEnabled {
        /// The Transit mount path.
        mount: String,
    },

    /// A Transit key the configuration names does not exist.
    #[error("the transit key `{name}` does not exist")]
    #[non_exhaustive]
    KeyNotFound {
        /// The Transit key name.
        name: String,
    },

    /// The Transit key to create already exists.
    #[error("the transit key `{name}` already exists")]
    #[non_exhaustive]
    KeyExists {
        /// The Transit key name.
        name: String,
    },

    /// A Transit key is not an `aes256-gcm96` key.
    #[error("the transit key `{name}` has type `{found}`, not aes256-gcm96")]
    #[non_exhaustive]
    WrongKeyType {
        /// The Transit key name.
        name: String,
        /// Its type.
        found: String,
    },

    /// The external key id has no `[[backend.keys]]` entry and unlisted keys
    /// are not allowed.
    #[error("the external key id `{id}` is not configured")]
    #[non_exhaustive]
    KeyNotConfigured {
        /// The external key id.
        id: String,
    },

    /// The health check canary key does not exist and could not be created.
    #[error(
        "the health check canary key `{name}` does not exist and could not be created; create it as an aes256-gcm96 transit key"
    )]
    #[non_exhaustive]
    CanaryMissing {
        /// The Transit key name.
        name: String,
    },

    /// The external key id names the health check canary key, which is not
    /// reachable through KMS.
    #[error("the external key id `{id}` maps to the health check canary key")]
    #[non_exhaustive]
    ReservedKey {
        /// The external key id.
        id: String,
    },
}

/// Why the configuration is invalid.
#[derive(Debug)]
pub struct ConfigError {
    what: String,
}

/// Why a credential could not be read.
#[derive(Debug)]
pub struct SecretError {
    what: &'static str,
    problem: SecretProblem,
    source: Option<io::Error>,
}

#[derive(Debug)]
enum SecretProblem {
    MissingVar(String),
    NotUnicode,
    File(PathBuf),
    Empty,
}

/// Why the TLS setup is unusable.
#[derive(Debug)]
pub struct TlsError {
    what: String,
    source: Option<Box<dyn StdError + Send + Sync + 'static>>,
}

/// A failed call to Vault: the method, path and node, and what happened (no
/// answer in time, a transport failure, or an HTTP status with Vault's error
/// messages).
#[derive(Clone, Debug)]
pub struct VaultError {
    method: Method,
    path: String,
    node: Option<String>,
    kind: VaultErrorKind,
}

#[derive(Clone, Debug)]
pub(crate) enum VaultErrorKind {
    /// No connection could be made: the request never left.
    Connect(Arc<dyn StdError + Send + Sync + 'static>),
    /// The connection failed mid-request.
    Transport(Arc<dyn StdError + Send + Sync + 'static>),
    /// The time budget ran out.
    Timeout,
    /// Vault answered with an error status.
    Status { status: u16, messages: Vec<String> },
    /// Vault's answer could not be understood.
    Decode(&'static str),
}

// === impl ConfigError ===

impl ConfigError {
    pub(crate) fn new(what: impl Into<String>) -> Self {
        Self { what: what.into() }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.what)
    }
}

impl StdError for ConfigError {}

// === impl SecretError ===

impl SecretError {
    pub(crate) fn missing_var(what: &'static str, name: &str) -> Self {
        Self {
            what,
            problem: SecretProblem::MissingVar(name.to_owned()),
            source: None,
        }
    }

    pub(crate) fn not_unicode(what: &'static str) -> Self {
        Self {
            what,
            problem: SecretProblem::NotUnicode,
            source: None,
        }
    }

    pub(crate) fn file(what: &'static str, path: &Path, source: io::Error) -> Self {
        Self {
            what,
            problem: SecretProblem::File(path.to_owned()),
            source: Some(source),
        }
    }

    pub(crate) fn empty(what: &'static str) -> Self {
        Self {
            what,
            problem: SecretProblem::Empty,
            source: None,
        }
    }
}

impl fmt::Display for SecretError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = self.what;
        match &self.problem {
            SecretProblem::MissingVar(name) => {
                write!(f, "the {what} variable `{name}` is not set")
            }
            SecretProblem::NotUnicode => write!(f, "the {what} is not valid Unicode"),
            SecretProblem::File(path) => {
                write!(f, "cannot read the {what} file `{}`", path.display())
            }
            SecretProblem::Empty => write!(f, "the {what} is empty"),
        }
    }
}

impl StdError for SecretError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match &self.source {
            Some(source) => Some(source),
            None => None,
        }
    }
}

impl From<SecretError> for Error {
    fn from(e: SecretError) -> Self {
        Self::Secret(e)
    }
}

// === impl TlsError ===

impl TlsError {
    pub(crate) fn new(
        what: impl Into<String>,
        source: Option<Box<dyn StdError + Send + Sync + 'static>>,
    ) -> Self {
        Self {
            what: what.into(),
            source,
        }
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.what)
    }
}

impl StdError for TlsError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match &self.source {
            Some(source) => Some(&**source),
            None => None,
        }
    }
}

// === impl VaultError ===

impl VaultError {
    pub(crate) fn new(
        method: Method,
        path: &str,
        node: Option<&str>,
        kind: VaultErrorKind,
    ) -> Self {
        Self {
            method,
            path: path.to_owned(),
            node: node.map(str::to_owned),
            kind,
        }
    }

    /// The HTTP status Vault answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        match &self.kind {
            VaultErrorKind::Status { status, .. } => Some(*status),
            VaultErrorKind::Connect(_)
            | VaultErrorKind::Transport(_)
            | VaultErrorKind::Timeout
            | VaultErrorKind::Decode(_) => None,
        }
    }

    /// Vault's error messages (its `errors` array), if it answered with any.
    pub fn messages(&self) -> &[String] {
        match &self.kind {
            VaultErrorKind::Status { messages, .. } => messages,
            VaultErrorKind::Connect(_)
            | VaultErrorKind::Transport(_)
            | VaultErrorKind::Timeout
            | VaultErrorKind::Decode(_) => &[],
        }
    }

    /// Whether the call ran out of time.
    pub fn is_timeout(&self) -> bool {
        matches!(self.kind, VaultErrorKind::Timeout)
    }

    /// Whether no answer came: no connection, or it failed mid-request.
    pub fn is_transport(&self) -> bool {
        matches!(
            self.kind,
            VaultErrorKind::Connect(_) | VaultErrorKind::Transport(_)
        )
    }

    /// Whether no connection could be made, so the request never left.
    pub fn is_connect(&self) -> bool {
        matches!(self.kind, VaultErrorKind::Connect(_))
    }

    /// The API path called, below `/v1/`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The node address the failure comes from, if one node is to blame.
    pub fn node(&self) -> Option<&str> {
        self.node.as_deref()
    }

    pub(crate) fn kind(&self) -> &VaultErrorKind {
        &self.kind
    }
}

impl fmt::Display for VaultError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} /v1/{}", self.method, self.path)?;
        if let Some(node) = &self.node {
            write!(f, " on {node}")?;
        }
        match &self.kind {
            VaultErrorKind::Connect(_) => f.write_str(": cannot connect"),
            VaultErrorKind::Transport(_) => f.write_str(": the connection failed"),
            VaultErrorKind::Timeout => f.write_str(": no answer in time"),
            VaultErrorKind::Status { status, messages } => {
                write!(f, ": HTTP {status}")?;
                for (i, m) in messages.iter().enumerate() {
                    f.write_str(if i == 0 { ": " } else { "; " })?;
                    // Vault's messages are free text: keep them on one line.
                    f.write_str(&m.split_whitespace().collect::<Vec<_>>().join(" "))?;
                }
                Ok(())
            }
            VaultErrorKind::Decode(what) => write!(f, ": {what}"),
        }
    }
}

impl StdError for VaultError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match &self.kind {
            VaultErrorKind::Connect(source) | VaultErrorKind::Transport(source) => Some(&**source),
            VaultErrorKind::Timeout | VaultErrorKind::Status { .. } | VaultErrorKind::Decode(_) => {
                None
            }
        }
    }
}
