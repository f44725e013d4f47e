//! `xks-conformance`: checks an AWS KMS External Key Store (XKS) proxy against the XKS
//! proxy API conformance checklist.
//!
//! ```text
//! xks-conformance --endpoint https://xks.example.com --uri-path /ks1/kms/xks/v1 \
//!     --access-key-id AKIA... --key-id key-1 [--ca-file ca.pem] [--junit report.xml]
//! xks-conformance --config conformance.toml --only sigv4 --only tamper
//! xks-conformance --list [--format markdown]
//! ```
//!
//! The secret comes from `XKS_SECRET_ACCESS_KEY` (or `--secret-access-key`, or the
//! settings file). Exit status: 0 no check failed, 1 a check failed or the run was cut
//! short, 64 invalid settings (2 for command-line syntax errors). See `docs/conformance.md`.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser as _;
use xks_conformance::Cli;
use xks_conformance::app;

fn main() -> ExitCode {
    // Command-line syntax errors exit with 2, as clap does; `--help` and `--version` with 0.
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    let code = runtime.block_on(app::run(cli, &mut out, &mut err));
    // Aborted checks and pooled connections need no graceful end.
    runtime.shutdown_timeout(Duration::from_millis(100));
    ExitCode::from(code)
}
