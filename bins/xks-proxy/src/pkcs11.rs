//! `xks-proxy pkcs11 ...`: operator commands for keys on a PKCS#11 token.
//!
//! The module, slots and PIN come from the `[backend]` section (`type = "pkcs11"`)
//! of the proxy's configuration file. Keys are created non-extractable, sensitive
//! and private; their values are never read. A running proxy sees changes on
//! `SIGHUP` or within its `key_refresh_interval`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use xks_pkcs11::{Pkcs11Admin, Usage};
use xks_server::Config;
use xks_server::config::BackendConfig;

use xks_keymanager::DisplayChain;

use crate::cli::{fail, report};

#[derive(Debug, Subcommand)]
pub(crate) enum Pkcs11Command {
    /// Create an AES-256 key (version 1) with this label.
    CreateKey {
        #[command(flatten)]
        target: Target,
        /// What the key may do.
        #[arg(long, value_enum, default_value_t = UsageArg::EncryptDecrypt)]
        usage: UsageArg,
    },
    /// Create the next version of a key (`<label>.v2`, `.v3`, ...); new encryptions use it.
    NewVersion {
        #[command(flatten)]
        target: Target,
    },
    /// Print the attributes of every version of a key (never its value).
    Describe {
        #[command(flatten)]
        target: Target,
    },
    /// Disable a key: KMS gets InvalidStateException for Encrypt and Decrypt.
    Disable {
        #[command(flatten)]
        target: Target,
    },
    /// Enable a disabled key again.
    Enable {
        #[command(flatten)]
        target: Target,
    },
    /// List the secret keys on the token.
    List {
        #[command(flatten)]
        token: Token,
    },
}

#[derive(Debug, Args)]
pub(crate) struct Token {
    /// The proxy configuration whose `[backend]` section names the module and PIN.
    #[arg(long, short)]
    config: PathBuf,
    /// Token label or serial (default: the first configured slot).
    #[arg(long)]
    token: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct Target {
    #[command(flatten)]
    token: Token,
    /// The key's object label (version 1).
    #[arg(long)]
    label: String,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum UsageArg {
    EncryptDecrypt,
    Encrypt,
    Decrypt,
    None,
}

/// Runs a `pkcs11` subcommand.
pub(crate) fn run(command: Pkcs11Command) -> ExitCode {
    match execute(command) {
        Ok(code) => code,
        Err(e) => fail(1, DisplayChain(&*e)),
    }
}

fn admin(token: &Token) -> Result<Pkcs11Admin, Box<dyn std::error::Error>> {
    let config = Config::from_file(&token.config)?;
    let BackendConfig::Pkcs11(pkcs11) = &config.backend else {
        return Err(format!(
            "{}: [backend] is not type = \"pkcs11\"",
            token.config.display()
        )
        .into());
    };
    Ok(Pkcs11Admin::open(
        pkcs11,
        |name| std::env::var(name).ok(),
        token.token.as_deref(),
    )?)
}

fn execute(command: Pkcs11Command) -> Result<ExitCode, Box<dyn std::error::Error>> {
    Ok(match command {
        Pkcs11Command::CreateKey { target, usage } => {
            let usage = match usage {
                UsageArg::EncryptDecrypt => Usage::ENCRYPT_DECRYPT,
                UsageArg::Encrypt => Usage::ENCRYPT_ONLY,
                UsageArg::Decrypt => Usage::DECRYPT_ONLY,
                UsageArg::None => Usage::NONE,
            };
            report(admin(&target.token)?.create_key(&target.label, usage)?)
        }
        Pkcs11Command::NewVersion { target } => {
            report(admin(&target.token)?.create_version(&target.label)?)
        }
        Pkcs11Command::Describe { target } => {
            let versions = admin(&target.token)?.describe_key(&target.label)?;
            report(
                versions
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
        }
        Pkcs11Command::Disable { target } => {
            admin(&target.token)?.set_disabled(&target.label, true)?;
            report(format_args!("{}: disabled", target.label))
        }
        Pkcs11Command::Enable { target } => {
            admin(&target.token)?.set_disabled(&target.label, false)?;
            report(format_args!("{}: enabled", target.label))
        }
        Pkcs11Command::List { token } => {
            let keys = admin(&token)?.list_keys()?;
            report(
                keys.iter()
                    .map(|k| format!("{:<40} v{:<3} {}", k.label, k.version, k.key_type))
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
        }
    })
}
