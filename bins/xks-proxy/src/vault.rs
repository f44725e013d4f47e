//! `xks-proxy vault ...`: operator commands for Transit keys used through XKS.
//!
//! Addresses, TLS, authentication and the mount come from the `[backend]` section
//! (`type = "vault"`) of the proxy's configuration file. Keys are created as
//! `aes256-gcm96`, not exportable, without plaintext backup, not deletable.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use xks_protocol::KeyId;
use xks_server::Config;
use xks_server::config::BackendConfig;
use xks_vault::{TransitKeyInfo, VaultAdmin};

use xks_keymanager::DisplayChain;

use crate::cli::{fail, report};

#[derive(Debug, Subcommand)]
pub(crate) enum VaultCommand {
    /// Create the Transit key behind an external key id.
    CreateKey(KeyArgs),
    /// Rotate a key: new encryptions use the new version, old ciphertexts still decrypt.
    RotateKey(KeyArgs),
    /// Print a key's type, versions and flags.
    DescribeKey(KeyArgs),
    /// List the Transit keys of the mount with the external key ids they serve.
    ListKeys(ConfigArg),
    /// Create the health check canary key.
    CreateCanary(ConfigArg),
    /// Set disable_upsert on the mount, so encryption never creates missing keys.
    DisableUpsert(ConfigArg),
}

#[derive(Debug, Args)]
pub(crate) struct ConfigArg {
    /// The proxy configuration whose `[backend]` section names the Vault nodes.
    #[arg(long, short)]
    config: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct KeyArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// The external key id.
    #[arg(long)]
    key_id: String,
}

/// Runs a `vault` subcommand on `runtime`.
pub(crate) fn run(runtime: &tokio::runtime::Runtime, command: VaultCommand) -> ExitCode {
    match runtime.block_on(execute(command)) {
        Ok(code) => code,
        Err(e) => fail(1, DisplayChain(&*e)),
    }
}

async fn admin(arg: &ConfigArg) -> Result<VaultAdmin, Box<dyn std::error::Error>> {
    let config = Config::from_file(&arg.config)?;
    let BackendConfig::Vault(vault) = &config.backend else {
        return Err(format!(
            "{}: the backend is not type = \"vault\"",
            arg.config.display()
        )
        .into());
    };
    Ok(VaultAdmin::connect(vault, |name: &str| std::env::var_os(name)).await?)
}

fn describe(info: &TransitKeyInfo) -> String {
    format!(
        "transit key:            {}\ntype:                   {}\nlatest version:         {}\n\
         min decryption version: {}\nversions:               {:?}\nsoft-deleted:           {}\n\
         exportable:             {}\ndeletion allowed:       {}",
        info.name,
        info.key_type,
        info.latest_version,
        info.min_decryption_version,
        info.versions,
        info.soft_deleted,
        info.exportable,
        info.deletion_allowed
    )
}

async fn execute(command: VaultCommand) -> Result<ExitCode, Box<dyn std::error::Error>> {
    Ok(match command {
        VaultCommand::CreateKey(k) => report(describe(
            &admin(&k.config)
                .await?
                .create_key(&KeyId::new(&k.key_id)?)
                .await?,
        )),
        VaultCommand::RotateKey(k) => report(describe(
            &admin(&k.config)
                .await?
                .rotate_key(&KeyId::new(&k.key_id)?)
                .await?,
        )),
        VaultCommand::DescribeKey(k) => report(describe(
            &admin(&k.config)
                .await?
                .describe_key(&KeyId::new(&k.key_id)?)
                .await?,
        )),
        VaultCommand::ListKeys(c) => {
            let keys = admin(&c).await?.list_keys().await?;
            report(
                keys.iter()
                    .map(|k| {
                        let id = k.external_id.as_ref().map_or("-", KeyId::as_str);
                        let canary = if k.canary { " (health canary)" } else { "" };
                        format!("{:<40} external key id: {id}{canary}", k.transit_key)
                    })
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
        }
        VaultCommand::CreateCanary(c) => report(describe(&admin(&c).await?.create_canary().await?)),
        VaultCommand::DisableUpsert(c) => {
            admin(&c).await?.disable_upsert().await?;
            report("disable_upsert set on the mount")
        }
    })
}
