//! Listeners: accept, TLS handshake, HTTP/1.1 and HTTP/2, graceful shutdown.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::app::App;
use crate::config::ServerConfig;
use crate::conn::{self, ConnSettings, Protocol, Role, stopped};

/// Bound listeners, ready to serve.
pub struct Server {
    app: Arc<App>,
    api: Vec<TcpListener>,
    ping: Option<TcpListener>,
    tls: Option<TlsAcceptor>,
    handshake_timeout: Duration,
    idle_timeout: Duration,
    shutdown_grace: Duration,
    max_connections: usize,
    connections: Arc<Semaphore>,
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
            idle_timeout: config.idle_timeout,
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
            conn: ConnSettings::new(self.app, self.handshake_timeout, self.idle_timeout),
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
    conn: ConnSettings,
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
    let stop = shared.stop.clone();
    match (&shared.tls, role) {
        (Some(tls), Role::Api) => {
            // The handshake state and the TLS stream (rustls keeps over 1 KiB inline)
            // live on the heap, outside the task, whose size every connection pays
            // for its whole life.
            let handshake = Box::pin(tls.accept(stream));
            let stream = match tokio::time::timeout(shared.handshake_timeout, handshake).await {
                Ok(Ok(stream)) => Box::new(stream),
                Ok(Err(e)) => {
                    tracing::info!(target: "xks::tls", %peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::info!(target: "xks::tls", %peer, "TLS handshake timed out");
                    return;
                }
            };
            let protocol = match stream.get_ref().1.alpn_protocol() {
                Some(b"h2") => Protocol::Http2,
                Some(_) => Protocol::Http1,
                None => Protocol::Detect,
            };
            conn::serve(stream, protocol, peer, role, &shared.conn, stop).await;
        }
        _ => conn::serve(stream, Protocol::Detect, peer, role, &shared.conn, stop).await,
    }
}
