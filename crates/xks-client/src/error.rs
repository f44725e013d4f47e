//! This crate's error: what went wrong between asking a proxy and getting a usable answer.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use xks_protocol::{ErrorMessage, ErrorName, OperationKind, XksError};

/// Why a request did not produce a usable answer.
///
/// The variants follow what AWS KMS distinguishes when it reports a failed call to an
/// XKS proxy (fact sheet §7.4): no TCP connection, no TLS connection, no answer in time,
/// an XKS error answer, and an answer it cannot interpret. Each variant carries a struct
/// with the details, also available as the error's [`source`](std::error::Error::source);
/// `Display` of this enum names the category only.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The client configuration is unusable: a malformed endpoint, an unreadable or
    /// invalid PEM file, no trust roots.
    #[error("invalid XKS client configuration")]
    Config(#[source] ConfigError),
    /// The request could not be signed (a bad URL, header value or signing time).
    #[error("the request could not be signed")]
    Sign(#[source] SignFailure),
    /// No TCP connection: the name did not resolve, or the connection was refused or
    /// could not be routed.
    #[error("cannot connect to the XKS proxy")]
    Connect(#[source] ConnectError),
    /// The TLS handshake failed, or the TLS session was aborted by an alert: an expired,
    /// untrusted or misnamed server certificate, a rejected client certificate, or a peer
    /// that does not speak TLS.
    #[error("TLS with the XKS proxy failed")]
    Tls(#[source] TlsError),
    /// No complete answer arrived within the timeout (connecting included).
    #[error("the XKS proxy did not answer in time")]
    Timeout(#[source] TimeoutError),
    /// The HTTP exchange failed after connecting: the connection closed before an answer,
    /// the answer was not valid HTTP, or its body was too large.
    #[error("the HTTP exchange with the XKS proxy failed")]
    Http(#[source] HttpError),
    /// The proxy answered with an XKS error body (`errorName`, optional `errorMessage`).
    #[error("the XKS proxy answered with an XKS error")]
    Xks(#[source] XksErrorAnswer),
    /// The answer is not an XKS answer: an error status without an XKS error body, or a
    /// success status whose body is not a JSON object (for example an HTML page).
    #[error("the answer is not an XKS answer")]
    NotXks(#[source] NotXksAnswer),
    /// A 200 answer that breaks the XKS protocol: a missing field, an IV of 13 bytes, a
    /// wrong or missing ciphertext data integrity value, a wrong content type.
    #[error("the XKS proxy's answer breaks the XKS protocol")]
    Protocol(#[source] ProtocolViolation),
}

/// A configuration problem, in words.
#[derive(Debug, thiserror::Error)]
#[error("{what}")]
pub struct ConfigError {
    what: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

/// The signing step failed.
#[derive(Debug, thiserror::Error)]
#[error("{what}")]
pub struct SignFailure {
    what: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

/// What kind of TCP-level failure happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectErrorKind {
    /// The host name did not resolve to any address.
    Resolve,
    /// The peer refused the connection (nothing listens on that port).
    Refused,
    /// The host or network is unreachable, or the connection was reset while opening.
    Unreachable,
    /// Any other socket error.
    Other,
}

/// A failed TCP connection.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", self.describe())]
pub struct ConnectError {
    kind: ConnectErrorKind,
    host: String,
    addr: Option<SocketAddr>,
    #[source]
    source: Option<Arc<io::Error>>,
}

/// What kind of TLS failure happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsErrorKind {
    /// The server certificate has expired (or is not valid yet).
    CertificateExpired,
    /// The server certificate does not name the endpoint's host.
    CertificateNameMismatch,
    /// The server certificate does not chain to a trusted root.
    UnknownIssuer,
    /// Any other problem with the server certificate (signature, usage, encoding).
    BadCertificate,
    /// The proxy sent a TLS alert: it rejected our client certificate, or found no common
    /// version or cipher suite.
    AlertReceived,
    /// No common protocol version, cipher suite or application protocol (ALPN).
    Incompatible,
    /// The peer does not speak TLS (for example a plain HTTP server on that port).
    NotTls,
    /// The connection closed during the handshake.
    ConnectionClosed,
    /// Anything else.
    Other,
}

/// A failed TLS handshake or an aborted TLS session, with rustls's reason.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{reason}")]
pub struct TlsError {
    kind: TlsErrorKind,
    reason: String,
    addr: Option<SocketAddr>,
    #[source]
    source: Option<Arc<io::Error>>,
}

/// No answer in time.
#[derive(Debug, Clone, thiserror::Error)]
#[error("no complete answer within {} ms", timeout.as_millis())]
pub struct TimeoutError {
    timeout: Duration,
}

/// A failed HTTP exchange on an established connection.
#[derive(Debug, thiserror::Error)]
#[error("{what}")]
pub struct HttpError {
    what: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

/// An XKS error answer: its HTTP status and the parsed error body.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", self.describe())]
pub struct XksErrorAnswer {
    status: u16,
    error: XksError,
    operation: Option<OperationKind>,
}

/// An answer that is not an XKS answer: its status, content type, and a short sanitized
/// excerpt of its body.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", self.describe())]
pub struct NotXksAnswer {
    status: u16,
    content_type: Option<String>,
    excerpt: String,
    body_len: usize,
}

/// A 200 answer that breaks the XKS protocol, and how.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", self.describe())]
pub struct ProtocolViolation {
    operation: Option<OperationKind>,
    what: String,
}

/// How many bytes of a body an excerpt shows.
const EXCERPT_LEN: usize = 120;

// === impl Error ===

impl Error {
    /// A short, stable label for counting errors: the XKS error name for an XKS error
    /// answer, otherwise one of `ConfigError`, `SigningFailed`, `ConnectFailed`,
    /// `TlsFailed`, `Timeout`, `HttpFailed`, `NotXksAnswer`, `ProtocolViolation`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Config(_) => "ConfigError",
            Self::Sign(_) => "SigningFailed",
            Self::Connect(_) => "ConnectFailed",
            Self::Tls(_) => "TlsFailed",
            Self::Timeout(_) => "Timeout",
            Self::Http(_) => "HttpFailed",
            Self::Xks(answer) => answer.name().as_str(),
            Self::NotXks(_) => "NotXksAnswer",
            Self::Protocol(_) => "ProtocolViolation",
        }
    }

    /// The XKS error name, for an XKS error answer.
    pub fn xks_error_name(&self) -> Option<ErrorName> {
        match self {
            Self::Xks(answer) => Some(answer.name()),
            _ => None,
        }
    }

    /// The error and its sources, joined with `": "`, for one-line reports.
    pub fn chain(&self) -> String {
        let mut out = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(s) = source {
            let text = s.to_string();
            // Some sources repeat their own source's text; skip exact repeats.
            if !out.ends_with(&text) {
                out.push_str(": ");
                out.push_str(&text);
            }
            source = s.source();
        }
        out
    }

    pub(crate) fn config(what: impl Into<String>) -> Self {
        Self::Config(ConfigError::new(what))
    }

    pub(crate) fn config_with(
        what: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self::Config(ConfigError {
            what: what.into(),
            source: Some(source.into()),
        })
    }

    pub(crate) fn sign(
        what: impl Into<String>,
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self::Sign(SignFailure {
            what: what.into(),
            source,
        })
    }

    pub(crate) fn timeout(timeout: Duration) -> Self {
        Self::Timeout(TimeoutError { timeout })
    }

    pub(crate) fn http(
        what: impl Into<String>,
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self::Http(HttpError {
            what: what.into(),
            source,
        })
    }

    pub(crate) fn protocol(operation: Option<OperationKind>, what: impl Into<String>) -> Self {
        Self::Protocol(ProtocolViolation {
            operation,
            what: what.into(),
        })
    }
}

// === impl ConfigError ===

impl ConfigError {
    pub(crate) fn new(what: impl Into<String>) -> Self {
        Self {
            what: what.into(),
            source: None,
        }
    }
}

// === impl ConnectError ===

impl ConnectError {
    pub(crate) fn new(
        kind: ConnectErrorKind,
        host: &str,
        addr: Option<SocketAddr>,
        source: Option<io::Error>,
    ) -> Self {
        Self {
            kind,
            host: host.to_owned(),
            addr,
            source: source.map(Arc::new),
        }
    }

    /// What kind of failure.
    pub fn kind(&self) -> ConnectErrorKind {
        self.kind
    }

    /// The host name that was connected to.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The last address tried, if the name resolved.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.addr
    }

    fn describe(&self) -> String {
        let target = match self.addr {
            Some(addr) => format!("{} ({addr})", self.host),
            None => self.host.clone(),
        };
        match self.kind {
            ConnectErrorKind::Resolve => format!("cannot resolve {target}"),
            ConnectErrorKind::Refused => format!("connection to {target} refused"),
            ConnectErrorKind::Unreachable => format!("{target} is unreachable"),
            ConnectErrorKind::Other => format!("cannot connect to {target}"),
        }
    }
}

// === impl TlsError ===

impl TlsError {
    /// Classifies a handshake failure reported by tokio-rustls, or a session error
    /// found in a hyper error chain.
    pub(crate) fn from_io(error: io::Error, addr: Option<SocketAddr>) -> Self {
        if let Some(rustls) = error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            let mut tls = Self::from_rustls(rustls, addr);
            tls.source = Some(Arc::new(error));
            return tls;
        }
        let (kind, reason) = match error.kind() {
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => (
                TlsErrorKind::ConnectionClosed,
                "the proxy closed the connection during the TLS handshake".to_owned(),
            ),
            _ => (TlsErrorKind::Other, format!("TLS I/O error: {error}")),
        };
        Self {
            kind,
            reason,
            addr,
            source: Some(Arc::new(error)),
        }
    }

    pub(crate) fn from_rustls(error: &rustls::Error, addr: Option<SocketAddr>) -> Self {
        use rustls::CertificateError as C;
        let kind = match error {
            rustls::Error::InvalidCertificate(cert) => match cert {
                C::Expired
                | C::ExpiredContext { .. }
                | C::NotValidYet
                | C::NotValidYetContext { .. } => TlsErrorKind::CertificateExpired,
                C::NotValidForName | C::NotValidForNameContext { .. } => {
                    TlsErrorKind::CertificateNameMismatch
                }
                C::UnknownIssuer => TlsErrorKind::UnknownIssuer,
                _ => TlsErrorKind::BadCertificate,
            },
            rustls::Error::AlertReceived(_) => TlsErrorKind::AlertReceived,
            rustls::Error::PeerIncompatible(_) | rustls::Error::NoApplicationProtocol => {
                TlsErrorKind::Incompatible
            }
            rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
                TlsErrorKind::NotTls
            }
            _ => TlsErrorKind::Other,
        };
        let reason = match kind {
            TlsErrorKind::NotTls => format!("the peer does not speak TLS ({error})"),
            _ => error.to_string(),
        };
        Self {
            kind,
            reason,
            addr,
            source: None,
        }
    }

    /// What kind of failure.
    pub fn kind(&self) -> TlsErrorKind {
        self.kind
    }

    /// rustls's reason, e.g. `invalid peer certificate: certificate expired: …`.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The address of the peer, if known.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.addr
    }
}

// === impl TimeoutError ===

impl TimeoutError {
    /// The timeout that expired.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

// === impl XksErrorAnswer ===

impl XksErrorAnswer {
    pub(crate) fn new(status: u16, error: XksError, operation: Option<OperationKind>) -> Self {
        Self {
            status,
            error,
            operation,
        }
    }

    /// The HTTP status of the answer.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The XKS error name.
    pub fn name(&self) -> ErrorName {
        self.error.name()
    }

    /// The `errorMessage`, if any, sanitized to printable ASCII.
    pub fn message(&self) -> Option<&ErrorMessage> {
        self.error.message()
    }

    /// The parsed error body.
    pub fn error(&self) -> &XksError {
        &self.error
    }

    /// Whether the HTTP status is the one the spec gives this error name (fact sheet §7.2).
    pub fn status_matches_name(&self) -> bool {
        self.error.http_status() == self.status
    }

    /// Whether the spec's error table lists this name for the operation (fact sheet §7.2),
    /// when the operation is known.
    pub fn allowed_for_operation(&self) -> Option<bool> {
        self.operation.map(|op| self.error.name().allowed_for(op))
    }

    fn describe(&self) -> String {
        let mut text = format!("HTTP {} {}", self.status, self.error.name());
        if let Some(message) = self.error.message() {
            text.push_str(": ");
            text.push_str(message.as_str());
        }
        if !self.status_matches_name() {
            text.push_str(&format!(
                " (the spec gives {} HTTP {})",
                self.error.name(),
                self.error.http_status()
            ));
        }
        text
    }
}

// === impl NotXksAnswer ===

impl NotXksAnswer {
    pub(crate) fn new(status: u16, content_type: Option<&str>, body: &[u8]) -> Self {
        Self {
            status,
            content_type: content_type.map(|ct| ErrorMessage::new(ct).as_str().to_owned()),
            excerpt: excerpt(body),
            body_len: body.len(),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The `Content-Type`, if any (sanitized).
    pub fn content_type(&self) -> Option<&str> {
        self.content_type.as_deref()
    }

    /// The first bytes of the body as printable ASCII, whitespace collapsed.
    pub fn excerpt(&self) -> &str {
        &self.excerpt
    }

    /// The body's length in bytes.
    pub fn body_len(&self) -> usize {
        self.body_len
    }

    fn describe(&self) -> String {
        let ct = self.content_type.as_deref().unwrap_or("no content type");
        if self.body_len == 0 {
            format!("HTTP {} ({ct}) with an empty body", self.status)
        } else {
            format!(
                "HTTP {} ({ct}, {} bytes): {:?}",
                self.status, self.body_len, self.excerpt
            )
        }
    }
}

/// At most [`EXCERPT_LEN`] bytes of `body` as printable ASCII: control characters and
/// non-ASCII become `?`, runs of whitespace become one space.
pub(crate) fn excerpt(body: &[u8]) -> String {
    let mut out = String::with_capacity(EXCERPT_LEN + 3);
    let mut last_space = false;
    for &b in body.iter().take(EXCERPT_LEN) {
        if b.is_ascii_whitespace() {
            if !last_space && !out.is_empty() {
                out.push(' ');
            }
            last_space = true;
            continue;
        }
        last_space = false;
        out.push(if b.is_ascii_graphic() {
            char::from(b)
        } else {
            '?'
        });
    }
    if body.len() > EXCERPT_LEN {
        out.push_str("...");
    }
    out
}

// === impl ProtocolViolation ===

impl ProtocolViolation {
    /// What is wrong, e.g. ``initializationVector` must decode to 12 or 16 bytes, not 13``.
    pub fn what(&self) -> &str {
        &self.what
    }

    /// The operation whose answer this was, if known.
    pub fn operation(&self) -> Option<OperationKind> {
        self.operation
    }

    fn describe(&self) -> String {
        match self.operation {
            Some(op) => format!("{op} answer: {}", self.what),
            None => self.what.clone(),
        }
    }
}

impl fmt::Display for ConnectErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Resolve => "resolve",
            Self::Refused => "refused",
            Self::Unreachable => "unreachable",
            Self::Other => "other",
        })
    }
}

#[cfg(test)]
mod tests;
