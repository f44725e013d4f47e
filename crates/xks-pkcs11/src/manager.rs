//! The `KeyManager` over one or more PKCS#11 tokens.

use std::fmt;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use cryptoki::types::AuthPin;
use tokio::sync::oneshot;
use xks_keymanager::{ErrorKind, KeyManager, KeyManagerError, NodeHealth, Sealed, SealedRef};
use xks_protocol::{HealthStatus, KeyId, KeyStatus, MetadataResponse, Plaintext};

use crate::config::PinSource;
use crate::gcm::{IV_LENS, TAG_LEN};
use crate::module::{Module, ResetPolicy};
use crate::pool::{self, Job, PushError, Reply, Request, Settings, SlotShared, Worker};
use crate::{Error, Pkcs11Config};

/// The `C_GetInfo` manufacturer of SoftHSM2, whose file store reads a token
/// object back from disk on every use: `session_key_copies` defaults to on for
/// it.
const SOFTHSM_MANUFACTURER: &str = "SoftHSM";

/// The PKCS#11 [`KeyManager`]: AES-256-GCM with keys that never leave the HSM.
///
/// Build it with [`Pkcs11KeyManager::open`]. See the [crate documentation](crate)
/// for the threading model, the error mapping, key versions, disabling keys,
/// failover and health.
///
/// Every call runs under the configured `call_timeout` (queueing and failover
/// included) and needs a Tokio runtime with the time driver enabled. Dropping
/// the key manager stops its worker threads once they finish their current job.
///
/// `Debug` shows the slots and settings, never the PIN.
pub struct Pkcs11KeyManager {
    config: Pkcs11Config,
    slots: Vec<Arc<SlotShared>>,
    vendor: String,
    /// The startup check's workers, kept with their sessions: they hold the
    /// login for the process while the pool's workers come and go.
    _keepers: Vec<Mutex<Worker>>,
}

/// Counters of one slot since the key manager was opened, for diagnostics.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SlotStats {
    /// The slot's node id, as in health (`pkcs11:<token label>`).
    pub node_id: String,
    /// Requests handled by the slot's workers (health probes included).
    pub requests: u64,
    /// Sessions opened and logged in (each worker opens one, and another after
    /// a loss; the startup check opens one per slot and keeps it).
    pub sessions_opened: u64,
    /// Sessions given up because they were lost or stuck.
    pub sessions_lost: u64,
    /// `C_Login` calls that logged the application in.
    pub logins: u64,
    /// Key lookups on the token (`C_FindObjects` for each version of a key).
    pub key_lookups: u64,
    /// Restarts of the slot's module (`C_Finalize`, `C_Initialize`) made by
    /// this slot's workers because device errors outlasted a new session. A
    /// module shared by several slots restarts for all of them, and counts
    /// in the slot that restarted it.
    pub module_restarts: u64,
    /// Whether the slot's workers use session copies of the keys
    /// (`session_key_copies`, set or chosen for the module).
    pub uses_key_copies: bool,
    /// Session-object copies of keys made by the slot's workers.
    pub key_copies: u64,
}

// === impl Pkcs11KeyManager ===

impl Pkcs11KeyManager {
    /// The `backend_name` of this key manager.
    pub const BACKEND_NAME: &'static str = "pkcs11";

    /// Opens the key manager: validates `config`, loads and initializes the
    /// modules, reads the PINs (`env` looks up environment variables; pass
    /// `|name| std::env::var(name).ok()` in production), starts the worker
    /// threads, and checks every slot: it logs in, runs the health probe on
    /// the canary key, and reads every key listed in `config.keys`.
    ///
    /// This is **synchronous and blocking** (module loading, `C_Login`, key
    /// lookups): call it before serving, or from `spawn_blocking`. It needs no
    /// Tokio runtime; the [`KeyManager`] calls do.
    ///
    /// A slot that fails the check is logged and starts out passed over; it
    /// serves again once a health probe succeeds.
    ///
    /// # Errors
    ///
    /// - [`Error::Config`], [`Error::Pin`], [`Error::Module`], [`Error::Thread`];
    /// - [`Error::NoUsableSlot`] when no slot passes the check;
    /// - [`Error::KeyRefused`] when a listed key is extractable or not
    ///   sensitive (unless `allow_extractable_keys`), or not an AES key.
    pub fn open(
        config: &Pkcs11Config,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, Error> {
        config.validate()?;
        let settings = Arc::new(Settings {
            iv_mode: config.iv_mode,
            allow_extractable: config.allow_extractable_keys,
            key_refresh: config.key_refresh_interval,
            canary_label: config.canary_label.clone(),
            failover_backoff: config.failover_backoff,
            call_timeout: config.call_timeout,
            reset: ResetPolicy {
                backoff: config.module_restart_backoff,
                backoff_max: config.module_restart_backoff_max,
                quiesce: RESET_QUIESCE,
            },
        });
        let mut slots = Vec::with_capacity(config.slots.len());
        let mut vendor = config.vendor.clone();
        for slot in &config.slots {
            let module = Module::load(&config.module_of(slot)?)?;
            let manufacturer = module.manufacturer();
            if vendor.is_none() {
                vendor.clone_from(&manufacturer);
            }
            let key_copies = config
                .session_key_copies
                .unwrap_or_else(|| manufacturer.as_deref() == Some(SOFTHSM_MANUFACTURER));
            let pin = read_pin(&config.pin_of(slot)?, &env)?;
            let selector = slot.selector()?;
            let node_id = node_id(&selector, &slots);
            slots.push(Arc::new(SlotShared::new(
                node_id,
                selector,
                module,
                pin,
                settings.clone(),
                config.queue_depth,
                key_copies,
            )));
        }
        let mut km = Self {
            config: config.clone(),
            slots,
            vendor: vendor.unwrap_or_else(|| "PKCS#11".to_owned()),
            _keepers: Vec::new(),
        };
        km._keepers = km.check_slots()?;
        for slot in &km.slots {
            slot.spawn_workers(config.sessions_per_slot)
                .map_err(Error::Thread)?;
        }
        Ok(km)
    }

    /// The startup check of every slot, run on the calling thread. Returns the
    /// workers that passed it, to keep their sessions open.
    fn check_slots(&self) -> Result<Vec<Mutex<Worker>>, Error> {
        let mut keepers = Vec::new();
        let mut first_error = None;
        for slot in &self.slots {
            let mut worker = Worker::new(slot.clone());
            match worker.handle(&Request::Probe) {
                Ok(_) => tracing::info!(
                    slot = %slot.node_id,
                    session_key_copies = slot.key_copies,
                    "PKCS#11 slot passed its startup check"
                ),
                Err(e) => {
                    tracing::warn!(
                        slot = %slot.node_id,
                        error = %e,
                        "PKCS#11 slot failed its startup check (log in, health probe on the canary key); passing it over"
                    );
                    slot.mark_down(self.config.failover_backoff);
                    first_error.get_or_insert_with(|| (slot.node_id.clone(), e));
                    continue;
                }
            }
            for key in &self.config.keys {
                match pool::startup_refusal(
                    &mut worker,
                    key.label(),
                    self.config.allow_extractable_keys,
                ) {
                    Ok(None) => {}
                    Ok(Some(reason)) => {
                        return Err(Error::KeyRefused {
                            label: key.label().to_owned(),
                            reason,
                        });
                    }
                    Err(e) if e.kind() == ErrorKind::KeyNotFound => {
                        tracing::warn!(slot = %slot.node_id, key = %key.id, label = key.label(),
                            "configured key not found on the token");
                    }
                    Err(e) => {
                        tracing::warn!(slot = %slot.node_id, key = %key.id, error = %e,
                            "cannot read a configured key");
                    }
                }
            }
            keepers.push(Mutex::new(worker));
        }
        match first_error {
            Some((slot, source)) if keepers.is_empty() => Err(Error::NoUsableSlot { slot, source }),
            _ => Ok(keepers),
        }
    }

    /// Forgets every cached key handle, version and attribute: the next use of
    /// each key reads it from the token again. Call it after changing keys with
    /// [`Pkcs11Admin`](crate::Pkcs11Admin) (a new version, disabling), for
    /// example on `SIGHUP`; otherwise changes show within
    /// `key_refresh_interval`. It does not block.
    pub fn refresh_keys(&self) {
        for slot in &self.slots {
            slot.clear_cache();
        }
    }

    /// Counters of every slot, in configuration order.
    pub fn stats(&self) -> Vec<SlotStats> {
        self.slots
            .iter()
            .map(|slot| {
                let c = &slot.counters;
                SlotStats {
                    node_id: slot.node_id.clone(),
                    requests: c.requests.load(Ordering::Relaxed),
                    sessions_opened: c.sessions_opened.load(Ordering::Relaxed),
                    sessions_lost: c.sessions_lost.load(Ordering::Relaxed),
                    logins: c.logins.load(Ordering::Relaxed),
                    key_lookups: c.key_lookups.load(Ordering::Relaxed),
                    module_restarts: c.module_restarts.load(Ordering::Relaxed),
                    uses_key_copies: slot.key_copies,
                    key_copies: c.key_copies.load(Ordering::Relaxed),
                }
            })
            .collect()
    }

    /// The label and configured state of external key `key`.
    fn label(&self, key: &KeyId) -> Result<(String, bool), KeyManagerError> {
        match self.config.label_of(key) {
            Some((label, disabled)) => Ok((label.to_owned(), disabled)),
            None => Err(KeyManagerError::new(
                ErrorKind::KeyNotFound,
                "the key id maps to no key of the PKCS#11 backend",
            )),
        }
    }

    /// The object label of `key` for a cryptographic call; a key disabled by
    /// configuration is refused here, before any HSM work.
    fn enabled_label(&self, key: &KeyId) -> Result<String, KeyManagerError> {
        match self.label(key)? {
            (_, true) => Err(disabled_by_config()),
            (label, false) => Ok(label),
        }
    }

    /// Runs `request` on the first slot that can take it, healthy slots first,
    /// failing over on a full queue or an unavailable slot, all within
    /// `call_timeout`.
    async fn call(&self, request: Request) -> Result<Reply, KeyManagerError> {
        let deadline = tokio::time::Instant::now() + self.config.call_timeout;
        let request = Arc::new(request);
        let mut last = None;
        for slot in self.slot_order() {
            let (reply, answer) = oneshot::channel();
            let job = Job {
                request: request.clone(),
                reply,
            };
            match slot.queue.push(job) {
                Ok(()) => {}
                Err(PushError::Full) => {
                    last = Some(KeyManagerError::new(
                        ErrorKind::Throttled,
                        "every worker of the PKCS#11 slot is busy and its queue is full",
                    ));
                    continue;
                }
                Err(PushError::Closed) => {
                    last = Some(KeyManagerError::new(
                        ErrorKind::Unavailable,
                        "the PKCS#11 key manager is shutting down",
                    ));
                    continue;
                }
            }
            match tokio::time::timeout_at(deadline, answer).await {
                Ok(Ok(Ok(reply))) => {
                    slot.mark_up();
                    return Ok(reply);
                }
                Ok(Ok(Err(e))) if e.kind() == ErrorKind::Unavailable => {
                    tracing::warn!(slot = %slot.node_id, error = %e, "PKCS#11 slot failed; failing over");
                    slot.mark_down(self.config.failover_backoff);
                    last = Some(e);
                }
                Ok(Ok(Err(e))) => return Err(e),
                Ok(Err(_)) => {
                    last = Some(KeyManagerError::new(
                        ErrorKind::Internal,
                        "a PKCS#11 worker thread dropped a request",
                    ));
                }
                Err(_) => {
                    // The job stays queued or running; its worker drops the answer.
                    slot.mark_down(self.config.failover_backoff);
                    return Err(KeyManagerError::new(
                        ErrorKind::Timeout,
                        "the HSM did not answer within call_timeout",
                    ));
                }
            }
        }
        Err(last.unwrap_or_else(|| {
            KeyManagerError::new(ErrorKind::Internal, "no PKCS#11 slot is configured")
        }))
    }

    /// Slots that have not failed recently first, in configuration order, then
    /// the others: when every slot failed, all are still tried.
    fn slot_order(&self) -> Vec<&Arc<SlotShared>> {
        let (mut up, down): (Vec<_>, Vec<_>) = self.slots.iter().partition(|s| s.is_up());
        up.extend(down);
        up
    }

    /// The deep health probe of one slot.
    async fn probe(slot: Arc<SlotShared>, timeout: Duration, backoff: Duration) -> NodeHealth {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            request: Arc::new(Request::Probe),
            reply,
        };
        let status = match slot.queue.push(job) {
            // Saturated: serving, but not able to take more right now.
            Err(PushError::Full) if slot.is_up() => HealthStatus::Degraded,
            Err(_) => HealthStatus::Unavailable,
            Ok(()) => match tokio::time::timeout(timeout, answer).await {
                Ok(Ok(Ok(_))) => {
                    slot.mark_up();
                    HealthStatus::Active
                }
                Ok(Ok(Err(e))) => {
                    tracing::warn!(slot = %slot.node_id, error = %e, "PKCS#11 health probe failed");
                    slot.mark_down(backoff);
                    HealthStatus::Unavailable
                }
                Ok(Err(_)) => HealthStatus::Unavailable,
                Err(_) => {
                    tracing::warn!(slot = %slot.node_id, "PKCS#11 health probe timed out");
                    slot.mark_down(backoff);
                    HealthStatus::Unavailable
                }
            },
        };
        NodeHealth {
            id: slot.node_id.clone(),
            model: slot.model(),
            status,
        }
    }
}

impl Drop for Pkcs11KeyManager {
    /// Stops the workers: they finish the queued jobs, close their sessions and
    /// exit. Waits for that up to one second, so that no session is
    /// closed after the key manager is gone (or while the process exits); a
    /// worker stuck in the HSM is left behind.
    fn drop(&mut self) {
        for slot in &self.slots {
            slot.queue.close();
        }
        let deadline = Instant::now() + SHUTDOWN_WAIT;
        for slot in &self.slots {
            slot.wait_for_workers(deadline);
        }
    }
}

/// How long dropping a key manager waits for its workers to exit.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(1);

/// How long a module reset waits for the PKCS#11 calls in progress (of every
/// slot on the module) to end before it gives up until its next chance.
const RESET_QUIESCE: Duration = Duration::from_secs(5);

#[async_trait]
impl KeyManager for Pkcs11KeyManager {
    fn backend_name(&self) -> &'static str {
        Self::BACKEND_NAME
    }

    fn vendor(&self) -> &str {
        &self.vendor
    }

    async fn key_metadata(&self, key: &KeyId) -> Result<MetadataResponse, KeyManagerError> {
        let (label, disabled) = self.label(key)?;
        match self.call(Request::Metadata { label }).await? {
            Reply::Metadata(mut metadata) => {
                if disabled {
                    metadata.key_status = KeyStatus::Disabled;
                }
                Ok(metadata)
            }
            _ => Err(mismatched()),
        }
    }

    async fn encrypt(
        &self,
        key: &KeyId,
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<Sealed, KeyManagerError> {
        let label = self.enabled_label(key)?;
        let request = Request::Encrypt {
            label,
            plaintext: Plaintext::new(plaintext.to_vec()),
            aad: aad.to_vec(),
        };
        match self.call(request).await? {
            Reply::Sealed(sealed) => Ok(sealed),
            _ => Err(mismatched()),
        }
    }

    /// Encrypt, CDIV and verification decrypt in one job on one HSM worker: one
    /// queue round trip instead of two.
    async fn encrypt_verified(
        &self,
        key: &KeyId,
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<(Sealed, [u8; 32]), KeyManagerError> {
        let label = self.enabled_label(key)?;
        let request = Request::EncryptVerified {
            label,
            plaintext: Plaintext::new(plaintext.to_vec()),
            aad: aad.to_vec(),
        };
        match self.call(request).await? {
            Reply::Verified(sealed, cdiv) => Ok((sealed, cdiv)),
            _ => Err(mismatched()),
        }
    }

    async fn decrypt(
        &self,
        key: &KeyId,
        sealed: SealedRef<'_>,
        aad: &[u8],
    ) -> Result<Plaintext, KeyManagerError> {
        let label = self.enabled_label(key)?;
        let invalid = |detail| KeyManagerError::new(ErrorKind::InvalidCiphertext, detail);
        if !IV_LENS.contains(&sealed.iv.len()) {
            return Err(invalid(
                "the IV is not 12 or 16 bytes, so this backend did not produce it",
            ));
        }
        let iv = sealed.iv.to_vec();
        let tag: [u8; TAG_LEN] = sealed
            .tag
            .try_into()
            .map_err(|_| invalid("the authentication tag is not 16 bytes"))?;
        let request = Request::Decrypt {
            label,
            version: sealed.version,
            iv,
            ciphertext: sealed.ciphertext.to_vec(),
            tag,
            aad: aad.to_vec(),
        };
        match self.call(request).await? {
            Reply::Plaintext(plaintext) => Ok(plaintext),
            _ => Err(mismatched()),
        }
    }

    async fn health(&self) -> Vec<NodeHealth> {
        let mut probes = tokio::task::JoinSet::new();
        for (index, slot) in self.slots.iter().enumerate() {
            let probe = Self::probe(
                slot.clone(),
                self.config.call_timeout,
                self.config.failover_backoff,
            );
            probes.spawn(async move { (index, probe.await) });
        }
        let mut nodes: Vec<(usize, NodeHealth)> = Vec::with_capacity(self.slots.len());
        while let Some(joined) = probes.join_next().await {
            if let Ok(node) = joined {
                nodes.push(node);
            }
        }
        nodes.sort_by_key(|(index, _)| *index);
        nodes.into_iter().map(|(_, node)| node).collect()
    }

    /// Forgets cached key handles and attributes ([`Pkcs11KeyManager::refresh_keys`]),
    /// so keys created, versioned or disabled on the token are seen.
    async fn reload(&self) -> Result<(), KeyManagerError> {
        self.refresh_keys();
        Ok(())
    }
}

impl fmt::Debug for Pkcs11KeyManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let slots: Vec<&str> = self.slots.iter().map(|s| s.node_id.as_str()).collect();
        f.debug_struct("Pkcs11KeyManager")
            .field("slots", &slots)
            .field("vendor", &self.vendor)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The node id of a slot: `pkcs11:<token label>` or `pkcs11:serial:<serial>`,
/// with `#<n>` appended when another slot (of another module) has it already.
fn node_id(selector: &crate::config::TokenSelector, earlier: &[Arc<SlotShared>]) -> String {
    let base = match selector {
        crate::config::TokenSelector::Label(label) => format!("pkcs11:{label}"),
        crate::config::TokenSelector::Serial(serial) => format!("pkcs11:serial:{serial}"),
    };
    let mut id = base.clone();
    let mut n = 2;
    while earlier.iter().any(|s| s.node_id == id) {
        id = format!("{base}#{n}");
        n += 1;
    }
    id
}

/// Reads the PIN from its source. A PIN file's trailing white space (a final
/// newline) is not part of the PIN.
pub(crate) fn read_pin(
    source: &PinSource,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<AuthPin, Error> {
    let pin = match source {
        PinSource::Env(var) => env(var).ok_or_else(|| {
            Error::pin(format!("the environment variable {var} is not set"), None)
        })?,
        PinSource::File(path) => read_pin_file(path)?,
    };
    let pin = pin.trim_end_matches(['\r', '\n']).to_owned();
    if pin.is_empty() {
        return Err(Error::pin("the PIN is empty".to_owned(), None));
    }
    Ok(AuthPin::from(pin))
}

fn read_pin_file(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|e| {
        Error::pin(
            format!("cannot read the PIN file `{}`", path.display()),
            Some(e),
        )
    })
}

fn disabled_by_config() -> KeyManagerError {
    KeyManagerError::new(
        ErrorKind::KeyDisabled,
        "the key is disabled in the PKCS#11 backend's configuration",
    )
}

fn mismatched() -> KeyManagerError {
    KeyManagerError::new(
        ErrorKind::Internal,
        "a PKCS#11 worker answered another kind of request",
    )
}
