//! Backend errors: what went wrong, who is at fault, and the XKS error name.

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;

use xks_protocol::ErrorName;

/// What went wrong in a key manager call, from the caller's point of view.
///
/// Each kind says who is at fault: the caller (`InvalidCiphertext`, `Unsupported`),
/// the key's state or configuration (`KeyNotFound`, `KeyDisabled`, `KeyUsage`), a
/// dependency (`Unavailable`, `Timeout`, `Throttled`), or the proxy itself
/// (`Internal`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The external key does not exist in the key manager.
    KeyNotFound,
    /// The key (or every version of it) is disabled in the key manager.
    KeyDisabled,
    /// The key does not allow the requested operation (encrypt or decrypt), or is
    /// not an AES-256 key.
    KeyUsage,
    /// The ciphertext, IV, tag, AAD or metadata does not authenticate: it was
    /// altered, belongs to another key, or was never produced by this proxy.
    InvalidCiphertext,
    /// The request asks for something this key manager cannot do (for example an
    /// IV length its hardware does not support, or AAD too long to length-prefix).
    Unsupported,
    /// The key manager refused or failed to answer (connection refused, sealed,
    /// no active node, device removed).
    Unavailable,
    /// The key manager did not answer within the deadline.
    Timeout,
    /// The key manager, or the proxy's pool in front of it, is saturated.
    Throttled,
    /// A failure inside the proxy or an unexpected answer from the key manager.
    Internal,
}

/// An error from a [`KeyManager`](crate::KeyManager) call.
///
/// It carries an [`ErrorKind`], a message for the operator's logs, and the
/// underlying cause in its source chain. Nothing in it is meant for the client:
/// the proxy answers with [`ErrorKind::error_name`] and
/// [`ErrorKind::client_message`] only.
pub struct KeyManagerError {
    kind: ErrorKind,
    detail: Cow<'static, str>,
    source: Option<Box<dyn StdError + Send + Sync + 'static>>,
}

/// Displays an error and its whole source chain on one line (`a: b: c`), for the
/// operator's logs. Nothing it prints is meant for clients.
#[derive(Clone, Copy, Debug)]
pub struct DisplayChain<'a>(pub &'a (dyn StdError + 'static));

// === impl DisplayChain ===

impl fmt::Display for DisplayChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}

// === impl ErrorKind ===

impl ErrorKind {
    /// The XKS error name answered for this kind. This is the one place where
    /// backend failures become XKS errors.
    ///
    /// **Conformance**: the choices follow the fact sheet's error table (§7.2) and
    /// condition guide (§7.3).
    pub const fn error_name(self) -> ErrorName {
        match self {
            Self::KeyNotFound => ErrorName::KeyNotFoundException,
            Self::KeyDisabled => ErrorName::InvalidStateException,
            Self::KeyUsage => ErrorName::InvalidKeyUsageException,
            Self::InvalidCiphertext => ErrorName::InvalidCiphertextException,
            Self::Unsupported => ErrorName::UnsupportedOperationException,
            Self::Unavailable | Self::Internal => ErrorName::InternalException,
            Self::Timeout => ErrorName::DependencyTimeoutException,
            Self::Throttled => ErrorName::ThrottlingException,
        }
    }

    /// A fixed, client-safe message for this kind: actionable for the key store's
    /// administrator, free of internals.
    pub const fn client_message(self) -> &'static str {
        match self {
            Self::KeyNotFound => "the external key does not exist in the external key manager",
            Self::KeyDisabled => {
                "the external key is disabled in the external key manager; enable it and retry"
            }
            Self::KeyUsage => "the external key does not allow this operation",
            Self::InvalidCiphertext => {
                "the ciphertext, IV, tag, additional authenticated data or ciphertext metadata is invalid"
            }
            Self::Unsupported => "the external key manager does not support this request",
            Self::Unavailable => "the external key manager is unavailable",
            Self::Timeout => "the external key manager did not answer in time",
            Self::Throttled => "the external key manager is saturated; retry later",
            Self::Internal => "internal error in the external key store proxy",
        }
    }

    /// Whether the same request may succeed if retried later.
    pub const fn is_retryable(self) -> bool {
        matches!(self, Self::Unavailable | Self::Timeout | Self::Throttled)
    }

    /// A stable name for logs and metrics labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::KeyNotFound => "key_not_found",
            Self::KeyDisabled => "key_disabled",
            Self::KeyUsage => "key_usage",
            Self::InvalidCiphertext => "invalid_ciphertext",
            Self::Unsupported => "unsupported",
            Self::Unavailable => "unavailable",
            Self::Timeout => "timeout",
            Self::Throttled => "throttled",
            Self::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// === impl KeyManagerError ===

impl KeyManagerError {
    /// An error of `kind` with a message for the operator's logs. The message must
    /// not contain plaintext, key material or secrets.
    pub fn new(kind: ErrorKind, detail: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kind,
            detail: detail.into(),
            source: None,
        }
    }

    /// Attaches the underlying cause (a PKCS#11 return value, an HTTP status...).
    #[must_use]
    pub fn with_source(mut self, source: impl StdError + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The XKS error name for this error.
    pub fn error_name(&self) -> ErrorName {
        self.kind.error_name()
    }
}

impl fmt::Debug for KeyManagerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyManagerError")
            .field("kind", &self.kind)
            .field("detail", &self.detail)
            .field("source", &self.source)
            .finish()
    }
}

impl fmt::Display for KeyManagerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.detail)
    }
}

impl StdError for KeyManagerError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match &self.source {
            Some(source) => Some(&**source),
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_chain_joins_every_source() {
        let io = std::io::Error::other("socket closed");
        let err = KeyManagerError::new(ErrorKind::Unavailable, "vault node 1").with_source(io);
        assert_eq!(
            DisplayChain(&err).to_string(),
            "unavailable: vault node 1: socket closed"
        );
    }

    #[test]
    fn display_does_not_repeat_the_source() {
        let io = std::io::Error::other("socket closed");
        let err = KeyManagerError::new(ErrorKind::Unavailable, "vault node 1").with_source(io);
        assert_eq!(err.to_string(), "unavailable: vault node 1");
        assert_eq!(err.source().unwrap().to_string(), "socket closed");
        assert_eq!(err.error_name(), ErrorName::InternalException);
    }

    #[test]
    fn client_messages_are_valid_error_messages() {
        for kind in [
            ErrorKind::KeyNotFound,
            ErrorKind::KeyDisabled,
            ErrorKind::KeyUsage,
            ErrorKind::InvalidCiphertext,
            ErrorKind::Unsupported,
            ErrorKind::Unavailable,
            ErrorKind::Timeout,
            ErrorKind::Throttled,
            ErrorKind::Internal,
        ] {
            let m = kind.client_message();
            assert!(m.len() < 512 && m.bytes().all(|b| (0x20..=0x7e).contains(&b)));
        }
    }
}
