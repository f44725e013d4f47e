//! The XKS proxy service.
//!
//! AWS KMS calls an XKS proxy over HTTPS with SigV4-signed JSON for every
//! cryptographic operation on an external key, and gives each call 250 ms. This
//! crate is that service, assembled from the other crates of the toolkit:
//!
//! - [`config`]: the TOML configuration, validated completely before any port is bound;
//! - [`tls`]: rustls with TLS 1.2/1.3, ALPN for HTTP/2 and HTTP/1.1, optional mTLS
//!   with a pinned CA and pinned client subject names;
//! - [`App`]: the request path of `docs/architecture.md`: route by path prefix
//!   (tenant), body limit, SigV4, parsing and validation, key lookup, the
//!   `KeyManager` call under a deadline, the CDIV with
//!   its verification decrypt, the JSON answer, and one log line per request;
//! - [`HealthMonitor`]: the deep health check on a canary key, run in the
//!   background and cached for at most 60 s;
//! - [`Server`]: listeners, TLS handshakes, HTTP/1.1 and HTTP/2, graceful shutdown.
//!
//! [`Proxy::build`] turns a validated [`Config`] into a ready service; the
//! `xks-proxy` binary is a thin wrapper around it.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod app;
pub mod config;
mod conn;
pub mod demo;
pub mod devpki;
mod health;
mod rescue;
mod server;
pub mod tls;

use std::collections::HashSet;
use std::sync::Arc;

pub use app::{App, KeyAccess, Tenant};
pub use config::{Config, ConfigErrors, Env, ProcessEnv};
pub use health::{HealthMonitor, MAX_HEALTH_AGE};
pub use server::Server;

use xks_keymanager::KeyManager;
use xks_protocol::KeyId;
use xks_sigv4::{CredentialStore, RegionPolicy, Verifier};

use crate::config::{BackendConfig, TenantConfig};

/// A proxy assembled from its configuration, not yet listening.
#[derive(Debug)]
pub struct Proxy {
    /// The request handler.
    pub app: Arc<App>,
    /// The TLS configuration, `None` when plain HTTP is enabled for testing.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// Why the proxy could not be assembled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The configuration is invalid.
    #[error("invalid configuration")]
    Config(#[source] ConfigErrors),
    /// The key manager could not be opened.
    #[error("the key manager could not be opened")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

// === impl Proxy ===

impl Proxy {
    /// Validates `config`, opens the key manager it names, and assembles the
    /// service. Runs one deep health check before returning, so the first
    /// GetHealthStatus has an answer.
    pub async fn build(config: &Config, env: &dyn Env) -> Result<Self, BuildError> {
        config.validate(env).map_err(BuildError::Config)?;
        let km = open_backend(&config.backend, env).await?;
        Self::with_key_manager(config, env, km).await
    }

    /// Like [`Proxy::build`], with a key manager built by the caller (an embedding
    /// application, a test, or a backend this crate does not know).
    pub async fn with_key_manager(
        config: &Config,
        env: &dyn Env,
        km: Arc<dyn KeyManager>,
    ) -> Result<Self, BuildError> {
        config.validate_service(env).map_err(BuildError::Config)?;
        let limits = config.protocol_limits().map_err(BuildError::Config)?;
        let tls = match &config.server.tls {
            Some(tls) if !config.server.insecure_plain_http => {
                Some(tls::server_config(tls).map_err(|e| {
                    BuildError::Config(ConfigErrors::single("server.tls", e.to_string()))
                })?)
            }
            _ => None,
        };
        let mut tenants = Vec::with_capacity(config.tenants.len());
        for (i, t) in config.tenants.iter().enumerate() {
            tenants.push((t.path_prefix.clone(), tenant(i, t, env)?));
        }
        let health = HealthMonitor::new(Arc::clone(&km), config.health.clone());
        health.check_now().await;
        let app = App::new(
            tenants,
            km,
            limits,
            config.limits.backend_timeout,
            health,
            config.server.ping_path.clone(),
        );
        Ok(Self {
            app: Arc::new(app),
            tls,
        })
    }
}

/// What a reload changed, and what it could not change without a restart.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReloadReport {
    /// Tenants whose credentials were replaced.
    pub credentials_replaced: Vec<String>,
    /// Changes seen in the file that need a restart to take effect.
    pub needs_restart: Vec<String>,
}

/// Applies a changed configuration to a running proxy without dropping
/// connections: every tenant's SigV4 credentials are replaced (rotation, fact
/// sheet §8.4), then the key manager reloads its keys from a blocking thread.
/// Tenants added or removed are reported as needing a restart, and so are other
/// sections (listeners, TLS, limits), which this does not compare. Nothing
/// changes unless every credential in the file is valid.
pub async fn reload(app: &App, config: &Config, env: &dyn Env) -> Result<ReloadReport, BuildError> {
    config.validate_service(env).map_err(BuildError::Config)?;
    let mut stores = Vec::with_capacity(config.tenants.len());
    for (i, t) in config.tenants.iter().enumerate() {
        stores.push((t, credential_store(i, t, env)?));
    }
    let mut report = ReloadReport::default();
    for (t, store) in stores {
        match app.tenant(&t.path_prefix) {
            Some(tenant) => {
                tenant.verifier().replace_credentials(store);
                report.credentials_replaced.push(t.name.clone());
            }
            None => report.needs_restart.push(format!(
                "new tenant {:?} at prefix {:?}",
                t.name, t.path_prefix
            )),
        }
    }
    for prefix in app.prefixes() {
        if !config.tenants.iter().any(|t| t.path_prefix == prefix) {
            report
                .needs_restart
                .push(format!("tenant at prefix {prefix:?} removed"));
        }
    }
    let km = Arc::clone(app.key_manager());
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || handle.block_on(km.reload()))
        .await
        .map_err(|e| BuildError::Backend(Box::new(e)))?
        .map_err(|e| BuildError::Backend(Box::new(e)))?;
    Ok(report)
}

fn credential_store(
    i: usize,
    t: &TenantConfig,
    env: &dyn Env,
) -> Result<CredentialStore, BuildError> {
    let at = |j: usize| format!("tenant[{i}].credential[{j}]");
    let mut credentials = Vec::with_capacity(t.credentials.len());
    for (j, c) in t.credentials.iter().enumerate() {
        credentials.push(
            c.to_credential(env)
                .map_err(|m| BuildError::Config(ConfigErrors::single(at(j), m)))?,
        );
    }
    CredentialStore::new(credentials).map_err(|e| {
        BuildError::Config(ConfigErrors::single(format!("tenant[{i}]"), e.to_string()))
    })
}

fn tenant(i: usize, t: &TenantConfig, env: &dyn Env) -> Result<Tenant, BuildError> {
    let store = credential_store(i, t, env)?;
    let regions = match &t.regions {
        None => RegionPolicy::Any,
        Some(list) => RegionPolicy::allow_list(list.iter().cloned()),
    };
    let keys = if t.keys.iter().any(|k| k == "*") {
        KeyAccess::All
    } else {
        let mut set = HashSet::with_capacity(t.keys.len());
        for k in &t.keys {
            set.insert(KeyId::new(k).map_err(|e| {
                BuildError::Config(ConfigErrors::single(
                    format!("tenant[{i}].keys"),
                    e.to_string(),
                ))
            })?);
        }
        KeyAccess::Only(set)
    };
    let verifier = Verifier::new(store).with_region_policy(regions);
    Ok(Tenant::new(t.name.clone(), verifier, keys))
}

async fn open_backend(
    backend: &BackendConfig,
    env: &dyn Env,
) -> Result<Arc<dyn KeyManager>, BuildError> {
    match backend {
        BackendConfig::Vault(vault) => {
            let km =
                xks_vault::VaultKeyManager::connect(vault, |name| env.var(name).map(Into::into))
                    .await
                    .map_err(|e| BuildError::Backend(Box::new(e)))?;
            Ok(Arc::new(km))
        }
        BackendConfig::Pkcs11(pkcs11) => {
            // Opening logs in and checks every slot and key: blocking, but at
            // startup, before anything is served.
            let km = xks_pkcs11::Pkcs11KeyManager::open(pkcs11, |name| env.var(name))
                .map_err(|e| BuildError::Backend(Box::new(e)))?;
            Ok(Arc::new(km))
        }
        BackendConfig::Soft(soft) => {
            let unlock = xks_soft::Unlock::from_vars(|name| env.var(name).map(Into::into))
                .map_err(|e| BuildError::Backend(Box::new(e)))?;
            let path = soft.path.clone();
            let km =
                tokio::task::spawn_blocking(move || xks_soft::SoftKeyManager::open(path, unlock))
                    .await
                    .map_err(|e| BuildError::Backend(Box::new(e)))?
                    .map_err(|e| BuildError::Backend(Box::new(e)))?
                    .with_vendor(soft.vendor.clone());
            Ok(Arc::new(km))
        }
    }
}
