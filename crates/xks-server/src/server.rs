//! Listeners: accept, TLS handshake, HTTP/1.1 and HTTP/2, graceful shutdown.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::app::App;
use crate::config::ServerConfig;

/// Bound listeners, ready to serve.
pub struct Server {
    app: Arc<App>,
    api: Vec<TcpListener>,
    ping: Option<TcpListener>,
    tls: Option<TlsAcceptor>,
    handshake_timeout: Duration,
    shutdown_grace: Duration,
    max_connections: usize,
    connections: Arc<Semaphore>,
}

/// Resolves once shutdown has been requested.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // An error means the sender is gone, which also means stop.
    let _ = stop.wait_for(|s| *s).await.map(|_| ());
}

/// Which service a listener offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Api,
    PingOnly,
}

// === impl Server ===

impl Server {
    /// Binds every configured listener. `tls` is `None` only when the configuration
    /// enables plain HTTP for testing.
    pub async fn bind(
        config: &ServerConfig,
        tls: Option<Arc<rustls::ServerConfig>>,
        app: Arc<App>,
    ) -> io::Result<Self> {
        let mut api = Vec::with_capacity(config.listen.len());
        for addr in &config.listen {
            api.push(TcpListener::bind(addr).await?);
        }
        let ping = match config.ping_listen {
            Some(addr) => Some(TcpListener::bind(addr).await?),
            None => None,
        };
        Ok(Self {
            app,
            api,
            ping,
            tls: tls.map(TlsAcceptor::from),
            handshake_timeout: config.handshake_timeout,
            shutdown_grace: config.shutdown_grace,
            max_connections: config.max_connections,
            connections: Arc::new(Semaphore::new(config.max_connections)),
        })
    }

    /// The addresses the API listeners are bound to (useful with port 0).
    pub fn api_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        self.api.iter().map(TcpListener::local_addr).collect()
    }

    /// The address of the separate ping listener, if any.
    pub fn ping_addr(&self) -> io::Result<Option<SocketAddr>> {
        self.ping.as_ref().map(TcpListener::local_addr).transpose()
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets in-flight
    /// requests finish for up to the grace period, and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut acceptors = JoinSet::new();
        let shared = Arc::new(Shared {
            app: self.app,
            tls: self.tls,
            handshake_timeout: self.handshake_timeout,
            connections: Arc::clone(&self.connections),
            stop: stop_rx.clone(),
        });
        for listener in self.api {
            acceptors.spawn(accept_loop(
                listener,
                Role::Api,
                Arc::clone(&shared),
                stop_rx.clone(),
            ));
        }
        if let Some(listener) = self.ping {
            acceptors.spawn(accept_loop(
                listener,
                Role::PingOnly,
                Arc::clone(&shared),
                stop_rx.clone(),
            ));
        }
        shutdown.await;
        tracing::info!("shutting down: no new connections; finishing in-flight requests");
        let _ = stop_tx.send(true);
        while acceptors.join_next().await.is_some() {}
        drop(shared);
        // Every connection holds a permit until it closes: owning all of them means
        // every connection is gone.
        let all = u32::try_from(self.max_connections).unwrap_or(u32::MAX);
        match tokio::time::timeout(self.shutdown_grace, self.connections.acquire_many(all)).await {
            Ok(_) => tracing::info!("all connections closed"),
            Err(_) => tracing::warn!(
                grace = ?self.shutdown_grace,
                "grace period over; closing remaining connections"
            ),
        }
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("api", &self.api)
            .field("ping", &self.ping)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

struct Shared {
    app: Arc<App>,
    tls: Option<TlsAcceptor>,
    handshake_timeout: Duration,
    connections: Arc<Semaphore>,
    stop: watch::Receiver<bool>,
}

async fn accept_loop(
    listener: TcpListener,
    role: Role,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let permit = tokio::select! {
            () = stopped(&mut stop) => return,
            permit = Arc::clone(&shared.connections).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
        };
        let (stream, peer) = tokio::select! {
            () = stopped(&mut stop) => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            serve_connection(stream, peer, role, &shared).await;
            drop(permit);
        });
    }
}

async fn serve_connection(stream: TcpStream, peer: SocketAddr, role: Role, shared: &Shared) {
    let _ = stream.set_nodelay(true);
    let app = Arc::clone(&shared.app);
    let service = service_fn(move |req: hyper::Request<Incoming>| {
        let app = Arc::clone(&app);
        async move {
            if role == Role::PingOnly && !app.is_ping(req.uri().path()) {
                return Ok::<_, Infallible>(not_found());
            }
            Ok(app.handle(req, Some(peer)).await)
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(shared.handshake_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256);

    match (&shared.tls, role) {
        (Some(tls), Role::Api) => {
            let stream = match tokio::time::timeout(shared.handshake_timeout, tls.accept(stream))
                .await
            {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    tracing::info!(target: "xks::tls", %peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::info!(target: "xks::tls", %peer, "TLS handshake timed out");
                    return;
                }
            };
            drive(
                builder.serve_connection(TokioIo::new(stream), service),
                shared.stop.clone(),
            )
            .await;
        }
        _ => {
            drive(
                builder.serve_connection(TokioIo::new(stream), service),
                shared.stop.clone(),
            )
            .await
        }
    }
}

/// Serves one connection until it ends, or until shutdown asks it to finish its
/// in-flight requests and close.
async fn drive<I, S>(
    conn: auto::Connection<'_, I, S, TokioExecutor>,
    mut stop: watch::Receiver<bool>,
) where
    S: hyper::service::Service<
            hyper::Request<Incoming>,
            Response = hyper::Response<http_body_util::Full<bytes::Bytes>>,
        >,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        () = stopped(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

fn not_found() -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    let mut response = hyper::Response::new(http_body_util::Full::new(bytes::Bytes::new()));
    *response.status_mut() = http::StatusCode::NOT_FOUND;
    response
}
