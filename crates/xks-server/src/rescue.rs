//! Every way a request can fail, and the one place that turns a failure into the
//! XKS error name, HTTP status and JSON body.

use std::error::Error as _;
use std::fmt::{self, Write as _};
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use xks_keymanager::{ErrorKind, KeyManagerError};
use xks_protocol::{ErrorName, OperationKind, XksError};
use xks_sigv4::VerifyError;

use crate::app::{json_response, with_allow};

/// Why a request was not served.
#[derive(Debug)]
pub(crate) enum Rejection {
    /// Routing, parsing or validation decided the XKS error itself.
    Xks(XksError),
    /// An API path was called with another method than `POST` (or `GET` for the
    /// ping path); the spec defines no error name for it.
    MethodNotAllowed(&'static str),
    /// SigV4 verification failed.
    Auth(VerifyError),
    /// The key manager refused or failed.
    Backend(KeyManagerError),
    /// The key manager did not answer within the deadline.
    Deadline(Duration),
}

// === impl Rejection ===

impl Rejection {
    /// The XKS error name: the single mapping from internal failures to XKS errors.
    pub(crate) fn error_name(&self) -> Option<ErrorName> {
        Some(match self {
            Self::Xks(e) => e.name(),
            Self::MethodNotAllowed(_) => return None,
            Self::Auth(_) => ErrorName::AuthenticationFailedException,
            Self::Backend(e) => e.error_name(),
            Self::Deadline(_) => ErrorName::DependencyTimeoutException,
        })
    }

    /// The message sent to the client: actionable, free of internals.
    fn client_message(&self) -> String {
        match self {
            Self::Xks(e) => e
                .message()
                .map(|m| m.as_str().to_owned())
                .unwrap_or_default(),
            Self::MethodNotAllowed(allow) => format!("method not allowed; use {allow}"),
            Self::Auth(_) => "SigV4 authentication failed: check the access key id, the secret, \
                the service name kms-xks-proxy, the region and the clock"
                .to_owned(),
            Self::Backend(e) => e.kind().client_message().to_owned(),
            Self::Deadline(d) => format!(
                "the external key manager did not answer within {} ms",
                d.as_millis()
            ),
        }
    }

    /// What the operator's log gets: the cause chain, never secrets or plaintext.
    pub(crate) fn detail(&self) -> String {
        match self {
            Self::Xks(e) => e
                .message()
                .map(|m| m.as_str().to_owned())
                .unwrap_or_default(),
            Self::MethodNotAllowed(allow) => format!("method not allowed; allowed: {allow}"),
            Self::Auth(e) => format!("sigv4 {}: {e}", e.kind().as_str()),
            Self::Backend(e) => chain(e),
            Self::Deadline(d) => format!("key manager deadline of {d:?} expired"),
        }
    }

    /// The HTTP response for a request to `operation` (when routing got that far).
    /// The XKS error name also rides in the response's extensions, for the request
    /// log.
    ///
    /// A key manager error whose name the spec's error table does not allow for the
    /// operation (say, a usage error from GetKeyMetadata) is answered as
    /// `InternalException`: KMS must never see a name it does not expect.
    pub(crate) fn into_response(self, operation: Option<OperationKind>) -> Response<Full<Bytes>> {
        let mut message = self.client_message();
        let mut name = self.error_name();
        if let (Self::Backend(_), Some(n), Some(op)) = (&self, name, operation)
            && !n.allowed_for(op)
        {
            name = Some(ErrorName::InternalException);
            message = ErrorKind::Internal.client_message().to_owned();
        }
        let Some(name) = name else {
            let body = serde_json::json!({ "errorMessage": message }).to_string();
            let allow = match self {
                Self::MethodNotAllowed(allow) => allow,
                _ => "POST",
            };
            return with_allow(
                json_response(StatusCode::METHOD_NOT_ALLOWED, Bytes::from(body)),
                allow,
            );
        };
        let error = XksError::with_message(name, message);
        let status =
            StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = json_response(status, Bytes::from(error.to_json_body()));
        response.extensions_mut().insert(name);
        response
    }
}

impl From<XksError> for Rejection {
    fn from(e: XksError) -> Self {
        Self::Xks(e)
    }
}

/// An error and its sources, joined with `: `.
fn chain(e: &KeyManagerError) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let _ = write!(out, ": {s}");
        source = s.source();
    }
    out
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail())
    }
}
