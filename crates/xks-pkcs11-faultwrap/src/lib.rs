//! A PKCS#11 module for tests that wraps another module (SoftHSM2) and makes
//! chosen calls fail on demand: SoftHSM itself cannot be made to lose its
//! device. `crates/xks-pkcs11/tests/device_loss.rs` builds it and drives it to
//! test how the `xks-pkcs11` key manager recovers from lost devices. Not for
//! production use.
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
//!
//! `<rv>` is `device_error`, `device_removed` or `token_not_present`. A line
//! that does not parse fails the calls with `CKR_GENERAL_ERROR` and says why on
//! standard error.
//!
//! Intercepted: `C_GetSlotList`, `C_OpenSession`, `C_Login`,
//! `C_FindObjectsInit`, `C_GenerateRandom`, `C_EncryptInit`, `C_Encrypt`,
//! `C_DecryptInit` and `C_Decrypt`. A failed call does not reach the wrapped
//! module. Every other function goes straight to the wrapped module.
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
//! `in_progress` counts the intercepted calls (of other threads) that were
//! still running in the wrapped module when `C_Finalize` was called: PKCS#11
//! leaves that case undefined, so a careful caller keeps it at zero.
#![allow(
    unsafe_code,
    reason = "a PKCS#11 module is a C ABI: exported extern \"C\" functions taking raw pointers, \
              and a module loaded with dlopen; each unsafe block says why it is sound"
)]

use std::ffi::c_void;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use cryptoki_sys::{
    CK_ATTRIBUTE, CK_BBOOL, CK_BYTE, CK_FLAGS, CK_FUNCTION_LIST, CK_MECHANISM, CK_NOTIFY,
    CK_OBJECT_HANDLE, CK_RV, CK_SESSION_HANDLE, CK_SLOT_ID, CK_ULONG, CK_USER_TYPE, CK_UTF8CHAR,
    CKR_ARGUMENTS_BAD, CKR_DEVICE_ERROR, CKR_DEVICE_REMOVED, CKR_FUNCTION_NOT_SUPPORTED,
    CKR_GENERAL_ERROR, CKR_OK, CKR_TOKEN_NOT_PRESENT,
};

/// The configuration file's name, beside this library.
const CONF_NAME: &str = "xks-faultwrap.conf";

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
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(format!("{}: not `key = value`: {line}", conf.display()));
            };
            let value = PathBuf::from(value.trim());
            match key.trim() {
                "module" => {
                    module.get_or_insert(value);
                }
                "fault_file" => fault_file = value,
                "events_file" => events_file = value,
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
        })
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

    /// Records a `C_Initialize`; a successful one cures an `until_initialize` fault.
    fn initialized(&self, rv: CK_RV) {
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
        let _lock = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        self.event(&format!("C_Finalize {rv:#x} in_progress={in_progress}"));
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
        Ok(())
    }
}

/// The return values a fault may have, by their names in the fault file.
const RETURN_VALUES: [(&str, CK_RV); 3] = [
    ("device_error", CKR_DEVICE_ERROR),
    ("device_removed", CKR_DEVICE_REMOVED),
    ("token_not_present", CKR_TOKEN_NOT_PRESENT),
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

/// `C_Initialize`, passed on; records the call and cures an
/// `until_initialize` fault when it succeeds.
unsafe extern "C" fn initialize(args: *mut c_void) -> CK_RV {
    let Some(wrapper) = wrapper() else {
        return CKR_GENERAL_ERROR;
    };
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
            let slow = match wrapper.verdict(stringify!($field)) {
                Verdict::Fail(rv) => return rv,
                Verdict::Pass { slow } => slow,
            };
            let Some(real) = wrapper.real.$field else {
                return CKR_FUNCTION_NOT_SUPPORTED;
            };
            wrapper.in_progress.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(slow));
            // SAFETY: the caller's arguments, unchanged, to the wrapped
            // module's own function of the same signature; the caller answers
            // for the arguments, as PKCS#11 requires.
            let rv = unsafe { real($($arg),*) };
            wrapper.in_progress.fetch_sub(1, Ordering::SeqCst);
            rv
        }
    )*};
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
    generate_random => C_GenerateRandom(session: CK_SESSION_HANDLE, out: *mut CK_BYTE, len: CK_ULONG);
    encrypt_init => C_EncryptInit(
        session: CK_SESSION_HANDLE,
        mechanism: *mut CK_MECHANISM,
        key: CK_OBJECT_HANDLE,
    );
    encrypt => C_Encrypt(
        session: CK_SESSION_HANDLE,
        data: *mut CK_BYTE,
        len: CK_ULONG,
        out: *mut CK_BYTE,
        out_len: *mut CK_ULONG,
    );
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
