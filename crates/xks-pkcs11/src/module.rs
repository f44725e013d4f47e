//! PKCS#11 modules: loaded and initialized once per process, re-initialized
//! when something finalized them, and restarted (finalized and initialized
//! again) when device errors outlast new sessions.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::RvError;
use cryptoki::slot::{Slot, TokenInfo};

use crate::Error;
use crate::config::TokenSelector;
use crate::error::{CallDisplay, Pkcs11CallError};

/// A loaded and initialized PKCS#11 module.
///
/// `C_Initialize` is process-wide, so each module is loaded once per process
/// and shared by every key manager and operator command that names it; it
/// stays loaded until the process exits.
///
/// The **generation** counts resets (re-initializations and restarts).
/// Sessions, slot ids and object handles from an older generation are dead:
/// they are forgotten, never closed (a new session may have been given the
/// same handle number).
///
/// Worker threads make their PKCS#11 calls through the **call gate**
/// ([`Module::enter`]). A reset closes it and waits until no call is in
/// progress before `C_Finalize` or `C_Initialize`: PKCS#11 leaves `C_Finalize`
/// while other threads are in calls undefined, and SoftHSM crashes.
pub(crate) struct Module {
    path: PathBuf,
    pkcs11: Pkcs11,
    generation: AtomicU64,
    gate: Gate,
    /// One reset at a time, and when the last one happened.
    reset: Mutex<Option<Instant>>,
    /// Resets since a call last succeeded after trouble ([`Module::cured`]):
    /// the backoff's exponent.
    resets_in_a_row: AtomicU32,
}

/// Counts the calls in progress on a module; closed while a reset waits for
/// them to end and runs. The top bit says closed, the rest count calls.
struct Gate {
    state: AtomicUsize,
}

/// A call in progress: the reset waits for it to drop.
pub(crate) struct CallGuard<'a> {
    gate: &'a Gate,
}

/// How a module is reset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reset {
    /// `C_Initialize` only: something finalized the module.
    Reinitialize,
    /// `C_Finalize`, then `C_Initialize`: the module's own state (its
    /// connection to the HSM) is broken.
    Restart,
}

/// When a module may be reset, from the key manager's configuration.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ResetPolicy {
    /// The wait after the first reset of a series, doubled after each further one.
    pub(crate) backoff: Duration,
    /// The longest wait between two resets.
    pub(crate) backoff_max: Duration,
    /// How long a reset waits for the calls in progress to end.
    pub(crate) quiesce: Duration,
}

/// What a reset did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ResetOutcome {
    /// This thread reset the module; `attempt` counts the resets in a row.
    Done { attempt: u32 },
    /// Another thread reset it since the generation the caller saw.
    AlreadyDone,
}

/// Why a reset did not happen or failed.
#[derive(Debug)]
pub(crate) enum ResetError {
    /// The previous reset was too recent: the module is not hammered.
    Backoff { left: Duration },
    /// Calls were still in progress after the quiesce time.
    Busy,
    /// `C_Initialize` failed; the module stays uninitialized until the next reset.
    Initialize(cryptoki::error::Error),
}

static MODULES: OnceLock<Mutex<HashMap<PathBuf, Arc<Module>>>> = OnceLock::new();

/// The gate's "closed" bit.
const CLOSED: usize = 1 << (usize::BITS - 1);

/// How long [`Module::manufacturer`] waits for a reset in progress.
const MANUFACTURER_WAIT: Duration = Duration::from_secs(5);

/// How often a reset checks whether the calls in progress have ended, and a
/// call waiting for a reset whether it is over.
const QUIESCE_POLL: Duration = Duration::from_millis(1);

// === impl Module ===

impl Module {
    /// The module at `path`, loaded and initialized with `CKF_OS_LOCKING_OK` on
    /// first use.
    pub(crate) fn load(path: &Path) -> Result<Arc<Self>, Error> {
        let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
        let mut modules = MODULES
            .get_or_init(Mutex::default)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(module) = modules.get(&key) {
            return Ok(module.clone());
        }
        let fail = |source| Error::Module {
            path: path.to_owned(),
            source: Pkcs11CallError::new(source),
        };
        let pkcs11 = Pkcs11::new(&key).map_err(fail)?;
        initialize(&pkcs11).map_err(fail)?;
        let module = Arc::new(Self {
            path: key.clone(),
            pkcs11,
            generation: AtomicU64::new(0),
            gate: Gate {
                state: AtomicUsize::new(0),
            },
            reset: Mutex::new(None),
            resets_in_a_row: AtomicU32::new(0),
        });
        modules.insert(key, module.clone());
        Ok(module)
    }

    pub(crate) fn pkcs11(&self) -> &Pkcs11 {
        &self.pkcs11
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The current generation.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Admits a thread to make PKCS#11 calls until the guard drops. While a
    /// reset is waiting or running, waits for it at most `wait`, then gives
    /// `None`.
    pub(crate) fn enter(&self, wait: Duration) -> Option<CallGuard<'_>> {
        if let Some(guard) = self.gate.enter() {
            return Some(guard);
        }
        let deadline = Instant::now() + wait;
        loop {
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(QUIESCE_POLL);
            if let Some(guard) = self.gate.enter() {
                return Some(guard);
            }
        }
    }

    /// Resets the module, unless another thread did since generation `seen`.
    ///
    /// One thread at a time; the first reset of a series runs at once, each
    /// further one waits `policy.backoff`, doubled per reset, at most
    /// `policy.backoff_max`, after the previous one. The call gate is closed
    /// and the reset waits (up to `policy.quiesce`) until no call is in
    /// progress. The generation is bumped whether or not `C_Initialize`
    /// succeeds: the sessions and handles of before are dead in either case.
    ///
    /// The caller must hold no [`CallGuard`] of this module.
    pub(crate) fn reset(
        &self,
        kind: Reset,
        seen: u64,
        reason: &dyn fmt::Display,
        policy: &ResetPolicy,
    ) -> Result<ResetOutcome, ResetError> {
        let mut last = self.reset.lock().unwrap_or_else(PoisonError::into_inner);
        if self.generation() != seen {
            return Ok(ResetOutcome::AlreadyDone);
        }
        let in_a_row = self.resets_in_a_row.load(Ordering::Acquire);
        if let Some(at) = *last {
            let wait = policy.wait_after(in_a_row);
            let since = at.elapsed();
            if since < wait {
                return Err(ResetError::Backoff { left: wait - since });
            }
        }
        let attempt = in_a_row.saturating_add(1);
        self.resets_in_a_row.store(attempt, Ordering::Release);
        *last = Some(Instant::now());
        if !self.gate.close(policy.quiesce) {
            tracing::warn!(
                module = %self.path.display(),
                %reason,
                attempt,
                quiesce = ?policy.quiesce,
                "cannot reset the PKCS#11 module: calls still in progress; trying again later"
            );
            return Err(ResetError::Busy);
        }
        let finalized = match kind {
            Reset::Restart => Some(self.pkcs11.clone().finalize()),
            Reset::Reinitialize => None,
        };
        let initialized = initialize(&self.pkcs11);
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.gate.open();
        let module = self.path.display();
        let initialize = Outcome(Some(&initialized));
        match kind {
            Reset::Restart => tracing::warn!(
                %module,
                %reason,
                attempt,
                finalize = %Outcome(finalized.as_ref()),
                %initialize,
                "PKCS#11 module restart (C_Finalize, C_Initialize): device errors outlasted new sessions"
            ),
            Reset::Reinitialize => tracing::warn!(
                %module,
                attempt,
                %initialize,
                "PKCS#11 module was finalized; initializing it again"
            ),
        }
        initialized
            .map(|()| ResetOutcome::Done { attempt })
            .map_err(ResetError::Initialize)
    }

    /// A call succeeded after trouble: the next reset, if any, starts a new
    /// series and runs at once.
    pub(crate) fn cured(&self) {
        self.resets_in_a_row.store(0, Ordering::Release);
    }

    /// The slot whose token matches `selector`, with its token information.
    pub(crate) fn find_slot(
        &self,
        selector: &TokenSelector,
    ) -> Result<Option<(Slot, TokenInfo)>, cryptoki::error::Error> {
        for slot in self.pkcs11.get_slots_with_token()? {
            // A slot whose token cannot be read is not the one we look for.
            let Ok(info) = self.pkcs11.get_token_info(slot) else {
                continue;
            };
            let matches = match selector {
                TokenSelector::Label(label) => info.label().trim_end() == label,
                TokenSelector::Serial(serial) => info.serial_number().trim_end() == serial,
            };
            if matches {
                return Ok(Some((slot, info)));
            }
        }
        Ok(None)
    }

    /// The library's manufacturer, from `C_GetInfo` (through the call gate:
    /// another key manager's workers may be resetting the module).
    pub(crate) fn manufacturer(&self) -> Option<String> {
        let _call = self.enter(MANUFACTURER_WAIT)?;
        let info = self.pkcs11.get_library_info().ok()?;
        let name = info.manufacturer_id().trim_end();
        (!name.is_empty()).then(|| name.to_owned())
    }
}

// === impl Gate ===

impl Gate {
    fn enter(&self) -> Option<CallGuard<'_>> {
        // Once the closed bit is set, every later increment sees it: nobody
        // enters after `close` starts waiting.
        if self.state.fetch_add(1, Ordering::AcqRel) & CLOSED != 0 {
            self.state.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(CallGuard { gate: self })
    }

    /// Closes the gate and waits until no call is in progress. After `timeout`
    /// it opens the gate again and returns `false`.
    fn close(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        self.state.fetch_or(CLOSED, Ordering::AcqRel);
        while self.state.load(Ordering::Acquire) & !CLOSED != 0 {
            if Instant::now() >= deadline {
                self.open();
                return false;
            }
            std::thread::sleep(QUIESCE_POLL);
        }
        true
    }

    fn open(&self) {
        self.state.fetch_and(!CLOSED, Ordering::AcqRel);
    }
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        self.gate.state.fetch_sub(1, Ordering::AcqRel);
    }
}

// === impl ResetPolicy ===

impl ResetPolicy {
    /// The wait after a reset that was the `in_a_row`-th of its series.
    fn wait_after(&self, in_a_row: u32) -> Duration {
        if in_a_row == 0 {
            return Duration::ZERO;
        }
        let doublings = in_a_row.saturating_sub(1).min(31);
        self.backoff
            .saturating_mul(1 << doublings)
            .min(self.backoff_max)
    }
}

// === impl ResetError ===

impl fmt::Display for ResetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Backoff { left } => write!(
                f,
                "the module was reset recently; the next reset is allowed in {} ms",
                left.as_millis()
            ),
            Self::Busy => f.write_str("calls in progress did not end in time for a module reset"),
            Self::Initialize(e) => write!(f, "C_Initialize failed: {}", CallDisplay(e)),
        }
    }
}

/// The outcome of `C_Finalize` or `C_Initialize` in a log line.
struct Outcome<'a>(Option<&'a Result<(), cryptoki::error::Error>>);

impl fmt::Display for Outcome<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("not called"),
            Some(Ok(())) => f.write_str("ok"),
            Some(Err(e)) => fmt::Display::fmt(&CallDisplay(e), f),
        }
    }
}

/// `C_Initialize` with OS locking; a module initialized already (by another
/// component of this process) is fine.
fn initialize(pkcs11: &Pkcs11) -> Result<(), cryptoki::error::Error> {
    match pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(cryptoki::error::Error::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// A description of a token for `ekmFleetDetails[].model`.
pub(crate) fn model_of(info: &TokenInfo) -> String {
    let fw = info.firmware_version();
    let hw = info.hardware_version();
    format!(
        "{} {} (firmware {fw}, hardware {hw}, serial {})",
        info.manufacturer_id().trim_end(),
        info.model().trim_end(),
        info.serial_number().trim_end(),
    )
}

#[cfg(test)]
mod tests;
