//! The one error type of this crate.

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::path::PathBuf;

/// An error from configuring or opening the key manager, or from an operator
/// command ([`Pkcs11Admin`](crate::Pkcs11Admin)).
///
/// Variants say what went wrong in terms an operator can act on; the failed
/// PKCS#11 call (function and return value) is in the [`source`](StdError::source)
/// chain and never repeated in `Display`. No variant carries a PIN or key
/// material.
///
/// The errors of the [`KeyManager`](xks_keymanager::KeyManager) calls are
/// [`KeyManagerError`](xks_keymanager::KeyManagerError)s, not this type.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid.
    #[error("invalid PKCS#11 backend configuration")]
    Config(#[source] ConfigError),

    /// The PIN could not be read from its environment variable or file.
    #[error("cannot read the PKCS#11 user PIN")]
    Pin(#[source] PinError),

    /// The module could not be loaded or initialized.
    #[error("cannot load or initialize the PKCS#11 module `{}`", path.display())]
    #[non_exhaustive]
    Module {
        /// The module's path.
        path: PathBuf,
        /// The failed call.
        #[source]
        source: Pkcs11CallError,
    },

    /// No slot of the module holds the configured token.
    #[error("no slot of `{}` holds a token with {selector}", module.display())]
    #[non_exhaustive]
    TokenNotFound {
        /// The module's path.
        module: PathBuf,
        /// The token label or serial number looked for.
        selector: String,
    },

    /// A PKCS#11 call failed.
    #[error("PKCS#11 call failed while {what}")]
    #[non_exhaustive]
    Call {
        /// What was being done.
        what: &'static str,
        /// The failed call: function and return value.
        #[source]
        source: Pkcs11CallError,
    },

    /// No secret key with this label exists on the token.
    #[error("no key labelled `{label}` on the token")]
    #[non_exhaustive]
    KeyNotFound {
        /// The label looked for.
        label: String,
    },

    /// A key with this label already exists on the token.
    #[error("a key labelled `{label}` already exists on the token")]
    #[non_exhaustive]
    KeyExists {
        /// The label.
        label: String,
    },

    /// Several objects carry the same label, so the key is ambiguous.
    #[error("more than one secret key on the token is labelled `{label}`")]
    #[non_exhaustive]
    DuplicateLabel {
        /// The label.
        label: String,
    },

    /// The key's attributes forbid serving it: it is extractable or not
    /// sensitive and `allow_extractable_keys` is off, or it is not an AES key.
    #[error("refusing to serve the key labelled `{label}`: {reason}")]
    #[non_exhaustive]
    KeyRefused {
        /// The label.
        label: String,
        /// Why.
        reason: &'static str,
    },

    /// The key has the largest possible number of versions.
    #[error("the key labelled `{label}` cannot get another version")]
    #[non_exhaustive]
    TooManyVersions {
        /// The label.
        label: String,
    },

    /// No configured slot passed the startup check (log in, then encrypt and
    /// decrypt with the canary key); the source is the first slot's error.
    #[error("none of the configured PKCS#11 slots is usable; the first, {slot}, failed")]
    #[non_exhaustive]
    NoUsableSlot {
        /// The node id of the first slot that failed.
        slot: String,
        /// Why it failed.
        #[source]
        source: xks_keymanager::KeyManagerError,
    },

    /// A worker thread could not be started.
    #[error("cannot start a PKCS#11 worker thread")]
    Thread(#[source] io::Error),
}

/// What is wrong with the configuration.
#[derive(Debug)]
pub struct ConfigError {
    what: Cow<'static, str>,
}

/// Why the PIN could not be read.
#[derive(Debug)]
pub struct PinError {
    what: String,
    source: Option<io::Error>,
}

/// A failed PKCS#11 call: the function and its return value (`CKR_*`), or a
/// failure to load the module.
pub struct Pkcs11CallError {
    inner: cryptoki::error::Error,
}

// === impl Error ===

impl Error {
    pub(crate) fn config(what: impl Into<Cow<'static, str>>) -> Self {
        Self::Config(ConfigError { what: what.into() })
    }

    pub(crate) fn pin(what: String, source: Option<io::Error>) -> Self {
        Self::Pin(PinError { what, source })
    }

    pub(crate) fn call(what: &'static str, source: cryptoki::error::Error) -> Self {
        Self::Call {
            what,
            source: Pkcs11CallError::new(source),
        }
    }

    pub(crate) fn key_not_found(label: &str) -> Self {
        Self::KeyNotFound {
            label: label.to_owned(),
        }
    }
}

// === impl ConfigError ===

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.what)
    }
}

impl StdError for ConfigError {}

// === impl PinError ===

impl fmt::Display for PinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.what)
    }
}

impl StdError for PinError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match &self.source {
            Some(source) => Some(source),
            None => None,
        }
    }
}

// === impl Pkcs11CallError ===

impl Pkcs11CallError {
    pub(crate) fn new(inner: cryptoki::error::Error) -> Self {
        Self { inner }
    }

    /// The PKCS#11 return value's name (for example `CKR_GENERAL_ERROR`), if
    /// the call reached the module.
    pub fn return_value(&self) -> Option<String> {
        match &self.inner {
            cryptoki::error::Error::Pkcs11(rv, _) => Some(ckr_name(*rv)),
            _ => None,
        }
    }

    /// The PKCS#11 function's name (for example `Decrypt` for `C_Decrypt`), if
    /// the call reached the module.
    pub fn function(&self) -> Option<String> {
        match &self.inner {
            cryptoki::error::Error::Pkcs11(_, function) => Some(format!("{function:?}")),
            _ => None,
        }
    }
}

/// `CKR_GENERAL_ERROR` for `RvError::GeneralError`: the C name from the Rust one.
pub(crate) fn ckr_name(rv: cryptoki::error::RvError) -> String {
    let rust = format!("{rv:?}");
    let mut name = String::from("CKR");
    for c in rust.chars() {
        if c.is_ascii_uppercase() {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

impl fmt::Debug for Pkcs11CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.inner, f)
    }
}

impl fmt::Display for Pkcs11CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&CallDisplay(&self.inner), f)
    }
}

/// A borrowed cryptoki error shown as [`Pkcs11CallError`] shows it:
/// `C_<function> returned CKR_<value>`.
pub(crate) struct CallDisplay<'a>(pub(crate) &'a cryptoki::error::Error);

impl fmt::Display for CallDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            cryptoki::error::Error::Pkcs11(rv, function) => {
                write!(f, "C_{function:?} returned {}", ckr_name(*rv))
            }
            cryptoki::error::Error::LibraryLoading(_) => f.write_str("the library did not load"),
            other => fmt::Display::fmt(other, f),
        }
    }
}

impl StdError for Pkcs11CallError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner.source()
    }
}
