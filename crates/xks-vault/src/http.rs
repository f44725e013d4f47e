//! The HTTP client: one pooled keep-alive client over every node, TLS by
//! rustls (aws-lc-rs), and failover from node to node.

use std::error::Error as StdError;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{Method, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::config::{TlsConfig, VaultConfig};
use crate::error::{Error, TlsError, VaultError, VaultErrorKind};
use crate::secret::{Secret, wiped_bytes};

/// The largest response body read from Vault.
const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// How long an idle pooled connection is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

type BoxError = Box<dyn StdError + Send + Sync + 'static>;

static TOKEN_HEADER: HeaderName = HeaderName::from_static("x-vault-token");
static NAMESPACE_HEADER: HeaderName = HeaderName::from_static("x-vault-namespace");

/// The client over all configured nodes.
pub(crate) struct Http {
    client: Client<Connector, Full<Bytes>>,
    nodes: Vec<Node>,
    /// The node tried first: the last one that answered, or the active node.
    preferred: AtomicUsize,
    namespace: Option<HeaderValue>,
    /// The `X-Vault-Token` header, wiped when replaced and no longer used.
    token: ArcSwapOption<HeaderValue>,
}

/// One configured node.
pub(crate) struct Node {
    /// The address as configured, used as the node's id.
    pub(crate) address: String,
    /// The address without a trailing `/`.
    base: String,
}

/// A call to make.
pub(crate) struct Call<'a> {
    pub(crate) method: Method,
    /// The API path below `/v1/`.
    pub(crate) path: &'a str,
    pub(crate) body: Option<Bytes>,
    /// Whether to send the token.
    pub(crate) token: bool,
    /// Whether to send the namespace header.
    pub(crate) namespace: bool,
    /// Whether sending the call twice is harmless (encrypt, decrypt, reads),
    /// so that it may be repeated on another node after a timeout or a
    /// connection lost mid-request. Other calls fail over only when no
    /// connection could be made.
    pub(crate) idempotent: bool,
}

/// An answer from a node, whatever its status.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: Bytes,
}

/// The connector of the pooled client: TCP, then TLS for `https://`.
#[derive(Clone)]
pub(crate) struct Connector {
    tcp: HttpConnector,
    tls: Option<(TlsConnector, Option<ServerName<'static>>)>,
}

/// A connection to a node.
pub(crate) enum Stream {
    Plain(TokioIo<TcpStream>),
    Tls(Box<TokioIo<TlsStream<TcpStream>>>),
}

// === impl Http ===

impl Http {
    pub(crate) fn new(config: &VaultConfig) -> Result<Self, Error> {
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_keepalive(Some(Duration::from_secs(30)));
        tcp.set_connect_timeout(Some(config.admin_timeout));
        let tls = if config.addresses.iter().any(|a| a.starts_with("https://")) {
            Some(tls_connector(&config.tls)?)
        } else {
            None
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(Connector { tcp, tls });
        let namespace = match &config.namespace {
            Some(ns) => Some(HeaderValue::from_str(ns).map_err(|_| {
                Error::Config(crate::error::ConfigError::new(
                    "`namespace` is not a valid header value",
                ))
            })?),
            None => None,
        };
        Ok(Self {
            client,
            nodes: config
                .addresses
                .iter()
                .map(|a| Node {
                    address: a.clone(),
                    base: a.trim_end_matches('/').to_owned(),
                })
                .collect(),
            preferred: AtomicUsize::new(0),
            namespace,
            token: ArcSwapOption::empty(),
        })
    }

    pub(crate) fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    pub(crate) fn preferred(&self) -> usize {
        self.preferred.load(Ordering::Relaxed)
    }

    pub(crate) fn set_preferred(&self, node: usize) {
        if node < self.nodes.len() {
            self.preferred.store(node, Ordering::Relaxed);
        }
    }

    /// Uses `token` from now on.
    pub(crate) fn set_token(&self, token: &Secret) -> Result<(), Error> {
        let mut value =
            HeaderValue::from_maybe_shared(wiped_bytes(token.expose().as_bytes().to_vec()))
                .map_err(|_| {
                    Error::Secret(crate::error::SecretError::not_unicode("vault token"))
                })?;
        value.set_sensitive(true);
        self.token.store(Some(Arc::new(value)));
        Ok(())
    }

    /// Sends `call` to the preferred node, and on a failure that another node
    /// may not have (no connection, a 5xx or a redirect from a standby) to the
    /// next ones, all within `deadline`. Returns the first answer that is not
    /// such a failure, whatever its status, and remembers its node.
    pub(crate) async fn send(
        &self,
        call: &Call<'_>,
        deadline: Instant,
    ) -> Result<Answer, VaultError> {
        let n = self.nodes.len();
        let first = self.preferred();
        let mut last = None;
        for i in 0..n {
            let node = (first + i) % n;
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            // While other nodes are left, a node that does not answer gets half
            // of the time left, so a hung node cannot use up the whole budget.
            let attempt_deadline = if i + 1 < n {
                now + (deadline - now) / 2
            } else {
                deadline
            };
            match self.send_to(node, call, attempt_deadline).await {
                Ok(answer) if !fails_over(answer.status) => {
                    if node != first {
                        self.set_preferred(node);
                    }
                    return Ok(answer);
                }
                Ok(answer) => {
                    tracing::debug!(
                        node = %self.nodes[node].address,
                        status = answer.status,
                        path = call.path,
                        "vault node failed the request; trying the next node"
                    );
                    last = Some(status_error(call, Some(&self.nodes[node].address), &answer));
                }
                // A request that may have reached the node is repeated on
                // another only if repeating it is harmless.
                Err(e) if e.is_connect() || call.idempotent => {
                    tracing::debug!(error = %e, "vault node did not answer; trying the next node");
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            VaultError::new(
                call.method.clone(),
                call.path,
                None,
                VaultErrorKind::Timeout,
            )
        }))
    }

    /// Sends `call` to one node, without failover.
    pub(crate) async fn send_to(
        &self,
        node: usize,
        call: &Call<'_>,
        deadline: Instant,
    ) -> Result<Answer, VaultError> {
        let address = self.nodes.get(node).map(|n| n.address.as_str());
        let fail = |kind| VaultError::new(call.method.clone(), call.path, address, kind);
        let Some(target) = self.nodes.get(node) else {
            return Err(fail(VaultErrorKind::Decode("no such node")));
        };
        let uri = format!("{}/v1/{}", target.base, call.path);
        let mut request = http::Request::builder()
            .method(call.method.clone())
            .uri(uri);
        if call.token
            && let Some(token) = self.token.load_full()
        {
            request = request.header(&TOKEN_HEADER, HeaderValue::clone(&token));
        }
        if call.namespace
            && let Some(ns) = &self.namespace
        {
            request = request.header(&NAMESPACE_HEADER, ns.clone());
        }
        if call.body.is_some() {
            request = request.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        let request = request
            .body(Full::new(call.body.clone().unwrap_or_default()))
            .map_err(|e| fail(VaultErrorKind::Transport(Arc::new(e))))?;
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| {
                if e.is_connect() {
                    VaultErrorKind::Connect(Arc::new(e))
                } else {
                    VaultErrorKind::Transport(Arc::new(e))
                }
            })?;
            let status = response.status().as_u16();
            let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| VaultErrorKind::Transport(Arc::from(e)))?
                .to_bytes();
            Ok::<_, VaultErrorKind>((status, body))
        };
        match timeout_at(deadline, exchange).await {
            Err(_) => Err(fail(VaultErrorKind::Timeout)),
            Ok(Err(kind)) => Err(fail(kind)),
            Ok(Ok((status, body))) => Ok(Answer { status, body }),
        }
    }
}

/// Whether an answer with `status` calls for trying another node: a redirect
/// (a standby that does not forward), `412` (a standby behind on replication)
/// and server errors (sealed, no active node, forwarding failed).
fn fails_over(status: u16) -> bool {
    matches!(status, 300..=399 | 412 | 500..=599)
}

/// The error for an unsuccessful answer.
pub(crate) fn status_error(call: &Call<'_>, node: Option<&str>, answer: &Answer) -> VaultError {
    VaultError::new(
        call.method.clone(),
        call.path,
        node,
        VaultErrorKind::Status {
            status: answer.status,
            messages: error_messages(&answer.body),
        },
    )
}

/// Vault's `errors` array, or nothing.
pub(crate) fn error_messages(body: &[u8]) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Errors {
        #[serde(default)]
        errors: Vec<String>,
    }
    serde_json::from_slice::<Errors>(body)
        .map(|e| e.errors)
        .unwrap_or_default()
}

fn tls_connector(config: &TlsConfig) -> Result<(TlsConnector, Option<ServerName<'static>>), Error> {
    let tls_error = |what: String, e: Option<BoxError>| Error::Tls(TlsError::new(what, e));
    let mut roots = rustls::RootCertStore::empty();
    if let Some(ca) = &config.ca_file {
        let certs = CertificateDer::pem_file_iter(ca)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| {
                tls_error(
                    format!("cannot read the CA file `{}`", ca.display()),
                    Some(Box::new(e)),
                )
            })?;
        if certs.is_empty() {
            return Err(tls_error(
                format!("the CA file `{}` holds no certificate", ca.display()),
                None,
            ));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| {
                tls_error(
                    format!("unusable CA certificate in `{}`", ca.display()),
                    Some(Box::new(e)),
                )
            })?;
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error("no TLS protocol version".to_owned(), Some(Box::new(e))))?
        .with_root_certificates(roots);
    let mut tls = match (&config.client_cert_file, &config.client_key_file) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| {
                    tls_error(
                        format!("cannot read the client certificate `{}`", cert.display()),
                        Some(Box::new(e)),
                    )
                })?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                tls_error(
                    format!("cannot read the client key `{}`", key.display()),
                    Some(Box::new(e)),
                )
            })?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                tls_error(
                    "unusable client certificate or key".to_owned(),
                    Some(Box::new(e)),
                )
            })?
        }
        _ => builder.with_no_client_auth(),
    };
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let server_name = match &config.server_name {
        Some(name) => Some(ServerName::try_from(name.clone()).map_err(|e| {
            tls_error(
                format!("`tls.server_name` = `{name}` is not a DNS name or IP address"),
                Some(Box::new(e)),
            )
        })?),
        None => None,
    };
    Ok((TlsConnector::from(Arc::new(tls)), server_name))
}

// === impl Connector ===

impl tower_service::Service<Uri> for Connector {
    type Response = Stream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Stream, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.tcp.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let https = uri.scheme_str() == Some("https");
        let host = uri
            .host()
            .unwrap_or_default()
            .trim_matches(['[', ']'])
            .to_owned();
        let connecting = self.tcp.call(uri);
        let tls = self.tls.clone();
        Box::pin(async move {
            let tcp = connecting.await?;
            if !https {
                return Ok(Stream::Plain(tcp));
            }
            let Some((connector, name)) = tls else {
                return Err(BoxError::from("an https address without TLS configuration"));
            };
            let name = match name {
                Some(name) => name,
                None => ServerName::try_from(host)?,
            };
            let stream = connector.connect(name, tcp.into_inner()).await?;
            Ok(Stream::Tls(Box::new(TokioIo::new(stream))))
        })
    }
}

// === impl Stream ===

impl Connection for Stream {
    fn connected(&self) -> Connected {
        match self {
            Self::Plain(tcp) => tcp.connected(),
            Self::Tls(tls) => {
                let (tcp, session) = tls.inner().get_ref();
                let connected = tcp.connected();
                if session.alpn_protocol() == Some(b"h2") {
                    connected.negotiated_h2()
                } else {
                    connected
                }
            }
        }
    }
}

impl hyper::rt::Read for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(&mut **s).poll_read(cx, buf),
        }
    }
}

impl hyper::rt::Write for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(&mut **s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(&mut **s).poll_shutdown(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(s) => s.is_write_vectored(),
            Self::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Tls(s) => Pin::new(&mut **s).poll_write_vectored(cx, bufs),
        }
    }
}
