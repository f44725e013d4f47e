//! `xks-proxy`: the AWS KMS External Key Store proxy.
//!
//! ```text
//! xks-proxy demo [--listen 127.0.0.1:8443] [--json]   zero-setup proxy on loopback
//! xks-proxy serve --config proxy.toml                 run from a configuration file
//! xks-proxy check-config --config proxy.toml          explain every configuration error
//! xks-proxy soft <init|create-key|rotate|disable|enable|list> ...   software key store
//! xks-proxy pkcs11 <create-key|new-version|describe|disable|enable|list> ...   HSM keys
//! xks-proxy vault <create-key|rotate-key|describe-key|list-keys|...> ...   Transit keys
//! ```

mod cli;
mod logwriter;
mod pkcs11;
mod soft;
mod vault;

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser as _;
use xks_keymanager::DisplayChain;
use xks_server::config::LogFormat;
use xks_server::{Config, ProcessEnv, Proxy, Server};

use crate::cli::{Cli, Command};

/// `EX_USAGE` from sysexits.h: the configuration or the command line is wrong.
const EX_USAGE: u8 = 64;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `serve` sizes the runtime from its configuration.
    if let Command::Serve { config } = &cli.command {
        return serve_command(config);
    }
    let runtime = match runtime(None) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match cli.command {
        Command::CheckConfig { config } => match load(&config) {
            Ok(_) => cli::report(format_args!("{}: configuration is valid", config.display())),
            Err(code) => code,
        },
        Command::Serve { config } => serve_command(&config),
        Command::Demo { listen, json } => {
            let _logs = cli::init_logging(LogFormat::Text);
            runtime.block_on(cli::demo(listen, json))
        }
        Command::Soft(cmd) => soft::run(cmd),
        Command::Pkcs11(cmd) => pkcs11::run(cmd),
        Command::Vault(cmd) => vault::run(&runtime, cmd),
    }
}

/// The async runtime: `worker_threads` workers, or one per CPU.
fn runtime(worker_threads: Option<usize>) -> Result<tokio::runtime::Runtime, ExitCode> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(n) = worker_threads {
        builder.worker_threads(n);
    }
    builder
        .build()
        .map_err(|e| cli::fail(1, format_args!("cannot start the async runtime: {e}")))
}

/// `serve`: loads and validates the configuration, then runs the proxy on a
/// runtime sized by `server.worker_threads`.
fn serve_command(config: &std::path::Path) -> ExitCode {
    let Ok(cfg) = load(config) else {
        return ExitCode::from(EX_USAGE);
    };
    let runtime = match runtime(cfg.server.worker_threads) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let _logs = cli::init_logging(cfg.logging.format);
    runtime.block_on(async {
        match Proxy::build(&cfg, &ProcessEnv).await {
            Ok(proxy) => serve(config, &cfg, proxy).await,
            Err(e) => cli::fail(EX_USAGE, format_args!("{}", DisplayChain(&e))),
        }
    })
}

/// Loads and fully validates a configuration file, printing every problem.
fn load(path: &std::path::Path) -> Result<Config, ExitCode> {
    let config = Config::from_file(path).and_then(|c| c.validate(&ProcessEnv).map(|()| c));
    config.map_err(|errors| {
        let mut text = format!("{}: invalid configuration:", path.display());
        for problem in errors.problems() {
            text.push_str("\n  - ");
            text.push_str(&problem.to_string());
        }
        cli::fail(EX_USAGE, format_args!("{text}"))
    })
}

/// Binds, serves until SIGTERM or SIGINT, and drains. SIGHUP re-reads the
/// credentials and the key manager's keys.
async fn serve(path: &std::path::Path, config: &Config, proxy: Proxy) -> ExitCode {
    let monitor = proxy.app.health().spawn();
    let reloader = tokio::spawn(cli::reload_on_sighup(
        path.to_owned(),
        Arc::clone(&proxy.app),
    ));
    let server = match Server::bind(&config.server, proxy.tls, proxy.app).await {
        Ok(server) => server,
        Err(e) => return cli::fail(1, format_args!("cannot bind the listeners: {e}")),
    };
    match server.api_addrs() {
        Ok(addrs) => tracing::info!(?addrs, "xks-proxy listening"),
        Err(e) => tracing::warn!(error = %e, "listening, address unknown"),
    }
    server.run(cli::shutdown_signal()).await;
    monitor.abort();
    reloader.abort();
    ExitCode::SUCCESS
}
