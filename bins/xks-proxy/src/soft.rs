//! `xks-proxy soft ...`: operator commands for the software key store.
//!
//! The secret comes from `XKS_SOFT_PASSPHRASE` or `XKS_SOFT_KEY_FILE`. Key material
//! is never printed. A running proxy picks up changes on `SIGHUP` or restart.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};
use xks_protocol::KeyId;
use xks_soft::{KdfParams, KeyInfo, KeyState, KeyStore, Unlock, Usage};

use xks_keymanager::DisplayChain;

use crate::cli::{fail, report};

#[derive(Debug, Subcommand)]
pub(crate) enum SoftCommand {
    /// Create a new key store file (with its health-check canary key).
    Init {
        /// The key store file to create; an existing file is never overwritten.
        #[arg(long)]
        store: PathBuf,
    },
    /// Create an AES-256 key.
    CreateKey {
        #[arg(long)]
        store: PathBuf,
        /// The external key id (1-128 of A-Z a-z 0-9 - . _).
        #[arg(long)]
        key_id: String,
        /// What the key may do.
        #[arg(long, value_enum, default_value_t = UsageArg::EncryptDecrypt)]
        usage: UsageArg,
        /// Create the key disabled.
        #[arg(long)]
        disabled: bool,
    },
    /// Add a new version to a key; new encryptions use it, old ciphertexts still decrypt.
    Rotate {
        #[arg(long)]
        store: PathBuf,
        #[arg(long)]
        key_id: String,
    },
    /// Disable a key: KMS gets InvalidStateException for Encrypt and Decrypt.
    Disable {
        #[arg(long)]
        store: PathBuf,
        #[arg(long)]
        key_id: String,
    },
    /// Enable a key again.
    Enable {
        #[arg(long)]
        store: PathBuf,
        #[arg(long)]
        key_id: String,
    },
    /// List the keys: ids, versions, usage and state (never key material).
    List {
        #[arg(long)]
        store: PathBuf,
        /// One JSON object per key.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum UsageArg {
    EncryptDecrypt,
    Encrypt,
    Decrypt,
    None,
}

/// Runs a `soft` subcommand.
pub(crate) fn run(command: SoftCommand) -> ExitCode {
    match execute(command) {
        Ok(code) => code,
        Err(e) => fail(1, DisplayChain(&*e)),
    }
}

fn execute(command: SoftCommand) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let unlock = Unlock::from_env()?;
    Ok(match command {
        SoftCommand::Init { store } => {
            KeyStore::create(&store, unlock, KdfParams::RECOMMENDED)?;
            report(format_args!("created key store {}", store.display()))
        }
        SoftCommand::CreateKey {
            store,
            key_id,
            usage,
            disabled,
        } => {
            let usage = match usage {
                UsageArg::EncryptDecrypt => Usage::ENCRYPT_DECRYPT,
                UsageArg::Encrypt => Usage::ENCRYPT_ONLY,
                UsageArg::Decrypt => Usage::DECRYPT_ONLY,
                UsageArg::None => Usage::NONE,
            };
            let state = if disabled {
                KeyState::Disabled
            } else {
                KeyState::Enabled
            };
            let info =
                KeyStore::open(&store, unlock)?.create_key(&KeyId::new(&key_id)?, usage, state)?;
            report(line(&info))
        }
        SoftCommand::Rotate { store, key_id } => report(line(
            &KeyStore::open(&store, unlock)?.rotate_key(&KeyId::new(&key_id)?)?,
        )),
        SoftCommand::Disable { store, key_id } => report(line(
            &KeyStore::open(&store, unlock)?.disable_key(&KeyId::new(&key_id)?)?,
        )),
        SoftCommand::Enable { store, key_id } => report(line(
            &KeyStore::open(&store, unlock)?.enable_key(&KeyId::new(&key_id)?)?,
        )),
        SoftCommand::List { store, json } => {
            let keys = KeyStore::open(&store, unlock)?.list_keys()?;
            let lines: Vec<String> = if json {
                keys.iter().map(|k| json_line(k).to_string()).collect()
            } else {
                keys.iter().map(line).collect()
            };
            report(lines.join("\n"))
        }
    })
}

fn usage_str(usage: Usage) -> &'static str {
    match (usage.encrypt(), usage.decrypt()) {
        (true, true) => "ENCRYPT,DECRYPT",
        (true, false) => "ENCRYPT",
        (false, true) => "DECRYPT",
        (false, false) => "-",
    }
}

fn state_str(state: KeyState) -> &'static str {
    if state.is_enabled() {
        "ENABLED"
    } else {
        "DISABLED"
    }
}

fn unix(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn line(k: &KeyInfo) -> String {
    format!(
        "{:<32} versions={:<3} usage={:<16} {}{}",
        k.id.as_str(),
        k.versions,
        usage_str(k.usage),
        state_str(k.state),
        if k.health_canary {
            " (health canary)"
        } else {
            ""
        }
    )
}

fn json_line(k: &KeyInfo) -> serde_json::Value {
    serde_json::json!({
        "keyId": k.id.as_str(),
        "versions": k.versions,
        "currentVersion": k.current_version.get(),
        "usage": usage_str(k.usage),
        "status": state_str(k.state),
        "createdUnix": unix(k.created),
        "rotatedUnix": unix(k.rotated),
        "healthCanary": k.health_canary,
    })
}
