//! The one error type of this crate.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::SecretKind;

/// An error from opening, changing or reloading a key store.
///
/// Variants say what went wrong in terms an operator can act on; the underlying
/// cause, if any, is in the [`source`](StdError::source) chain and never repeated in
/// `Display`. No variant carries key material, a passphrase or the contents of a key
/// file.
///
/// The errors of the [`KeyManager`](xks_keymanager::KeyManager) calls are
/// [`KeyManagerError`](xks_keymanager::KeyManagerError)s, not this type.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read: the key store or the key file.
    #[error("cannot read `{}`", path.display())]
    #[non_exhaustive]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },

    /// The key store (or its temporary file or directory) could not be written.
    ///
    /// The key store on disk is unchanged, or already complete with the change:
    /// it is never left half-written.
    #[error("cannot write `{}`", path.display())]
    #[non_exhaustive]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },

    /// The lock file that serialises changes to the key store could not be taken.
    #[error("cannot lock `{}`", path.display())]
    #[non_exhaustive]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },

    /// [`KeyStore::create`](crate::KeyStore::create) found a file at the path.
    #[error("a file already exists at `{}`", path.display())]
    #[non_exhaustive]
    StoreExists {
        /// The path of the existing file.
        path: PathBuf,
    },

    /// The file is not a well-formed key store: not JSON, a field missing or out of
    /// range, truncated, or not a key store at all.
    #[error("the file is not a well-formed xks-soft key store")]
    Malformed(#[source] MalformedError),

    /// The key store was written in a format version this build cannot read.
    #[error(
        "the key store has format version {found}, this build reads version {}",
        crate::format::FORMAT_VERSION
    )]
    #[non_exhaustive]
    UnsupportedVersion {
        /// The version found in the file.
        found: u64,
    },

    /// Decryption of the key store failed: the passphrase or key file is not the
    /// one the store was written with, or the file was modified.
    ///
    /// AES-GCM cannot tell these apart, and on purpose neither does this error.
    #[error("wrong passphrase or key file, or the key store was modified")]
    WrongSecretOrTampered,

    /// The key store is protected by another kind of secret than the one given.
    #[error("the key store is unlocked with a {store}, not a {given}")]
    #[non_exhaustive]
    UnlockMismatch {
        /// The kind the key store was written with.
        store: SecretKind,
        /// The kind that was given.
        given: SecretKind,
    },

    /// No usable passphrase or key file was given.
    #[error("no usable passphrase or key file")]
    Unlock(#[source] UnlockError),

    /// Key derivation parameters out of range.
    #[error("invalid key derivation parameters")]
    KdfParams(#[source] KdfParamsError),

    /// No key with this id exists in the key store.
    #[error("no key `{id}` in the key store")]
    #[non_exhaustive]
    KeyNotFound {
        /// The key id asked for.
        id: String,
    },

    /// A key with this id already exists in the key store.
    #[error("a key `{id}` already exists in the key store")]
    #[non_exhaustive]
    KeyExists {
        /// The key id asked for.
        id: String,
    },

    /// The key id is reserved for the health check canary key, which operators
    /// cannot create or change.
    #[error(
        "the key id `{}` is reserved for the health check",
        crate::HEALTH_CANARY_KEY_ID
    )]
    ReservedKeyId,

    /// The key already has the largest possible number of versions.
    #[error("key `{id}` cannot be rotated any further")]
    #[non_exhaustive]
    TooManyVersions {
        /// The key id.
        id: String,
    },

    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed")]
    Random(#[source] RandomError),

    /// An unexpected failure inside this crate (a bug).
    #[error("internal error in the software key manager")]
    Internal(#[source] InternalError),
}

/// Why a file is not a well-formed key store.
#[derive(Debug)]
pub struct MalformedError {
    what: &'static str,
    source: Option<Box<dyn StdError + Send + Sync + 'static>>,
}

/// Why no usable passphrase or key file was given.
#[derive(Debug)]
pub struct UnlockError {
    what: UnlockProblem,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum UnlockProblem {
    NeitherVariableSet,
    BothVariablesSet,
    EmptyPassphrase,
    PassphraseNotUnicode,
    KeyFileTooShort,
    KeyFileTooLong,
}

/// Why key derivation parameters are out of range.
#[derive(Debug)]
pub struct KdfParamsError {
    what: &'static str,
}

/// A failure of the operating system's random number generator.
#[derive(Debug)]
pub struct RandomError {
    source: getrandom::Error,
}

/// An unexpected failure inside this crate.
#[derive(Debug)]
pub struct InternalError {
    what: &'static str,
}

// === impl Error ===

impl Error {
    pub(crate) fn malformed(what: &'static str) -> Self {
        Self::Malformed(MalformedError { what, source: None })
    }

    pub(crate) fn malformed_by(
        what: &'static str,
        source: impl StdError + Send + Sync + 'static,
    ) -> Self {
        Self::Malformed(MalformedError {
            what,
            source: Some(Box::new(source)),
        })
    }

    pub(crate) fn unlock(what: UnlockProblem) -> Self {
        Self::Unlock(UnlockError { what })
    }

    pub(crate) fn kdf_params(what: &'static str) -> Self {
        Self::KdfParams(KdfParamsError { what })
    }

    pub(crate) fn random(source: getrandom::Error) -> Self {
        Self::Random(RandomError { source })
    }

    pub(crate) fn internal(what: &'static str) -> Self {
        Self::Internal(InternalError { what })
    }

    pub(crate) fn read(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Read {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn write(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Write {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn key_not_found(id: &str) -> Self {
        Self::KeyNotFound { id: id.to_owned() }
    }
}

// === impl MalformedError ===

impl fmt::Display for MalformedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.what)
    }
}

impl StdError for MalformedError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match &self.source {
            Some(source) => Some(&**source),
            None => None,
        }
    }
}

// === impl UnlockError ===

impl fmt::Display for UnlockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::Unlock;
        match self.what {
            UnlockProblem::NeitherVariableSet => write!(
                f,
                "set one of {} or {}; neither is set",
                Unlock::PASSPHRASE_VAR,
                Unlock::KEY_FILE_VAR
            ),
            UnlockProblem::BothVariablesSet => write!(
                f,
                "set only one of {} or {}; both are set",
                Unlock::PASSPHRASE_VAR,
                Unlock::KEY_FILE_VAR
            ),
            UnlockProblem::EmptyPassphrase => f.write_str("the passphrase is empty"),
            UnlockProblem::PassphraseNotUnicode => {
                f.write_str("the passphrase is not valid Unicode")
            }
            UnlockProblem::KeyFileTooShort => write!(
                f,
                "the key file holds fewer than {} bytes (trailing whitespace excluded)",
                crate::secret::KEY_FILE_MIN_LEN
            ),
            UnlockProblem::KeyFileTooLong => write!(
                f,
                "the key file is larger than {} bytes",
                crate::secret::KEY_FILE_MAX_LEN
            ),
        }
    }
}

impl StdError for UnlockError {}

// === impl KdfParamsError ===

impl fmt::Display for KdfParamsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.what)
    }
}

impl StdError for KdfParamsError {}

// === impl RandomError ===

impl fmt::Display for RandomError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("getrandom failed")
    }
}

impl StdError for RandomError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.source)
    }
}

// === impl InternalError ===

impl fmt::Display for InternalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.what)
    }
}

impl StdError for InternalError {}
