//! The state shared by the key manager, its background tasks and the operator
//! handle: the HTTP client, the credentials, the settings, the key description
//! cache and the coalescing queues.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::Method;
use tokio::sync::oneshot;
use tokio::task::AbortHandle;
use tokio::time::{Instant, timeout_at};
use xks_keymanager::{ErrorKind, KeyManagerError};
use xks_protocol::KeyId;
use zeroize::Zeroizing;

use crate::auth::{Auth, Lease};
use crate::config::{KeyUsagePolicy, VaultConfig};
use crate::error::{Error, VaultError, VaultErrorKind};
use crate::http::{Answer, Call, Http, status_error};
use crate::names::default_transit_name;
use crate::secret::wiped_bytes;
use crate::transit::{self, BatchResults, Envelope, ItemResult, KeyDescription};

/// The most key slots kept; past it, idle slots of unlisted keys are dropped.
const MAX_SLOTS: usize = 4096;

/// The shortest time between two logins triggered by a `403` answer.
const RELOGIN_INTERVAL: Duration = Duration::from_secs(5);

/// Everything the backend shares.
pub(crate) struct Inner {
    pub(crate) http: Http,
    pub(crate) auth: Auth,
    pub(crate) settings: Settings,
    slots: Mutex<HashMap<String, Arc<KeySlot>>>,
    /// When the token was last obtained; the lock serialises logins.
    last_login: tokio::sync::Mutex<Option<Instant>>,
    tasks: Mutex<Vec<AbortHandle>>,
    pub(crate) counters: Counters,
}

/// How encrypt and decrypt calls went out: one item per call, or batched.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) single_calls: AtomicU64,
    pub(crate) batch_calls: AtomicU64,
    pub(crate) batched_items: AtomicU64,
}

/// The processed configuration.
pub(crate) struct Settings {
    pub(crate) mount: String,
    pub(crate) canary: String,
    prefix: String,
    allow_unlisted: bool,
    listed: HashMap<KeyId, Listed>,
    pub(crate) request_timeout: Duration,
    pub(crate) admin_timeout: Duration,
    key_cache_ttl: Duration,
    pub(crate) node_check_interval: Duration,
    pub(crate) coalesce: bool,
    max_batch: usize,
    pub(crate) vendor: String,
}

/// A `[[backend.keys]]` entry.
#[derive(Clone)]
pub(crate) struct Listed {
    pub(crate) name: String,
    pub(crate) policy: Policy,
}

/// What the proxy lets KMS do with a key.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Policy {
    pub(crate) usage: KeyUsagePolicy,
    pub(crate) disabled: bool,
}

/// One Transit key in use: its cached description and its coalescing queues.
pub(crate) struct KeySlot {
    describe_path: String,
    encrypt_path: String,
    decrypt_path: String,
    cached: Mutex<Option<Cached>>,
    /// Serialises refreshes of the description.
    refresh: tokio::sync::Mutex<()>,
    encrypt_queue: Queue,
    decrypt_queue: Queue,
}

#[derive(Clone)]
struct Cached {
    at: Instant,
    /// `None`: the key does not exist.
    description: Option<Arc<KeyDescription>>,
}

/// Encrypt or decrypt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Encrypt,
    Decrypt,
}

/// A failed Transit call or batch item: its kind and the error behind it.
#[derive(Clone)]
pub(crate) struct Failure {
    pub(crate) kind: ErrorKind,
    pub(crate) error: VaultError,
}

/// The requests waiting for the call in flight on one key and operation.
#[derive(Default)]
struct Queue {
    state: Mutex<QueueState>,
}

#[derive(Default)]
struct QueueState {
    /// Whether a call (single or batch) is in flight.
    busy: bool,
    waiting: Vec<Waiter>,
}

struct Waiter {
    item: Zeroizing<String>,
    reply: oneshot::Sender<Result<ItemResult, Failure>>,
}

/// Hands the queue over when the call in flight ends, also when the caller
/// gave up on it (its future was dropped).
struct Release {
    inner: Arc<Inner>,
    slot: Arc<KeySlot>,
    op: Op,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

// === impl Inner ===

impl Inner {
    /// Validates `config`, reads the credentials and builds the client; no
    /// network traffic yet.
    pub(crate) fn new(
        config: &VaultConfig,
        env: &dyn Fn(&str) -> Option<OsString>,
    ) -> Result<Self, Error> {
        config.validate()?;
        let http = Http::new(config)?;
        let auth = Auth::new(&config.auth, env)?;
        let listed = config
            .keys
            .iter()
            .map(|k| {
                (
                    k.id.clone(),
                    Listed {
                        name: config.transit_name_of(k),
                        policy: Policy {
                            usage: k.usage,
                            disabled: k.disabled,
                        },
                    },
                )
            })
            .collect();
        Ok(Self {
            http,
            auth,
            settings: Settings {
                mount: config.mount.clone(),
                canary: config.canary_key.clone(),
                prefix: config.key_name_prefix.clone(),
                allow_unlisted: config.allow_unlisted_keys,
                listed,
                request_timeout: config.request_timeout,
                admin_timeout: config.admin_timeout,
                key_cache_ttl: config.key_cache_ttl,
                node_check_interval: config.node_check_interval,
                coalesce: config.coalesce,
                max_batch: config.max_batch,
                vendor: config.vendor.clone(),
            },
            slots: Mutex::new(HashMap::new()),
            last_login: tokio::sync::Mutex::new(None),
            tasks: Mutex::new(Vec::new()),
            counters: Counters::default(),
        })
    }

    pub(crate) fn add_task(&self, task: AbortHandle) {
        lock(&self.tasks).push(task);
    }

    /// Logs in (or looks the token up) and records the time.
    pub(crate) async fn login(&self, deadline: Instant) -> Result<Lease, Error> {
        let mut last = self.last_login.lock().await;
        let lease = self.auth.login(&self.http, deadline).await?;
        *last = Some(Instant::now());
        Ok(lease)
    }

    /// After a `403`: logs in again, unless that happened recently. Returns
    /// whether a fresh token is in place and the call is worth repeating.
    async fn relogin_after_denied(&self, deadline: Instant) -> bool {
        if !self.auth.can_login_again() {
            return false;
        }
        let Ok(mut last) = timeout_at(deadline, self.last_login.lock()).await else {
            return false;
        };
        if last.is_some_and(|at| at.elapsed() < RELOGIN_INTERVAL) {
            return false;
        }
        // Whatever happens, do not try again before the interval.
        *last = Some(Instant::now());
        match self.auth.login(&self.http, deadline).await {
            Ok(_) => {
                tracing::info!(
                    method = self.auth.method(),
                    "logged in to vault again after a permission denied answer"
                );
                true
            }
            Err(e) => {
                tracing::warn!(error = %crate::DisplayChain(&e), "vault login after a permission denied answer failed");
                false
            }
        }
    }

    /// Sends `call` with failover; on `403`, logs in again once and repeats.
    pub(crate) async fn call(
        &self,
        call: &Call<'_>,
        deadline: Instant,
    ) -> Result<Answer, VaultError> {
        let answer = self.http.send(call, deadline).await?;
        if answer.status == 403 && call.token && self.relogin_after_denied(deadline).await {
            return self.http.send(call, deadline).await;
        }
        Ok(answer)
    }

    /// The Transit key name and policy of external key `id`.
    pub(crate) fn resolve(&self, id: &KeyId) -> Result<(String, Policy), Error> {
        let (name, policy) = match self.settings.listed.get(id) {
            Some(listed) => (listed.name.clone(), listed.policy),
            None if self.settings.allow_unlisted => (
                default_transit_name(&self.settings.prefix, id),
                Policy {
                    usage: KeyUsagePolicy::EncryptDecrypt,
                    disabled: false,
                },
            ),
            None => {
                return Err(Error::KeyNotConfigured {
                    id: id.as_str().to_owned(),
                });
            }
        };
        if name == self.settings.canary {
            return Err(Error::ReservedKey {
                id: id.as_str().to_owned(),
            });
        }
        Ok((name, policy))
    }

    /// The listed keys: external id and entry.
    pub(crate) fn listed(&self) -> impl Iterator<Item = (&KeyId, &Listed)> {
        self.settings.listed.iter()
    }

    /// The external id of Transit key `name`, if KMS can reach it.
    pub(crate) fn external_id_of(&self, name: &str) -> Option<KeyId> {
        if name == self.settings.canary {
            return None;
        }
        if let Some((id, _)) = self.settings.listed.iter().find(|(_, l)| l.name == name) {
            return Some(id.clone());
        }
        if !self.settings.allow_unlisted {
            return None;
        }
        crate::names::external_id_of(&self.settings.prefix, name)
            .filter(|id| !self.settings.listed.contains_key(id))
    }

    /// The slot of Transit key `name`, created on first use.
    pub(crate) fn slot(&self, name: &str) -> Arc<KeySlot> {
        let mut slots = lock(&self.slots);
        if let Some(slot) = slots.get(name) {
            return slot.clone();
        }
        if slots.len() >= MAX_SLOTS {
            // Unknown ids sent in bulk must not grow the map without bound.
            slots.retain(|_, slot| Arc::strong_count(slot) > 1);
        }
        let mount = &self.settings.mount;
        let slot = Arc::new(KeySlot {
            describe_path: format!("{mount}/keys/{name}"),
            encrypt_path: format!("{mount}/encrypt/{name}"),
            decrypt_path: format!("{mount}/decrypt/{name}"),
            cached: Mutex::new(None),
            refresh: tokio::sync::Mutex::new(()),
            encrypt_queue: Queue::default(),
            decrypt_queue: Queue::default(),
        });
        slots.insert(name.to_owned(), slot.clone());
        slot
    }

    /// The description of the slot's key (`None`: it does not exist), from the
    /// cache when it is fresh and not older than `since`.
    pub(crate) async fn describe(
        &self,
        slot: &KeySlot,
        deadline: Instant,
        since: Option<Instant>,
    ) -> Result<Option<Arc<KeyDescription>>, Failure> {
        let usable = |cached: &Option<Cached>| {
            cached.as_ref().and_then(|c| {
                let fresh = c.at.elapsed() < self.settings.key_cache_ttl;
                let recent = since.is_none_or(|s| c.at >= s);
                (fresh && recent).then(|| c.description.clone())
            })
        };
        if let Some(d) = usable(&lock(&slot.cached)) {
            return Ok(d);
        }
        let _refreshing = timeout_at(deadline, slot.refresh.lock())
            .await
            .map_err(|_| Failure::timeout(Method::GET, &slot.describe_path))?;
        if let Some(d) = usable(&lock(&slot.cached)) {
            return Ok(d);
        }
        let call = Call {
            method: Method::GET,
            path: &slot.describe_path,
            body: None,
            token: true,
            namespace: true,
            idempotent: true,
        };
        let answer = self.call(&call, deadline).await.map_err(Failure::from)?;
        let description = match answer.status {
            200 => {
                let d = serde_json::from_slice::<Envelope<KeyDescription>>(&answer.body)
                    .ok()
                    .and_then(|e| e.data)
                    .ok_or_else(|| Failure::decode(&call, "unreadable key description"))?;
                Some(Arc::new(d))
            }
            404 => None,
            _ => return Err(Failure::answer(&call, &answer)),
        };
        *lock(&slot.cached) = Some(Cached {
            at: Instant::now(),
            description: description.clone(),
        });
        Ok(description)
    }

    /// Forgets the slot's description, so the next call reads it again.
    pub(crate) fn invalidate(&self, slot: &KeySlot) {
        *lock(&slot.cached) = None;
    }

    /// Encrypts or decrypts one item, coalesced with concurrent requests on
    /// the same key when coalescing is on.
    pub(crate) async fn transit(
        self: &Arc<Self>,
        slot: &Arc<KeySlot>,
        op: Op,
        item: Zeroizing<String>,
        deadline: Instant,
    ) -> Result<ItemResult, Failure> {
        if !self.settings.coalesce {
            return self.single(slot, op, &item, deadline).await;
        }
        let queue = slot.queue(op);
        let mut item = Some(item);
        let waiting = {
            let mut state = lock(&queue.state);
            if state.busy {
                let (reply, rx) = oneshot::channel();
                if let Some(item) = item.take() {
                    state.waiting.push(Waiter { item, reply });
                }
                Some(rx)
            } else {
                state.busy = true;
                None
            }
        };
        if let Some(rx) = waiting {
            return match timeout_at(deadline, rx).await {
                Ok(Ok(result)) => result,
                Ok(Err(_)) => Err(Failure::abandoned(slot.path(op))),
                Err(_) => Err(Failure::timeout(Method::POST, slot.path(op))),
            };
        }
        let release = Release {
            inner: self.clone(),
            slot: slot.clone(),
            op,
        };
        let item = item.unwrap_or_default();
        let result = self.single(slot, op, &item, deadline).await;
        drop(release);
        result
    }

    /// One Transit call for one item.
    pub(crate) async fn single(
        &self,
        slot: &KeySlot,
        op: Op,
        item: &str,
        deadline: Instant,
    ) -> Result<ItemResult, Failure> {
        self.counters.single_calls.fetch_add(1, Ordering::Relaxed);
        let call = Call {
            method: Method::POST,
            path: slot.path(op),
            body: Some(wiped_bytes(item.as_bytes().to_vec())),
            token: true,
            namespace: true,
            idempotent: true,
        };
        let answer = self.call(&call, deadline).await.map_err(Failure::from)?;
        if answer.status != 200 {
            return Err(Failure::answer(&call, &answer));
        }
        let result = serde_json::from_slice::<Envelope<ItemResult>>(&answer.body)
            .ok()
            .and_then(|e| e.data)
            .ok_or_else(|| Failure::decode(&call, "unreadable encrypt or decrypt answer"))?;
        match &result.error {
            Some(message) => Err(Failure::item(&call, message)),
            None => Ok(result),
        }
    }

    /// One Transit batch call for several items; one result per item, in order.
    async fn batch(
        &self,
        slot: &KeySlot,
        op: Op,
        items: &[&str],
        deadline: Instant,
    ) -> Vec<Result<ItemResult, Failure>> {
        self.counters.batch_calls.fetch_add(1, Ordering::Relaxed);
        self.counters
            .batched_items
            .fetch_add(items.len() as u64, Ordering::Relaxed);
        let body = transit::batch_body(items.iter().copied());
        let call = Call {
            method: Method::POST,
            path: slot.path(op),
            body: Some(wiped_bytes(body.as_bytes().to_vec())),
            token: true,
            namespace: true,
            idempotent: true,
        };
        let all = |failure: Failure| items.iter().map(|_| Err(failure.clone())).collect();
        let answer = match self.call(&call, deadline).await {
            Ok(answer) => answer,
            Err(e) => return all(Failure::from(e)),
        };
        // A batch with failed items is answered 400, with the results.
        let results = matches!(answer.status, 200 | 400)
            .then(|| serde_json::from_slice::<Envelope<BatchResults>>(&answer.body).ok())
            .flatten()
            .and_then(|e| e.data)
            .map(|d| d.batch_results)
            .filter(|r| r.len() == items.len());
        match results {
            Some(results) => results
                .into_iter()
                .map(|r| match &r.error {
                    Some(message) => Err(Failure::item(&call, message)),
                    None => Ok(r),
                })
                .collect(),
            None if answer.status == 200 => all(Failure::decode(
                &call,
                "the batch answer does not match the batch",
            )),
            None => all(Failure::answer(&call, &answer)),
        }
    }

    /// Sends what waits on the queue as batches until it is empty.
    async fn drain(self: Arc<Self>, slot: Arc<KeySlot>, op: Op, mut batch: Vec<Waiter>) {
        loop {
            let deadline = Instant::now() + self.settings.request_timeout;
            let results = if let [one] = batch.as_slice() {
                vec![self.single(&slot, op, &one.item, deadline).await]
            } else {
                let items: Vec<&str> = batch.iter().map(|w| w.item.as_str()).collect();
                self.batch(&slot, op, &items, deadline).await
            };
            for (waiter, result) in batch.into_iter().zip(results) {
                // The caller may have given up; nothing to do then.
                let _ = waiter.reply.send(result);
            }
            match slot.queue(op).take(self.settings.max_batch) {
                Some(next) => batch = next,
                None => return,
            }
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
    }
}

// === impl KeySlot ===

impl KeySlot {
    fn path(&self, op: Op) -> &str {
        match op {
            Op::Encrypt => &self.encrypt_path,
            Op::Decrypt => &self.decrypt_path,
        }
    }

    fn queue(&self, op: Op) -> &Queue {
        match op {
            Op::Encrypt => &self.encrypt_queue,
            Op::Decrypt => &self.decrypt_queue,
        }
    }
}

// === impl Queue ===

impl Queue {
    /// Takes up to `max` waiting requests whose callers still wait; when none
    /// is left, marks the queue idle and returns `None`.
    fn take(&self, max: usize) -> Option<Vec<Waiter>> {
        let mut state = lock(&self.state);
        state.waiting.retain(|w| !w.reply.is_closed());
        if state.waiting.is_empty() {
            state.busy = false;
            return None;
        }
        let n = state.waiting.len().min(max);
        Some(state.waiting.drain(..n).collect())
    }
}

// === impl Release ===

impl Drop for Release {
    fn drop(&mut self) {
        let queue = self.slot.queue(self.op);
        let Some(batch) = queue.take(self.inner.settings.max_batch) else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(self.inner.clone().drain(self.slot.clone(), self.op, batch));
            }
            Err(_) => {
                // No runtime to send them on: fail them (dropping the senders)
                // and every later one, and leave the queue idle.
                drop(batch);
                while queue.take(usize::MAX).is_some() {}
            }
        }
    }
}

// === impl Failure ===

impl Failure {
    fn timeout(method: Method, path: &str) -> Self {
        Self::from(VaultError::new(method, path, None, VaultErrorKind::Timeout))
    }

    fn abandoned(path: &str) -> Self {
        Self {
            kind: ErrorKind::Unavailable,
            error: VaultError::new(
                Method::POST,
                path,
                None,
                VaultErrorKind::Decode("the coalesced batch was abandoned"),
            ),
        }
    }

    fn decode(call: &Call<'_>, what: &'static str) -> Self {
        Self {
            kind: ErrorKind::Internal,
            error: VaultError::new(
                call.method.clone(),
                call.path,
                None,
                VaultErrorKind::Decode(what),
            ),
        }
    }

    /// An answer with an error status.
    fn answer(call: &Call<'_>, answer: &Answer) -> Self {
        Self::from(status_error(call, None, answer))
    }

    /// A failed item of a batch (or the `error` of a single answer).
    fn item(call: &Call<'_>, message: &str) -> Self {
        Self::from(VaultError::new(
            call.method.clone(),
            call.path,
            None,
            VaultErrorKind::Status {
                status: 400,
                messages: vec![message.to_owned()],
            },
        ))
    }

    /// Whether the error says a cached version was stale.
    pub(crate) fn is_stale_version(&self) -> bool {
        transit::is_stale_version(self.error.messages())
    }

    /// The key manager error for this failure.
    pub(crate) fn into_error(self, what: &'static str) -> KeyManagerError {
        if self.error.status() == Some(403) {
            tracing::warn!(
                error = %self.error,
                "vault denied a request: check the token's policy (update on the encrypt and decrypt paths, read on the keys)"
            );
        }
        KeyManagerError::new(self.kind, what).with_source(self.error)
    }
}

impl From<VaultError> for Failure {
    fn from(error: VaultError) -> Self {
        let kind = match error.kind() {
            VaultErrorKind::Timeout => ErrorKind::Timeout,
            VaultErrorKind::Connect(_) | VaultErrorKind::Transport(_) => ErrorKind::Unavailable,
            VaultErrorKind::Status { status, messages } => transit::classify(*status, messages),
            VaultErrorKind::Decode(_) => ErrorKind::Internal,
        };
        Self { kind, error }
    }
}

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Failure")
            .field("kind", &self.kind)
            .field("error", &self.error)
            .finish()
    }
}
