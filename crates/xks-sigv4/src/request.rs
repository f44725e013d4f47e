//! The borrowed, HTTP-version-agnostic view of a request that the verifier checks.

use std::fmt;

use http::HeaderMap;

/// A received request, as the verifier needs it: method, path, query, headers, authority and
/// the raw body bytes. Borrowed, so building one costs nothing.
///
/// HTTP/2 requests carry the host in the `:authority` pseudo-header rather than in a `Host`
/// header. When `host` is a signed header and the headers have no `Host`, the verifier uses
/// the authority instead. [`from_parts`](Self::from_parts) takes it from the request URI,
/// where hyper puts it.
///
/// The body must be the exact bytes received, before any JSON parsing: the signature covers
/// their SHA-256.
///
/// `Debug` shows the header names but not their values (the `Authorization` header carries a
/// signature), and the body length but not the body (it may hold plaintext).
#[derive(Clone, Copy)]
pub struct SignedRequest<'a> {
    pub(crate) method: &'a str,
    pub(crate) path: &'a str,
    pub(crate) query: Option<&'a str>,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) authority: Option<&'a str>,
    pub(crate) body: &'a [u8],
}

// === impl SignedRequest ===

impl<'a> SignedRequest<'a> {
    /// A request without query string or authority. `path` is the request path as received,
    /// still percent-encoded (e.g. `/prefix/kms/xks/v1/health`).
    pub fn new(method: &'a str, path: &'a str, headers: &'a HeaderMap, body: &'a [u8]) -> Self {
        Self {
            method,
            path,
            query: None,
            headers,
            authority: None,
            body,
        }
    }

    /// The view of a request from hyper or axum: method, path, query and authority come from
    /// `parts.method` and `parts.uri`, the headers from `parts.headers`.
    pub fn from_parts(parts: &'a http::request::Parts, body: &'a [u8]) -> Self {
        Self {
            method: parts.method.as_str(),
            path: parts.uri.path(),
            query: parts.uri.query(),
            headers: &parts.headers,
            authority: parts.uri.authority().map(http::uri::Authority::as_str),
            body,
        }
    }

    /// Sets the raw query string, without the `?`. XKS requests have none.
    #[must_use]
    pub fn with_query(mut self, query: Option<&'a str>) -> Self {
        self.query = query;
        self
    }

    /// Sets the authority (`host[:port]`), used for a signed `host` header when the request
    /// has no `Host` header, as in HTTP/2.
    #[must_use]
    pub fn with_authority(mut self, authority: Option<&'a str>) -> Self {
        self.authority = authority;
        self
    }

    /// The HTTP method.
    pub fn method(&self) -> &'a str {
        self.method
    }

    /// The request path.
    pub fn path(&self) -> &'a str {
        self.path
    }

    /// The raw query string.
    pub fn query(&self) -> Option<&'a str> {
        self.query
    }

    /// The request headers.
    pub fn headers(&self) -> &'a HeaderMap {
        self.headers
    }

    /// The authority, if known.
    pub fn authority(&self) -> Option<&'a str> {
        self.authority
    }

    /// The raw body.
    pub fn body(&self) -> &'a [u8] {
        self.body
    }
}

impl fmt::Debug for SignedRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&str> = self.headers.keys().map(http::HeaderName::as_str).collect();
        names.sort_unstable();
        f.debug_struct("SignedRequest")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("query", &self.query)
            .field("header_names", &names)
            .field("authority", &self.authority)
            .field("body_len", &self.body.len())
            .finish()
    }
}
