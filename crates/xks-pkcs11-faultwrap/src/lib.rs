//! A PKCS#11 module for tests that wraps another module (SoftHSM2) and makes
//! chosen calls fail on demand, or handles the AES-GCM IV as some vendors'
//! modules do: SoftHSM itself can neither lose its device nor make the IV.
//! `crates/xks-pkcs11/tests/device_loss.rs` drives it to test how the
//! `xks-pkcs11` key manager recovers from lost devices, and
//! `crates/xks-pkcs11/tests/iv_modes.rs` to test the key manager's `iv_mode`s
//! (both build it through `tests/common`). Not for production use.
//!
//! # Configuration
//!
//! The first `C_GetFunctionList` reads `xks-faultwrap.conf` in the directory
//! this library was loaded from (or the file named by `XKS_FAULTWRAP_CONF`),
//! lines of `key = value`, `#` starting a comment:
//!
//! ```text
//! module = /usr/lib/softhsm/libsofthsm2.so  # the module to wrap (required)
//! fault_file = /tmp/run/fault               # default: xks-faultwrap.fault beside the configuration
//! events_file = /tmp/run/events             # default: xks-faultwrap.events beside the configuration
//! iv_mode = hsm_writes_back                 # default: caller (see "Vendor IV emulation")
//! appended_iv_len = 16                      # hsm_appends: 12 (default) or 16 bytes
//! ```
//!
//! `XKS_FAULTWRAP_MODULE`, when set, names the wrapped module instead.
//!
//! The wrapped module is loaded once, and its function list copied with some
//! entries replaced. Load it from a **copy** of its file when the same process
//! also uses the module directly: under the same path the dynamic loader hands
//! out the same instance, and this wrapper's `C_Finalize` would finalize it
//! for everyone.
//!
//! # The fault switch
//!
//! The fault file is read on every intercepted call; its first line says what
//! to do: `ok` or a return value, then any of the options below.
//!
//! | Line | Effect |
//! |---|---|
//! | (no file, empty, `ok`) | no fault |
//! | `<rv>` | every intercepted call fails with `<rv>` until the file changes |
//! | `<rv> count=<n>` | the next `n` intercepted calls fail; the file is rewritten with the count left (`ok` at zero) |
//! | `<rv> until_initialize` | every intercepted call fails until a `C_Initialize` that returns `CKR_OK` (one after a `C_Finalize`), which rewrites the file to `ok`: the fault only a module restart cures |
//! | `... only=C_Decrypt,C_Login` | only these functions fail; the other intercepted ones pass |
//! | `... slow=<ms>` | intercepted calls that pass wait this long first (inside the call) |
//! | `... initialize_fails=<n>` | the next `n` calls of `C_Initialize` fail with `<rv>` too, without reaching the wrapped module (which a `C_Finalize` before left finalized); the file is rewritten with the number left |
//!
//! `<rv>` is `device_error`, `device_removed`, `token_not_present` or
//! `function_not_supported` (with `only=C_CopyObject`: a module that does not
//! copy objects). A line
//! that does not parse fails the calls with `CKR_GENERAL_ERROR` and says why on
//! standard error.
//!
//! Intercepted: `C_GetSlotList`, `C_OpenSession`, `C_Login`,
//! `C_FindObjectsInit`, `C_CopyObject`, `C_GenerateRandom`, `C_EncryptInit`,
//! `C_Encrypt`, `C_DecryptInit` and `C_Decrypt`. A failed call does not reach the wrapped
//! module. Every other function goes straight to the wrapped module.
//!
//! # Vendor IV emulation
//!
//! `iv_mode` makes the wrapped module handle the IV of single-part AES-GCM
//! encryption (`C_EncryptInit` with `CKM_AES_GCM`, then `C_Encrypt`) the way
//! `xks-pkcs11`'s `IvMode` of the same name expects of a vendor's module. The
//! IV is 12 bytes (`hsm_appends`: `appended_iv_len`, 12 or 16) from the wrapped
//! module's `C_GenerateRandom` on the caller's session; decryption is left
//! alone (the caller passes the IV).
//!
//! | `iv_mode` | Emulates | `C_EncryptInit` with `CKM_AES_GCM` | `C_Encrypt` |
//! |---|---|---|---|
//! | `caller` (default) | SoftHSM, most modules | passed on | passed on |
//! | `hsm_writes_back` | AWS CloudHSM, Entrust nShield | the IV must be a 12-byte buffer of zeros: the module writes its IV into it (into the caller's `CK_GCM_PARAMS.pIv`) and encrypts with that; any other IV fails with `CKR_MECHANISM_PARAM_INVALID`, as a module that insists on making the IV does | passed on |
//! | `hsm_appends` | Thales Luna (FIPS mode) | the IV must be empty (`ulIvLen` 0, whatever `pIv` is): the module encrypts with its own IV and remembers it for the session; a caller's IV fails with `CKR_MECHANISM_PARAM_INVALID` | the output is `ciphertext ‖ tag ‖ iv`, 12 (or `appended_iv_len`) bytes longer than the wrapped module's; the length query (`pEncryptedData` null) and `CKR_BUFFER_TOO_SMALL` count them |
//!
//! This follows what `xks-pkcs11` expects, which is not everything real
//! modules do. A Luna HSM appends a 16-byte IV unless told (through
//! `ulIvBits`, from firmware 7.9.3) to make a 96-bit one: `appended_iv_len =
//! 16` emulates that. Multi-part encryption (`C_EncryptUpdate`,
//! `C_EncryptFinal`) is not emulated.
//!
//! # Events
//!
//! One line is appended to the events file per `C_Initialize`, per
//! `C_Finalize` and per injected failure, so tests can check what the module
//! saw:
//!
//! ```text
//! C_Initialize 0x0
//! inject C_Encrypt 0x30
//! C_Finalize 0x0 in_progress=0
//! ```
//!
//! With an `iv_mode`, also one line per IV the module made (after the
//! encryption it is for started) and per IV it refused:
//!
//! ```text
//! iv hsm_appends 5f0c3e3a9d1b27c4a8e61f02
//! refuse C_EncryptInit hsm_writes_back: the IV is not 12 zero bytes
//! ```
//!
//! `in_progress` counts the intercepted calls (of other threads) that were
//! still running in the wrapped module when `C_Finalize` was called: PKCS#11
//! leaves that case undefined, so a careful caller keeps it at zero.
#![allow(
    unsafe_code,
    reason = "a PKCS#11 module is a C ABI: exported extern \"C\" functions taking raw pointers, \
              and a module loaded with dlopen; each unsafe block says why it is sound"
)]

use std::collections::HashMap;
use std::ffi::c_void;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use cryptoki_sys::{
    CK_ATTRIBUTE, CK_BBOOL, CK_BYTE, CK_FLAGS, CK_FUNCTION_LIST, CK_GCM_PARAMS, CK_MECHANISM,
    CK_NOTIFY, CK_OBJECT_HANDLE, CK_RV, CK_SESSION_HANDLE, CK_SLOT_ID, CK_ULONG, CK_USER_TYPE,
    CK_UTF8CHAR, CKM_AES_GCM, CKR_ARGUMENTS_BAD, CKR_BUFFER_TOO_SMALL, CKR_DEVICE_ERROR,
    CKR_DEVICE_REMOVED, CKR_FUNCTION_NOT_SUPPORTED, CKR_GENERAL_ERROR, CKR_MECHANISM_PARAM_INVALID,
    CKR_OK, CKR_TOKEN_NOT_PRESENT,
};

/// The configuration file's name, beside this library.
const CONF_NAME: &str = "xks-faultwrap.conf";

/// The length of the IVs the vendor emulation makes (`hsm_appends` can be
/// told to make 16-byte ones).
const IV_LEN: usize = 12;

/// [`IV_LEN`] as PKCS#11 counts it.
const IV_LEN_UL: CK_ULONG = 12;

/// The wrapped module and the switch: loaded by the first `C_GetFunctionList`.
struct Wrapper {
    /// Keeps the wrapped module loaded: `real` points into it.
    _library: libloading::Library,
    /// The wrapped module's own functions.
    real: CK_FUNCTION_LIST,
    /// The list handed out: `real` with the intercepted entries replaced.
    ours: CK_FUNCTION_LIST,
    fault_file: PathBuf,
    events_file: PathBuf,
    /// Serializes reading and rewriting the fault file, and the events.
    lock: Mutex<()>,
    /// Intercepted calls running in the wrapped module.
    in_progress: AtomicUsize,
    /// The vendor behaviour emulated for AES-GCM encryption.
    iv_mode: IvMode,
    /// `hsm_appends`: the length of the IVs made and appended (12 or 16).
    appended_iv_len: usize,
    /// `hsm_appends`: the IV of each session's encryption in progress, to
    /// append to its output.
    pending_ivs: Mutex<HashMap<CK_SESSION_HANDLE, Vec<u8>>>,
}

/// How the module handles the AES-GCM IV (`iv_mode`): as `xks-pkcs11`'s
/// `IvMode` of the same name expects (see the [crate documentation](crate)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum IvMode {
    /// The caller's IV, as the wrapped module does anyway.
    #[default]
    Caller,
    /// The module writes its IV into the caller's zeroed IV buffer.
    HsmWritesBack,
    /// The module appends its IV to the output.
    HsmAppends,
}

/// The fault switch, as read from the fault file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Fault {
    /// What failing calls return; `None` for `ok`.
    rv: Option<CK_RV>,
    lasts: Lasts,
    /// The functions that fail; all intercepted ones when empty.
    only: Vec<String>,
    /// How long calls that pass wait first, in milliseconds.
    slow: u64,
    /// How many more `C_Initialize` calls fail (with `rv`).
    initialize_fails: u64,
}

/// What an intercepted call does.
enum Verdict {
    Fail(CK_RV),
    Pass { slow: u64 },
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Lasts {
    /// Until the file changes.
    #[default]
    Always,
    /// For this many more calls.
    Count(u64),
    /// Until the next successful `C_Initialize`.
    UntilInitialize,
}

static WRAPPER: OnceLock<Result<Wrapper, String>> = OnceLock::new();

/// Returns this module's function list: the wrapped module's, with the
/// intercepted functions replaced (see the [crate documentation](crate)).
///
/// # Safety
///
/// `list` must be null or valid for writing one pointer, as PKCS#11 requires.
#[allow(non_snake_case, reason = "the name PKCS#11 defines")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetFunctionList(list: *mut *mut CK_FUNCTION_LIST) -> CK_RV {
    if list.is_null() {
        return CKR_ARGUMENTS_BAD;
    }
    match WRAPPER.get_or_init(Wrapper::load) {
        Ok(wrapper) => {
            // SAFETY: `list` is not null and, by this function's contract, valid
            // for a write. The list lives in a static, so the pointer stays
            // valid; PKCS#11 callers only read through it.
            unsafe { *list = ptr::from_ref(&wrapper.ours).cast_mut() };
            CKR_OK
        }
        Err(why) => {
            eprintln!("xks-pkcs11-faultwrap: {why}");
            CKR_GENERAL_ERROR
        }
    }
}

/// The wrapper, once `C_GetFunctionList` loaded it.
fn wrapper() -> Option<&'static Wrapper> {
    WRAPPER.get().and_then(|loaded| loaded.as_ref().ok())
}

// === impl Wrapper ===

impl Wrapper {
    fn load() -> Result<Self, String> {
        let conf = match std::env::var_os("XKS_FAULTWRAP_CONF") {
            Some(path) => PathBuf::from(path),
            None => own_directory()?.join(CONF_NAME),
        };
        let text = std::fs::read_to_string(&conf)
            .map_err(|e| format!("cannot read {}: {e}", conf.display()))?;
        let dir = conf.parent().unwrap_or_else(|| Path::new("."));
        let mut module = std::env::var_os("XKS_FAULTWRAP_MODULE").map(PathBuf::from);
        let mut fault_file = dir.join("xks-faultwrap.fault");
        let mut events_file = dir.join("xks-faultwrap.events");
        let mut iv_mode = IvMode::Caller;
        let mut appended_iv_len = IV_LEN;
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(format!("{}: not `key = value`: {line}", conf.display()));
            };
            let value = value.trim();
            match key.trim() {
                "module" => {
                    module.get_or_insert_with(|| PathBuf::from(value));
                }
                "fault_file" => fault_file = PathBuf::from(value),
                "events_file" => events_file = PathBuf::from(value),
                "iv_mode" => {
                    iv_mode = IvMode::parse(value)
                        .ok_or_else(|| format!("{}: unknown iv_mode `{value}`", conf.display()))?;
                }
                "appended_iv_len" => {
                    appended_iv_len = match value {
                        "12" => 12,
                        "16" => 16,
                        _ => {
                            return Err(format!(
                                "{}: appended_iv_len is 12 or 16, not `{value}`",
                                conf.display()
                            ));
                        }
                    };
                }
                other => return Err(format!("{}: unknown key `{other}`", conf.display())),
            }
        }
        let module = module.ok_or_else(|| format!("{}: no `module`", conf.display()))?;
        // SAFETY: loading a library runs its initializers; the configuration
        // names a PKCS#11 module, which is made to be loaded this way.
        let library = unsafe { libloading::Library::new(&module) }
            .map_err(|e| format!("cannot load {}: {e}", module.display()))?;
        // SAFETY: `C_GetFunctionList` of a PKCS#11 module has this signature.
        let get = unsafe {
            library.get::<unsafe extern "C" fn(*mut *mut CK_FUNCTION_LIST) -> CK_RV>(
                b"C_GetFunctionList\0",
            )
        }
        .map_err(|e| format!("{} has no C_GetFunctionList: {e}", module.display()))?;
        let mut list: *mut CK_FUNCTION_LIST = ptr::null_mut();
        // SAFETY: `list` is valid for writing one pointer.
        let rv = unsafe { get(&mut list) };
        if rv != CKR_OK || list.is_null() {
            return Err(format!(
                "C_GetFunctionList of {} returned {rv:#x}",
                module.display()
            ));
        }
        // SAFETY: the module returned a valid function list, which lives as long
        // as the module stays loaded (`library` is kept); this copies it.
        let real = unsafe { *list };
        let mut ours = real;
        ours.C_GetFunctionList = Some(C_GetFunctionList);
        ours.C_Initialize = Some(initialize);
        ours.C_Finalize = Some(finalize);
        ours.C_GetSlotList = Some(get_slot_list);
        ours.C_OpenSession = Some(open_session);
        ours.C_Login = Some(login);
        ours.C_FindObjectsInit = Some(find_objects_init);
        ours.C_CopyObject = Some(copy_object);
        ours.C_GenerateRandom = Some(generate_random);
        ours.C_EncryptInit = Some(encrypt_init);
        ours.C_Encrypt = Some(encrypt);
        ours.C_DecryptInit = Some(decrypt_init);
        ours.C_Decrypt = Some(decrypt);
        Ok(Self {
            _library: library,
            real,
            ours,
            fault_file,
            events_file,
            lock: Mutex::new(()),
            in_progress: AtomicUsize::new(0),
            iv_mode,
            appended_iv_len,
            pending_ivs: Mutex::new(HashMap::new()),
        })
    }

    /// Runs `call`, an intercepted function's work in the wrapped module,
    /// unless the fault switch fails `function`.
    fn intercepted(&self, function: &str, call: impl FnOnce() -> CK_RV) -> CK_RV {
        let slow = match self.verdict(function) {
            Verdict::Fail(rv) => return rv,
            Verdict::Pass { slow } => slow,
        };
        self.in_progress.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(slow));
        let rv = call();
        self.in_progress.fetch_sub(1, Ordering::SeqCst);
        rv
    }

    /// Whether `function` fails now, as the switch says.
    fn verdict(&self, function: &str) -> Verdict {
        let _lock = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        let mut fault = match self.read() {
            Ok(fault) => fault,
            Err(why) => {
                eprintln!("xks-pkcs11-faultwrap: {}: {why}", self.fault_file.display());
                return Verdict::Fail(CKR_GENERAL_ERROR);
            }
        };
        let rv = match fault.rv {
            Some(rv) if fault.only.is_empty() || fault.only.iter().any(|f| f == function) => rv,
            _ => return Verdict::Pass { slow: fault.slow },
        };
        if let Lasts::Count(left) = fault.lasts {
            fault.lasts = Lasts::Count(left.saturating_sub(1));
            if left <= 1 {
                fault = Fault::default();
            }
            self.rewrite(&fault.to_string());
        }
        self.event(&format!("inject {function} {rv:#x}"));
        Verdict::Fail(rv)
    }

    /// The fault switch (the caller holds the lock).
    fn read(&self) -> Result<Fault, String> {
        let text = std::fs::read_to_string(&self.fault_file).unwrap_or_default();
        Fault::parse(text.lines().next().unwrap_or(""))
    }

    /// The failure the next `C_Initialize` is to return, if the switch says
    /// so (`initialize_fails`); counts it down and records it.
    fn initialize_verdict(&self) -> Option<CK_RV> {
        let _lock = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        let mut fault = self.read().ok()?;
        let rv = fault.rv?;
        if fault.initialize_fails == 0 {
            return None;
        }
        fault.initialize_fails -= 1;
        self.rewrite(&fault.to_string());
        self.event(&format!("inject C_Initialize {rv:#x}"));
        Some(rv)
    }

    /// Records a `C_Initialize`; a successful one cures an `until_initialize` fault.
    fn initialized(&self, rv: CK_RV) {
        self.forget_all_ivs();
        let _lock = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        self.event(&format!("C_Initialize {rv:#x}"));
        if rv == CKR_OK
            && let Ok(fault) = self.read()
            && fault.rv.is_some()
            && fault.lasts == Lasts::UntilInitialize
        {
            self.rewrite("ok");
        }
    }

    /// Records a `C_Finalize` and the intercepted calls in progress when it
    /// was called.
    fn finalized(&self, rv: CK_RV, in_progress: usize) {
        // The sessions are gone, and their handle numbers will be used again.
        self.forget_all_ivs();
        let _lock = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        self.event(&format!("C_Finalize {rv:#x} in_progress={in_progress}"));
    }

    /// Appends a line to the events file.
    fn record(&self, line: &str) {
        let _lock = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        self.event(line);
    }

    /// Replaces the fault file's content (the caller holds the lock).
    fn rewrite(&self, line: &str) {
        if let Err(e) = std::fs::write(&self.fault_file, format!("{line}\n")) {
            eprintln!(
                "xks-pkcs11-faultwrap: cannot write {}: {e}",
                self.fault_file.display()
            );
        }
    }

    /// Appends a line to the events file (the caller holds the lock).
    fn event(&self, line: &str) {
        let written = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.events_file)
            .and_then(|mut file| writeln!(file, "{line}"));
        if let Err(e) = written {
            eprintln!(
                "xks-pkcs11-faultwrap: cannot write {}: {e}",
                self.events_file.display()
            );
        }
    }
}

// === impl Wrapper: vendor IV emulation ===

impl Wrapper {
    /// `C_EncryptInit` in the wrapped module, with the AES-GCM IV made as
    /// `iv_mode` says.
    ///
    /// # Safety
    ///
    /// The arguments are valid as `C_EncryptInit` requires: `mechanism` is
    /// null or points to a mechanism whose parameter is valid for
    /// `ulParameterLen` bytes; for `CKM_AES_GCM` that is a `CK_GCM_PARAMS`
    /// whose `pIv` is valid for reading and writing `ulIvLen` bytes.
    unsafe fn encrypt_init(
        &self,
        session: CK_SESSION_HANDLE,
        mechanism: *mut CK_MECHANISM,
        key: CK_OBJECT_HANDLE,
    ) -> CK_RV {
        if self.iv_mode == IvMode::Caller {
            // SAFETY: the caller's arguments, unchanged, valid by this
            // function's contract.
            return unsafe { self.real_encrypt_init(session, mechanism, key) };
        }
        // A new operation: an IV left by an earlier one of this session (or of
        // a closed session whose handle number this one got) is stale.
        self.forget_iv(session);
        // SAFETY: `mechanism` is null or valid, by this function's contract.
        let gcm = unsafe { gcm_params(mechanism) };
        match (self.iv_mode, gcm) {
            // SAFETY: `mechanism` is an AES-GCM mechanism whose parameters are
            // `params`, valid by this function's contract.
            (IvMode::HsmWritesBack, Some(params)) => unsafe {
                self.write_back_init(session, mechanism, params, key)
            },
            // SAFETY: as above.
            (IvMode::HsmAppends, Some(params)) => unsafe {
                self.appending_init(session, mechanism, params, key)
            },
            // SAFETY: the caller's arguments, unchanged, valid by this
            // function's contract.
            _ => unsafe { self.real_encrypt_init(session, mechanism, key) },
        }
    }

    /// `hsm_writes_back`: the caller's IV buffer must be 12 zero bytes; the
    /// module's IV is written into it, and the encryption starts with it.
    ///
    /// # Safety
    ///
    /// `mechanism` is a valid `CKM_AES_GCM` mechanism whose parameters are
    /// `params`, a `CK_GCM_PARAMS` whose `pIv` is valid for reading and
    /// writing `ulIvLen` bytes.
    unsafe fn write_back_init(
        &self,
        session: CK_SESSION_HANDLE,
        mechanism: *mut CK_MECHANISM,
        params: *mut CK_GCM_PARAMS,
        key: CK_OBJECT_HANDLE,
    ) -> CK_RV {
        // SAFETY: `params` points to a CK_GCM_PARAMS, by this function's
        // contract; it is copied (unaligned: the caller's buffer need not be).
        let gcm = unsafe { params.read_unaligned() };
        let zeroed = !gcm.pIv.is_null() && gcm.ulIvLen == IV_LEN_UL && {
            // SAFETY: `pIv` is not null and valid for reading `ulIvLen` (12)
            // bytes, by this function's contract.
            let iv = unsafe { std::slice::from_raw_parts(gcm.pIv, IV_LEN) };
            iv.iter().all(|&byte| byte == 0)
        };
        if !zeroed {
            return self.refuse("hsm_writes_back: the IV is not 12 zero bytes");
        }
        let iv = match self.random_iv(session, IV_LEN) {
            Ok(iv) => iv,
            Err(rv) => return rv,
        };
        // SAFETY: `pIv` is valid for writing 12 bytes (checked above), and
        // `iv` (12 bytes) is our own buffer, so the two do not overlap.
        unsafe { ptr::copy_nonoverlapping(iv.as_ptr(), gcm.pIv, IV_LEN) };
        // SAFETY: the caller's arguments, valid by this function's contract,
        // with our IV now in its buffer.
        let rv = unsafe { self.real_encrypt_init(session, mechanism, key) };
        if rv == CKR_OK {
            self.record(&format!("iv hsm_writes_back {}", hex(&iv)));
        } else {
            // Nothing is encrypted with it: give the buffer back as it came.
            // SAFETY: as for the copy above.
            unsafe { ptr::write_bytes(gcm.pIv, 0, IV_LEN) };
        }
        rv
    }

    /// `hsm_appends`: the caller must pass no IV (`ulIvLen` 0); the
    /// encryption starts with the module's IV, kept for `C_Encrypt` to append.
    ///
    /// # Safety
    ///
    /// As [`Wrapper::write_back_init`].
    unsafe fn appending_init(
        &self,
        session: CK_SESSION_HANDLE,
        mechanism: *mut CK_MECHANISM,
        params: *mut CK_GCM_PARAMS,
        key: CK_OBJECT_HANDLE,
    ) -> CK_RV {
        // SAFETY: as in `write_back_init`.
        let mut gcm = unsafe { params.read_unaligned() };
        if gcm.ulIvLen != 0 {
            return self.refuse("hsm_appends: the caller passed an IV");
        }
        let mut iv = match self.random_iv(session, self.appended_iv_len) {
            Ok(iv) => iv,
            Err(rv) => return rv,
        };
        let Ok(iv_len) = CK_ULONG::try_from(iv.len()) else {
            return CKR_GENERAL_ERROR;
        };
        gcm.pIv = iv.as_mut_ptr();
        gcm.ulIvLen = iv_len;
        gcm.ulIvBits = iv_len * 8;
        // SAFETY: `mechanism` is valid for reads, by this function's contract;
        // it is copied (unaligned, as above).
        let mut ours = unsafe { mechanism.read_unaligned() };
        ours.pParameter = ptr::from_mut(&mut gcm).cast();
        // SAFETY: the caller's mechanism, key and session, but for the
        // parameters: a copy of the caller's (so of the size it declared, and
        // with its AAD and tag length) with our IV, all alive for the call. The
        // module copies what it keeps of them.
        let rv = unsafe { self.real_encrypt_init(session, &mut ours, key) };
        if rv == CKR_OK {
            self.record(&format!("iv hsm_appends {}", hex(&iv)));
            self.pending_ivs().insert(session, iv);
        }
        rv
    }

    /// `C_Encrypt` in the wrapped module; after an `hsm_appends` AES-GCM
    /// `C_EncryptInit`, with the IV appended to the output and counted in its
    /// length.
    ///
    /// # Safety
    ///
    /// The arguments are valid as `C_Encrypt` requires: `data` for reading
    /// `len` bytes, `out_len` for reading and writing, and `out` null or valid
    /// for writing `*out_len` bytes.
    unsafe fn encrypt(
        &self,
        session: CK_SESSION_HANDLE,
        data: *mut CK_BYTE,
        len: CK_ULONG,
        out: *mut CK_BYTE,
        out_len: *mut CK_ULONG,
    ) -> CK_RV {
        let Some(real) = self.real.C_Encrypt else {
            return CKR_FUNCTION_NOT_SUPPORTED;
        };
        let iv = match self.pending_iv(session) {
            Some(iv) if !out_len.is_null() => iv,
            pending => {
                // SAFETY: the caller's arguments, unchanged, to the wrapped
                // module's own function of the same signature; the caller
                // answers for them, as PKCS#11 requires.
                let rv = unsafe { real(session, data, len, out, out_len) };
                if pending.is_some() && ends_operation(rv, out) {
                    self.forget_iv(session);
                }
                return rv;
            }
        };
        // The wrapped module's output length, without the IV. A length query
        // leaves the operation active; a failure ends it.
        let mut needed: CK_ULONG = 0;
        // SAFETY: the caller's input, valid by this function's contract; a
        // null output buffer asks only for the length, written to `needed`.
        let rv = unsafe { real(session, data, len, ptr::null_mut(), &mut needed) };
        if rv != CKR_OK {
            self.forget_iv(session);
            return rv;
        }
        let Ok(iv_len) = CK_ULONG::try_from(iv.len()) else {
            self.forget_iv(session);
            return CKR_GENERAL_ERROR;
        };
        let Some(total) = needed.checked_add(iv_len) else {
            self.forget_iv(session);
            return CKR_GENERAL_ERROR;
        };
        // SAFETY: `out_len` is not null (checked above) and valid for reads
        // and writes, by this function's contract.
        let capacity = unsafe { *out_len };
        if out.is_null() || capacity < total {
            // SAFETY: as above.
            unsafe { *out_len = total };
            // The length, or too small a buffer: the operation stays active.
            return if out.is_null() {
                CKR_OK
            } else {
                CKR_BUFFER_TOO_SMALL
            };
        }
        let mut written = capacity - iv_len;
        // SAFETY: `out` is valid for writing `capacity` bytes, by this
        // function's contract; the module may write the first `capacity` − the
        // IV's length.
        let rv = unsafe { real(session, data, len, out, &mut written) };
        if rv == CKR_BUFFER_TOO_SMALL {
            // SAFETY: as above.
            unsafe { *out_len = written.saturating_add(iv_len) };
            return rv;
        }
        self.forget_iv(session);
        if rv != CKR_OK {
            return rv;
        }
        let Some(at) = usize::try_from(written)
            .ok()
            .filter(|_| written <= capacity - iv_len)
        else {
            return CKR_GENERAL_ERROR;
        };
        // SAFETY: `at` + the IV's length ≤ `capacity` (checked above), and
        // `out` is valid for writing `capacity` bytes; `iv` is our own buffer,
        // so they do not overlap.
        unsafe { ptr::copy_nonoverlapping(iv.as_ptr(), out.add(at), iv.len()) };
        // SAFETY: as for `capacity` above.
        unsafe { *out_len = written + iv_len };
        CKR_OK
    }

    /// The wrapped module's `C_EncryptInit`.
    ///
    /// # Safety
    ///
    /// As `C_EncryptInit` requires of its arguments.
    unsafe fn real_encrypt_init(
        &self,
        session: CK_SESSION_HANDLE,
        mechanism: *mut CK_MECHANISM,
        key: CK_OBJECT_HANDLE,
    ) -> CK_RV {
        match self.real.C_EncryptInit {
            // SAFETY: the wrapped module's own function, with arguments valid
            // by this function's contract.
            Some(real) => unsafe { real(session, mechanism, key) },
            None => CKR_FUNCTION_NOT_SUPPORTED,
        }
    }

    /// A new IV of `len` bytes from the wrapped module's `C_GenerateRandom`
    /// on `session`.
    fn random_iv(&self, session: CK_SESSION_HANDLE, len: usize) -> Result<Vec<u8>, CK_RV> {
        let Some(generate) = self.real.C_GenerateRandom else {
            return Err(CKR_FUNCTION_NOT_SUPPORTED);
        };
        let Ok(len_ul) = CK_ULONG::try_from(len) else {
            return Err(CKR_GENERAL_ERROR);
        };
        let mut iv = vec![0u8; len];
        // SAFETY: `iv` is valid for writing `len` bytes; the module checks the
        // session handle.
        let rv = unsafe { generate(session, iv.as_mut_ptr(), len_ul) };
        if rv == CKR_OK { Ok(iv) } else { Err(rv) }
    }

    /// Refuses the caller's IV as a module that makes its own does, and says so
    /// in the events.
    fn refuse(&self, why: &str) -> CK_RV {
        self.record(&format!("refuse C_EncryptInit {why}"));
        CKR_MECHANISM_PARAM_INVALID
    }

    /// The IV to append to `session`'s encryption output, if any.
    fn pending_iv(&self, session: CK_SESSION_HANDLE) -> Option<Vec<u8>> {
        self.pending_ivs().get(&session).cloned()
    }

    /// Forgets the IV to append to `session`'s encryption output.
    fn forget_iv(&self, session: CK_SESSION_HANDLE) {
        self.pending_ivs().remove(&session);
    }

    /// Forgets every session's IV (the sessions are gone).
    fn forget_all_ivs(&self) {
        self.pending_ivs().clear();
    }

    fn pending_ivs(&self) -> MutexGuard<'_, HashMap<CK_SESSION_HANDLE, Vec<u8>>> {
        self.pending_ivs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whether a `C_Encrypt` that returned `rv` ended the operation: all do but
/// a successful length query (`out` null) and `CKR_BUFFER_TOO_SMALL`.
fn ends_operation(rv: CK_RV, out: *const CK_BYTE) -> bool {
    !(rv == CKR_BUFFER_TOO_SMALL || (rv == CKR_OK && out.is_null()))
}

/// The parameters of `mechanism` when it is `CKM_AES_GCM` with parameters of
/// the size of a `CK_GCM_PARAMS`.
///
/// # Safety
///
/// `mechanism` is null or valid for reading a `CK_MECHANISM`.
unsafe fn gcm_params(mechanism: *const CK_MECHANISM) -> Option<*mut CK_GCM_PARAMS> {
    if mechanism.is_null() {
        return None;
    }
    // SAFETY: not null, and valid for reads by this function's contract; it
    // is copied (unaligned: the caller's buffer need not be).
    let mechanism = unsafe { mechanism.read_unaligned() };
    let fits = mechanism.mechanism == CKM_AES_GCM
        && !mechanism.pParameter.is_null()
        && usize::try_from(mechanism.ulParameterLen)
            .is_ok_and(|len| len == size_of::<CK_GCM_PARAMS>());
    fits.then(|| mechanism.pParameter.cast())
}

/// `bytes` in lowercase hex.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

// === impl IvMode ===

impl IvMode {
    /// The mode a configuration value names.
    fn parse(value: &str) -> Option<Self> {
        match value {
            "caller" => Some(Self::Caller),
            "hsm_writes_back" => Some(Self::HsmWritesBack),
            "hsm_appends" => Some(Self::HsmAppends),
            _ => None,
        }
    }
}

// === impl Fault ===

impl Fault {
    /// The fault a line of the fault file describes.
    fn parse(line: &str) -> Result<Self, String> {
        let mut words = line.split_whitespace();
        let rv = match words.next() {
            None => return Ok(Self::default()),
            Some("ok") => None,
            Some(word) => Some(
                RETURN_VALUES
                    .iter()
                    .find(|(name, _)| *name == word)
                    .map(|(_, rv)| *rv)
                    .ok_or_else(|| format!("unknown fault `{word}`"))?,
            ),
        };
        let mut fault = Self {
            rv,
            ..Self::default()
        };
        for word in words {
            if word == "until_initialize" {
                fault.lasts = Lasts::UntilInitialize;
            } else if let Some(n) = word.strip_prefix("count=") {
                let n = n.parse().map_err(|_| format!("bad count `{word}`"))?;
                fault.lasts = Lasts::Count(n);
                if n == 0 {
                    fault.rv = None;
                }
            } else if let Some(functions) = word.strip_prefix("only=") {
                fault.only = functions.split(',').map(str::to_owned).collect();
            } else if let Some(ms) = word.strip_prefix("slow=") {
                fault.slow = ms.parse().map_err(|_| format!("bad delay `{word}`"))?;
            } else if let Some(n) = word.strip_prefix("initialize_fails=") {
                fault.initialize_fails = n.parse().map_err(|_| format!("bad count `{word}`"))?;
            } else {
                return Err(format!("unknown option `{word}`"));
            }
        }
        Ok(fault)
    }
}

/// The line that parses back into this fault.
impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = RETURN_VALUES
            .iter()
            .find(|(_, rv)| Some(*rv) == self.rv)
            .map_or("ok", |(name, _)| name);
        f.write_str(name)?;
        match self.lasts {
            Lasts::Always => {}
            Lasts::Count(n) => write!(f, " count={n}")?,
            Lasts::UntilInitialize => f.write_str(" until_initialize")?,
        }
        if !self.only.is_empty() {
            write!(f, " only={}", self.only.join(","))?;
        }
        if self.slow > 0 {
            write!(f, " slow={}", self.slow)?;
        }
        if self.initialize_fails > 0 {
            write!(f, " initialize_fails={}", self.initialize_fails)?;
        }
        Ok(())
    }
}

/// The return values a fault may have, by their names in the fault file.
const RETURN_VALUES: [(&str, CK_RV); 4] = [
    ("device_error", CKR_DEVICE_ERROR),
    ("device_removed", CKR_DEVICE_REMOVED),
    ("token_not_present", CKR_TOKEN_NOT_PRESENT),
    ("function_not_supported", CKR_FUNCTION_NOT_SUPPORTED),
];

/// The directory this library was loaded from.
fn own_directory() -> Result<PathBuf, String> {
    use std::ffi::{CStr, OsStr};
    use std::os::unix::ffi::OsStrExt;

    let mut info = libc::Dl_info {
        dli_fname: ptr::null(),
        dli_fbase: ptr::null_mut(),
        dli_sname: ptr::null(),
        dli_saddr: ptr::null_mut(),
    };
    // Any address inside this library will do: this static's.
    let address = ptr::from_ref(&WRAPPER).cast::<c_void>();
    // SAFETY: dladdr only looks the address up and fills `info`, a valid,
    // writable Dl_info.
    let found = unsafe { libc::dladdr(address, &mut info) };
    if found == 0 || info.dli_fname.is_null() {
        return Err(format!(
            "cannot tell where this library was loaded from; set XKS_FAULTWRAP_CONF to its {CONF_NAME}"
        ));
    }
    // SAFETY: dladdr succeeded, so `dli_fname` is a NUL-terminated path owned by
    // the dynamic loader, valid while this library stays loaded; it is copied
    // at once.
    let file = unsafe { CStr::from_ptr(info.dli_fname) };
    let file = Path::new(OsStr::from_bytes(file.to_bytes()));
    Ok(file.parent().unwrap_or_else(|| Path::new(".")).to_owned())
}

// === The replaced functions ===

/// `C_Initialize`, passed on unless the switch makes it fail
/// (`initialize_fails`); records the call and cures an `until_initialize`
/// fault when it succeeds.
unsafe extern "C" fn initialize(args: *mut c_void) -> CK_RV {
    let Some(wrapper) = wrapper() else {
        return CKR_GENERAL_ERROR;
    };
    if let Some(rv) = wrapper.initialize_verdict() {
        return rv;
    }
    let Some(real) = wrapper.real.C_Initialize else {
        return CKR_FUNCTION_NOT_SUPPORTED;
    };
    // SAFETY: the caller's argument, unchanged, to the wrapped module's own
    // function of the same signature; the caller answers for the argument.
    let rv = unsafe { real(args) };
    wrapper.initialized(rv);
    rv
}

/// `C_Finalize`, passed on and recorded.
unsafe extern "C" fn finalize(args: *mut c_void) -> CK_RV {
    let Some(wrapper) = wrapper() else {
        return CKR_GENERAL_ERROR;
    };
    let Some(real) = wrapper.real.C_Finalize else {
        return CKR_FUNCTION_NOT_SUPPORTED;
    };
    let in_progress = wrapper.in_progress.load(Ordering::SeqCst);
    // SAFETY: as in `initialize`.
    let rv = unsafe { real(args) };
    wrapper.finalized(rv, in_progress);
    rv
}

/// Defines functions that fail as the switch says, and otherwise pass their
/// arguments on to the wrapped module's function of the same name.
macro_rules! intercept {
    ($($name:ident => $field:ident($($arg:ident: $ty:ty),* $(,)?);)*) => {$(
        #[doc = concat!("`", stringify!($field), "`, failing as the fault switch says.")]
        unsafe extern "C" fn $name($($arg: $ty),*) -> CK_RV {
            let Some(wrapper) = wrapper() else {
                return CKR_GENERAL_ERROR;
            };
            wrapper.intercepted(stringify!($field), || match wrapper.real.$field {
                // SAFETY: the caller's arguments, unchanged, to the wrapped
                // module's own function of the same signature; the caller
                // answers for the arguments, as PKCS#11 requires.
                Some(real) => unsafe { real($($arg),*) },
                None => CKR_FUNCTION_NOT_SUPPORTED,
            })
        }
    )*};
}

/// `C_EncryptInit`, failing as the fault switch says; with an `iv_mode`, an
/// AES-GCM encryption gets the module's IV (see the [crate documentation](crate)).
unsafe extern "C" fn encrypt_init(
    session: CK_SESSION_HANDLE,
    mechanism: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> CK_RV {
    let Some(wrapper) = wrapper() else {
        return CKR_GENERAL_ERROR;
    };
    wrapper.intercepted("C_EncryptInit", || {
        // SAFETY: the caller's arguments, which it answers for as PKCS#11
        // requires of `C_EncryptInit`: the contract of `Wrapper::encrypt_init`.
        unsafe { wrapper.encrypt_init(session, mechanism, key) }
    })
}

/// `C_Encrypt`, failing as the fault switch says; with `iv_mode =
/// hsm_appends`, the IV follows an AES-GCM encryption's output.
unsafe extern "C" fn encrypt(
    session: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    len: CK_ULONG,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    let Some(wrapper) = wrapper() else {
        return CKR_GENERAL_ERROR;
    };
    wrapper.intercepted("C_Encrypt", || {
        // SAFETY: the caller's arguments, which it answers for as PKCS#11
        // requires of `C_Encrypt`: the contract of `Wrapper::encrypt`.
        unsafe { wrapper.encrypt(session, data, len, out, out_len) }
    })
}

intercept! {
    get_slot_list => C_GetSlotList(present: CK_BBOOL, slots: *mut CK_SLOT_ID, count: *mut CK_ULONG);
    open_session => C_OpenSession(
        slot: CK_SLOT_ID,
        flags: CK_FLAGS,
        application: *mut c_void,
        notify: CK_NOTIFY,
        session: *mut CK_SESSION_HANDLE,
    );
    login => C_Login(
        session: CK_SESSION_HANDLE,
        user: CK_USER_TYPE,
        pin: *mut CK_UTF8CHAR,
        pin_len: CK_ULONG,
    );
    find_objects_init => C_FindObjectsInit(
        session: CK_SESSION_HANDLE,
        template: *mut CK_ATTRIBUTE,
        count: CK_ULONG,
    );
    copy_object => C_CopyObject(
        session: CK_SESSION_HANDLE,
        object: CK_OBJECT_HANDLE,
        template: *mut CK_ATTRIBUTE,
        count: CK_ULONG,
        new_object: *mut CK_OBJECT_HANDLE,
    );
    generate_random => C_GenerateRandom(session: CK_SESSION_HANDLE, out: *mut CK_BYTE, len: CK_ULONG);
    decrypt_init => C_DecryptInit(
        session: CK_SESSION_HANDLE,
        mechanism: *mut CK_MECHANISM,
        key: CK_OBJECT_HANDLE,
    );
    decrypt => C_Decrypt(
        session: CK_SESSION_HANDLE,
        data: *mut CK_BYTE,
        len: CK_ULONG,
        out: *mut CK_BYTE,
        out_len: *mut CK_ULONG,
    );
}
