//! PKCS#11 modules: loaded and initialized once per process, re-initialized
//! when something finalized them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::RvError;
use cryptoki::slot::{Slot, TokenInfo};

use crate::Error;
use crate::config::TokenSelector;
use crate::error::Pkcs11CallError;

/// A loaded and initialized PKCS#11 module.
///
/// `C_Initialize` is process-wide, so each module is loaded once per process
/// and shared by every key manager and operator command that names it; it
/// stays loaded and initialized until the process exits.
///
/// The **generation** counts re-initializations. Sessions, slot ids and object
/// handles from an older generation are dead: they are forgotten, never closed
/// (a new session may have been given the same handle number).
pub(crate) struct Module {
    path: PathBuf,
    pkcs11: Pkcs11,
    generation: AtomicU64,
    reinit: Mutex<()>,
}

static MODULES: OnceLock<Mutex<HashMap<PathBuf, Arc<Module>>>> = OnceLock::new();

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
            reinit: Mutex::new(()),
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

    /// Initializes the module again after a call said `CKR_CRYPTOKI_NOT_INITIALIZED`,
    /// unless another thread already did since generation `seen`.
    pub(crate) fn reinitialize(&self, seen: u64) -> Result<(), cryptoki::error::Error> {
        let _guard = self.reinit.lock().unwrap_or_else(PoisonError::into_inner);
        if self.generation() != seen {
            return Ok(());
        }
        initialize(&self.pkcs11)?;
        self.generation.fetch_add(1, Ordering::AcqRel);
        tracing::warn!(module = %self.path.display(), "PKCS#11 module was finalized; initialized it again");
        Ok(())
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

    /// The library's manufacturer, from `C_GetInfo`.
    pub(crate) fn manufacturer(&self) -> Option<String> {
        let info = self.pkcs11.get_library_info().ok()?;
        let name = info.manufacturer_id().trim_end();
        (!name.is_empty()).then(|| name.to_owned())
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
