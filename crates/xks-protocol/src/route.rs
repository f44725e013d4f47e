//! Parsing `[/prefix]/kms/xks/v1/{health | keys/<externalKeyId>/{metadata,encrypt,decrypt}}`.

use std::fmt;

use crate::{ErrorName, KeyId, XksError, key_id::KeyIdReason};

/// A parsed XKS API path: the path prefix and the operation.
///
/// [`Route::parse`] borrows the prefix from the path and stores the key id inline, so it never
/// allocates. `Display` writes the path back, so clients can build paths with [`Route::new`].
///
/// **Conformance** (fact sheet §1.2, checklist items 12–16, 65, 66): every path that is not an
/// XKS API path is an error that maps to `InvalidUriPathException` (404). That covers unknown
/// versions and operations, missing or extra segments, a trailing slash, empty segments,
/// percent-encoding anywhere, prefix characters outside `a-z A-Z 0-9 / - _`, and key ids that are
/// too long or have illegal characters (for those, the spec also tolerates
/// `KeyNotFoundException`; this crate answers `InvalidUriPathException`).
///
/// The spec caps the whole URI, scheme and host included, at 256 characters, which a router
/// cannot see. This crate enforces the parts it can: `<prefix>/kms/xks/v1` at most 128
/// characters (the `XksProxyUriPath` limit) and key ids at most 128, so a path longer than
/// [`Route::MAX_PATH_LEN`] is rejected before any other check. A path of 257 to 271 characters
/// made of valid parts is accepted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Route<'a> {
    prefix: &'a str,
    operation: Operation,
}

/// An XKS API operation, with the key id it names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `POST …/kms/xks/v1/health`: GetHealthStatus.
    Health,
    /// `POST …/kms/xks/v1/keys/<id>/metadata`: GetKeyMetadata.
    Metadata(KeyId),
    /// `POST …/kms/xks/v1/keys/<id>/encrypt`: Encrypt.
    Encrypt(KeyId),
    /// `POST …/kms/xks/v1/keys/<id>/decrypt`: Decrypt.
    Decrypt(KeyId),
}

/// The four XKS APIs, without key ids: for metrics labels, logs and per-operation rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OperationKind {
    /// GetHealthStatus.
    Health,
    /// GetKeyMetadata.
    GetKeyMetadata,
    /// Encrypt.
    Encrypt,
    /// Decrypt.
    Decrypt,
}

/// Why a path is not an XKS API path. It maps to `InvalidUriPathException` (404).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RouteError(RouteReason);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
enum RouteReason {
    #[error("the path is longer than any XKS API path can be")]
    TooLong,
    #[error("the path must not be percent-encoded")]
    PercentEncoded,
    #[error(
        "the path is not [/<prefix>]/kms/xks/v1/health or \
         [/<prefix>]/kms/xks/v1/keys/<externalKeyId>/{{metadata,encrypt,decrypt}}"
    )]
    NotApiPath,
    #[error("the operation segment is not metadata, encrypt or decrypt")]
    UnknownOperation,
    #[error(
        "the path prefix must start with '/', have no empty segments, use only \
         a-z A-Z 0-9 / - _, and with /kms/xks/v1 be at most 128 characters"
    )]
    BadPrefix,
    #[error("{0}")]
    KeyId(KeyIdReason),
}

/// The fixed part between the prefix and the operation.
const API_ROOT: &str = "/kms/xks/v1";

/// The longest `XksProxyUriPath`, that is `<prefix>/kms/xks/v1` (fact sheet §1.2).
const MAX_URI_PATH_LEN: usize = 128;

// === impl Route ===

impl<'a> Route<'a> {
    /// The longest path that can be valid: a 128-character `XksProxyUriPath`, then
    /// `/keys/`, a 128-character key id and `/metadata`.
    pub const MAX_PATH_LEN: usize =
        MAX_URI_PATH_LEN + "/keys/".len() + KeyId::MAX_LEN + "/metadata".len();

    /// A route for a client to format with `Display`.
    ///
    /// # Errors
    ///
    /// `prefix` is neither empty nor a valid path prefix such as `/tenant-1`.
    pub fn new(prefix: &'a str, operation: Operation) -> Result<Self, RouteError> {
        check_prefix(prefix)?;
        Ok(Self { prefix, operation })
    }

    /// Parses the path component of a request URI (no scheme, host or query).
    ///
    /// # Errors
    ///
    /// The path is not an XKS API path; see the type's documentation.
    pub fn parse(path: &'a str) -> Result<Self, RouteError> {
        if path.len() > Self::MAX_PATH_LEN {
            return Err(RouteError(RouteReason::TooLong));
        }
        if path.contains('%') {
            return Err(RouteError(RouteReason::PercentEncoded));
        }
        let not_api = RouteError(RouteReason::NotApiPath);
        let (rest, last) = path.rsplit_once('/').ok_or(not_api)?;
        let (root, operation) = if last == "health" {
            (rest, Operation::Health)
        } else {
            let (rest, key_id) = rest.rsplit_once('/').ok_or(not_api)?;
            let (root, keys) = rest.rsplit_once('/').ok_or(not_api)?;
            if keys != "keys" || !root.ends_with(API_ROOT) {
                return Err(not_api);
            }
            let make: fn(KeyId) -> Operation = match last {
                "metadata" => Operation::Metadata,
                "encrypt" => Operation::Encrypt,
                "decrypt" => Operation::Decrypt,
                _ => return Err(RouteError(RouteReason::UnknownOperation)),
            };
            let key_id = KeyId::parse(key_id).map_err(|e| RouteError(RouteReason::KeyId(e)))?;
            (root, make(key_id))
        };
        let prefix = root.strip_suffix(API_ROOT).ok_or(not_api)?;
        check_prefix(prefix)?;
        Ok(Self { prefix, operation })
    }

    /// The path prefix: `""`, or for example `"/tenant-1"` or `"/a/b"`.
    pub const fn prefix(&self) -> &'a str {
        self.prefix
    }

    /// The operation.
    pub const fn operation(&self) -> &Operation {
        &self.operation
    }

    /// The operation, by value.
    pub fn into_operation(self) -> Operation {
        self.operation
    }
}

/// Empty, or `/seg[/seg…]` of `a-z A-Z 0-9 - _` that fits in an `XksProxyUriPath`.
fn check_prefix(prefix: &str) -> Result<(), RouteError> {
    let valid = prefix.is_empty()
        || (prefix.len() + API_ROOT.len() <= MAX_URI_PATH_LEN
            && prefix.strip_prefix('/').is_some_and(|segments| {
                segments.split('/').all(|segment| {
                    !segment.is_empty()
                        && segment
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
                })
            }));
    if valid {
        Ok(())
    } else {
        Err(RouteError(RouteReason::BadPrefix))
    }
}

impl fmt::Display for Route<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (prefix, root) = (self.prefix, API_ROOT);
        match &self.operation {
            Operation::Health => write!(f, "{prefix}{root}/health"),
            Operation::Metadata(id) => write!(f, "{prefix}{root}/keys/{id}/metadata"),
            Operation::Encrypt(id) => write!(f, "{prefix}{root}/keys/{id}/encrypt"),
            Operation::Decrypt(id) => write!(f, "{prefix}{root}/keys/{id}/decrypt"),
        }
    }
}

// === impl Operation ===

impl Operation {
    /// Which of the four APIs this is.
    pub const fn kind(&self) -> OperationKind {
        match self {
            Self::Health => OperationKind::Health,
            Self::Metadata(_) => OperationKind::GetKeyMetadata,
            Self::Encrypt(_) => OperationKind::Encrypt,
            Self::Decrypt(_) => OperationKind::Decrypt,
        }
    }

    /// The key id, for every operation but health.
    pub const fn key_id(&self) -> Option<&KeyId> {
        match self {
            Self::Health => None,
            Self::Metadata(id) | Self::Encrypt(id) | Self::Decrypt(id) => Some(id),
        }
    }
}

// === impl OperationKind ===

impl OperationKind {
    /// All four, in the order of the spec's API list.
    pub const ALL: [Self; 4] = [
        Self::GetKeyMetadata,
        Self::Encrypt,
        Self::Decrypt,
        Self::Health,
    ];

    /// The API name: `GetHealthStatus`, `GetKeyMetadata`, `Encrypt` or `Decrypt`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Health => "GetHealthStatus",
            Self::GetKeyMetadata => "GetKeyMetadata",
            Self::Encrypt => "Encrypt",
            Self::Decrypt => "Decrypt",
        }
    }
}

impl fmt::Display for OperationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// === impl RouteError ===

impl From<RouteError> for XksError {
    fn from(error: RouteError) -> Self {
        Self::with_message(ErrorName::InvalidUriPathException, error.to_string())
    }
}

#[cfg(test)]
mod tests;
