//! The pooled HTTPS client: hyper-util's client over our rustls connector, with the
//! per-request timeout and the classification of failures.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::time::Instant;

use crate::connector::{ConnectFailure, Connector};
use crate::error::TlsError;
use crate::{
    ClientConfig, Endpoint, Error, HttpVersions, RawRequest, RawResponse, Scheme, TlsInfo,
};

/// A pooled HTTPS client for one proxy endpoint: keep-alive connections, HTTP/2 or
/// HTTP/1.1 chosen by ALPN, a timeout on every request. Cloning is cheap and clones share
/// the pool.
///
/// [`Client::send`] is the raw mode: it returns whatever the proxy answered, any status;
/// only transport failures are errors. [`XksClient`](crate::XksClient) adds signing and
/// the typed XKS operations on top.
///
/// It needs a Tokio runtime when sending.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: HyperClient<Connector, Full<Bytes>>,
    connector: Connector,
    endpoint: Endpoint,
    timeout: Duration,
    max_answer_bytes: usize,
    http_versions: HttpVersions,
}

// === impl Client ===

impl Client {
    /// Builds the client; loads the trust roots and client certificate now.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if the TLS configuration cannot be built (no trust roots, an
    /// unusable client certificate).
    pub fn new(config: ClientConfig) -> Result<Self, Error> {
        let tls = match config.endpoint.scheme() {
            Scheme::Https => Some(Arc::new(config.rustls_config()?)),
            Scheme::Http => None,
        };
        let prior_knowledge = tls.is_none() && matches!(config.http, HttpVersions::Http2);
        let connector = Connector::new(tls, config.connect_to, config.timeout, prior_knowledge);
        let mut builder = HyperClient::builder(TokioExecutor::new());
        builder
            .pool_idle_timeout(config.pool_idle_timeout)
            .pool_max_idle_per_host(config.pool_max_idle_per_host)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new());
        if matches!(config.http, HttpVersions::Http2) {
            builder.http2_only(true);
        }
        Ok(Self {
            inner: Arc::new(Inner {
                http: builder.build(connector.clone()),
                connector,
                endpoint: config.endpoint,
                timeout: config.timeout,
                max_answer_bytes: config.max_answer_bytes,
                http_versions: config.http,
            }),
        })
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        &self.inner.endpoint
    }

    /// The per-request timeout.
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// The HTTP versions offered.
    pub fn http_versions(&self) -> HttpVersions {
        self.inner.http_versions
    }

    /// How many connections this client (and its clones) opened so far: with keep-alive,
    /// far fewer than requests.
    pub fn connections_opened(&self) -> u64 {
        self.inner.connector.opened()
    }

    /// Sends `request` as is and returns the answer, whatever its status, within the
    /// client's timeout.
    ///
    /// # Errors
    ///
    /// Transport failures only: [`Error::Connect`], [`Error::Tls`], [`Error::Timeout`],
    /// [`Error::Http`], or [`Error::Config`] if the path does not form a URL.
    pub async fn send(&self, request: RawRequest) -> Result<RawResponse, Error> {
        self.send_with_timeout(request, self.inner.timeout).await
    }

    /// Like [`Client::send`], with another timeout.
    ///
    /// # Errors
    ///
    /// As [`Client::send`].
    pub async fn send_with_timeout(
        &self,
        request: RawRequest,
        timeout: Duration,
    ) -> Result<RawResponse, Error> {
        let (method, path, headers, body) = request.into_parts();
        let url = self.inner.endpoint.url(&path);
        let uri: Uri = url
            .parse()
            .map_err(|e| Error::config_with(format!("path {path:?} does not form a URL"), e))?;
        let mut req = http::Request::new(Full::new(body));
        *req.method_mut() = method;
        *req.uri_mut() = uri;
        *req.headers_mut() = headers;
        let start = Instant::now();
        let exchange = async {
            let response = self
                .inner
                .http
                .request(req)
                .await
                .map_err(|e| classify(e, timeout))?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, self.inner.max_answer_bytes)
                .collect()
                .await
                .map_err(|e| classify_body(e, self.inner.max_answer_bytes))?
                .to_bytes();
            Ok::<_, Error>((parts, body))
        };
        let (parts, body) = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| Error::timeout(timeout))??;
        let tls = parts.extensions.get::<Arc<TlsInfo>>().cloned();
        Ok(RawResponse::new(
            parts.status,
            parts.version,
            parts.headers,
            body,
            tls,
            start.elapsed(),
        ))
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.inner.endpoint)
            .field("timeout", &self.inner.timeout)
            .field("http_versions", &self.inner.http_versions)
            .finish_non_exhaustive()
    }
}

/// Sorts a failed exchange into this crate's categories, by what its source chain holds.
fn classify(error: hyper_util::client::legacy::Error, timeout: Duration) -> Error {
    let mut source: Option<&(dyn StdError + 'static)> = error.source();
    while let Some(s) = source {
        if let Some(failure) = s.downcast_ref::<ConnectFailure>() {
            return match failure.clone() {
                ConnectFailure::Tcp(e) => Error::Connect(e),
                ConnectFailure::Tls(e) => Error::Tls(e),
                ConnectFailure::Timeout => Error::timeout(timeout),
                ConnectFailure::ServerName(name) => {
                    Error::config(format!("{name:?} is not a valid TLS server name"))
                }
            };
        }
        if let Some(tls) = session_error(s) {
            return Error::Tls(tls);
        }
        source = s.source();
    }
    Error::http("the HTTP exchange failed", Some(Box::new(error)))
}

fn classify_body(error: Box<dyn StdError + Send + Sync>, max: usize) -> Error {
    if error.downcast_ref::<LengthLimitError>().is_some() {
        return Error::http(format!("the answer body exceeds {max} bytes"), None);
    }
    let mut source: Option<&(dyn StdError + 'static)> = Some(&*error);
    while let Some(s) = source {
        if let Some(tls) = session_error(s) {
            return Error::Tls(tls);
        }
        source = s.source();
    }
    Error::http("reading the answer body failed", Some(error))
}

/// A TLS alert or error after the handshake (TLS 1.3 servers reject client certificates
/// then): an I/O error wrapping a rustls error.
fn session_error(error: &(dyn StdError + 'static)) -> Option<TlsError> {
    let io = error.downcast_ref::<std::io::Error>()?;
    let rustls = io.get_ref()?.downcast_ref::<rustls::Error>()?;
    Some(TlsError::from_rustls(rustls, None))
}
