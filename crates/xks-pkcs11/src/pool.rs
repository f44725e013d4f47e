//! One slot's pool: a bounded job queue and the worker threads that own the
//! slot's sessions, the key cache, and the recovery from lost sessions and
//! broken modules.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use cryptoki::context::Function;
use cryptoki::error::RvError;
use cryptoki::object::ObjectHandle;
use cryptoki::session::{Session, SessionState, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use tokio::sync::oneshot;
use xks_keymanager::{ErrorKind, KeyManagerError, KeyVersion, Sealed, gcm_aad, verify_round_trip};
use xks_protocol::{KeyStatus, MetadataResponse, Plaintext};

use crate::IvMode;
use crate::config::TokenSelector;
use crate::copies::{CopyError, KeyCopies, TokenKey};
use crate::error::{CallDisplay, Pkcs11CallError};
use crate::gcm::{self, GcmError, GcmOutput, TAG_LEN};
use crate::keys::{self, CalendarDate, FindError, KeyAttrs};
use crate::module::{self, Module, Reset, ResetError, ResetOutcome, ResetPolicy};

/// What the health probe encrypts, and the AAD it binds.
const PROBE_PLAINTEXT: &[u8] = b"xks-pkcs11 health probe";
const PROBE_AAD: &[u8] = b"xks-health-canary";

/// A decryption naming a version newer than the cached ones re-reads the key
/// from the token at most this often.
const UNKNOWN_VERSION_RECHECK: Duration = Duration::from_secs(1);

/// Settings shared by all slots.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) iv_mode: IvMode,
    pub(crate) allow_extractable: bool,
    pub(crate) key_refresh: Duration,
    pub(crate) canary_label: String,
    /// How long a slot that restarts its module is passed over.
    pub(crate) failover_backoff: Duration,
    /// How long a job waits for a module reset in progress before it fails
    /// (its caller gives up then anyway).
    pub(crate) call_timeout: Duration,
    /// When a module may be re-initialized or restarted.
    pub(crate) reset: ResetPolicy,
}

/// A job for a worker thread.
pub(crate) enum Request {
    Metadata {
        label: String,
    },
    Encrypt {
        label: String,
        plaintext: Plaintext,
        aad: Vec<u8>,
    },
    /// Encrypt, CDIV over the output, verification decrypt: one job, one trip.
    EncryptVerified {
        label: String,
        plaintext: Plaintext,
        aad: Vec<u8>,
    },
    Decrypt {
        label: String,
        version: KeyVersion,
        /// 12 or 16 bytes ([`gcm::IV_LENS`]).
        iv: Vec<u8>,
        ciphertext: Vec<u8>,
        tag: [u8; TAG_LEN],
        aad: Vec<u8>,
    },
    Probe,
}

/// A worker's answer.
pub(crate) enum Reply {
    Metadata(MetadataResponse),
    Sealed(Sealed),
    Verified(Sealed, [u8; 32]),
    Plaintext(Plaintext),
    Probed,
}

pub(crate) type ReplySender = oneshot::Sender<Result<Reply, KeyManagerError>>;

/// A queued job and where its answer goes.
pub(crate) struct Job {
    pub(crate) request: Arc<Request>,
    pub(crate) reply: ReplySender,
}

/// Why a job could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PushError {
    Full,
    Closed,
}

/// A bounded multi-consumer queue of jobs.
pub(crate) struct Queue {
    state: Mutex<QueueState>,
    ready: Condvar,
    capacity: usize,
}

struct QueueState {
    jobs: VecDeque<Job>,
    closed: bool,
    /// Workers waiting for a job. A push wakes one only if there is one: under
    /// load every worker is busy, and a wake-up is a system call.
    idle: usize,
}

/// The state of one slot shared by its workers and the key manager.
pub(crate) struct SlotShared {
    pub(crate) node_id: String,
    pub(crate) selector: TokenSelector,
    pub(crate) module: Arc<Module>,
    pin: AuthPin,
    settings: Arc<Settings>,
    pub(crate) queue: Queue,
    /// The slot id of the token, found by its label or serial.
    slot: Mutex<Option<Slot>>,
    /// Whether the token was ever found: a token that vanishes after that is a
    /// lost device, one never found is a configuration error.
    token_seen: AtomicBool,
    /// `ekmFleetDetails[].model`.
    model: Mutex<String>,
    cache: RwLock<KeyCache>,
    /// While set and in the future, traffic prefers other slots.
    down_until: Mutex<Option<Instant>>,
    /// Worker threads still running, and a signal when one exits.
    running: Mutex<usize>,
    exited: Condvar,
    pub(crate) counters: Counters,
    /// The workers use session copies of the keys (`session_key_copies`).
    pub(crate) key_copies: bool,
}

/// Counters of one slot, for diagnostics and tests.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) requests: AtomicU64,
    pub(crate) sessions_opened: AtomicU64,
    pub(crate) sessions_lost: AtomicU64,
    pub(crate) logins: AtomicU64,
    pub(crate) key_lookups: AtomicU64,
    /// Module restarts (`C_Finalize`, `C_Initialize`) made by this slot's workers.
    pub(crate) module_restarts: AtomicU64,
    /// Session-object copies of keys made (`session_key_copies`).
    pub(crate) key_copies: AtomicU64,
}

/// Key objects found on the token, by label of version 1.
struct KeyCache {
    /// The module generation the handles belong to.
    generation: u64,
    /// Counts clears: a lookup that started before a clear does not store its
    /// (possibly stale) handles after it.
    epoch: u64,
    keys: HashMap<String, Arc<KeyEntry>>,
}

/// The versions of one key, as found on the token.
pub(crate) struct KeyEntry {
    /// Version `n` is at index `n - 1`.
    versions: Vec<KeyObject>,
    /// A disabling marker object exists.
    marked_disabled: bool,
    loaded_at: Instant,
}

#[derive(Clone)]
struct KeyObject {
    handle: ObjectHandle,
    /// The object's label (`<label>` or `<label>.v<n>`).
    label: String,
    attrs: KeyAttrs,
}

/// A worker thread's state: its session, opened lazily and re-opened after a loss.
pub(crate) struct Worker {
    shared: Arc<SlotShared>,
    session: Option<(Session, u64)>,
    /// IVs from the module's RNG for the `caller` IV mode, fetched in batches.
    ivs: gcm::IvPool,
    /// The module generation when this worker last entered the call gate: a
    /// reset asked for after a failure there is not needed if the generation
    /// moved on since.
    seen_generation: u64,
    /// A call failed and was recovered from since the last success: the next
    /// success tells the module it is cured (its reset backoff starts over).
    troubled: bool,
    /// Sessions this worker opened: names the one `copies` live in.
    session_number: u64,
    /// Session copies of keys, with `session_key_copies`.
    copies: KeyCopies,
}

/// Why one attempt at a job failed.
enum Failure {
    /// A PKCS#11 call failed; a recovery may help.
    Call {
        error: cryptoki::error::Error,
        label: Option<String>,
    },
    /// The token, found before, is in none of the module's slots now: like
    /// `CKR_TOKEN_NOT_PRESENT`, a lost device (many modules only look for
    /// tokens in `C_Initialize`).
    TokenGone(KeyManagerError),
    /// The cached key no longer matches its token object (seen when checking
    /// a session copy): look the key up again.
    Stale { label: String, why: &'static str },
    /// The answer is final.
    Final(KeyManagerError),
}

/// How far the recovery of one job has gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// Nothing tried yet.
    First,
    /// One recovery (a new session, a login...) was tried.
    Recovered,
    /// The module was restarted: no further recovery.
    Restarted,
}

/// What to do about a failed call before trying again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Recovery {
    /// The session (or the device behind it) is gone: open another.
    Reopen,
    /// The module was finalized: initialize it and open another session.
    Reinitialize,
    /// The object handle is stale, or the login was lost: log in if needed and
    /// look the key up again.
    Relookup,
    /// The session is stuck in another operation: close it and open another.
    Restart,
    /// Device errors outlasted a new session: finalize and initialize the
    /// module, then open another session.
    RestartModule,
    /// Nothing helps.
    None,
}

// === impl Queue ===

impl Queue {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::new(QueueState {
                jobs: VecDeque::with_capacity(capacity.min(1024)),
                closed: false,
                idle: 0,
            }),
            ready: Condvar::new(),
            capacity,
        }
    }

    /// Queues `job` without waiting.
    pub(crate) fn push(&self, job: Job) -> Result<(), PushError> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.closed {
            return Err(PushError::Closed);
        }
        if state.jobs.len() >= self.capacity {
            return Err(PushError::Full);
        }
        state.jobs.push_back(job);
        let wake = state.idle > 0;
        drop(state);
        if wake {
            self.ready.notify_one();
        }
        Ok(())
    }

    /// The next job; `None` once the queue is closed and empty.
    fn pop(&self) -> Option<Job> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(job) = state.jobs.pop_front() {
                return Some(job);
            }
            if state.closed {
                return None;
            }
            state.idle += 1;
            state = self
                .ready
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
            state.idle -= 1;
        }
    }

    /// Refuses new jobs; workers finish the queued ones and exit.
    pub(crate) fn close(&self) {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .closed = true;
        self.ready.notify_all();
    }
}

// === impl SlotShared ===

impl SlotShared {
    pub(crate) fn new(
        node_id: String,
        selector: TokenSelector,
        module: Arc<Module>,
        pin: AuthPin,
        settings: Arc<Settings>,
        queue_depth: usize,
        key_copies: bool,
    ) -> Self {
        let model = format!("PKCS#11 token with {selector} (not reached yet)");
        Self {
            node_id,
            selector,
            module,
            pin,
            settings,
            queue: Queue::new(queue_depth),
            slot: Mutex::new(None),
            token_seen: AtomicBool::new(false),
            model: Mutex::new(model),
            cache: RwLock::new(KeyCache {
                generation: 0,
                epoch: 0,
                keys: HashMap::new(),
            }),
            down_until: Mutex::new(None),
            running: Mutex::new(0),
            exited: Condvar::new(),
            counters: Counters::default(),
            key_copies,
        }
    }

    /// Waits until every worker thread has exited (after [`Queue::close`]), or
    /// until `deadline`; workers stuck in the HSM are left behind.
    pub(crate) fn wait_for_workers(&self, deadline: Instant) {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        while *running > 0 {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return;
            };
            running = self
                .exited
                .wait_timeout(running, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn worker_exited(&self) {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        *running = running.saturating_sub(1);
        self.exited.notify_all();
    }

    /// Starts `count` worker threads.
    pub(crate) fn spawn_workers(self: &Arc<Self>, count: usize) -> Result<(), std::io::Error> {
        for n in 0..count {
            let mut worker = Worker::new(self.clone());
            *self.running.lock().unwrap_or_else(PoisonError::into_inner) += 1;
            let spawned = std::thread::Builder::new()
                .name(format!("xks-pkcs11-{n}"))
                .spawn(move || {
                    worker.run();
                    let shared = worker.shared.clone();
                    drop(worker);
                    shared.worker_exited();
                });
            if let Err(e) = spawned {
                self.worker_exited();
                return Err(e);
            }
        }
        Ok(())
    }

    pub(crate) fn model(&self) -> String {
        self.model
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Whether the slot may take traffic first (it has not failed recently).
    pub(crate) fn is_up(&self) -> bool {
        match *self
            .down_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
        {
            Some(until) => Instant::now() >= until,
            None => true,
        }
    }

    pub(crate) fn mark_down(&self, backoff: Duration) {
        *self
            .down_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now() + backoff);
    }

    pub(crate) fn mark_up(&self) {
        let mut down = self
            .down_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if down.is_some() {
            *down = None;
            tracing::info!(slot = %self.node_id, "PKCS#11 slot serves again");
        }
    }

    /// Forgets every cached key: they are looked up again on next use.
    pub(crate) fn clear_cache(&self) {
        let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
        cache.keys.clear();
        cache.epoch += 1;
    }

    /// The slot id of the token, found again after a loss.
    fn resolve_slot(&self) -> Result<Slot, Failure> {
        if let Some(slot) = *self.slot.lock().unwrap_or_else(PoisonError::into_inner) {
            return Ok(slot);
        }
        let found = self
            .module
            .find_slot(&self.selector)
            .map_err(|error| Failure::Call { error, label: None })?;
        let Some((slot, info)) = found else {
            let error = KeyManagerError::new(
                ErrorKind::Unavailable,
                format!(
                    "no slot of PKCS#11 module {} holds the token with {}",
                    self.module.path().display(),
                    self.selector
                ),
            );
            return Err(if self.token_seen.load(Ordering::Relaxed) {
                Failure::TokenGone(error)
            } else {
                Failure::Final(error)
            });
        };
        self.token_seen.store(true, Ordering::Relaxed);
        *self.model.lock().unwrap_or_else(PoisonError::into_inner) = module::model_of(&info);
        *self.slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(slot);
        Ok(slot)
    }

    fn forget_slot(&self) {
        *self.slot.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// The cached entry of `label` if it belongs to `generation`, and the
    /// cache's epoch.
    fn cached(&self, label: &str, generation: u64) -> (Option<Arc<KeyEntry>>, u64) {
        let cache = self.cache.read().unwrap_or_else(PoisonError::into_inner);
        if cache.generation != generation {
            return (None, cache.epoch);
        }
        (cache.keys.get(label).cloned(), cache.epoch)
    }

    /// Caches `entry`, unless the cache was cleared since `epoch`.
    fn store(&self, label: &str, entry: Arc<KeyEntry>, generation: u64, epoch: u64) {
        let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
        if cache.epoch != epoch {
            return;
        }
        if cache.generation != generation {
            cache.keys.clear();
            cache.generation = generation;
        }
        cache.keys.insert(label.to_owned(), entry);
    }

    fn evict(&self, label: &str) {
        let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
        cache.keys.remove(label);
        cache.epoch += 1;
    }
}

// === impl KeyEntry ===

impl KeyEntry {
    fn newest(&self) -> Option<(KeyVersion, &KeyObject)> {
        let object = self.versions.last()?;
        let version = KeyVersion::new(u32::try_from(self.versions.len()).ok()?)?;
        Some((version, object))
    }

    fn version(&self, version: KeyVersion) -> Option<&KeyObject> {
        let index = usize::try_from(version.get() - 1).ok()?;
        self.versions.get(index)
    }

    /// Why the key must not be served, from any of its versions.
    pub(crate) fn refusal(&self, allow_extractable: bool) -> Option<&'static str> {
        self.versions
            .iter()
            .find_map(|v| v.attrs.refusal(allow_extractable))
    }

    /// Whether the key has a disabling marker, or any version's
    /// `CKA_END_DATE` has passed.
    fn is_disabled(&self) -> bool {
        if self.marked_disabled {
            return true;
        }
        let today = CalendarDate::today();
        self.versions.iter().any(|v| v.attrs.is_expired(today))
    }

    /// Refuses keys that must not be served, are disabled, are not AES-256, or
    /// (going by the newest version's attributes) do not allow `allowed`.
    fn check(
        &self,
        settings: &Settings,
        allowed: impl Fn(&KeyAttrs) -> bool,
    ) -> Result<(), KeyManagerError> {
        if let Some(reason) = self.refusal(settings.allow_extractable) {
            return Err(refused(reason));
        }
        if self.is_disabled() {
            return Err(KeyManagerError::new(
                ErrorKind::KeyDisabled,
                "the key is disabled on the token (a disabling marker, or its CKA_END_DATE has passed)",
            ));
        }
        let Some((_, newest)) = self.newest() else {
            return Err(internal("a cached key without versions"));
        };
        if !newest.attrs.is_aes_256() {
            return Err(KeyManagerError::new(
                ErrorKind::KeyUsage,
                "the key is not a 256-bit AES key",
            ));
        }
        if !allowed(&newest.attrs) {
            return Err(KeyManagerError::new(
                ErrorKind::KeyUsage,
                "the key's attributes do not allow this operation",
            ));
        }
        Ok(())
    }
}

// === impl Worker ===

impl Worker {
    pub(crate) fn new(shared: Arc<SlotShared>) -> Self {
        Self {
            shared,
            session: None,
            ivs: gcm::IvPool::new(),
            seen_generation: 0,
            troubled: false,
            session_number: 0,
            copies: KeyCopies::new(),
        }
    }

    /// Serves jobs until the queue closes, then closes the session.
    fn run(&mut self) {
        // Open the session before the first job, so it does not wait for it. On
        // failure the first job tries again, and recovers or reports.
        if self.shared.is_up() {
            let _ = self.gated(|worker| worker.session().map(|_| ()));
        }
        while let Some(job) = self.shared.queue.pop() {
            // The caller gave up (deadline passed): do not spend the HSM on it.
            if job.reply.is_closed() {
                continue;
            }
            let result = self.handle(&job.request);
            // The caller may have given up meanwhile; nothing to do then.
            let _ = job.reply.send(result);
        }
        self.close();
    }

    /// Closes the session, if it is still of the current generation. A session
    /// of a module being reset dies with the reset, unclosed.
    pub(crate) fn close(&mut self) {
        let module = self.shared.module.clone();
        let Some(_call) = module.enter(Duration::ZERO) else {
            return;
        };
        if let Some((session, generation)) = self.session.take()
            && generation == module.generation()
        {
            // Closing at shutdown: a failure changes nothing.
            let _ = session.close();
        }
    }

    /// Runs `f`, which makes PKCS#11 calls, through the module's call gate.
    /// While the module is being reset it waits, at most `call_timeout`, then
    /// fails as `Unavailable`.
    fn gated<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T, Failure>) -> Result<T, Failure> {
        let module = self.shared.module.clone();
        let Some(_call) = module.enter(self.shared.settings.call_timeout) else {
            return Err(Failure::Final(KeyManagerError::new(
                ErrorKind::Unavailable,
                format!(
                    "PKCS#11 slot {} cannot serve: its module is being reset",
                    self.shared.node_id
                ),
            )));
        };
        self.seen_generation = module.generation();
        f(self)
    }

    /// Runs one request, recovering once from a lost session, module, login or
    /// key handle; when device errors outlast that recovery, restarting the
    /// module and trying a last time.
    pub(crate) fn handle(&mut self, request: &Request) -> Result<Reply, KeyManagerError> {
        self.shared
            .counters
            .requests
            .fetch_add(1, Ordering::Relaxed);
        let mut step = Step::First;
        loop {
            let failure = match self.gated(|worker| worker.attempt(request)) {
                Ok(reply) => {
                    if std::mem::take(&mut self.troubled) {
                        self.shared.module.cured();
                    }
                    return Ok(reply);
                }
                Err(failure) => failure,
            };
            let recovery = match (step, failure.recovery()) {
                (_, Recovery::None) => return Err(failure.into_final(&self.shared.node_id)),
                (Step::First, recovery) => recovery,
                (Step::Recovered, _) if failure.is_device_loss() => Recovery::RestartModule,
                _ => return Err(failure.into_final(&self.shared.node_id)),
            };
            self.troubled = true;
            let reason = failure.reason();
            self.log_recovery(&reason, recovery);
            step = match recovery {
                Recovery::RestartModule => Step::Restarted,
                _ => Step::Recovered,
            };
            let label = failure.into_label();
            if let Err(failure) = self.recover(recovery, label.as_deref(), &reason) {
                if step != Step::Recovered || !failure.is_device_loss() {
                    return Err(failure.into_unavailable(&self.shared.node_id));
                }
                // A new session failed the same way: the module itself is broken.
                step = Step::Restarted;
                let reason = failure.reason();
                self.log_recovery(&reason, Recovery::RestartModule);
                self.recover(Recovery::RestartModule, None, &reason)
                    .map_err(|failure| failure.into_unavailable(&self.shared.node_id))?;
            }
        }
    }

    /// One warn line per recovery from a failed call; a module restart is only
    /// asked for here (at debug level): the module logs the restart itself, and
    /// during an outage most requests find it in backoff.
    fn log_recovery(&self, reason: &str, recovery: Recovery) {
        if recovery == Recovery::RestartModule {
            tracing::debug!(
                slot = %self.shared.node_id,
                error = %reason,
                "PKCS#11 device errors outlasted a new session; asking for a module restart"
            );
        } else {
            tracing::warn!(
                slot = %self.shared.node_id,
                error = %reason,
                ?recovery,
                "PKCS#11 call failed; recovering and trying once more"
            );
        }
    }

    fn attempt(&mut self, request: &Request) -> Result<Reply, Failure> {
        let settings = self.shared.settings.clone();
        match request {
            Request::Metadata { label } => {
                let entry = self.key(label, None)?;
                if let Some(reason) = entry.refusal(settings.allow_extractable) {
                    return Err(Failure::Final(refused(reason)));
                }
                let Some((_, newest)) = entry.newest() else {
                    return Err(Failure::Final(internal("a cached key without versions")));
                };
                Ok(Reply::Metadata(MetadataResponse {
                    key_spec: newest.attrs.key_spec(),
                    key_usage: newest.attrs.key_usage(),
                    key_status: if entry.is_disabled() {
                        KeyStatus::Disabled
                    } else {
                        KeyStatus::Enabled
                    },
                }))
            }
            Request::Encrypt {
                label,
                plaintext,
                aad,
            } => {
                let entry = self.key(label, None)?;
                entry
                    .check(&settings, |a| a.encrypt)
                    .map_err(Failure::Final)?;
                let (version, out) = self.seal(label, &entry, plaintext.as_bytes(), aad)?;
                Ok(Reply::Sealed(Sealed {
                    version,
                    iv: out.iv,
                    ciphertext: out.ciphertext,
                    tag: out.tag,
                }))
            }
            Request::EncryptVerified {
                label,
                plaintext,
                aad,
            } => {
                let entry = self.key(label, None)?;
                // The verification decrypt needs DECRYPT too: an encrypt-only key
                // fails before anything is encrypted.
                entry
                    .check(&settings, |a| a.encrypt && a.decrypt)
                    .map_err(Failure::Final)?;
                let (version, out) = self.seal(label, &entry, plaintext.as_bytes(), aad)?;
                let sealed = Sealed {
                    version,
                    iv: out.iv,
                    ciphertext: out.ciphertext,
                    tag: out.tag,
                };
                // The CDIV is computed before the verification decrypt (fact sheet §5).
                let cdiv = sealed.integrity_value(aad);
                let Some(object) = entry.version(version) else {
                    return Err(Failure::Final(internal("the version just used is gone")));
                };
                let gcm_aad = gcm_aad(aad, version).map_err(Failure::Final)?;
                let handle = self.key_handle(label, object)?;
                let session = self.session()?;
                let check = gcm::decrypt(
                    session,
                    handle,
                    &sealed.iv,
                    &sealed.ciphertext,
                    &sealed.tag,
                    &gcm_aad,
                )
                .map_err(|e| gcm_failure(e, label))?;
                verify_round_trip(check.as_bytes(), plaintext.as_bytes())
                    .map_err(Failure::Final)?;
                Ok(Reply::Verified(sealed, cdiv))
            }
            Request::Decrypt {
                label,
                version,
                iv,
                ciphertext,
                tag,
                aad,
            } => {
                let entry = self.key(label, Some(*version))?;
                entry
                    .check(&settings, |a| a.decrypt)
                    .map_err(Failure::Final)?;
                let Some(object) = entry.version(*version) else {
                    return Err(Failure::Final(KeyManagerError::new(
                        ErrorKind::InvalidCiphertext,
                        "the ciphertext names a key version that does not exist on the token",
                    )));
                };
                let gcm_aad = gcm_aad(aad, *version).map_err(Failure::Final)?;
                let handle = self.key_handle(label, object)?;
                let session = self.session()?;
                gcm::decrypt(session, handle, iv, ciphertext, tag, &gcm_aad)
                    .map(Reply::Plaintext)
                    .map_err(|e| gcm_failure(e, label))
            }
            Request::Probe => {
                let label = settings.canary_label.clone();
                let entry = self.key(&label, None)?;
                entry
                    .check(&settings, |a| a.encrypt && a.decrypt)
                    .map_err(Failure::Final)?;
                let (version, sealed) = self.seal(&label, &entry, PROBE_PLAINTEXT, PROBE_AAD)?;
                let Some(object) = entry.version(version) else {
                    return Err(Failure::Final(internal("the canary lost its version")));
                };
                let gcm_aad = gcm_aad(PROBE_AAD, version).map_err(Failure::Final)?;
                let handle = self.key_handle(&label, object)?;
                let session = self.session()?;
                let opened = gcm::decrypt(
                    session,
                    handle,
                    &sealed.iv,
                    &sealed.ciphertext,
                    &sealed.tag,
                    &gcm_aad,
                )
                .map_err(|e| gcm_failure(e, &label))?;
                if opened.as_bytes() != PROBE_PLAINTEXT {
                    return Err(Failure::Final(internal(
                        "the health probe decrypted to another plaintext",
                    )));
                }
                Ok(Reply::Probed)
            }
        }
    }

    /// The handle to operate with for `object`, a version of the key labelled
    /// `label`: the token object, or with `session_key_copies` this worker's
    /// session copy of it.
    fn key_handle(&mut self, label: &str, object: &KeyObject) -> Result<ObjectHandle, Failure> {
        if !self.shared.key_copies {
            return Ok(object.handle);
        }
        self.session()?;
        let Some((session, _)) = &self.session else {
            return Err(Failure::Final(internal("no session after opening one")));
        };
        let key = TokenKey {
            handle: object.handle,
            label: &object.label,
            attrs: &object.attrs,
        };
        let recoverable = |e: &cryptoki::error::Error| classify(e) != Recovery::None;
        self.copies
            .handle(
                session,
                self.session_number,
                &key,
                recoverable,
                &self.shared.counters.key_copies,
            )
            .map_err(|e| match e {
                CopyError::Call(error) => Failure::Call {
                    error,
                    label: Some(label.to_owned()),
                },
                CopyError::Stale(why) => Failure::Stale {
                    label: label.to_owned(),
                    why,
                },
            })
    }

    /// Encrypts with the newest version of `entry`.
    fn seal(
        &mut self,
        label: &str,
        entry: &KeyEntry,
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<(KeyVersion, GcmOutput), Failure> {
        let Some((version, object)) = entry.newest() else {
            return Err(Failure::Final(internal("a cached key without versions")));
        };
        let handle = self.key_handle(label, object)?;
        let gcm_aad = gcm_aad(aad, version).map_err(Failure::Final)?;
        let mode = self.shared.settings.iv_mode;
        self.session()?;
        let Some((session, _)) = &self.session else {
            return Err(Failure::Final(internal("no session after opening one")));
        };
        let out = gcm::encrypt(session, handle, mode, &mut self.ivs, plaintext, &gcm_aad)
            .map_err(|e| gcm_failure(e, label))?;
        Ok((version, out))
    }

    /// The cached key labelled `label` (version 1), read from the token when
    /// missing, older than the refresh interval, or lacking `needed`.
    fn key(&mut self, label: &str, needed: Option<KeyVersion>) -> Result<Arc<KeyEntry>, Failure> {
        let generation = self.shared.module.generation();
        let (cached, epoch) = self.shared.cached(label, generation);
        if let Some(entry) = cached {
            let age = entry.loaded_at.elapsed();
            let fresh = age < self.shared.settings.key_refresh;
            let has_needed = needed.is_none_or(|v| entry.version(v).is_some());
            // A version we do not know yet may have been made since we looked; but
            // a flood of bogus versions must not turn into a flood of lookups.
            if fresh && (has_needed || age < UNKNOWN_VERSION_RECHECK) {
                return Ok(entry);
            }
        }
        let entry = Arc::new(self.discover(label)?);
        self.shared.store(label, entry.clone(), generation, epoch);
        Ok(entry)
    }

    /// Finds every version of the key labelled `label` on the token.
    fn discover(&mut self, label: &str) -> Result<KeyEntry, Failure> {
        let shared = self.shared.clone();
        shared.counters.key_lookups.fetch_add(1, Ordering::Relaxed);
        let session = self.session()?;
        // Private keys are invisible to a session whose login was lost (by a
        // C_Logout elsewhere in the process): without this, another worker's
        // recovery could make this lookup report the key missing.
        ensure_login(&shared, session)?;
        let find = |label: &str| -> Result<Option<KeyObject>, Failure> {
            let handle = match keys::find_key(session, label) {
                Ok(Some(handle)) => handle,
                Ok(None) => return Ok(None),
                Err(FindError::Duplicate) => {
                    return Err(Failure::Final(internal_owned(format!(
                        "more than one secret key on the token is labelled `{label}`"
                    ))));
                }
                Err(FindError::Call(error)) => {
                    return Err(Failure::Call {
                        error,
                        label: Some(label.to_owned()),
                    });
                }
            };
            let attrs = keys::read_attrs(session, handle).map_err(|error| Failure::Call {
                error,
                label: Some(label.to_owned()),
            })?;
            Ok(Some(KeyObject {
                handle,
                label: label.to_owned(),
                attrs,
            }))
        };
        let mut versions = Vec::new();
        let Some(first) = find(label)? else {
            return Err(Failure::Final(KeyManagerError::new(
                ErrorKind::KeyNotFound,
                "no secret key with the key's label on the token",
            )));
        };
        versions.push(first);
        while let Some(next) = u32::try_from(versions.len() + 1)
            .ok()
            .and_then(KeyVersion::new)
        {
            match find(&keys::version_label(label, next))? {
                Some(object) => versions.push(object),
                None => break,
            }
        }
        let marked_disabled =
            keys::has_disabled_marker(session, label).map_err(|error| Failure::Call {
                error,
                label: Some(label.to_owned()),
            })?;
        Ok(KeyEntry {
            versions,
            marked_disabled,
            loaded_at: Instant::now(),
        })
    }

    /// The worker's session, opened (and logged in) if needed.
    fn session(&mut self) -> Result<&Session, Failure> {
        let generation = self.shared.module.generation();
        if self
            .session
            .as_ref()
            .is_some_and(|(_, opened_in)| *opened_in != generation)
        {
            // Dead with the old generation: forget it, never close it.
            self.session = None;
        }
        if self.session.is_none() {
            let session = self.open_session()?;
            self.session = Some((session, self.shared.module.generation()));
            self.session_number += 1;
        }
        match &self.session {
            Some((session, _)) => Ok(session),
            None => Err(Failure::Final(internal("no session after opening one"))),
        }
    }

    fn open_session(&self) -> Result<Session, Failure> {
        let slot = self.shared.resolve_slot()?;
        let session = match self.shared.module.pkcs11().open_ro_session_no_drop(slot) {
            Ok(session) => session,
            Err(error) => {
                if classify(&error) == Recovery::Reopen {
                    // The slot may have been renumbered: find the token again next time.
                    self.shared.forget_slot();
                }
                return Err(Failure::Call { error, label: None });
            }
        };
        if let Err(error) = self.ensure_login(&session) {
            // A session that cannot log in is of no use; it is valid, so close it.
            let _ = session.close();
            return Err(match error {
                Failure::Call { error, .. } if is_pin_problem(&error) => {
                    Failure::Final(unavailable(error, &self.shared.node_id))
                }
                other => other,
            });
        }
        self.shared
            .counters
            .sessions_opened
            .fetch_add(1, Ordering::Relaxed);
        Ok(session)
    }

    /// Logs the application in if `session` sees the token public. The login
    /// is per application and token, and lasts while any of its sessions is
    /// open, so this runs once per process unless the sessions are lost.
    fn ensure_login(&self, session: &Session) -> Result<(), Failure> {
        ensure_login(&self.shared, session)
    }

    /// Carries out `recovery` after a call failed for `reason`. Module resets
    /// run outside the call gate, everything else through it.
    fn recover(
        &mut self,
        recovery: Recovery,
        label: Option<&str>,
        reason: &str,
    ) -> Result<(), Failure> {
        match recovery {
            Recovery::Reopen => {
                self.drop_session();
                self.shared.forget_slot();
                // If the module was re-initialized behind our back, handle
                // numbers may now name other objects: never use them again.
                self.shared.clear_cache();
                self.gated(|worker| worker.session().map(|_| ()))
            }
            Recovery::Reinitialize => {
                self.reset_module(Reset::Reinitialize, reason)?;
                self.gated(|worker| worker.session().map(|_| ()))
            }
            Recovery::RestartModule => {
                self.reset_module(Reset::Restart, reason)?;
                self.gated(|worker| worker.session().map(|_| ()))
            }
            Recovery::Relookup => {
                match label {
                    Some(label) => self.shared.evict(label),
                    None => self.shared.clear_cache(),
                }
                // A copy's handle may be what failed: make them again.
                let session = self.session.as_ref().map(|(session, _)| session);
                self.copies.clear(session);
                // A lost login shows as invalid handles: log in again first.
                self.gated(|worker| match &worker.session {
                    Some((session, _)) => worker.ensure_login(session),
                    None => Ok(()),
                })
            }
            Recovery::Restart => self.gated(|worker| {
                if let Some((session, generation)) = worker.session.take() {
                    worker
                        .shared
                        .counters
                        .sessions_lost
                        .fetch_add(1, Ordering::Relaxed);
                    if generation == worker.shared.module.generation() {
                        let _ = session.close();
                    }
                }
                worker.session().map(|_| ())
            }),
            Recovery::None => Ok(()),
        }
    }

    /// Re-initializes or restarts the slot's module (unless another worker just
    /// did), forgetting this worker's session, the slot id and the cached keys.
    /// The caller holds no call gate guard.
    fn reset_module(&mut self, kind: Reset, reason: &str) -> Result<(), Failure> {
        let shared = self.shared.clone();
        let seen = self.seen_generation;
        self.drop_session();
        shared.forget_slot();
        shared.clear_cache();
        if kind == Reset::Restart {
            // Other slots serve while this one restarts its module.
            shared.mark_down(shared.settings.failover_backoff);
        }
        match shared
            .module
            .reset(kind, seen, &reason, &shared.settings.reset)
        {
            Ok(ResetOutcome::Done { .. }) => {
                if kind == Reset::Restart {
                    shared
                        .counters
                        .module_restarts
                        .fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            }
            Ok(ResetOutcome::AlreadyDone) => Ok(()),
            Err(e) => Err(Failure::Final(reset_failed(e, &shared.node_id))),
        }
    }

    /// Forgets a session that died under us; closing it could close another
    /// session that reuses its handle number.
    fn drop_session(&mut self) {
        if self.session.take().is_some() {
            self.shared
                .counters
                .sessions_lost
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.close();
    }
}

// === impl Failure ===

impl Failure {
    /// The recovery this failure calls for.
    fn recovery(&self) -> Recovery {
        match self {
            Self::Call { error, .. } => classify(error),
            Self::TokenGone(_) => Recovery::Reopen,
            Self::Stale { .. } => Recovery::Relookup,
            Self::Final(_) => Recovery::None,
        }
    }

    /// Whether the device (or the module's connection to it) is lost: the
    /// failures that restart the module when a new session does not cure them.
    fn is_device_loss(&self) -> bool {
        match self {
            Self::Call { error, .. } => is_device_loss(error),
            Self::TokenGone(_) => true,
            Self::Stale { .. } | Self::Final(_) => false,
        }
    }

    /// What failed, for the logs.
    fn reason(&self) -> String {
        match self {
            Self::Call { error, .. } => CallDisplay(error).to_string(),
            Self::Stale { why, .. } => (*why).to_owned(),
            Self::TokenGone(e) | Self::Final(e) => e.to_string(),
        }
    }

    fn into_label(self) -> Option<String> {
        match self {
            Self::Call { label, .. } => label,
            Self::Stale { label, .. } => Some(label),
            Self::TokenGone(_) | Self::Final(_) => None,
        }
    }

    /// The error of a failure no recovery is tried for.
    fn into_final(self, node_id: &str) -> KeyManagerError {
        match self {
            Self::Call { error, .. } => map_error(error, node_id),
            Self::Stale { why, .. } => stale(why, node_id),
            Self::TokenGone(e) | Self::Final(e) => e,
        }
    }

    /// The error of a failed recovery: the slot cannot serve.
    fn into_unavailable(self, node_id: &str) -> KeyManagerError {
        match self {
            Self::Call { error, .. } => unavailable(error, node_id),
            Self::Stale { why, .. } => stale(why, node_id),
            Self::TokenGone(e) | Self::Final(e) => e,
        }
    }
}

/// What recovery a failed call calls for.
fn classify(error: &cryptoki::error::Error) -> Recovery {
    let cryptoki::error::Error::Pkcs11(rv, _) = error else {
        return Recovery::None;
    };
    match rv {
        RvError::SessionHandleInvalid
        | RvError::SessionClosed
        | RvError::DeviceRemoved
        | RvError::DeviceError
        | RvError::TokenNotPresent
        | RvError::TokenNotRecognized
        | RvError::SlotIdInvalid => Recovery::Reopen,
        RvError::CryptokiNotInitialized => Recovery::Reinitialize,
        RvError::KeyHandleInvalid | RvError::ObjectHandleInvalid | RvError::UserNotLoggedIn => {
            Recovery::Relookup
        }
        RvError::OperationActive => Recovery::Restart,
        _ => Recovery::None,
    }
}

/// Whether a failed call says the device is lost (or the module's connection
/// to it): `CKR_DEVICE_ERROR`, `CKR_DEVICE_REMOVED`, `CKR_TOKEN_NOT_PRESENT`,
/// `CKR_TOKEN_NOT_RECOGNIZED`.
fn is_device_loss(error: &cryptoki::error::Error) -> bool {
    matches!(
        error,
        cryptoki::error::Error::Pkcs11(
            RvError::DeviceError
                | RvError::DeviceRemoved
                | RvError::TokenNotPresent
                | RvError::TokenNotRecognized,
            _
        )
    )
}

fn is_pin_problem(error: &cryptoki::error::Error) -> bool {
    matches!(
        error,
        cryptoki::error::Error::Pkcs11(
            RvError::PinIncorrect
                | RvError::PinInvalid
                | RvError::PinLenRange
                | RvError::PinExpired
                | RvError::PinLocked
                | RvError::UserPinNotInitialized,
            _
        )
    )
}

/// The error of a failed call that no recovery fixed.
///
/// | PKCS#11 | error kind |
/// |---|---|
/// | `C_Decrypt`: `CKR_GENERAL_ERROR`, `CKR_FUNCTION_FAILED`, `CKR_ENCRYPTED_DATA_INVALID`, `CKR_ENCRYPTED_DATA_LEN_RANGE` | `InvalidCiphertext` |
/// | `CKR_KEY_FUNCTION_NOT_PERMITTED`, `CKR_KEY_TYPE_INCONSISTENT` | `KeyUsage` |
/// | session, device, token, module, login and PIN failures | `Unavailable` |
/// | anything else | `Internal` |
fn map_error(error: cryptoki::error::Error, node_id: &str) -> KeyManagerError {
    let cryptoki::error::Error::Pkcs11(rv, function) = &error else {
        return KeyManagerError::new(ErrorKind::Internal, "PKCS#11 call failed")
            .with_source(Pkcs11CallError::new(error));
    };
    let (kind, detail) = match (rv, function) {
        (
            RvError::GeneralError
            | RvError::FunctionFailed
            | RvError::EncryptedDataInvalid
            | RvError::EncryptedDataLenRange,
            Function::Decrypt,
        ) => (
            ErrorKind::InvalidCiphertext,
            "C_Decrypt failed: the ciphertext does not authenticate",
        ),
        (RvError::KeyFunctionNotPermitted | RvError::KeyTypeInconsistent, _) => (
            ErrorKind::KeyUsage,
            "the token does not allow this operation with this key",
        ),
        _ if classify(&error) != Recovery::None || is_pin_problem(&error) => {
            return unavailable(error, node_id);
        }
        (RvError::DeviceMemory | RvError::HostMemory | RvError::FunctionCanceled, _) => {
            return unavailable(error, node_id);
        }
        _ => (ErrorKind::Internal, "PKCS#11 call failed"),
    };
    KeyManagerError::new(kind, detail).with_source(Pkcs11CallError::new(error))
}

fn unavailable(error: cryptoki::error::Error, node_id: &str) -> KeyManagerError {
    KeyManagerError::new(
        ErrorKind::Unavailable,
        format!("PKCS#11 slot {node_id} cannot serve"),
    )
    .with_source(Pkcs11CallError::new(error))
}

/// The error of a module reset that did not happen or failed.
fn reset_failed(error: ResetError, node_id: &str) -> KeyManagerError {
    let detail = format!("PKCS#11 slot {node_id} cannot serve: {error}");
    match error {
        ResetError::Initialize(source) => KeyManagerError::new(ErrorKind::Unavailable, detail)
            .with_source(Pkcs11CallError::new(source)),
        ResetError::Backoff { .. } | ResetError::Busy => {
            KeyManagerError::new(ErrorKind::Unavailable, detail)
        }
    }
}

/// Logs the application in if `session` is public (the login was lost);
/// `CKR_USER_ALREADY_LOGGED_IN` counts as success.
fn ensure_login(shared: &SlotShared, session: &Session) -> Result<(), Failure> {
    let call = |error| Failure::Call { error, label: None };
    let state = session.get_session_info().map_err(call)?.session_state();
    if !matches!(state, SessionState::RoPublic | SessionState::RwPublic) {
        return Ok(());
    }
    match session.login(UserType::User, Some(&shared.pin)) {
        Ok(()) => {
            shared.counters.logins.fetch_add(1, Ordering::Relaxed);
            tracing::info!(slot = %shared.node_id, "logged in to the PKCS#11 token");
            Ok(())
        }
        Err(cryptoki::error::Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
        Err(error) => Err(call(error)),
    }
}

fn gcm_failure(error: GcmError, label: &str) -> Failure {
    match error {
        GcmError::Call(error) => Failure::Call {
            error,
            label: Some(label.to_owned()),
        },
        GcmError::Layout(what) => Failure::Final(internal(what)),
    }
}

/// A key that kept changing on the token while it was being used.
fn stale(why: &'static str, node_id: &str) -> KeyManagerError {
    KeyManagerError::new(
        ErrorKind::Unavailable,
        format!("PKCS#11 slot {node_id}: {why}, and again after reading it anew"),
    )
}

fn refused(reason: &'static str) -> KeyManagerError {
    KeyManagerError::new(
        ErrorKind::KeyUsage,
        format!("refusing to serve this key: {reason}"),
    )
}

fn internal(what: &'static str) -> KeyManagerError {
    KeyManagerError::new(ErrorKind::Internal, what)
}

fn internal_owned(what: String) -> KeyManagerError {
    KeyManagerError::new(ErrorKind::Internal, what)
}

/// Reads attributes for operator-facing checks at startup.
pub(crate) fn startup_refusal(
    worker: &mut Worker,
    label: &str,
    allow_extractable: bool,
) -> Result<Option<&'static str>, KeyManagerError> {
    let node_id = worker.shared.node_id.clone();
    match worker.gated(|worker| worker.key(label, None)) {
        Ok(entry) => Ok(entry.refusal(allow_extractable)),
        Err(failure) => Err(failure.into_final(&node_id)),
    }
}
