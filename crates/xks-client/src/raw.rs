//! The raw mode: any method, path, headers and body, signed or not, signed correctly or
//! not, and the answer exactly as received.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Version};
use xks_sigv4::{OutgoingRequest, Signer};

use crate::sigv4::{self, SigV4Params};
use crate::{Endpoint, Error, TlsInfo};

/// A request as the raw mode sends it: nothing is added but the `Host` header (when
/// absent), and the body length framing HTTP needs.
///
/// Sign it with [`RawRequest::sign`] (xks-sigv4's `Signer`, as KMS signs) or
/// [`RawRequest::sign_with`] (any service, region, time, header list or scope date),
/// then change anything afterwards to build a negative case: the body
/// ([`RawRequest::set_body`]), the path, or the headers ([`RawRequest::headers_mut`]).
///
/// ```
/// use http::Method;
/// use xks_client::RawRequest;
///
/// let mut request = RawRequest::post("/p/kms/xks/v1/health", r#"{"requestMetadata":{}}"#);
/// assert_eq!(request.method(), Method::POST);
/// assert_eq!(request.headers()["content-type"], "application/json");
/// request.set_body("tampered after signing");
/// request.headers_mut().remove("content-type");
/// assert_eq!(request.body(), b"tampered after signing");
/// ```
#[derive(Clone)]
pub struct RawRequest {
    method: Method,
    path_and_query: String,
    headers: HeaderMap,
    body: Bytes,
}

/// An answer exactly as received: status, headers, the whole body, the HTTP version, and
/// what the TLS handshake of its connection negotiated.
#[derive(Clone)]
pub struct RawResponse {
    status: StatusCode,
    version: Version,
    headers: HeaderMap,
    body: Bytes,
    tls: Option<Arc<TlsInfo>>,
    elapsed: Duration,
}

// === impl RawRequest ===

impl RawRequest {
    /// A request with no headers and no body. `path_and_query` starts with `/`.
    pub fn new(method: Method, path_and_query: impl Into<String>) -> Self {
        Self {
            method,
            path_and_query: path_and_query.into(),
            headers: HeaderMap::new(),
            body: Bytes::new(),
        }
    }

    /// A `POST` with `Content-Type: application/json` and `body`, as KMS sends.
    pub fn post(path_and_query: impl Into<String>, body: impl Into<Bytes>) -> Self {
        let mut request = Self::new(Method::POST, path_and_query);
        request
            .headers
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        request.body = body.into();
        request
    }

    /// The method.
    pub fn method(&self) -> Method {
        self.method.clone()
    }

    /// Changes the method.
    pub fn set_method(&mut self, method: Method) {
        self.method = method;
    }

    /// The path and query.
    pub fn path(&self) -> &str {
        &self.path_and_query
    }

    /// Changes the path and query.
    pub fn set_path(&mut self, path_and_query: impl Into<String>) {
        self.path_and_query = path_and_query.into();
    }

    /// The headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The headers, to add, change or remove any (`Host` included).
    pub fn headers_mut(&mut self) -> &mut HeaderMap {
        &mut self.headers
    }

    /// Adds a header, replacing earlier values of that name.
    #[must_use]
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.insert(name, value);
        self
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Replaces the body.
    pub fn set_body(&mut self, body: impl Into<Bytes>) {
        self.body = body.into();
    }

    /// The `Authorization` value, if the request has one.
    pub fn authorization(&self) -> Option<&str> {
        self.headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
    }

    /// Signs as KMS does, with xks-sigv4's `Signer` (aws-sigv4), for `endpoint` as of
    /// `time`; its `Content-Type` is signed if the signer signs it. Sets `X-Amz-Date` and
    /// `Authorization`.
    ///
    /// # Errors
    ///
    /// [`Error::Sign`] if the signer rejects the request (for example a header value that
    /// is not text, or a path that does not form a URL).
    pub fn sign(
        &mut self,
        endpoint: &Endpoint,
        signer: &Signer,
        time: SystemTime,
    ) -> Result<(), Error> {
        let url = endpoint.url(&self.path_and_query);
        let content_type = self
            .headers
            .get(CONTENT_TYPE)
            .map(|v| v.to_str())
            .transpose()
            .map_err(|e| Error::sign("the content type is not text", Some(Box::new(e))))?;
        let mut outgoing = OutgoingRequest::new(self.method.as_str(), &url, &self.body);
        if let Some(ct) = content_type {
            outgoing = outgoing.with_content_type(ct);
        }
        let signature = signer
            .sign(&outgoing, time)
            .map_err(|e| Error::sign("SigV4 signing failed", Some(Box::new(e))))?;
        signature
            .apply_to(&mut self.headers)
            .map_err(|e| Error::sign("SigV4 signing failed", Some(Box::new(e))))
    }

    /// Signs with the raw mode's own SigV4 computation and any [`SigV4Params`]. Sets
    /// `X-Amz-Date` and `Authorization`.
    ///
    /// # Errors
    ///
    /// [`Error::Sign`] if a computed value cannot be a header value (for example a region
    /// with a newline).
    pub fn sign_with(&mut self, endpoint: &Endpoint, params: &SigV4Params) -> Result<(), Error> {
        sigv4::sign(
            params,
            endpoint,
            self.method.as_str(),
            &self.path_and_query,
            &mut self.headers,
            &self.body,
        )
    }

    pub(crate) fn into_parts(self) -> (Method, String, HeaderMap, Bytes) {
        (self.method, self.path_and_query, self.headers, self.body)
    }
}

impl fmt::Debug for RawRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<&str> = self.headers.keys().map(HeaderName::as_str).collect();
        f.debug_struct("RawRequest")
            .field("method", &self.method)
            .field("path", &self.path_and_query)
            .field("headers", &headers)
            .field("body_len", &self.body.len())
            .finish()
    }
}

// === impl RawResponse ===

impl RawResponse {
    pub(crate) fn new(
        status: StatusCode,
        version: Version,
        headers: HeaderMap,
        body: Bytes,
        tls: Option<Arc<TlsInfo>>,
        elapsed: Duration,
    ) -> Self {
        Self {
            status,
            version,
            headers,
            body,
            tls,
            elapsed,
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The HTTP version of the exchange.
    pub fn version(&self) -> Version {
        self.version
    }

    /// `HTTP/1.1` or `HTTP/2` (or another version's name).
    pub fn version_str(&self) -> &'static str {
        version_name(self.version)
    }

    /// The headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The `Content-Type`, if present and text.
    pub fn content_type(&self) -> Option<&str> {
        self.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok())
    }

    /// Whether the content type is `application/json` (parameters such as
    /// `charset=utf-8` allowed, case-insensitive).
    pub fn is_json(&self) -> bool {
        self.content_type().is_some_and(|ct| {
            ct.split(';')
                .next()
                .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
        })
    }

    /// The whole body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// What the connection's TLS handshake negotiated; `None` over plain HTTP.
    pub fn tls(&self) -> Option<&Arc<TlsInfo>> {
        self.tls.as_ref()
    }

    /// From sending (connecting included) to the end of the body.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }
}

impl fmt::Debug for RawResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawResponse")
            .field("status", &self.status)
            .field("version", &self.version)
            .field("content_type", &self.content_type())
            .field("body_len", &self.body.len())
            .field("tls", &self.tls)
            .field("elapsed", &self.elapsed)
            .finish()
    }
}

pub(crate) fn version_name(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/?",
    }
}
