//! Every way a request can fail, and the one place that turns a failure into the
//! XKS error name, HTTP status and JSON body.

use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use xks_keymanager::{DisplayChain, ErrorKind, KeyManagerError};
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

/// What a client is told when SigV4 fails; the precise reason goes to the log.
const AUTH_MESSAGE: &str = "SigV4 authentication failed: check the access key id, the secret, \
    the service name kms-xks-proxy, the region and the clock";

// === impl Rejection ===

impl Rejection {
    /// The XKS error answered for a request to `operation` (when routing got that
    /// far): the single mapping from internal failures to XKS errors. `None` for a
    /// 405, for which the spec defines no error name.
    ///
    /// A key manager error whose name the spec's error table does not allow for the
    /// operation (say, a usage error from GetKeyMetadata) is answered as
    /// `InternalException`: KMS must never see a name it does not expect.
    fn xks_error(&self, operation: Option<OperationKind>) -> Option<XksError> {
        Some(match self {
            Self::Xks(e) => e.clone(),
            Self::MethodNotAllowed(_) => return None,
            Self::Auth(_) => {
                XksError::with_message(ErrorName::AuthenticationFailedException, AUTH_MESSAGE)
            }
            Self::Backend(e) => {
                let kind = match operation {
                    Some(op) if !e.error_name().allowed_for(op) => ErrorKind::Internal,
                    _ => e.kind(),
                };
                XksError::with_message(kind.error_name(), kind.client_message())
            }
            Self::Deadline(d) => XksError::with_message(
                ErrorName::DependencyTimeoutException,
                format!(
                    "the external key manager did not answer within {} ms",
                    d.as_millis()
                ),
            ),
        })
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
            Self::Backend(e) => DisplayChain(e).to_string(),
            Self::Deadline(d) => format!("key manager deadline of {d:?} expired"),
        }
    }

    /// The HTTP response for a request to `operation`. The XKS error name also
    /// rides in the response's extensions, for the request log.
    pub(crate) fn into_response(self, operation: Option<OperationKind>) -> Response<Full<Bytes>> {
        let Some(error) = self.xks_error(operation) else {
            let allow = match self {
                Self::MethodNotAllowed(allow) => allow,
                _ => "POST",
            };
            let body =
                serde_json::json!({ "errorMessage": format!("method not allowed; use {allow}") });
            return with_allow(
                json_response(
                    StatusCode::METHOD_NOT_ALLOWED,
                    Bytes::from(body.to_string()),
                ),
                allow,
            );
        };
        let status =
            StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = json_response(status, Bytes::from(error.to_json_body()));
        response.extensions_mut().insert(error.name());
        response
    }
}

impl From<XksError> for Rejection {
    fn from(e: XksError) -> Self {
        Self::Xks(e)
    }
}
