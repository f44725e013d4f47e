//! The crate's errors: [`VerifyError`] for request authentication, [`CredentialError`] for
//! credential configuration and [`SignError`] for client-side signing.
//!
//! Each is an opaque struct with a `kind()` accessor returning a `#[non_exhaustive]` kind enum,
//! in the style of aws-sigv4's `SigningError`. `Display` never prints a secret, a signature or
//! a source error. Values that come from the request (an access key id, a region, a header
//! name) are sanitised before they are shown: only printable ASCII is kept and long values are
//! cut short, so a hostile header cannot inject control characters or flood a log line.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

/// Longest request-supplied value an error message repeats, in characters.
const MAX_ECHOED_CHARS: usize = 64;
/// Longest unsupported algorithm name an error message repeats: enough for any real SigV4
/// algorithm name, too short to hold a hex signature.
const MAX_ECHOED_ALGORITHM_CHARS: usize = 24;

/// A request failed SigV4 authentication.
///
/// **Conformance:** every kind maps to the XKS error `AuthenticationFailedException`
/// (HTTP 401), as the XKS proxy API spec prescribes for any authentication failure
/// (fact sheet §7.2 and §8.2). This crate does not produce the XKS error itself; the server
/// crate maps a `VerifyError` to it in its single error-mapping function. Use
/// [`kind()`](Self::kind) and [`VerifyErrorKind::as_str`] as a stable log field, and
/// `Display` for a human-readable reason in server-side logs. Never send the reason to the
/// client.
///
/// The message never contains the secret access key, the signature from the request, or the
/// signature the verifier computed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub struct VerifyError {
    kind: VerifyErrorKind,
    detail: Detail,
}

/// Why a request failed SigV4 authentication; see [`VerifyError::kind`].
///
/// All kinds map to the XKS `AuthenticationFailedException` (HTTP 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum VerifyErrorKind {
    /// The request has no `Authorization` header.
    MissingAuthorization,
    /// The `Authorization` header could not be parsed: a missing, duplicated or unknown
    /// component, a malformed `SignedHeaders` list or `Signature`, several `Authorization`
    /// headers, or bytes that are not visible ASCII.
    MalformedAuthorization,
    /// The algorithm is not `AWS4-HMAC-SHA256`.
    UnsupportedAlgorithm,
    /// The access key id in the credential scope is not in the credential store.
    UnknownAccessKeyId,
    /// The credential scope names a service other than `kms-xks-proxy`.
    WrongService,
    /// The credential scope names a region the [`RegionPolicy`](crate::RegionPolicy) rejects.
    RegionNotAllowed,
    /// The credential scope is not `<akid>/<yyyymmdd>/<region>/<service>/aws4_request`.
    MalformedScope,
    /// The request has no `X-Amz-Date` header.
    MissingDate,
    /// The `X-Amz-Date` header is not `YYYYMMDD'T'HHMMSS'Z'`, or appears more than once.
    MalformedDate,
    /// The credential scope date is not the day of `X-Amz-Date`.
    ScopeDateMismatch,
    /// `X-Amz-Date` is further from the server clock than the allowed skew.
    ClockSkew,
    /// `SignedHeaders` lacks `host` or `x-amz-date`.
    RequiredHeaderNotSigned,
    /// A header listed in `SignedHeaders` is not in the request.
    SignedHeaderMissing,
    /// The signature does not match the one computed from the request and the secret.
    SignatureMismatch,
}

/// A credential could not be accepted: the access key id or secret breaks KMS's format rules,
/// or a credential store was given two credentials with the same access key id.
///
/// The message never contains the secret access key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub struct CredentialError {
    kind: CredentialErrorKind,
    detail: CredentialDetail,
}

/// What was wrong with a credential; see [`CredentialError::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CredentialErrorKind {
    /// The access key id is not 20 to 30 characters of `A-Z` and `2-7`.
    InvalidAccessKeyId,
    /// The secret access key is not 43 to 64 characters of `A-Z a-z 0-9 + / =`.
    InvalidSecretAccessKey,
    /// Two credentials in one store share an access key id.
    DuplicateAccessKeyId,
}

/// A request could not be signed by [`Signer`](crate::Signer).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub struct SignError {
    kind: SignErrorKind,
    #[source]
    source: Option<Box<dyn StdError + Send + Sync + 'static>>,
}

/// Why signing failed; see [`SignError::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SignErrorKind {
    /// The region is empty or has characters other than `a-z`, `0-9` and `-`.
    InvalidRegion,
    /// The URL is not an absolute `http` or `https` URL with a host.
    InvalidUrl,
    /// The signer signs `content-type`, but the request has none.
    MissingContentType,
    /// A header value to sign is not visible ASCII.
    InvalidHeaderValue,
    /// The signing time is before 1970 or after 9999 (UTC).
    InvalidTime,
    /// The SigV4 signer rejected the request.
    Signing,
}

/// Context for a [`VerifyError`] message. Only static text and sanitised request values.
#[derive(Debug)]
enum Detail {
    None,
    Reason(&'static str),
    Value(Box<str>),
    Skew {
        seconds: u64,
        direction: SkewDirection,
        max_seconds: u64,
    },
}

/// Whether the request clock is ahead of or behind the server clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SkewDirection {
    Ahead,
    Behind,
}

/// Context for a [`CredentialError`] message. Never holds the secret.
#[derive(Debug)]
enum CredentialDetail {
    Length { actual: usize },
    Charset { position: Option<usize> },
    Duplicate(Box<str>),
}

// === impl VerifyError ===

impl VerifyError {
    /// Why authentication failed. Stable across releases; log it with
    /// [`VerifyErrorKind::as_str`].
    pub fn kind(&self) -> VerifyErrorKind {
        self.kind
    }

    pub(crate) fn new(kind: VerifyErrorKind) -> Self {
        Self {
            kind,
            detail: Detail::None,
        }
    }

    pub(crate) fn with_reason(kind: VerifyErrorKind, reason: &'static str) -> Self {
        Self {
            kind,
            detail: Detail::Reason(reason),
        }
    }

    /// Records a request-supplied value; it is sanitised before storage.
    pub(crate) fn with_value(kind: VerifyErrorKind, value: &str) -> Self {
        let max = match kind {
            VerifyErrorKind::UnsupportedAlgorithm => MAX_ECHOED_ALGORITHM_CHARS,
            _ => MAX_ECHOED_CHARS,
        };
        Self {
            kind,
            detail: Detail::Value(sanitize(value, max)),
        }
    }

    pub(crate) fn malformed_authorization(reason: &'static str) -> Self {
        Self::with_reason(VerifyErrorKind::MalformedAuthorization, reason)
    }

    pub(crate) fn malformed_scope(reason: &'static str) -> Self {
        Self::with_reason(VerifyErrorKind::MalformedScope, reason)
    }

    pub(crate) fn clock_skew(skew_seconds: u64, direction: SkewDirection, max: Duration) -> Self {
        Self {
            kind: VerifyErrorKind::ClockSkew,
            detail: Detail::Skew {
                seconds: skew_seconds,
                direction,
                max_seconds: max.as_secs(),
            },
        }
    }
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use VerifyErrorKind as K;
        match (&self.kind, &self.detail) {
            (K::MissingAuthorization, _) => f.write_str("the request has no Authorization header"),
            (K::MalformedAuthorization, Detail::Reason(reason)) => {
                write!(f, "malformed Authorization header: {reason}")
            }
            (K::MalformedAuthorization, _) => f.write_str("malformed Authorization header"),
            (K::UnsupportedAlgorithm, Detail::Value(value)) => write!(
                f,
                "unsupported signing algorithm \"{value}\", expected \"{}\"",
                crate::ALGORITHM
            ),
            (K::UnsupportedAlgorithm, _) => write!(
                f,
                "unsupported signing algorithm, expected \"{}\"",
                crate::ALGORITHM
            ),
            (K::UnknownAccessKeyId, Detail::Value(value)) => {
                write!(f, "unknown access key id \"{value}\"")
            }
            (K::UnknownAccessKeyId, _) => f.write_str("unknown access key id"),
            (K::WrongService, Detail::Value(value)) => write!(
                f,
                "the credential scope names service \"{value}\", expected \"{}\"",
                crate::SERVICE
            ),
            (K::WrongService, _) => write!(
                f,
                "the credential scope does not name service \"{}\"",
                crate::SERVICE
            ),
            (K::RegionNotAllowed, Detail::Value(value)) => {
                write!(f, "the credential scope region \"{value}\" is not allowed")
            }
            (K::RegionNotAllowed, _) => f.write_str("the credential scope region is not allowed"),
            (K::MalformedScope, Detail::Reason(reason)) => {
                write!(f, "malformed credential scope: {reason}")
            }
            (K::MalformedScope, _) => f.write_str("malformed credential scope"),
            (K::MissingDate, _) => f.write_str("the request has no X-Amz-Date header"),
            (K::MalformedDate, Detail::Reason(reason)) => {
                write!(f, "malformed X-Amz-Date header: {reason}")
            }
            (K::MalformedDate, _) => f.write_str("malformed X-Amz-Date header"),
            (K::ScopeDateMismatch, _) => {
                f.write_str("the credential scope date is not the day of the X-Amz-Date header")
            }
            (
                K::ClockSkew,
                Detail::Skew {
                    seconds,
                    direction,
                    max_seconds,
                },
            ) => {
                let direction = match direction {
                    SkewDirection::Ahead => "ahead of",
                    SkewDirection::Behind => "behind",
                };
                write!(
                    f,
                    "X-Amz-Date is {seconds}s {direction} the server clock, more than the {max_seconds}s allowed"
                )
            }
            (K::ClockSkew, _) => f.write_str("X-Amz-Date is too far from the server clock"),
            (K::RequiredHeaderNotSigned, Detail::Value(value)) => {
                write!(
                    f,
                    "SignedHeaders does not include the required header \"{value}\""
                )
            }
            (K::RequiredHeaderNotSigned, _) => f.write_str("SignedHeaders lacks a required header"),
            (K::SignedHeaderMissing, Detail::Value(value)) => {
                write!(f, "the signed header \"{value}\" is not in the request")
            }
            (K::SignedHeaderMissing, _) => f.write_str("a signed header is not in the request"),
            (K::SignatureMismatch, _) => f.write_str("the signature does not match"),
        }
    }
}

// === impl VerifyErrorKind ===

impl VerifyErrorKind {
    /// A stable `snake_case` name for log fields and metric labels, e.g.
    /// `"signature_mismatch"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MissingAuthorization => "missing_authorization",
            Self::MalformedAuthorization => "malformed_authorization",
            Self::UnsupportedAlgorithm => "unsupported_algorithm",
            Self::UnknownAccessKeyId => "unknown_access_key_id",
            Self::WrongService => "wrong_service",
            Self::RegionNotAllowed => "region_not_allowed",
            Self::MalformedScope => "malformed_scope",
            Self::MissingDate => "missing_date",
            Self::MalformedDate => "malformed_date",
            Self::ScopeDateMismatch => "scope_date_mismatch",
            Self::ClockSkew => "clock_skew",
            Self::RequiredHeaderNotSigned => "required_header_not_signed",
            Self::SignedHeaderMissing => "signed_header_missing",
            Self::SignatureMismatch => "signature_mismatch",
        }
    }

    /// Every kind, in declaration order. Useful to pre-register metric label values.
    pub const ALL: &'static [Self] = &[
        Self::MissingAuthorization,
        Self::MalformedAuthorization,
        Self::UnsupportedAlgorithm,
        Self::UnknownAccessKeyId,
        Self::WrongService,
        Self::RegionNotAllowed,
        Self::MalformedScope,
        Self::MissingDate,
        Self::MalformedDate,
        Self::ScopeDateMismatch,
        Self::ClockSkew,
        Self::RequiredHeaderNotSigned,
        Self::SignedHeaderMissing,
        Self::SignatureMismatch,
    ];
}

impl fmt::Display for VerifyErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// === impl CredentialError ===

impl CredentialError {
    /// What was wrong.
    pub fn kind(&self) -> CredentialErrorKind {
        self.kind
    }

    pub(crate) fn length(kind: CredentialErrorKind, actual: usize) -> Self {
        Self {
            kind,
            detail: CredentialDetail::Length { actual },
        }
    }

    /// `position` is the 1-based character position; pass `None` for secrets.
    pub(crate) fn charset(kind: CredentialErrorKind, position: Option<usize>) -> Self {
        Self {
            kind,
            detail: CredentialDetail::Charset { position },
        }
    }

    pub(crate) fn duplicate(access_key_id: &str) -> Self {
        Self {
            kind: CredentialErrorKind::DuplicateAccessKeyId,
            detail: CredentialDetail::Duplicate(sanitize(access_key_id, MAX_ECHOED_CHARS)),
        }
    }
}

impl fmt::Display for CredentialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use CredentialErrorKind as K;
        match (&self.kind, &self.detail) {
            (K::InvalidAccessKeyId, CredentialDetail::Length { actual }) => write!(
                f,
                "invalid access key id: it must be 20 to 30 characters long, not {actual}"
            ),
            (K::InvalidAccessKeyId, CredentialDetail::Charset { position: Some(p) }) => write!(
                f,
                "invalid access key id: only A-Z and 2-7 are allowed, character {p} is not one of them"
            ),
            (K::InvalidAccessKeyId, _) => {
                f.write_str("invalid access key id: only A-Z and 2-7 are allowed")
            }
            (K::InvalidSecretAccessKey, CredentialDetail::Length { actual }) => write!(
                f,
                "invalid secret access key: it must be 43 to 64 characters long, not {actual}"
            ),
            (K::InvalidSecretAccessKey, _) => f.write_str(
                "invalid secret access key: only A-Z, a-z, 0-9, '+', '/' and '=' are allowed",
            ),
            (K::DuplicateAccessKeyId, CredentialDetail::Duplicate(akid)) => {
                write!(f, "access key id \"{akid}\" is configured twice")
            }
            (K::DuplicateAccessKeyId, _) => f.write_str("an access key id is configured twice"),
        }
    }
}

// === impl SignError ===

impl SignError {
    /// Why signing failed.
    pub fn kind(&self) -> SignErrorKind {
        self.kind
    }

    pub(crate) fn new(kind: SignErrorKind) -> Self {
        Self { kind, source: None }
    }

    pub(crate) fn with_source(
        kind: SignErrorKind,
        source: impl StdError + Send + Sync + 'static,
    ) -> Self {
        Self {
            kind,
            source: Some(Box::new(source)),
        }
    }
}

/// Never prints the source; reporters walk `source()` for it.
impl fmt::Display for SignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            SignErrorKind::InvalidRegion => {
                "invalid region: it must be non-empty and use only a-z, 0-9 and '-'"
            }
            SignErrorKind::InvalidUrl => {
                "the URL must be an absolute http or https URL with a host"
            }
            SignErrorKind::MissingContentType => {
                "the signer signs content-type, but the request has no content type"
            }
            SignErrorKind::InvalidHeaderValue => "a header value to sign is not visible ASCII",
            SignErrorKind::InvalidTime => "the signing time must lie between 1970 and 9999 (UTC)",
            SignErrorKind::Signing => "the SigV4 signer rejected the request",
        })
    }
}

// === sanitising ===

/// Keeps printable ASCII (replacing anything else, and `"` and `\`, with `?`) and cuts the
/// value to `max` characters, marking the cut with `...`.
pub(crate) fn sanitize(value: &str, max: usize) -> Box<str> {
    let mut out = String::with_capacity(value.len().min(max + 3));
    for (i, c) in value.chars().enumerate() {
        if i == max {
            out.push_str("...");
            break;
        }
        out.push(
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '?'
            },
        );
    }
    out.into_boxed_str()
}

#[cfg(test)]
mod tests;
