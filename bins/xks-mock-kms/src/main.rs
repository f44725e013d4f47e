//! `xks-mock-kms`: plays AWS KMS against an XKS proxy, and load-tests it.
//!
//! ```text
//! xks-mock-kms [settings] create-key-store | connect
//! xks-mock-kms [settings] create-key --xks-key-id ID
//! xks-mock-kms [settings] encrypt --xks-key-id ID --plaintext TEXT [--encryption-context K=V]
//! xks-mock-kms [settings] decrypt --ciphertext-blob BASE64|@FILE
//! xks-mock-kms [settings] generate-data-key --xks-key-id ID [--number-of-bytes N]
//! xks-mock-kms [settings] re-encrypt --ciphertext-blob B --destination-xks-key-id ID
//! xks-mock-kms [settings] health-poll [--count N --interval 60s]
//! xks-mock-kms [settings] bench --xks-key-id ID [--mode open --rate 1800 | --concurrency 8]
//! ```
//!
//! Settings: `--endpoint`, `--uri-path`, `--access-key-id`, `--secret-access-key` (or
//! `XKS_SECRET_ACCESS_KEY`), `--region`, `--ca-file`, `--connect-to`, `--timeout`, ... or
//! a `--profile` file. Exit status: 0 success, 1 KMS reported an error, 64 usage error.

use std::process::ExitCode;

use clap::Parser as _;
use xks_mock_kms::app::{self, EXIT_USAGE};
use xks_mock_kms::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(threads) = cli.threads {
        builder.worker_threads(usize::from(threads));
    }
    let runtime = match builder.build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EX_SOFTWARE);
        }
    };
    // Not locked: the load generator writes its progress line from another thread.
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    let code = runtime.block_on(app::run(cli, &mut out, &mut err));
    // Connections still pooled need not be closed gracefully.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    ExitCode::from(if code > EXIT_USAGE { EX_SOFTWARE } else { code })
}

/// `EX_SOFTWARE` from sysexits.h: an internal failure.
const EX_SOFTWARE: u8 = 70;
