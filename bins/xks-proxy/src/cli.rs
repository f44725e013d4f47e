//! Command line, output and process plumbing shared by the subcommands.

use std::fmt;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use std::sync::Arc;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use xks_keymanager::DisplayChain;
use xks_server::config::LogFormat;
use xks_server::demo::Demo;

use xks_server::{App, Config, ProcessEnv, Proxy, Server};

use crate::logwriter::{self, BatchWriter, LogGuard};

/// The AWS KMS External Key Store (XKS) proxy.
#[derive(Debug, Parser)]
#[command(version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run a throwaway proxy on loopback: in-memory software keys, a self-issued
    /// certificate for localhost, random credentials. Prints how to call it.
    Demo {
        /// Address to listen on (loopback).
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: SocketAddr,
        /// Print the connection details as JSON (for scripts).
        #[arg(long)]
        json: bool,
    },
    /// Run the proxy from a configuration file.
    Serve {
        /// The TOML configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a configuration file and explain every problem found.
    CheckConfig {
        /// The TOML configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Manage a software key store (secret from XKS_SOFT_PASSPHRASE or XKS_SOFT_KEY_FILE).
    #[command(subcommand)]
    Soft(crate::soft::SoftCommand),
    /// Manage AES keys on a PKCS#11 token (module and PIN from the configuration file).
    #[command(subcommand)]
    Pkcs11(crate::pkcs11::Pkcs11Command),
    /// Manage Transit keys in Vault or OpenBao (connection from the configuration file).
    #[command(subcommand)]
    Vault(crate::vault::VaultCommand),
}

/// Installs the log subscriber: `RUST_LOG` filter (default `info`), text or JSON,
/// written to standard error in batches by a background thread (see
/// [`crate::logwriter`]), so that a slow log pipe never blocks a request and lines
/// do not cost a thread wake-up each. The returned guard flushes the remaining
/// lines when dropped; keep it until the process ends.
pub(crate) fn init_logging(format: LogFormat) -> Option<LogGuard> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let batched = BatchWriter::new(
        std::io::stderr(),
        std::io::stderr(),
        logwriter::LINGER,
        logwriter::MAX_LINES,
    );
    let (writer, guard) = match batched {
        Ok((writer, guard)) => (BoxMakeWriter::new(writer), Some(guard)),
        // No thread for the writer: write on the caller's thread rather than lose lines.
        Err(e) => {
            eprintln!("warning: cannot start the log writer thread ({e}); logging synchronously");
            (BoxMakeWriter::new(std::io::stderr), None)
        }
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        _ => builder.try_init(),
    };
    guard
}

/// Resolves on SIGTERM or SIGINT.
pub(crate) async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        () = term => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
    }
}

/// On every SIGHUP: re-reads the configuration file and applies what can change
/// without a restart (credentials, the key manager's keys).
pub(crate) async fn reload_on_sighup(path: PathBuf, app: Arc<App>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("SIGHUP handler unavailable; reload needs a restart");
        return;
    };
    while hup.recv().await.is_some() {
        let config = match Config::from_file(&path) {
            Ok(config) => config,
            Err(e) => {
                tracing::error!(file = %path.display(), errors = %e, "reload refused: invalid configuration");
                continue;
            }
        };
        match xks_server::reload(&app, &config, &ProcessEnv).await {
            Ok(report) => tracing::info!(
                credentials_replaced = ?report.credentials_replaced,
                needs_restart = ?report.needs_restart,
                "configuration reloaded"
            ),
            Err(e) => {
                tracing::error!(error = %DisplayChain(&e), "reload failed; previous state kept")
            }
        }
    }
}

/// Writes a line to standard output.
pub(crate) fn report(line: impl fmt::Display) -> ExitCode {
    let _ = writeln!(std::io::stdout(), "{line}");
    ExitCode::SUCCESS
}

/// Writes an error to standard error and returns `code`.
pub(crate) fn fail(code: u8, message: impl fmt::Display) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "error: {message}");
    ExitCode::from(code)
}

/// `xks-proxy demo`.
pub(crate) async fn demo(listen: SocketAddr, json: bool) -> ExitCode {
    if !listen.ip().is_loopback() {
        return fail(64, "the demo only listens on loopback (127.0.0.1 or ::1)");
    }
    let demo = match Demo::prepare(listen) {
        Ok(demo) => demo,
        Err(e) => return fail(1, DisplayChain(&e)),
    };
    let proxy =
        match Proxy::with_key_manager(&demo.config, &ProcessEnv, demo.key_manager.clone()).await {
            Ok(proxy) => proxy,
            Err(e) => return fail(1, DisplayChain(&e)),
        };
    let monitor = proxy.app.health().spawn();
    let server = match Server::bind(&demo.config.server, proxy.tls, proxy.app).await {
        Ok(server) => server,
        Err(e) => return fail(1, format_args!("cannot listen on {listen}: {e}")),
    };
    let addr = match server.api_addrs() {
        Ok(addrs) if !addrs.is_empty() => addrs[0],
        _ => return fail(1, "the demo listener has no address"),
    };
    let info = &demo.info(addr);
    if json {
        match serde_json::to_string_pretty(info) {
            Ok(text) => report(text),
            Err(e) => return fail(1, e),
        };
    } else {
        let mut text = format!(
            "XKS proxy demo (ephemeral: nothing is kept when it stops)\n\n\
             endpoint:           {}\n\
             URI path:           {}\n\
             access key id:      {}\n\
             secret access key:  {}\n\
             CA certificate:     {}\n\nkeys:\n",
            info.endpoint,
            info.uri_path,
            info.access_key_id,
            info.secret_access_key,
            info.ca_certificate.display()
        );
        for key in &info.keys {
            text.push_str(&format!(
                "  {:<20} {:<18} {}\n",
                key.id, key.usage, key.status
            ));
        }
        text.push_str(&format!(
            "\nTry it (curl 7.75 or newer):\n\n{}\n\n{}\n\nStop with Ctrl-C.",
            info.curl_health, info.curl_encrypt
        ));
        report(text);
    }
    server.run(shutdown_signal()).await;
    monitor.abort();
    ExitCode::SUCCESS
}
