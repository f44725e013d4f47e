//! The request path: route, limit, authenticate, parse, authorize the key, call the
//! key manager under a deadline, answer, and log one line.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use xks_keymanager::{KeyManager, KeyManagerError, decrypt_for_xks, encrypt_for_xks};
use xks_protocol::{
    DecryptRequest, DecryptResponse, EncryptRequest, EncryptResponse, ErrorName, HealthRequest,
    KeyId, Limits, MetadataRequest, Operation, OperationKind, RequestMetadata, Route, XksError,
};
use xks_sigv4::{Authenticated, SignedRequest, Verifier};

use crate::health::HealthMonitor;
use crate::rescue::Rejection;

/// The XKS service: everything a request needs, shared by all connections.
#[derive(Debug)]
pub struct App {
    tenants: HashMap<String, Tenant>,
    km: Arc<dyn KeyManager>,
    limits: Limits,
    max_body: usize,
    backend_timeout: Duration,
    health: Arc<HealthMonitor>,
    ping_path: String,
}

/// One tenant: a path prefix, its credentials and region policy, and its keys.
#[derive(Debug)]
pub struct Tenant {
    name: String,
    verifier: Verifier,
    keys: KeyAccess,
}

/// Which external keys a tenant may use.
#[derive(Debug)]
pub enum KeyAccess {
    /// Every key of the key manager.
    All,
    /// Only these.
    Only(HashSet<KeyId>),
}

/// The fields of the one log line written per request.
#[derive(Default)]
struct RequestLog<'a> {
    ping: bool,
    kind: Option<OperationKind>,
    tenant: Option<&'a str>,
    key_id: Option<KeyId>,
    metadata: Option<RequestMetadata>,
    identity: Option<Authenticated>,
    detail: Option<String>,
}

// === impl App ===

impl App {
    /// Assembles the service.
    pub fn new(
        tenants: impl IntoIterator<Item = (String, Tenant)>,
        km: Arc<dyn KeyManager>,
        limits: Limits,
        backend_timeout: Duration,
        health: Arc<HealthMonitor>,
        ping_path: String,
    ) -> Self {
        Self {
            tenants: tenants.into_iter().collect(),
            km,
            max_body: limits.max_body_bytes(),
            limits,
            backend_timeout,
            health,
            ping_path,
        }
    }

    /// The deep health monitor.
    pub fn health(&self) -> &Arc<HealthMonitor> {
        &self.health
    }

    /// The key manager.
    pub fn key_manager(&self) -> &Arc<dyn KeyManager> {
        &self.km
    }

    /// The tenant at `prefix`.
    pub fn tenant(&self, prefix: &str) -> Option<&Tenant> {
        self.tenants.get(prefix)
    }

    /// The configured path prefixes.
    pub fn prefixes(&self) -> impl Iterator<Item = &str> {
        self.tenants.keys().map(String::as_str)
    }

    /// Whether `path` is the unauthenticated load-balancer check.
    pub fn is_ping(&self, path: &str) -> bool {
        path == self.ping_path
    }

    /// Handles one request and writes its log line. Never fails: every problem is
    /// an XKS error response.
    pub async fn handle<B>(
        &self,
        req: Request<B>,
        peer: Option<SocketAddr>,
    ) -> Response<Full<Bytes>>
    where
        B: hyper::body::Body<Data = Bytes> + Send,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let started = Instant::now();
        let mut log = RequestLog::default();
        let response = match self.process(req, &mut log).await {
            Ok(response) => response,
            Err(rejection) => {
                log.detail = Some(rejection.detail());
                rejection.into_response(log.kind)
            }
        };
        log.emit(&response, started.elapsed(), peer);
        response
    }

    async fn process<'a, B>(
        &'a self,
        req: Request<B>,
        log: &mut RequestLog<'a>,
    ) -> Result<Response<Full<Bytes>>, Rejection>
    where
        B: hyper::body::Body<Data = Bytes> + Send,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let (parts, body) = req.into_parts();
        let path = parts.uri.path();
        if self.is_ping(path) {
            log.ping = true;
            return if matches!(parts.method, Method::GET | Method::HEAD) {
                Ok(json_response(
                    StatusCode::OK,
                    Bytes::from_static(b"{\"status\":\"ok\"}"),
                ))
            } else {
                Err(Rejection::MethodNotAllowed("GET, HEAD"))
            };
        }

        // 1. Route: the prefix selects the tenant. Unknown paths are answered before
        //    authentication, since credentials are per prefix.
        let route = Route::parse(path).map_err(|e| Rejection::Xks(e.into()))?;
        log.kind = Some(route.operation().kind());
        let tenant = self.tenants.get(route.prefix()).ok_or_else(|| {
            Rejection::Xks(XksError::with_message(
                ErrorName::InvalidUriPathException,
                "no external key store is configured at this URI path prefix",
            ))
        })?;
        log.tenant = Some(&tenant.name);
        log.key_id = route.operation().key_id().cloned();
        if parts.method != Method::POST {
            return Err(Rejection::MethodNotAllowed("POST"));
        }

        // 2. Refuse what cannot be a legitimate request before reading the body:
        //    headers that cannot authenticate, then a declared size over the limit.
        if let Err(e) = tenant.verifier.precheck(&parts.headers) {
            // Read what a legitimate client could send (discarding it, never
            // buffering) so the client sees the 401 rather than a reset connection.
            drain(body, self.max_body).await;
            return Err(Rejection::Auth(e));
        }
        if declared_length(&parts.headers).is_some_and(|len| len > self.max_body) {
            return Err(self.body_too_large());
        }

        // 3. Read the body, never more than the limit.
        let body = Limited::new(body, self.max_body)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    self.body_too_large()
                } else {
                    Rejection::Xks(XksError::with_message(
                        ErrorName::ValidationException,
                        "the request body could not be read",
                    ))
                }
            })?
            .to_bytes();

        // 4. SigV4 over the exact bytes received.
        let identity = tenant
            .verifier
            .verify(&SignedRequest::from_parts(&parts, &body))
            .map_err(Rejection::Auth)?;
        log.identity = Some(identity);

        // 5. Parse, check the key, call the key manager.
        let limits = &self.limits;
        let body = match route.operation() {
            Operation::Health => {
                let mut req = parsed(HealthRequest::from_json(&body, limits), &body, log)?;
                log.metadata = Some(std::mem::take(&mut req.request_metadata));
                serde_json::to_vec(&self.health.response()?)
            }
            Operation::Metadata(key) => {
                let mut req = parsed(MetadataRequest::from_json(&body, limits), &body, log)?;
                log.metadata = Some(std::mem::take(&mut req.request_metadata));
                tenant.check_key(key)?;
                let md = self.call(self.km.key_metadata(key)).await?;
                serde_json::to_vec(&md)
            }
            Operation::Encrypt(key) => {
                let mut req = parsed(EncryptRequest::from_json(&body, limits), &body, log)?;
                log.metadata = Some(std::mem::take(&mut req.request_metadata));
                tenant.check_key(key)?;
                let aad = req
                    .additional_authenticated_data
                    .as_deref()
                    .unwrap_or_default();
                let out = self
                    .call(encrypt_for_xks(
                        &*self.km,
                        key,
                        req.plaintext.as_bytes(),
                        aad,
                        req.ciphertext_data_integrity_value_algorithm.is_some(),
                    ))
                    .await?;
                serde_json::to_vec(&EncryptResponse {
                    ciphertext: out.sealed.ciphertext,
                    ciphertext_metadata: Some(out.sealed.version.to_metadata().to_vec()),
                    initialization_vector: out.sealed.iv,
                    authentication_tag: out.sealed.tag,
                    ciphertext_data_integrity_value: out.cdiv,
                })
            }
            Operation::Decrypt(key) => {
                let mut req = parsed(DecryptRequest::from_json(&body, limits), &body, log)?;
                log.metadata = Some(std::mem::take(&mut req.request_metadata));
                tenant.check_key(key)?;
                let plaintext = self
                    .call(decrypt_for_xks(
                        &*self.km,
                        key,
                        req.ciphertext_metadata.as_deref().unwrap_or_default(),
                        &req.initialization_vector,
                        &req.ciphertext,
                        &req.authentication_tag,
                        req.additional_authenticated_data
                            .as_deref()
                            .unwrap_or_default(),
                    ))
                    .await?;
                serde_json::to_vec(&DecryptResponse { plaintext })
            }
        }
        .map_err(|_| {
            Rejection::Xks(XksError::with_message(
                ErrorName::InternalException,
                "response encoding failed",
            ))
        })?;
        Ok(json_response(StatusCode::OK, Bytes::from(body)))
    }

    /// Runs a key manager call under the deadline.
    async fn call<T>(
        &self,
        fut: impl Future<Output = Result<T, KeyManagerError>>,
    ) -> Result<T, Rejection> {
        match tokio::time::timeout(self.backend_timeout, fut).await {
            Ok(result) => result.map_err(Rejection::Backend),
            Err(_) => Err(Rejection::Deadline(self.backend_timeout)),
        }
    }

    fn body_too_large(&self) -> Rejection {
        Rejection::Xks(XksError::with_message(
            ErrorName::UnsupportedOperationException,
            format!(
                "request body larger than this proxy's limit of {} bytes",
                self.max_body
            ),
        ))
    }
}

/// The parsed request, or the rejection; on failure the log still gets whatever
/// `requestMetadata` fields can be read, so the line can be matched to CloudTrail.
fn parsed<T>(
    result: Result<T, XksError>,
    body: &[u8],
    log: &mut RequestLog<'_>,
) -> Result<T, Rejection> {
    result.map_err(|e| {
        log.loose_metadata(body);
        Rejection::Xks(e)
    })
}

/// How long an unauthenticated body may take to arrive before it is abandoned.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Reads and discards up to `limit` bytes of `body`, for at most [`DRAIN_TIMEOUT`].
async fn drain<B>(body: B, limit: usize)
where
    B: hyper::body::Body<Data = Bytes> + Send,
{
    let discard = async {
        let mut body = std::pin::pin!(body);
        let mut seen = 0usize;
        while seen <= limit {
            match body.frame().await {
                Some(Ok(frame)) => {
                    seen = seen.saturating_add(frame.data_ref().map_or(0, Bytes::len));
                }
                _ => return,
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, discard).await;
}

fn declared_length(headers: &http::HeaderMap) -> Option<usize> {
    headers.get(CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// A response with a JSON body.
pub(crate) fn json_response(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Adds `Allow` to a 405 response.
pub(crate) fn with_allow(
    mut response: Response<Full<Bytes>>,
    allow: &'static str,
) -> Response<Full<Bytes>> {
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    response
}

// === impl Tenant ===

impl Tenant {
    /// A tenant named `name` (for logs).
    pub fn new(name: String, verifier: Verifier, keys: KeyAccess) -> Self {
        Self {
            name,
            verifier,
            keys,
        }
    }

    /// The tenant's SigV4 verifier (to rotate its credentials at runtime).
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// A key outside the tenant's list does not exist, as far as the tenant knows.
    fn check_key(&self, key: &KeyId) -> Result<(), Rejection> {
        match &self.keys {
            KeyAccess::All => Ok(()),
            KeyAccess::Only(keys) if keys.contains(key) => Ok(()),
            KeyAccess::Only(_) => Err(Rejection::Xks(XksError::with_message(
                ErrorName::KeyNotFoundException,
                "the external key is not configured for this key store",
            ))),
        }
    }
}

// === impl RequestLog ===

impl RequestLog<'_> {
    /// Reads the identifying `requestMetadata` fields of a body that failed
    /// validation, as far as it is JSON at all. Values are cut to 256 characters.
    fn loose_metadata(&mut self, body: &[u8]) {
        #[derive(serde::Deserialize)]
        struct Loose {
            #[serde(rename = "requestMetadata")]
            metadata: Option<LooseMetadata>,
        }
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct LooseMetadata {
            kms_request_id: Option<String>,
            kms_operation: Option<String>,
            aws_principal_arn: Option<String>,
        }
        let cut = |v: Option<String>| v.map(|v| v.chars().take(256).collect::<String>());
        if let Ok(Loose { metadata: Some(md) }) = serde_json::from_slice(body) {
            self.metadata = Some(RequestMetadata {
                kms_request_id: cut(md.kms_request_id).unwrap_or_default(),
                kms_operation: cut(md.kms_operation).unwrap_or_default(),
                aws_principal_arn: cut(md.aws_principal_arn),
                ..RequestMetadata::default()
            });
        }
    }

    fn emit(&self, response: &Response<Full<Bytes>>, latency: Duration, peer: Option<SocketAddr>) {
        let status = response.status().as_u16();
        let error_name = response
            .extensions()
            .get::<ErrorName>()
            .map_or("-", |n| n.as_str());
        let outcome = if response.status().is_success() {
            "ok"
        } else {
            "error"
        };
        let operation = match (self.ping, self.kind) {
            (true, _) => "Ping",
            (false, Some(kind)) => kind.as_str(),
            (false, None) => "-",
        };
        let md = self.metadata.as_ref();
        fn or_dash(s: &str) -> &str {
            if s.is_empty() { "-" } else { s }
        }
        tracing::info!(
            target: "xks::request",
            kms_request_id = md.map_or("-", |m| or_dash(&m.kms_request_id)),
            operation,
            kms_operation = md.map_or("-", |m| or_dash(&m.kms_operation)),
            tenant = self.tenant.unwrap_or("-"),
            key_id = self.key_id.as_ref().map_or("-", KeyId::as_str),
            principal = md.and_then(|m| m.aws_principal_arn.as_deref()).unwrap_or("-"),
            access_key_id = self.identity.as_ref().map_or("-", |i| i.access_key_id().as_str()),
            peer = %DisplayPeer(peer),
            outcome,
            status,
            error_name,
            latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
            detail = self.detail.as_deref().unwrap_or("-"),
            "request"
        );
    }
}

struct DisplayPeer(Option<SocketAddr>);

impl fmt::Display for DisplayPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(addr) => write!(f, "{addr}"),
            None => f.write_str("-"),
        }
    }
}
