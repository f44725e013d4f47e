//! The connector of the pooled hyper client: TCP (with an optional `--connect-to`
//! address), then rustls over tokio-rustls, recording what the handshake negotiated.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::error::{ConnectError, ConnectErrorKind, TlsError};
use crate::tls_info::TlsInfo;

/// Opens connections for the pool.
#[derive(Clone)]
pub(crate) struct Connector {
    tls: Option<TlsConnector>,
    connect_to: Option<SocketAddr>,
    timeout: Duration,
    http2_prior_knowledge: bool,
    opened: Arc<AtomicU64>,
}

/// An open connection, plain or TLS.
pub(crate) struct Conn {
    io: TokioIo<Stream>,
    tls: Option<Arc<TlsInfo>>,
    h2: bool,
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// Why a connection could not be opened; found again in the client's error chain.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum ConnectFailure {
    /// No TCP connection.
    #[error("TCP connection failed")]
    Tcp(#[source] ConnectError),
    /// The TLS handshake failed.
    #[error("TLS handshake failed")]
    Tls(#[source] TlsError),
    /// Connecting took longer than the timeout.
    #[error("connecting timed out")]
    Timeout,
    /// The host is not a valid TLS server name.
    #[error("{0:?} is not a valid TLS server name")]
    ServerName(String),
}

// === impl Connector ===

impl Connector {
    pub(crate) fn new(
        tls: Option<Arc<rustls::ClientConfig>>,
        connect_to: Option<SocketAddr>,
        timeout: Duration,
        http2_prior_knowledge: bool,
    ) -> Self {
        Self {
            tls: tls.map(TlsConnector::from),
            connect_to,
            timeout,
            http2_prior_knowledge,
            opened: Arc::new(AtomicU64::new(0)),
        }
    }

    /// How many connections were opened (TCP, plus TLS for https) so far.
    pub(crate) fn opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    async fn connect(self, uri: Uri) -> Result<Conn, ConnectFailure> {
        let deadline = Instant::now() + self.timeout;
        let host = uri
            .host()
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let default_port = if self.tls.is_some() { 443 } else { 80 };
        let port = uri.port_u16().unwrap_or(default_port);
        let addrs: Vec<SocketAddr> = match self.connect_to {
            Some(addr) => vec![addr],
            None => {
                tokio::time::timeout_at(deadline, tokio::net::lookup_host((host.as_str(), port)))
                    .await
                    .map_err(|_| ConnectFailure::Timeout)?
                    .map_err(|e| {
                        ConnectFailure::Tcp(ConnectError::new(
                            ConnectErrorKind::Resolve,
                            &host,
                            None,
                            Some(e),
                        ))
                    })?
                    .collect()
            }
        };
        let mut last = ConnectError::new(ConnectErrorKind::Resolve, &host, None, None);
        let mut connected = None;
        for addr in addrs {
            match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
                Err(_) => return Err(ConnectFailure::Timeout),
                Ok(Ok(tcp)) => {
                    connected = Some((tcp, addr));
                    break;
                }
                Ok(Err(e)) => last = ConnectError::new(tcp_kind(&e), &host, Some(addr), Some(e)),
            }
        }
        let (tcp, addr) = connected.ok_or(ConnectFailure::Tcp(last))?;
        // Small requests and answers: do not wait to coalesce segments.
        let _ = tcp.set_nodelay(true);
        let Some(tls) = self.tls else {
            self.opened.fetch_add(1, Ordering::Relaxed);
            return Ok(Conn {
                io: TokioIo::new(Stream::Plain(tcp)),
                tls: None,
                h2: self.http2_prior_knowledge,
            });
        };
        let name = ServerName::try_from(host.clone())
            .map_err(|_| ConnectFailure::ServerName(host.clone()))?;
        let stream = tokio::time::timeout_at(deadline, tls.connect(name, tcp))
            .await
            .map_err(|_| ConnectFailure::Timeout)?
            .map_err(|e| ConnectFailure::Tls(TlsError::from_io(e, Some(addr))))?;
        let info = TlsInfo::from_connection(stream.get_ref().1);
        let h2 = info.alpn() == Some("h2");
        self.opened.fetch_add(1, Ordering::Relaxed);
        Ok(Conn {
            io: TokioIo::new(Stream::Tls(Box::new(stream))),
            tls: Some(Arc::new(info)),
            h2,
        })
    }
}

fn tcp_kind(error: &io::Error) -> ConnectErrorKind {
    match error.kind() {
        io::ErrorKind::ConnectionRefused => ConnectErrorKind::Refused,
        io::ErrorKind::HostUnreachable
        | io::ErrorKind::NetworkUnreachable
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::AddrNotAvailable => ConnectErrorKind::Unreachable,
        _ => ConnectErrorKind::Other,
    }
}

impl tower_service::Service<Uri> for Connector {
    type Response = Conn;
    type Error = ConnectFailure;
    type Future = Pin<Box<dyn Future<Output = Result<Conn, ConnectFailure>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        Box::pin(self.clone().connect(uri))
    }
}

// === impl Conn ===

impl Connection for Conn {
    fn connected(&self) -> Connected {
        let mut connected = Connected::new();
        if self.h2 {
            connected = connected.negotiated_h2();
        }
        match &self.tls {
            Some(info) => connected.extra(Arc::clone(info)),
            None => connected,
        }
    }
}

impl hyper::rt::Read for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}

// === impl Stream ===

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(s) => s.is_write_vectored(),
            Self::Tls(s) => s.is_write_vectored(),
        }
    }
}
