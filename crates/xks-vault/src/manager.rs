//! The `KeyManager` over Transit.

use std::ffi::OsString;
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::Method;
use serde::Deserialize;
use tokio::time::{Instant, sleep, sleep_until};
use xks_keymanager::{
    ErrorKind, KeyManager, KeyManagerError, NodeHealth, Sealed, SealedRef, gcm_aad,
};
use xks_protocol::{
    HealthStatus, KeyId, KeySpec, KeyStatus, KeyUsage, MetadataResponse, Plaintext,
};

use crate::admin::VaultAdmin;
use crate::auth::Lease;
use crate::config::VaultConfig;
use crate::core::{Failure, Inner, KeySlot, Op, Policy};
use crate::error::{Error, VaultError, VaultErrorKind};
use crate::http::{Call, status_error};
use crate::transit::{self, NONCE_LEN, TAG_LEN};
use crate::{DisplayChain, Error as CrateError};

/// What the health probe encrypts, and the AAD it binds.
const PROBE_PLAINTEXT: &[u8] = b"xks-vault health probe";
const PROBE_AAD: &[u8] = b"xks-health-canary";

/// The Transit path the upsert check asks the token's capabilities on: a key
/// that does not exist.
const UPSERT_PROBE_KEY: &str = "xks-upsert-probe";

/// The [`KeyManager`] over the Transit secrets engine of HashiCorp Vault or
/// OpenBao. See the [crate documentation](crate) for the ciphertext layout,
/// failover, coalescing and the error mapping.
///
/// Cheap to share: clone the [`Arc`] it is usually held in. Dropping the last
/// handle stops its background tasks (token renewal, node polling).
///
/// `Debug` shows the node addresses and the mount, never a token.
pub struct VaultKeyManager {
    inner: Arc<Inner>,
}

/// How this key manager's encrypt and decrypt calls went out to Transit,
/// since it connected: [`VaultKeyManager::coalescing_stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CoalescingStats {
    /// Calls carrying one item (every call, with coalescing off).
    pub single_calls: u64,
    /// Batch calls (`batch_input`) carrying coalesced requests.
    pub batch_calls: u64,
    /// Requests carried by batch calls.
    pub batched_items: u64,
}

/// The role a node reports on its health endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Active,
    Standby,
    PerformanceStandby,
    DrSecondary,
    Sealed,
    Uninitialized,
    Unexpected(u16),
    Unreachable,
}

/// What a node's health endpoint said.
#[derive(Clone, Debug)]
struct NodeState {
    role: Role,
    version: Option<String>,
}

#[derive(Deserialize)]
struct HealthBody {
    #[serde(default)]
    standby: bool,
    #[serde(default)]
    sealed: bool,
    #[serde(default)]
    version: Option<String>,
}

#[derive(Deserialize)]
struct KeysConfigBody {
    #[serde(default)]
    disable_upsert: bool,
}

// === impl VaultKeyManager ===

impl VaultKeyManager {
    /// Connects to Vault and checks the setup, then starts the background
    /// tasks (token renewal, node polling) on the current Tokio runtime.
    ///
    /// `env` looks environment variables up (credentials given as
    /// `{ env = "NAME" }`); pass `|name| std::env::var_os(name)` in production
    /// and a map lookup in tests.
    ///
    /// The checks, in order: the configuration is valid; the credentials are
    /// readable and Vault accepts them (token lookup or AppRole login); Transit
    /// cannot silently create missing keys on encrypt (the mount sets
    /// `disable_upsert`, or the token lacks `create` on the encrypt paths);
    /// every `[[backend.keys]]` key exists and is `aes256-gcm96`; the health
    /// check canary key exists (it is created if missing and the token may).
    ///
    /// # Errors
    ///
    /// [`Error::Config`], [`Error::Secret`], [`Error::Tls`], [`Error::Auth`],
    /// [`Error::Request`] (no node answered, or an unexpected answer),
    /// [`Error::UpsertEnabled`], [`Error::KeyNotFound`],
    /// [`Error::WrongKeyType`], [`Error::CanaryMissing`].
    pub async fn connect(
        config: &VaultConfig,
        env: impl Fn(&str) -> Option<OsString>,
    ) -> Result<Self, Error> {
        let inner = Arc::new(Inner::new(config, &env)?);
        let admin_deadline = || Instant::now() + inner.settings.admin_timeout;
        let lease = inner.login(admin_deadline()).await?;
        find_active(&inner, admin_deadline()).await;
        check_upsert(&inner, admin_deadline()).await?;
        let admin = VaultAdmin::from_inner(inner.clone());
        for (id, listed) in inner.listed() {
            let info = admin.describe_name(&listed.name).await?;
            if !info.is_aes256_gcm() {
                return Err(Error::WrongKeyType {
                    name: info.name,
                    found: info.key_type,
                });
            }
            if info.exportable || info.plaintext_backup_allowed || info.deletion_allowed {
                tracing::warn!(
                    external_key_id = %id,
                    transit_key = %info.name,
                    exportable = info.exportable,
                    plaintext_backup = info.plaintext_backup_allowed,
                    deletion_allowed = info.deletion_allowed,
                    "the transit key can leave Vault or be deleted; XKS keys should allow neither"
                );
            }
        }
        admin.ensure_canary().await?;
        let km = Self { inner };
        km.start_tasks(lease);
        tracing::info!(
            nodes = km.inner.http.nodes().len(),
            mount = %km.inner.settings.mount,
            auth = km.inner.auth.method(),
            coalesce = km.inner.settings.coalesce,
            "connected to vault transit"
        );
        Ok(km)
    }

    /// The operator handle over the same connection: creating, rotating and
    /// describing keys. Changes made through it are seen at once by this key
    /// manager (its cached description of the key is dropped).
    pub fn admin(&self) -> VaultAdmin {
        VaultAdmin::from_inner(self.inner.clone())
    }

    /// The configured node addresses, in order; the ids of
    /// [`KeyManager::health`]'s entries.
    pub fn node_addresses(&self) -> Vec<String> {
        self.inner
            .http
            .nodes()
            .iter()
            .map(|n| n.address.clone())
            .collect()
    }

    /// The node tried first by the next request: the active node, or the last
    /// one that answered.
    pub fn preferred_node(&self) -> &str {
        let nodes = self.inner.http.nodes();
        nodes
            .get(self.inner.http.preferred())
            .map_or("", |n| n.address.as_str())
    }

    /// How encrypt and decrypt calls went out to Transit so far: singly or in
    /// coalesced batches (health probes not counted).
    pub fn coalescing_stats(&self) -> CoalescingStats {
        let c = &self.inner.counters;
        CoalescingStats {
            single_calls: c.single_calls.load(Ordering::Relaxed),
            batch_calls: c.batch_calls.load(Ordering::Relaxed),
            batched_items: c.batched_items.load(Ordering::Relaxed),
        }
    }

    /// Forgets the cached description of external key `id`, so the next call
    /// reads the key's versions and state from Vault. Rotations and state
    /// changes made elsewhere are otherwise seen within `key_cache_ttl`.
    pub fn refresh_key(&self, id: &KeyId) {
        if let Ok((name, _)) = self.inner.resolve(id) {
            self.inner.invalidate(&self.inner.slot(&name));
        }
    }

    fn start_tasks(&self, lease: Lease) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let weak = Arc::downgrade(&self.inner);
        if !lease.ttl.is_zero() {
            let task = runtime.spawn(keep_token_fresh(weak.clone(), lease));
            self.inner.add_task(task.abort_handle());
        }
        let interval = self.inner.settings.node_check_interval;
        if !interval.is_zero() && self.inner.http.nodes().len() > 1 {
            let task = runtime.spawn(poll_nodes(weak, interval));
            self.inner.add_task(task.abort_handle());
        }
    }

    fn lookup(&self, key: &KeyId) -> Result<(Arc<KeySlot>, Policy), KeyManagerError> {
        match self.inner.resolve(key) {
            Ok((name, policy)) => Ok((self.inner.slot(&name), policy)),
            Err(e) => Err(KeyManagerError::new(
                ErrorKind::KeyNotFound,
                "the external key id has no transit key",
            )
            .with_source(e)),
        }
    }

    /// The key's description, or `KeyNotFound`.
    async fn described(
        &self,
        slot: &KeySlot,
        deadline: Instant,
        since: Option<Instant>,
    ) -> Result<Arc<transit::KeyDescription>, KeyManagerError> {
        match self.inner.describe(slot, deadline, since).await {
            Ok(Some(d)) => Ok(d),
            Ok(None) => Err(KeyManagerError::new(
                ErrorKind::KeyNotFound,
                "the transit key does not exist",
            )),
            Err(f) => Err(f.into_error("cannot read the transit key")),
        }
    }

    /// Applies the key's state and usage: disabled first, then usage.
    fn check(
        description: &transit::KeyDescription,
        policy: Policy,
        op: Op,
    ) -> Result<(), KeyManagerError> {
        if policy.disabled || description.soft_deleted {
            return Err(KeyManagerError::new(
                ErrorKind::KeyDisabled,
                if policy.disabled {
                    "the key is disabled in the proxy configuration"
                } else {
                    "the transit key is soft-deleted"
                },
            ));
        }
        if !description.is_aes256_gcm() {
            return Err(KeyManagerError::new(
                ErrorKind::KeyUsage,
                "the transit key is not an aes256-gcm96 key",
            ));
        }
        let allowed = match op {
            Op::Encrypt => policy.usage.encrypt() && description.supports_encryption,
            Op::Decrypt => policy.usage.decrypt() && description.supports_decryption,
        };
        if !allowed {
            return Err(KeyManagerError::new(
                ErrorKind::KeyUsage,
                "the key's usage does not allow this operation",
            ));
        }
        Ok(())
    }

    /// Runs `failure` into an error, dropping the cached description when the
    /// key's existence or state may have changed.
    fn failed(&self, slot: &KeySlot, failure: Failure, what: &'static str) -> KeyManagerError {
        if matches!(
            failure.kind,
            ErrorKind::KeyNotFound | ErrorKind::KeyDisabled
        ) || failure.error.status() == Some(403)
        {
            self.inner.invalidate(slot);
        }
        failure.into_error(what)
    }

    /// The deep check: encrypts and decrypts with the canary key on `node`, or
    /// on any node with failover.
    async fn probe_canary(&self, node: Option<usize>, deadline: Instant) -> Result<(), Failure> {
        let mount = &self.inner.settings.mount;
        let canary = &self.inner.settings.canary;
        let encrypt_path = format!("{mount}/encrypt/{canary}");
        let decrypt_path = format!("{mount}/decrypt/{canary}");
        let body = serde_json::json!({
            "plaintext": STANDARD.encode(PROBE_PLAINTEXT),
            "associated_data": STANDARD.encode(PROBE_AAD),
        });
        let sealed: transit::ItemResult = self
            .probe_call(node, &encrypt_path, &body, deadline)
            .await?;
        let blob = sealed.ciphertext.unwrap_or_default();
        let body = serde_json::json!({
            "ciphertext": blob,
            "associated_data": STANDARD.encode(PROBE_AAD),
        });
        let opened: transit::ItemResult = self
            .probe_call(node, &decrypt_path, &body, deadline)
            .await?;
        let plaintext = opened
            .plaintext
            .and_then(|p| transit::decode_plaintext(&p.0))
            .unwrap_or_default();
        if plaintext != PROBE_PLAINTEXT {
            return Err(Failure::from(VaultError::new(
                Method::POST,
                &decrypt_path,
                None,
                VaultErrorKind::Decode("the health probe decrypted to another plaintext"),
            )));
        }
        Ok(())
    }

    async fn probe_call(
        &self,
        node: Option<usize>,
        path: &str,
        body: &serde_json::Value,
        deadline: Instant,
    ) -> Result<transit::ItemResult, Failure> {
        let call = Call {
            method: Method::POST,
            path,
            body: Some(serde_json::to_vec(body).unwrap_or_default().into()),
            token: true,
            namespace: true,
            idempotent: true,
        };
        let answer = match node {
            Some(node) => self.inner.http.send_to(node, &call, deadline).await,
            None => self.inner.call(&call, deadline).await,
        }
        .map_err(Failure::from)?;
        if answer.status != 200 {
            return Err(Failure::from(status_error(&call, None, &answer)));
        }
        serde_json::from_slice::<transit::Envelope<transit::ItemResult>>(&answer.body)
            .ok()
            .and_then(|e| e.data)
            .ok_or_else(|| {
                Failure::from(VaultError::new(
                    Method::POST,
                    path,
                    None,
                    VaultErrorKind::Decode("unreadable health probe answer"),
                ))
            })
    }
}

#[async_trait]
impl KeyManager for VaultKeyManager {
    fn backend_name(&self) -> &'static str {
        "vault"
    }

    fn vendor(&self) -> &str {
        &self.inner.settings.vendor
    }

    async fn key_metadata(&self, key: &KeyId) -> Result<MetadataResponse, KeyManagerError> {
        let deadline = Instant::now() + self.inner.settings.request_timeout;
        let (slot, policy) = self.lookup(key)?;
        let d = self.described(&slot, deadline, None).await?;
        let (key_spec, key_usage) = if d.is_aes256_gcm() {
            let mut usage = Vec::with_capacity(2);
            if policy.usage.encrypt() && d.supports_encryption {
                usage.push(KeyUsage::Encrypt);
            }
            if policy.usage.decrypt() && d.supports_decryption {
                usage.push(KeyUsage::Decrypt);
            }
            (KeySpec::Aes256, usage)
        } else {
            (KeySpec::Other(d.key_type.to_uppercase()), Vec::new())
        };
        let key_status = if policy.disabled || d.soft_deleted {
            KeyStatus::Disabled
        } else {
            KeyStatus::Enabled
        };
        Ok(MetadataResponse {
            key_spec,
            key_usage,
            key_status,
        })
    }

    async fn encrypt(
        &self,
        key: &KeyId,
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<Sealed, KeyManagerError> {
        let deadline = Instant::now() + self.inner.settings.request_timeout;
        let (slot, policy) = self.lookup(key)?;
        let mut since = None;
        loop {
            let d = self.described(&slot, deadline, since).await?;
            Self::check(&d, policy, Op::Encrypt)?;
            let version = d.latest().ok_or_else(|| {
                KeyManagerError::new(ErrorKind::Internal, "the transit key has no version")
            })?;
            let item = transit::encrypt_item(plaintext, &gcm_aad(aad, version)?, version);
            match self.inner.transit(&slot, Op::Encrypt, item, deadline).await {
                Ok(result) => {
                    let blob = result.ciphertext.unwrap_or_default();
                    let split = transit::split_blob(&blob, version, plaintext.len())
                        .map_err(|what| KeyManagerError::new(ErrorKind::Internal, what))?;
                    return Ok(Sealed {
                        version,
                        iv: split.nonce.to_vec(),
                        ciphertext: split.ciphertext,
                        tag: split.tag,
                    });
                }
                // The key was rotated or its minimum encryption version raised
                // since it was described: describe it again, once. Likewise
                // after a 403: a token without `create` gets one for a key
                // deleted since it was described (it would be an upsert).
                Err(f)
                    if since.is_none()
                        && (f.is_stale_version() || f.error.status() == Some(403)) =>
                {
                    since = Some(Instant::now());
                }
                Err(f) => return Err(self.failed(&slot, f, "transit encrypt failed")),
            }
        }
    }

    async fn decrypt(
        &self,
        key: &KeyId,
        sealed: SealedRef<'_>,
        aad: &[u8],
    ) -> Result<Plaintext, KeyManagerError> {
        let deadline = Instant::now() + self.inner.settings.request_timeout;
        let (slot, policy) = self.lookup(key)?;
        let d = self.described(&slot, deadline, None).await?;
        Self::check(&d, policy, Op::Decrypt)?;
        let invalid = |what| KeyManagerError::new(ErrorKind::InvalidCiphertext, what);
        if sealed.iv.len() != NONCE_LEN {
            return Err(invalid(
                "the IV is not 12 bytes, so Transit did not produce it",
            ));
        }
        if sealed.tag.len() != TAG_LEN {
            return Err(invalid("the authentication tag is not 16 bytes"));
        }
        let item = transit::decrypt_item(
            sealed.version,
            sealed.iv,
            sealed.ciphertext,
            sealed.tag,
            &gcm_aad(aad, sealed.version)?,
        );
        let result = self
            .inner
            .transit(&slot, Op::Decrypt, item, deadline)
            .await
            .map_err(|f| self.failed(&slot, f, "transit decrypt failed"))?;
        let encoded = result.plaintext.map(|p| p.0).unwrap_or_default();
        let plaintext = Plaintext::new(transit::decode_plaintext(&encoded).ok_or_else(|| {
            KeyManagerError::new(
                ErrorKind::Internal,
                "transit returned a plaintext that is not Base64",
            )
        })?);
        if plaintext.len() != sealed.ciphertext.len() {
            return Err(KeyManagerError::new(
                ErrorKind::Internal,
                "transit returned a plaintext of another length than the ciphertext",
            ));
        }
        Ok(plaintext)
    }

    async fn health(&self) -> Vec<NodeHealth> {
        let deadline = Instant::now() + self.inner.settings.admin_timeout;
        let states = node_states(&self.inner, deadline).await;
        let active = states.iter().position(|s| s.role == Role::Active);
        if let Some(node) = active {
            self.inner.http.set_preferred(node);
        }
        let canary = self.probe_canary(active, deadline).await;
        if let Err(f) = &canary {
            tracing::warn!(
                error = %DisplayChain(&f.error),
                kind = %f.kind,
                "the vault health probe with the canary key failed"
            );
        }
        let canary_timed_out = matches!(&canary, Err(f) if f.kind == ErrorKind::Timeout);
        self.inner
            .http
            .nodes()
            .iter()
            .zip(states)
            .map(|(node, state)| {
                let status = match state.role {
                    Role::Active if canary.is_ok() => HealthStatus::Active,
                    Role::Active if canary_timed_out => HealthStatus::Degraded,
                    Role::Active => HealthStatus::Unavailable,
                    Role::Standby | Role::PerformanceStandby if canary.is_ok() => {
                        HealthStatus::Active
                    }
                    Role::Standby | Role::PerformanceStandby => HealthStatus::Degraded,
                    Role::DrSecondary
                    | Role::Sealed
                    | Role::Uninitialized
                    | Role::Unexpected(_)
                    | Role::Unreachable => HealthStatus::Unavailable,
                };
                NodeHealth {
                    id: node.address.clone(),
                    model: format!(
                        "{} {} Transit ({})",
                        self.inner.settings.vendor,
                        state.version.as_deref().unwrap_or("unknown version"),
                        state.role
                    ),
                    status,
                }
            })
            .collect()
    }
}

impl fmt::Debug for VaultKeyManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultKeyManager")
            .field("nodes", &self.node_addresses())
            .field("mount", &self.inner.settings.mount)
            .field("auth", &self.inner.auth.method())
            .finish_non_exhaustive()
    }
}

// === impl Role ===

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Active => f.write_str("active"),
            Self::Standby => f.write_str("standby"),
            Self::PerformanceStandby => f.write_str("performance standby"),
            Self::DrSecondary => f.write_str("DR secondary"),
            Self::Sealed => f.write_str("sealed"),
            Self::Uninitialized => f.write_str("not initialized"),
            Self::Unexpected(status) => write!(f, "health status {status}"),
            Self::Unreachable => f.write_str("unreachable"),
        }
    }
}

/// Asks every node's health endpoint, concurrently.
async fn node_states(inner: &Inner, deadline: Instant) -> Vec<NodeState> {
    let calls = (0..inner.http.nodes().len()).map(|node| node_state(inner, node, deadline));
    futures::future::join_all(calls).await
}

async fn node_state(inner: &Inner, node: usize, deadline: Instant) -> NodeState {
    let call = Call {
        method: Method::GET,
        path: "sys/health",
        body: None,
        token: false,
        namespace: false,
        idempotent: true,
    };
    let Ok(answer) = inner.http.send_to(node, &call, deadline).await else {
        return NodeState {
            role: Role::Unreachable,
            version: None,
        };
    };
    let body = serde_json::from_slice::<HealthBody>(&answer.body).ok();
    let version = body.as_ref().and_then(|b| b.version.clone());
    let role = match answer.status {
        200 if body.as_ref().is_some_and(|b| b.standby) => Role::Standby,
        200 if body.as_ref().is_some_and(|b| b.sealed) => Role::Sealed,
        200 => Role::Active,
        429 => Role::Standby,
        472 => Role::DrSecondary,
        473 => Role::PerformanceStandby,
        501 => Role::Uninitialized,
        503 => Role::Sealed,
        other => Role::Unexpected(other),
    };
    NodeState { role, version }
}

/// Makes the active node the preferred one, if a node says it is active.
async fn find_active(inner: &Inner, deadline: Instant) {
    let states = node_states(inner, deadline).await;
    if let Some(node) = states.iter().position(|s| s.role == Role::Active) {
        inner.http.set_preferred(node);
    }
}

/// Refuses a mount where encrypt would create missing keys.
async fn check_upsert(inner: &Inner, deadline: Instant) -> Result<(), CrateError> {
    let mount = &inner.settings.mount;
    let path = format!("{mount}/config/keys");
    let call = Call {
        method: Method::GET,
        path: &path,
        body: None,
        token: true,
        namespace: true,
        idempotent: true,
    };
    let answer = inner
        .call(&call, deadline)
        .await
        .map_err(CrateError::Request)?;
    if answer.status == 200 {
        let disabled = serde_json::from_slice::<transit::Envelope<KeysConfigBody>>(&answer.body)
            .ok()
            .and_then(|e| e.data)
            .is_some_and(|c| c.disable_upsert);
        if disabled {
            return Ok(());
        }
    } else if answer.status != 403 {
        // 403: the token may not read the mount's configuration; its
        // capabilities decide below. Anything else is a broken setup.
        return Err(CrateError::Request(status_error(&call, None, &answer)));
    }
    let mut paths = vec![format!("{mount}/encrypt/{UPSERT_PROBE_KEY}")];
    paths.extend(
        inner
            .listed()
            .map(|(_, l)| format!("{mount}/encrypt/{}", l.name)),
    );
    let body = serde_json::json!({ "paths": paths });
    let call = Call {
        method: Method::POST,
        path: "sys/capabilities-self",
        body: Some(serde_json::to_vec(&body).unwrap_or_default().into()),
        token: true,
        namespace: true,
        idempotent: true,
    };
    let answer = inner
        .call(&call, deadline)
        .await
        .map_err(CrateError::Request)?;
    if answer.status != 200 {
        return Err(CrateError::Request(status_error(&call, None, &answer)));
    }
    let capabilities = serde_json::from_slice::<
        transit::Envelope<std::collections::HashMap<String, Vec<String>>>,
    >(&answer.body)
    .ok()
    .and_then(|e| e.data)
    .unwrap_or_default();
    let may_create = paths.iter().any(|p| {
        capabilities
            .get(p)
            .is_none_or(|caps| caps.iter().any(|c| c == "create" || c == "root"))
    });
    if may_create {
        return Err(CrateError::UpsertEnabled {
            mount: mount.clone(),
        });
    }
    Ok(())
}

/// Renews the token before it expires; logs in again when it cannot be
/// renewed (any more, or for long enough).
async fn keep_token_fresh(inner: Weak<Inner>, mut lease: Lease) {
    let wanted = lease.ttl;
    let mut expires = Instant::now() + lease.ttl;
    let mut wake = Instant::now() + renew_after(lease.ttl);
    loop {
        sleep_until(wake).await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let deadline = Instant::now() + inner.settings.admin_timeout;
        let renewed = if lease.renewable {
            inner.auth.renew(&inner.http, wanted, deadline).await
        } else {
            Err(CrateError::Auth(VaultError::new(
                Method::POST,
                "auth/token/renew-self",
                None,
                VaultErrorKind::Decode("the token is not renewable"),
            )))
        };
        let outcome = match renewed {
            // Renewed for long enough. A token near its maximum TTL gets less
            // than it asked for: AppRole logs in again then.
            Ok(new) if new.ttl >= wanted / 2 || !inner.auth.can_login_again() => Ok(new),
            Ok(_) | Err(_) => inner.login(deadline).await,
        };
        let now = Instant::now();
        match outcome {
            Ok(new) if new.ttl.is_zero() => return,
            Ok(new) => {
                tracing::debug!(ttl_s = new.ttl.as_secs(), "vault token renewed");
                lease = new;
                expires = now + new.ttl;
                wake = now + renew_after(new.ttl);
            }
            Err(e) => {
                tracing::warn!(error = %DisplayChain(&e), "vault token renewal failed; retrying");
                let left = expires.saturating_duration_since(now);
                wake = now + (left / 2).clamp(Duration::from_millis(300), Duration::from_secs(30));
            }
        }
    }
}

/// When to renew a token that lives `ttl`: after two thirds of it.
fn renew_after(ttl: Duration) -> Duration {
    (ttl * 2 / 3).max(Duration::from_millis(200))
}

/// Keeps the active node the preferred one.
async fn poll_nodes(inner: Weak<Inner>, interval: Duration) {
    loop {
        sleep(interval).await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let deadline = Instant::now() + inner.settings.admin_timeout;
        find_active(&inner, deadline).await;
    }
}
