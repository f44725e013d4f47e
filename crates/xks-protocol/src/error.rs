//! XKS error names, sanitized error messages, the error body, and this crate's Rust error.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize};

use crate::{
    AadError, KeyIdError, LimitsError, OperationKind, ResponseError, RouteError,
    wire::{self, Object, WireError},
};

wire_enum! {
    /// The error names an XKS proxy may answer with, one per row of the spec's error table.
    ///
    /// **Conformance** (fact sheet §7.2): the names and their HTTP status codes are the spec's.
    /// Map internal errors to these names in one place; [`ErrorName::http_status`] then picks the
    /// status, so handlers never choose status codes themselves.
    pub enum ErrorName {
        /// 400: one or more input parameters are invalid.
        ValidationException => "ValidationException",
        /// 400: the external key or the key store is disabled, deactivated or blocked.
        InvalidStateException => "InvalidStateException",
        /// 400: decryption failed (ciphertext, IV, AAD, metadata or tag corrupted or wrong).
        InvalidCiphertextException => "InvalidCiphertextException",
        /// 400: the key does not support the requested operation.
        InvalidKeyUsageException => "InvalidKeyUsageException",
        /// 401: the SigV4 signature, or any other authentication input, is invalid.
        AuthenticationFailedException => "AuthenticationFailedException",
        /// 403: secondary authorization denied the request.
        AccessDeniedException => "AccessDeniedException",
        /// 404: the external key does not exist.
        KeyNotFoundException => "KeyNotFoundException",
        /// 404: the URI path is not a valid XKS API path.
        InvalidUriPathException => "InvalidUriPathException",
        /// 429: the request rate is too high.
        ThrottlingException => "ThrottlingException",
        /// 501: the operation is not implemented, or a parameter exceeds this implementation's
        /// limit (which is above the spec's minimum).
        UnsupportedOperationException => "UnsupportedOperationException",
        /// 503: a dependency, such as the key manager, timed out.
        DependencyTimeoutException => "DependencyTimeoutException",
        /// 500: any other server-side failure.
        InternalException => "InternalException",
    }
}

/// A free-text `errorMessage`: always fewer than 512 characters of printable ASCII.
///
/// **Conformance** (fact sheet §7.1): [`ErrorMessage::new`] accepts any string and replaces every
/// character outside 0x20–0x7E with `?`. Text longer than [`ErrorMessage::MAX_LEN`] is cut and
/// ends in `...`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct ErrorMessage(String);

/// The XKS error answer: an [`ErrorName`] and an optional [`ErrorMessage`].
///
/// [`XksError::to_json_body`] gives the spec's body,
/// `{"errorName":"…","errorMessage":"…"}`, and [`XksError::http_status`] its status.
/// Clients parse error bodies with [`XksError::from_json`]; a missing or `null`
/// `errorMessage` is accepted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct XksError {
    #[serde(rename = "errorName")]
    name: ErrorName,
    #[serde(rename = "errorMessage", skip_serializing_if = "Option::is_none")]
    message: Option<ErrorMessage>,
}

/// This crate's Rust error: every failure that is not an XKS error answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A URI path is not an XKS API path.
    #[error("invalid XKS URI path")]
    Route(#[from] RouteError),
    /// The GCM AAD inputs cannot be length-prefixed.
    #[error("cannot compose the GCM AAD")]
    Aad(#[from] AadError),
    /// A string is not a valid external key id.
    #[error("invalid external key id")]
    KeyId(#[from] KeyIdError),
    /// Implementation limits are below the spec's minimums.
    #[error("invalid implementation limits")]
    Limits(#[from] LimitsError),
    /// A proxy's answer does not follow the spec.
    #[error("invalid XKS response")]
    Response(#[from] ResponseError),
    /// A string is not one of the twelve XKS error names.
    #[error("unknown XKS error name")]
    UnknownErrorName,
}

// === impl ErrorName ===

impl ErrorName {
    /// The HTTP status code that goes with this error name.
    pub const fn http_status(self) -> u16 {
        match self {
            Self::ValidationException
            | Self::InvalidStateException
            | Self::InvalidCiphertextException
            | Self::InvalidKeyUsageException => 400,
            Self::AuthenticationFailedException => 401,
            Self::AccessDeniedException => 403,
            Self::KeyNotFoundException | Self::InvalidUriPathException => 404,
            Self::ThrottlingException => 429,
            Self::InternalException => 500,
            Self::UnsupportedOperationException => 501,
            Self::DependencyTimeoutException => 503,
        }
    }

    /// Whether the spec's error table lists this name for `operation`.
    ///
    /// **Conformance** (fact sheet §7.2, §12.1): the table excludes `ValidationException` for
    /// GetHealthStatus, yet the official test client expects it for a health body without
    /// `requestMetadata`; this crate's parser follows the test client, this function the table.
    pub const fn allowed_for(self, operation: OperationKind) -> bool {
        match self {
            Self::ValidationException
            | Self::AccessDeniedException
            | Self::KeyNotFoundException => !matches!(operation, OperationKind::Health),
            Self::InvalidCiphertextException => matches!(operation, OperationKind::Decrypt),
            Self::InvalidKeyUsageException => {
                matches!(operation, OperationKind::Encrypt | OperationKind::Decrypt)
            }
            Self::InvalidStateException
            | Self::AuthenticationFailedException
            | Self::InvalidUriPathException
            | Self::ThrottlingException
            | Self::UnsupportedOperationException
            | Self::DependencyTimeoutException
            | Self::InternalException => true,
        }
    }
}

impl FromStr for ErrorName {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        <Self as wire::WireEnum>::from_wire(s).ok_or(Error::UnknownErrorName)
    }
}

// === impl ErrorMessage ===

impl ErrorMessage {
    /// The longest message the spec allows, in characters (it must be shorter than 512).
    pub const MAX_LEN: usize = 511;

    const ELLIPSIS: &str = "...";

    /// Builds a conformant message from any text: characters outside printable ASCII become
    /// `?`, and text beyond [`Self::MAX_LEN`] characters is cut, ending in `...`.
    pub fn new(text: impl AsRef<str>) -> Self {
        let text = text.as_ref();
        let mut out = String::with_capacity(text.len().min(Self::MAX_LEN));
        for (i, c) in text.chars().enumerate() {
            if i == Self::MAX_LEN {
                // Only ASCII was pushed, so byte and char positions agree.
                out.truncate(Self::MAX_LEN - Self::ELLIPSIS.len());
                out.push_str(Self::ELLIPSIS);
                break;
            }
            out.push(if is_printable_ascii(c) { c } else { '?' });
        }
        Self(out)
    }

    /// Whether `text` already meets the spec's rules: at most [`Self::MAX_LEN`] characters, all
    /// printable ASCII. Conformance testers use it on the messages a proxy sends.
    pub fn is_conformant(text: &str) -> bool {
        text.len() <= Self::MAX_LEN && text.chars().all(is_printable_ascii)
    }

    /// The message text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_printable_ascii(c: char) -> bool {
    matches!(c, ' '..='~')
}

impl fmt::Display for ErrorMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for ErrorMessage {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

// === impl XksError ===

impl XksError {
    /// An error answer without a message.
    pub const fn new(name: ErrorName) -> Self {
        Self {
            name,
            message: None,
        }
    }

    /// An error answer with a message, sanitized by [`ErrorMessage::new`].
    pub fn with_message(name: ErrorName, message: impl AsRef<str>) -> Self {
        Self {
            name,
            message: Some(ErrorMessage::new(message)),
        }
    }

    /// The error name.
    pub const fn name(&self) -> ErrorName {
        self.name
    }

    /// The message, if any.
    pub const fn message(&self) -> Option<&ErrorMessage> {
        self.message.as_ref()
    }

    /// The HTTP status code of this answer.
    pub const fn http_status(&self) -> u16 {
        self.name.http_status()
    }

    /// The JSON body: `{"errorName":"…"}` or `{"errorName":"…","errorMessage":"…"}`.
    ///
    /// Serve it with `Content-Type: application/json` (fact sheet §1.1).
    pub fn to_json_body(&self) -> Vec<u8> {
        let message = self.message.as_ref().map_or("", ErrorMessage::as_str);
        let mut body = Vec::with_capacity(64 + message.len());
        body.extend_from_slice(br#"{"errorName":""#);
        body.extend_from_slice(self.name.as_str().as_bytes());
        body.push(b'"');
        if let Some(message) = &self.message {
            body.extend_from_slice(br#","errorMessage":""#);
            // Printable ASCII needs JSON escapes only for the quote and the backslash.
            for byte in message.as_str().bytes() {
                if matches!(byte, b'"' | b'\\') {
                    body.push(b'\\');
                }
                body.push(byte);
            }
            body.push(b'"');
        }
        body.push(b'}');
        body
    }

    /// Parses an error body received from a proxy. The message, if any, is sanitized.
    ///
    /// # Errors
    ///
    /// The body is not a JSON object, or `errorName` is missing or not one of the twelve names.
    pub fn from_json(body: &[u8]) -> Result<Self, ResponseError> {
        Object::parse(body)
            .and_then(Self::from_object)
            .map_err(ResponseError::from)
    }

    fn from_object(mut body: Object) -> Result<Self, WireError> {
        Ok(Self {
            name: body.req("errorName", wire::keyword)?,
            message: body
                .opt("errorMessage", wire::string)?
                .map(ErrorMessage::new),
        })
    }
}

impl From<ErrorName> for XksError {
    fn from(name: ErrorName) -> Self {
        Self::new(name)
    }
}

impl fmt::Display for XksError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.message {
            Some(message) => write!(f, "{}: {message}", self.name),
            None => write!(f, "{}", self.name),
        }
    }
}

impl std::error::Error for XksError {}

impl<'de> Deserialize<'de> for XksError {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        wire::deserialize_object(deserializer, Self::from_object)
    }
}

#[cfg(test)]
mod tests;
