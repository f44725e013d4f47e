//! How KMS reports a failed call to an XKS proxy: the KMS exception its API throws and the
//! connection error code a failed `ConnectCustomKeyStore` records, with a message in
//! KMS's manner.
//!
//! One function, [`diagnose`], maps every [`xks_client::Error`] for every KMS operation.
//! The exceptions follow the fact sheet's §7.4 table; where it is silent (an error name
//! the spec does not allow for GetHealthStatus, throttling and dependency timeouts as
//! connection codes), the choice is marked *derived* below.
//!
//! | Proxy outcome | Key store operations (Create/Connect/Update, health checks) | CreateKey | Cryptographic operations | ConnectionErrorCode |
//! |---|---|---|---|---|
//! | ValidationException | XksProxyInvalidResponseException | CustomKeyStoreInvalidStateException | KMSInvalidStateException | XKS_PROXY_INVALID_RESPONSE |
//! | InvalidStateException | XksProxyInvalidConfigurationException (derived) | XksKeyInvalidConfigurationException | KMSInvalidStateException | XKS_PROXY_INVALID_CONFIGURATION |
//! | InvalidCiphertextException | XksProxyInvalidResponseException (derived) | XksKeyInvalidResponseException (derived) | KMSInvalidStateException | XKS_PROXY_INVALID_RESPONSE |
//! | InvalidKeyUsageException | XksProxyInvalidResponseException (derived) | XksKeyInvalidConfigurationException | KMSInvalidStateException | XKS_PROXY_INVALID_CONFIGURATION |
//! | AuthenticationFailedException | XksProxyIncorrectAuthenticationCredentialException | CustomKeyStoreInvalidStateException | KMSInvalidStateException | INVALID_CREDENTIALS |
//! | AccessDeniedException | XksProxyInvalidConfigurationException (derived) | KMSInvalidStateException | KMSInvalidStateException | XKS_PROXY_ACCESS_DENIED |
//! | KeyNotFoundException | XksProxyInvalidResponseException (derived) | XksKeyNotFoundException | KMSInvalidStateException | XKS_PROXY_INVALID_CONFIGURATION |
//! | InvalidUriPathException | XksProxyInvalidConfigurationException | CustomKeyStoreInvalidStateException | KMSInvalidStateException | XKS_PROXY_INVALID_CONFIGURATION |
//! | UnsupportedOperationException | XksProxyInvalidResponseException (derived) | XksKeyInvalidResponseException | KMSInvalidStateException | XKS_PROXY_INVALID_RESPONSE |
//! | DependencyTimeoutException | XksProxyUriUnreachableException | CustomKeyStoreInvalidStateException | KMSInvalidStateException | XKS_PROXY_TIMED_OUT (derived) |
//! | ThrottlingException | XksProxyUriUnreachableException | CustomKeyStoreInvalidStateException | KMSInvalidStateException | XKS_PROXY_NOT_REACHABLE (derived) |
//! | InternalException | XksProxyInvalidResponseException | CustomKeyStoreInvalidStateException | KMSInvalidStateException | XKS_PROXY_INVALID_RESPONSE |
//! | No TCP connection | XksProxyUriUnreachableException | CustomKeyStoreInvalidStateException | KMSInvalidStateException | XKS_PROXY_NOT_REACHABLE |
//! | No TLS connection | XksProxyUriUnreachableException | CustomKeyStoreInvalidStateException | KMSInvalidStateException | XKS_PROXY_INVALID_TLS_CONFIGURATION |
//! | No answer within the timeout | XksProxyUriUnreachableException | CustomKeyStoreInvalidStateException | KMSInvalidStateException | XKS_PROXY_TIMED_OUT |
//! | Connection lost mid-exchange | XksProxyUriUnreachableException | CustomKeyStoreInvalidStateException | KMSInvalidStateException | NETWORK_ERRORS (derived) |
//! | Malformed answer (not XKS, or a 200 breaking the spec) | XksProxyInvalidResponseException | CustomKeyStoreInvalidStateException | KMSInvalidStateException | XKS_PROXY_INVALID_RESPONSE |
//!
//! KMS's real code for rejected credentials is `INVALID_CREDENTIALS`, with the exception
//! `XksProxyIncorrectAuthenticationCredentialException`.

use std::fmt;

use serde::Serialize;
use xks_client::{ConnectErrorKind, Error, TlsErrorKind};
use xks_protocol::ErrorName;

/// The KMS API operation a call to the proxy belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum KmsApi {
    /// `CreateCustomKeyStore` (GetHealthStatus).
    CreateCustomKeyStore,
    /// `ConnectCustomKeyStore` (GetHealthStatus).
    ConnectCustomKeyStore,
    /// KMS's periodic health check (GetHealthStatus, kmsOperation `KmsHealthCheck`).
    KmsHealthCheck,
    /// `CreateKey` (GetKeyMetadata).
    CreateKey,
    /// `Encrypt` (XKS Encrypt).
    Encrypt,
    /// `Decrypt` (XKS Decrypt).
    Decrypt,
    /// `GenerateDataKey` (XKS Encrypt).
    GenerateDataKey,
    /// `GenerateDataKeyWithoutPlaintext` (XKS Encrypt).
    GenerateDataKeyWithoutPlaintext,
    /// `ReEncrypt` (XKS Decrypt, then XKS Encrypt).
    ReEncrypt,
}

/// What KMS would report: an exception, a connection error code, a message, and the
/// underlying cause for the operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnosis {
    /// The KMS operation that failed.
    pub operation: KmsApi,
    /// The KMS exception name, e.g. `XksProxyUriUnreachableException`.
    pub exception: &'static str,
    /// The connection error code a failed `ConnectCustomKeyStore` would record, e.g.
    /// `XKS_PROXY_TIMED_OUT`; `None` for failures KMS reports without one (its own
    /// request validation, the mock's ciphertext checks).
    pub connection_error_code: Option<&'static str>,
    /// What KMS says, in its manner.
    pub message: String,
    /// What happened on the wire, for the operator: the client error chain.
    pub cause: Option<String>,
}

#[derive(Clone, Copy)]
enum Family {
    KeyStore,
    CreateKey,
    Crypto,
}

// === impl KmsApi ===

impl KmsApi {
    /// The operation name as KMS spells it (and as `kmsOperation` carries it).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CreateCustomKeyStore => "CreateCustomKeyStore",
            Self::ConnectCustomKeyStore => "ConnectCustomKeyStore",
            Self::KmsHealthCheck => "KmsHealthCheck",
            Self::CreateKey => "CreateKey",
            Self::Encrypt => "Encrypt",
            Self::Decrypt => "Decrypt",
            Self::GenerateDataKey => "GenerateDataKey",
            Self::GenerateDataKeyWithoutPlaintext => "GenerateDataKeyWithoutPlaintext",
            Self::ReEncrypt => "ReEncrypt",
        }
    }

    /// Whether this is a key store operation, whose failures set a connection error code.
    pub fn is_key_store_operation(self) -> bool {
        matches!(self.family(), Family::KeyStore)
    }

    fn family(self) -> Family {
        match self {
            Self::CreateCustomKeyStore | Self::ConnectCustomKeyStore | Self::KmsHealthCheck => {
                Family::KeyStore
            }
            Self::CreateKey => Family::CreateKey,
            Self::Encrypt
            | Self::Decrypt
            | Self::GenerateDataKey
            | Self::GenerateDataKeyWithoutPlaintext
            | Self::ReEncrypt => Family::Crypto,
        }
    }
}

impl fmt::Display for KmsApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// === impl Diagnosis ===

impl Diagnosis {
    /// A failure KMS detects itself, before or after the proxy: its own request
    /// validation (`ValidationException`), a ciphertext it cannot use
    /// (`InvalidCiphertextException`), a key that does not match (`IncorrectKeyException`),
    /// an external key it refuses (`XksKeyInvalidConfigurationException`).
    pub fn kms(operation: KmsApi, exception: &'static str, message: impl Into<String>) -> Self {
        Self {
            operation,
            exception,
            connection_error_code: None,
            message: message.into(),
            cause: None,
        }
    }

    /// Adds a connection error code.
    #[must_use]
    pub fn with_code(mut self, code: &'static str) -> Self {
        self.connection_error_code = Some(code);
        self
    }
}

impl fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "An error occurred ({}) when calling the {} operation: {}",
            self.exception, self.operation, self.message
        )
    }
}

impl std::error::Error for Diagnosis {}

/// What KMS reports when a call to the proxy for `operation` fails with `error`.
pub fn diagnose(operation: KmsApi, error: &Error) -> Diagnosis {
    use Family::{CreateKey, Crypto, KeyStore};
    const UNREACHABLE: &str = "XksProxyUriUnreachableException";
    const INVALID_RESPONSE: &str = "XksProxyInvalidResponseException";
    const STORE_STATE: &str = "CustomKeyStoreInvalidStateException";
    const KMS_STATE: &str = "KMSInvalidStateException";
    let family = operation.family();
    // (exception for key store operations, for CreateKey), code, message
    let ((store, create_key), code, message): ((&'static str, &'static str), &'static str, String) =
        match error {
            Error::Connect(e) => (
                (UNREACHABLE, STORE_STATE),
                "XKS_PROXY_NOT_REACHABLE",
                match e.kind() {
                    ConnectErrorKind::Resolve => format!(
                        "KMS cannot resolve the host name {} of the external key store proxy. \
                     Check the XksProxyUriEndpoint.",
                        e.host()
                    ),
                    _ => "KMS cannot connect to the external key store proxy. Check that the \
                      XksProxyUriEndpoint is correct, that the proxy is running and \
                      listening, and that the network path to it is open. This can be \
                      transient."
                        .to_owned(),
                },
            ),
            Error::Tls(e) => (
                (UNREACHABLE, STORE_STATE),
                "XKS_PROXY_INVALID_TLS_CONFIGURATION",
                tls_message(e.kind()),
            ),
            Error::Timeout(e) => (
                (UNREACHABLE, STORE_STATE),
                "XKS_PROXY_TIMED_OUT",
                format!(
                    "The external key store proxy did not respond within {} ms. Check the \
                 network latency to the proxy and the latency of the proxy and its \
                 external key manager, then retry.",
                    e.timeout().as_millis()
                ),
            ),
            Error::Http(_) => (
                (UNREACHABLE, STORE_STATE),
                "NETWORK_ERRORS",
                "The connection to the external key store proxy failed before KMS received a \
             complete response. This can be transient; retry."
                    .to_owned(),
            ),
            Error::NotXks(_) | Error::Protocol(_) => (
                (INVALID_RESPONSE, STORE_STATE),
                "XKS_PROXY_INVALID_RESPONSE",
                match (error, family) {
                    (Error::Protocol(_), Crypto) => {
                        "KMS cannot use the response of the external key store proxy: the \
                     ciphertext or integrity value it returned is corrupted, missing or \
                     invalid. Report this to the proxy vendor."
                            .to_owned()
                    }
                    _ => "KMS cannot interpret the response from the external key store proxy. \
                      Check that the XksProxyUriEndpoint points to an XKS proxy; if it does, \
                      report this to the proxy vendor."
                        .to_owned(),
                },
            ),
            Error::Xks(answer) => xks_outcome(answer.name()),
            Error::Config(_) | Error::Sign(_) => {
                return Diagnosis {
                    operation,
                    exception: "ValidationException",
                    connection_error_code: None,
                    message: "The request could not be prepared: check the key store settings."
                        .to_owned(),
                    cause: Some(error.chain()),
                };
            }
            // A variant added to the client later: report it as unusable.
            _ => (
                (INVALID_RESPONSE, STORE_STATE),
                "XKS_PROXY_INVALID_RESPONSE",
                "KMS cannot interpret the response from the external key store proxy.".to_owned(),
            ),
        };
    let exception = match family {
        KeyStore => store,
        CreateKey => create_key,
        Crypto => KMS_STATE,
    };
    Diagnosis {
        operation,
        exception,
        connection_error_code: Some(code),
        message,
        cause: Some(error.chain()),
    }
}

/// Exception names for the key store operations and CreateKey, the connection code and
/// the message for an XKS error name.
fn xks_outcome(name: ErrorName) -> ((&'static str, &'static str), &'static str, String) {
    use ErrorName as N;
    let (store, create_key, code, message) = match name {
        N::ValidationException => (
            "XksProxyInvalidResponseException",
            "CustomKeyStoreInvalidStateException",
            "XKS_PROXY_INVALID_RESPONSE",
            "The external key store proxy rejected the request as invalid \
             (ValidationException). KMS cannot interpret this; report it to the proxy \
             administrator.",
        ),
        N::InvalidStateException => (
            "XksProxyInvalidConfigurationException",
            "XksKeyInvalidConfigurationException",
            "XKS_PROXY_INVALID_CONFIGURATION",
            "The external key, or the key store in the external key manager, is not \
             enabled. Enable it in the external key manager and retry.",
        ),
        N::InvalidCiphertextException => (
            "XksProxyInvalidResponseException",
            "XksKeyInvalidResponseException",
            "XKS_PROXY_INVALID_RESPONSE",
            "The external key store proxy rejected the request because the ciphertext or \
             the encryption context is corrupted, missing, or otherwise invalid.",
        ),
        N::InvalidKeyUsageException => (
            "XksProxyInvalidResponseException",
            "XksKeyInvalidConfigurationException",
            "XKS_PROXY_INVALID_CONFIGURATION",
            "The external key does not support the requested cryptographic operation. \
             Allow encryption and decryption for it in the external key manager.",
        ),
        N::AuthenticationFailedException => (
            "XksProxyIncorrectAuthenticationCredentialException",
            "CustomKeyStoreInvalidStateException",
            "INVALID_CREDENTIALS",
            "The external key store proxy could not authenticate KMS: the proxy \
             authentication credential (access key id and secret access key) of the key \
             store does not match a credential the proxy accepts for this URI path.",
        ),
        N::AccessDeniedException => (
            "XksProxyInvalidConfigurationException",
            "KMSInvalidStateException",
            "XKS_PROXY_ACCESS_DENIED",
            "The external key store proxy denied access to this request. Check that the \
             proxy's authorization rules allow this principal and key.",
        ),
        N::KeyNotFoundException => (
            "XksProxyInvalidResponseException",
            "XksKeyNotFoundException",
            "XKS_PROXY_INVALID_CONFIGURATION",
            "The external key store proxy did not find the external key. If the external \
             key id is wrong, create a new KMS key with the right XksKeyId.",
        ),
        N::InvalidUriPathException => (
            "XksProxyInvalidConfigurationException",
            "CustomKeyStoreInvalidStateException",
            "XKS_PROXY_INVALID_CONFIGURATION",
            "The external key store proxy rejected the URI path. Check the key store's \
             XksProxyUriPath against the path prefix configured on the proxy.",
        ),
        N::UnsupportedOperationException => (
            "XksProxyInvalidResponseException",
            "XksKeyInvalidResponseException",
            "XKS_PROXY_INVALID_RESPONSE",
            "The external key store proxy does not support this operation or one of its \
             parameters.",
        ),
        N::DependencyTimeoutException => (
            "XksProxyUriUnreachableException",
            "CustomKeyStoreInvalidStateException",
            "XKS_PROXY_TIMED_OUT",
            "The external key store proxy did not get an answer from the external key \
             manager in time. Retry; if it persists, check the key manager's availability.",
        ),
        N::ThrottlingException => (
            "XksProxyUriUnreachableException",
            "CustomKeyStoreInvalidStateException",
            "XKS_PROXY_NOT_REACHABLE",
            "The external key store proxy is throttling requests: the request rate is too \
             high. Slow down and retry.",
        ),
        N::InternalException => (
            "XksProxyInvalidResponseException",
            "CustomKeyStoreInvalidStateException",
            "XKS_PROXY_INVALID_RESPONSE",
            "The external key store proxy reported an internal error: it may be unable to \
             reach the external key manager. Check its configuration and availability.",
        ),
    };
    ((store, create_key), code, message.to_owned())
}

fn tls_message(kind: TlsErrorKind) -> String {
    let what = match kind {
        TlsErrorKind::CertificateExpired => {
            "the proxy's TLS server certificate has expired or is not valid yet"
        }
        TlsErrorKind::CertificateNameMismatch => {
            "the proxy's TLS server certificate does not match the host name of the \
             XksProxyUriEndpoint"
        }
        TlsErrorKind::UnknownIssuer => {
            "the proxy's TLS server certificate is not issued by a trusted certificate \
             authority"
        }
        TlsErrorKind::BadCertificate => "the proxy's TLS server certificate is not valid",
        TlsErrorKind::AlertReceived => {
            "the proxy aborted the TLS handshake (it may require a client certificate, or \
             support no common TLS version or cipher suite)"
        }
        TlsErrorKind::Incompatible => {
            "KMS and the proxy share no TLS version (1.2 or 1.3), cipher suite or \
             application protocol"
        }
        TlsErrorKind::NotTls => "the endpoint does not speak TLS",
        TlsErrorKind::ConnectionClosed => {
            "the proxy closed the connection during the TLS handshake"
        }
        _ => "the TLS handshake failed",
    };
    format!(
        "KMS cannot establish a TLS connection to the external key store proxy: {what}. \
         The proxy must support TLS 1.2 or 1.3 and present a valid, unexpired certificate \
         for the endpoint's host name from a trusted certificate authority."
    )
}

#[cfg(test)]
mod tests;
