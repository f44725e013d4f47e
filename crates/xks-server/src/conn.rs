//! One accepted connection, after TLS: HTTP/1.1 or HTTP/2, keep-alive, idle
//! timeout, graceful shutdown.
//!
//! # Parked HTTP/1.1 connections
//!
//! KMS keeps connections to a proxy open between requests, and a proxy may hold
//! thousands of them. hyper's HTTP/1.1 connection keeps its read and header
//! buffers (8 to 16 KiB each) for its whole life, so an idle connection would cost
//! 16 to 25 KB. Here a hyper connection lives only while it has work: once every
//! request on it has been answered and flushed and hyper waits for the next one,
//! the connection is taken apart ([`http1::Connection::into_parts`]), which frees
//! hyper's buffers, and the socket is *parked*: the task keeps only the (TLS)
//! stream and waits for the next bytes, the idle timeout, or shutdown. The next
//! request builds a new hyper connection, first fed the bytes read while parked.
//!
//! Bytes hyper had read but not parsed (the start of a pipelined or split
//! request) come back from `into_parts` and are fed to the next hyper connection
//! first; that connection is not parked again until a request has started on it,
//! so hyper's header read timeout still bounds a slow request head.
//!
//! HTTP/2 connections (ALPN `h2`, or the HTTP/2 preface on a connection without
//! ALPN) are served by one hyper HTTP/2 connection for their whole life.

use std::convert::Infallible;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::app::App;

/// The HTTP/2 connection preface (RFC 9113, section 3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Bytes a parked connection reads when it wakes up; hyper reads the rest of the
/// request. Small, since this buffer is part of every idle connection.
const WAKE_READ: usize = 64;

/// Time allowed to send a TLS close_notify when a connection ends.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// What a connection serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// The XKS API (and the ping path).
    Api,
    /// Only the ping path; everything else is 404.
    PingOnly,
}

/// Which HTTP version a connection speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Protocol {
    Http1,
    Http2,
    /// No ALPN: HTTP/2 if the client starts with the HTTP/2 preface.
    Detect,
}

/// What every connection of a server shares.
pub(crate) struct ConnSettings {
    pub(crate) app: Arc<App>,
    pub(crate) http1: http1::Builder,
    pub(crate) http2: http2::Builder<TokioExecutor>,
    /// Time for the first request to start arriving on a new connection.
    pub(crate) first_request_timeout: Duration,
    /// Keep-alive connections idle longer than this are closed.
    pub(crate) idle_timeout: Duration,
}

impl ConnSettings {
    pub(crate) fn new(app: Arc<App>, header_timeout: Duration, idle_timeout: Duration) -> Self {
        let mut h1 = http1::Builder::new();
        h1.timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .keep_alive(true);
        let mut h2 = http2::Builder::new(TokioExecutor::new());
        h2.timer(TokioTimer::new()).max_concurrent_streams(256);
        Self {
            app,
            http1: h1,
            http2: h2,
            first_request_timeout: header_timeout,
            idle_timeout,
        }
    }
}

/// Resolves once shutdown has been requested.
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    // An error means the sender is gone, which also means stop.
    let _ = stop.wait_for(|s| *s).await.map(|_| ());
}

/// Serves one connection until the client closes it, it idles out, or shutdown
/// completes.
pub(crate) async fn serve<S>(
    mut io: S,
    protocol: Protocol,
    peer: SocketAddr,
    role: Role,
    settings: &ConnSettings,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Boxed, like the other phases that do not last: the task keeps only what a
    // parked connection needs.
    let Some((first, protocol)) =
        Box::pin(first_bytes(&mut io, protocol, peer, settings, &mut stop)).await
    else {
        return;
    };
    let ctx = RequestCtx {
        app: &settings.app,
        peer,
        role,
    };
    if protocol == Protocol::Http2 {
        // An HTTP/2 connection is large, and most connections are HTTP/1.1 and
        // parked most of the time: the task is not sized for HTTP/2.
        Box::pin(serve_h2(io, first, ctx, settings, stop)).await;
    } else {
        serve_h1(&mut io, first, ctx, settings, stop).await;
    }
}

/// The first bytes of a new connection and the protocol they show, or `None`
/// when the connection ended (or was closed for silence) before any.
async fn first_bytes<S>(
    io: &mut S,
    protocol: Protocol,
    peer: SocketAddr,
    settings: &ConnSettings,
    stop: &mut watch::Receiver<bool>,
) -> Option<(Bytes, Protocol)>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if protocol == Protocol::Http2 {
        return Some((Bytes::new(), Protocol::Http2));
    }
    let first = tokio::select! {
        () = stopped(stop) => {
            close(io).await;
            return None;
        }
        read = tokio::time::timeout(
            settings.first_request_timeout,
            read_first(io, protocol == Protocol::Detect),
        ) => read,
    };
    match first {
        Ok(Ok(found)) => found,
        // Closed or failed before the first request: nothing to answer.
        Ok(Err(_)) => None,
        Err(_) => {
            tracing::debug!(%peer, "no request within the header timeout; closing");
            close(io).await;
            None
        }
    }
}

/// Reads the first bytes of a connection; with `detect`, enough of them to tell
/// the HTTP/2 preface from an HTTP/1.x request. `None` when the client closed
/// without sending anything.
async fn read_first<S>(io: &mut S, detect: bool) -> io::Result<Option<(Bytes, Protocol)>>
where
    S: AsyncRead + Unpin,
{
    let mut buf = [0u8; H2_PREFACE.len()];
    let mut len = 0;
    loop {
        let n = io.read(&mut buf[len..]).await?;
        if n == 0 {
            return Ok(None);
        }
        len += n;
        let got = &buf[..len];
        if !detect || !H2_PREFACE.starts_with(got) {
            return Ok(Some((Bytes::copy_from_slice(got), Protocol::Http1)));
        }
        if len == H2_PREFACE.len() {
            return Ok(Some((Bytes::copy_from_slice(got), Protocol::Http2)));
        }
    }
}

/// Ends a connection: TLS close_notify (if TLS) and FIN, bounded in time.
async fn close<S: AsyncWrite + Unpin>(io: &mut S) {
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, io.shutdown()).await;
}

/// What a request needs from its connection.
#[derive(Clone, Copy)]
struct RequestCtx<'a> {
    app: &'a Arc<App>,
    peer: SocketAddr,
    role: Role,
}

/// Answers one request.
async fn respond(
    app: &App,
    role: Role,
    peer: SocketAddr,
    req: hyper::Request<Incoming>,
) -> hyper::Response<Full<Bytes>> {
    if role == Role::PingOnly && !app.is_ping(req.uri().path()) {
        let mut response = hyper::Response::new(Full::new(Bytes::new()));
        *response.status_mut() = http::StatusCode::NOT_FOUND;
        return response;
    }
    app.handle(req, Some(peer)).await
}

/// How busy a connection is, seen by the connection's task while hyper owns the
/// stream and the service.
#[derive(Debug, Default)]
struct Activity {
    /// Requests whose response hyper has not finished writing.
    in_flight: AtomicUsize,
    /// Requests started on this connection.
    started: AtomicU64,
    /// Bytes were written to the stream and not flushed since.
    unflushed: AtomicBool,
}

impl Activity {
    fn enter(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.started.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(self))
    }

    fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    fn started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }

    /// Nothing to answer and nothing left to send.
    fn is_quiet(&self) -> bool {
        self.in_flight() == 0 && !self.unflushed.load(Ordering::Relaxed)
    }
}

/// One request in flight, from the call of the service until hyper drops the
/// response body (after writing it) or the request is abandoned.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A response body that keeps its request counted as in flight until hyper is
/// done with it.
pub(crate) struct CountedBody {
    body: Full<Bytes>,
    _in_flight: InFlight,
}

impl Body for CountedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

fn counted(
    response: hyper::Response<Full<Bytes>>,
    in_flight: InFlight,
) -> hyper::Response<CountedBody> {
    response.map(|body| CountedBody {
        body,
        _in_flight: in_flight,
    })
}

/// The stream as hyper sees it: first the bytes read before hyper took over, then
/// the stream itself; writes are recorded until flushed.
struct ConnIo<T> {
    prefix: Bytes,
    io: T,
    activity: Arc<Activity>,
}

impl<T: AsyncRead + Unpin> AsyncRead for ConnIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ConnIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.activity.unflushed.store(true, Ordering::Relaxed);
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.activity.unflushed.store(true, Ordering::Relaxed);
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let flushed = Pin::new(&mut self.io).poll_flush(cx);
        if let Poll::Ready(Ok(())) = flushed {
            self.activity.unflushed.store(false, Ordering::Relaxed);
        }
        flushed
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// How a hyper HTTP/1.1 connection stopped being polled.
enum H1Step {
    /// Idle between requests: take it apart and park.
    Idle,
    /// hyper is done with the connection (the client asked to close, or an error).
    Done(Result<(), hyper::Error>),
}

/// HTTP/1.1 with parking between requests (see the module documentation).
async fn serve_h1<S>(
    io: &mut S,
    mut pending: Bytes,
    ctx: RequestCtx<'_>,
    settings: &ConnSettings,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let activity = Arc::new(Activity::default());
    let mut idle = pin!(tokio::time::sleep(settings.idle_timeout));
    // Set when a hyper connection was resumed with unparsed bytes: it is not parked
    // again until a request has started on it.
    let mut resumed_at: Option<u64> = None;
    loop {
        if pending.is_empty() {
            // Parked: only the stream is held.
            idle.as_mut().reset(Instant::now() + settings.idle_timeout);
            let mut buf = [0u8; WAKE_READ];
            tokio::select! {
                () = stopped(&mut stop) => return Box::pin(close(io)).await,
                () = idle.as_mut() => {
                    tracing::debug!(peer = %ctx.peer, "idle keep-alive connection closed");
                    return Box::pin(close(io)).await;
                }
                read = io.read(&mut buf) => match read {
                    Ok(0) | Err(_) => return,
                    Ok(n) => pending = Bytes::copy_from_slice(&buf[..n]),
                },
            }
        }

        let service = service_fn(|req: hyper::Request<Incoming>| {
            let in_flight = activity.enter();
            Box::pin(async move {
                let response = respond(ctx.app, ctx.role, ctx.peer, req).await;
                Ok::<_, Infallible>(counted(response, in_flight))
            })
        });
        let conn_io = ConnIo {
            prefix: std::mem::take(&mut pending),
            io: &mut *io,
            activity: Arc::clone(&activity),
        };
        // Boxed: the connection and its buffers exist only while it is active, and
        // the parked task stays small.
        let mut conn = Box::new(
            settings
                .http1
                .serve_connection(TokioIo::new(conn_io), service),
        );
        let step = tokio::select! {
            step = poll_fn(|cx| {
                match conn.poll_without_shutdown(cx) {
                    Poll::Ready(done) => Poll::Ready(H1Step::Done(done)),
                    Poll::Pending => {
                        let may_park = resumed_at.is_none_or(|at| at != activity.started());
                        if may_park && activity.is_quiet() {
                            Poll::Ready(H1Step::Idle)
                        } else {
                            Poll::Pending
                        }
                    }
                }
            }) => step,
            () = stopped(&mut stop) => {
                // Finish the requests in flight, then close.
                Pin::new(&mut *conn).graceful_shutdown();
                H1Step::Done(poll_fn(|cx| conn.poll_without_shutdown(cx)).await)
            }
        };
        match step {
            H1Step::Idle => {
                let parts = conn.into_parts();
                let conn_io = parts.io.into_inner();
                // Copied out: `read_buf` shares (and would keep alive) hyper's whole
                // read buffer, even when empty.
                let mut unparsed = BytesMut::new();
                unparsed.extend_from_slice(&parts.read_buf);
                unparsed.extend_from_slice(&conn_io.prefix);
                pending = unparsed.freeze();
                resumed_at = (!pending.is_empty()).then(|| activity.started());
            }
            H1Step::Done(result) => {
                drop(conn);
                if let Err(error) = result {
                    tracing::debug!(peer = %ctx.peer, %error, "HTTP/1.1 connection ended with an error");
                }
                return Box::pin(close(io)).await;
            }
        }
    }
}

/// HTTP/2: one hyper connection for the connection's life. An idle connection
/// (no stream open, no request started) is closed after one to two idle timeouts.
async fn serve_h2<S>(
    io: S,
    first: Bytes,
    ctx: RequestCtx<'_>,
    settings: &ConnSettings,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::default());
    let (app, peer, role) = (Arc::clone(ctx.app), ctx.peer, ctx.role);
    let counter = Arc::clone(&activity);
    let service = service_fn(move |req: hyper::Request<Incoming>| {
        let in_flight = counter.enter();
        let app = Arc::clone(&app);
        // Boxed: hyper spawns a task per stream, and would otherwise copy the
        // whole request future (over 2 KiB) into it.
        Box::pin(async move {
            let response = respond(&app, role, peer, req).await;
            Ok::<_, Infallible>(counted(response, in_flight))
        })
    });
    let conn_io = ConnIo {
        prefix: first,
        io,
        activity: Arc::clone(&activity),
    };
    let conn = settings
        .http2
        .serve_connection(TokioIo::new(conn_io), service);
    let mut conn = pin!(conn);
    let mut seen = activity.started();
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%peer, %error, "HTTP/2 connection ended with an error");
                }
                return;
            }
            () = stopped(&mut stop) => break,
            () = tokio::time::sleep(settings.idle_timeout) => {
                if activity.in_flight() == 0 && activity.started() == seen {
                    tracing::debug!(%peer, "idle HTTP/2 connection closed");
                    break;
                }
                seen = activity.started();
            }
        }
    }
    // Shutdown or idle: GOAWAY, finish the streams in flight, close.
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}
