//! The vendor IV modes against modules that make the IV themselves: SoftHSM2
//! behind the test-only module `crates/xks-pkcs11-faultwrap` (built by
//! `tests/common`), configured to emulate the vendors' way with
//!
//! - `iv_mode = hsm_writes_back`: the module writes the IV it makes into the
//!   zeroed IV buffer of `CK_GCM_PARAMS` and refuses any other IV (AWS
//!   CloudHSM, Entrust nShield);
//! - `iv_mode = hsm_appends`: the module makes the IV when given none and
//!   appends it after the tag (Thales Luna): a 12-byte IV, and in a second
//!   setup a 16-byte one (a Luna in FIPS mode, unless told otherwise).
//!
//! This emulates what `xks-pkcs11` expects of those modules (see the wrapper's
//! documentation); it is not the vendors' hardware.
//!
//! For each mode, through a key manager configured with that mode: the shared
//! key manager battery (round trips at every size, unique IVs, tampered IV, tag,
//! ciphertext and AAD refused, rotation, concurrency, health), proof that the
//! IVs it returns are the ones the module made, and ciphertexts that plain
//! SoftHSM in `caller` mode decrypts on the same token and key, and the other
//! way round. Then misconfigurations: a key manager whose `iv_mode` does not
//! fit the module fails its startup check with an error that says why, having
//! encrypted nothing.
//!
//! Each mode has a token of its own, and each wrapper its own copy of SoftHSM
//! (its own instance, apart from the test support's). The tests run one at a
//! time: every SoftHSM instance of this process reads and writes the same
//! token files (a login rewrites the token's file), and SoftHSM's file locks
//! (POSIX record locks) do not exclude each other within one process; an
//! instance reading a token file while another rewrites it can lose the token.
#![expect(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use xks_keymanager::KeyManager;
use xks_keymanager::testing::{Fixture, KeyRole};
use xks_pkcs11::testing::{self, SoftHsm};
use xks_pkcs11::{Error, IvMode, Pkcs11Admin, Pkcs11KeyManager};
use xks_protocol::KeyId;

use crate::common::FaultWrap;

/// One test at a time (see the module documentation).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The token of the `hsm_writes_back` key manager.
const WRITES_BACK_TOKEN: usize = 0;

/// The token of the `hsm_appends` key manager.
const APPENDS_TOKEN: usize = 1;

/// The token of the misconfigured key managers (they use only the health
/// check key).
const MISCONFIGURED_TOKEN: usize = 2;

/// The token of the `hsm_appends` key manager on a module appending 16-byte IVs.
const APPENDS_16_TOKEN: usize = 3;

/// A vendor's way with the IV, as the wrapper emulates it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Emulation {
    /// `hsm_writes_back`.
    WritesBack,
    /// `hsm_appends`, 12-byte IVs.
    Appends,
    /// `hsm_appends`, 16-byte IVs (Luna in FIPS mode).
    Appends16,
}

impl Emulation {
    /// The key manager's `iv_mode` for this module.
    fn mode(self) -> IvMode {
        match self {
            Self::WritesBack => IvMode::HsmWritesBack,
            Self::Appends | Self::Appends16 => IvMode::HsmAppends,
        }
    }

    /// The wrapper's configuration.
    fn conf(self) -> String {
        match self {
            Self::Appends16 => format!("iv_mode = {}\nappended_iv_len = 16", name(self.mode())),
            _ => format!("iv_mode = {}", name(self.mode())),
        }
    }

    /// The length of the IVs the module makes.
    fn iv_len(self) -> usize {
        match self {
            Self::Appends16 => 16,
            _ => 12,
        }
    }

    fn token(self) -> usize {
        match self {
            Self::WritesBack => WRITES_BACK_TOKEN,
            Self::Appends => APPENDS_TOKEN,
            Self::Appends16 => APPENDS_16_TOKEN,
        }
    }
}

/// A key manager configured with an HSM IV mode, on a wrapper that emulates
/// that mode, shared by every test of the mode.
struct Emulated {
    emulation: Emulation,
    token: usize,
    wrap: FaultWrap,
    km: Arc<Pkcs11KeyManager>,
    /// Operator session through the wrapper, so on the key manager's own
    /// SoftHSM instance: it sees new key versions at once.
    admin: Arc<Mutex<Pkcs11Admin>>,
}

/// The battery's view of an [`Emulated`] key manager, for one test: it
/// holds the test's turn.
struct ModeFixture {
    emulated: &'static Emulated,
    _serial: tokio::sync::MutexGuard<'static, ()>,
}

/// The configuration value of an HSM IV mode.
fn name(mode: IvMode) -> &'static str {
    match mode {
        IvMode::HsmWritesBack => "hsm_writes_back",
        IvMode::HsmAppends => "hsm_appends",
        other => panic!("{other:?} is not emulated"),
    }
}

/// The key manager of `emulation`, made on first use: the battery's keys on
/// its token, a wrapper emulating the vendor's way, and a key manager
/// configured with the matching mode on it.
fn emulated(emulation: Emulation) -> &'static Emulated {
    static WRITES_BACK: OnceLock<Emulated> = OnceLock::new();
    static APPENDS: OnceLock<Emulated> = OnceLock::new();
    static APPENDS_16: OnceLock<Emulated> = OnceLock::new();
    let cell = match emulation {
        Emulation::WritesBack => &WRITES_BACK,
        Emulation::Appends => &APPENDS,
        Emulation::Appends16 => &APPENDS_16,
    };
    let token = emulation.token();
    cell.get_or_init(|| {
        let hsm = SoftHsm::shared();
        // Through the test support's SoftHSM instance, before the wrapped
        // instance starts (and reads the token).
        testing::create_battery_keys(&hsm.admin(token));
        let wrap = FaultWrap::with_conf(&format!("{emulation:?}"), &emulation.conf());
        let mut config = hsm.config(&[token]);
        config.module = Some(wrap.module());
        config.iv_mode = emulation.mode();
        let km = Pkcs11KeyManager::open(&config, SoftHsm::env()).unwrap();
        let admin = Pkcs11Admin::open(&config, SoftHsm::env(), None).unwrap();
        Emulated {
            emulation,
            token,
            wrap,
            km: Arc::new(km),
            admin: Arc::new(Mutex::new(admin)),
        }
    })
}

async fn fixture(emulation: Emulation) -> ModeFixture {
    let serial = SERIAL.lock().await;
    ModeFixture {
        emulated: tokio::task::spawn_blocking(move || emulated(emulation))
            .await
            .unwrap(),
        _serial: serial,
    }
}

#[async_trait]
impl Fixture for ModeFixture {
    fn key_manager(&self) -> Arc<dyn KeyManager> {
        self.emulated.km.clone()
    }

    fn key(&self, role: KeyRole) -> KeyId {
        testing::battery_key(role)
    }

    async fn rotate(&self, key: &KeyId) {
        testing::rotate_battery_key(&self.emulated.admin, &self.emulated.km, key).await;
    }

    fn iv_len(&self) -> usize {
        self.emulated.emulation.iv_len()
    }
}

/// For each emulated mode, a module of tests: the battery and the checks
/// below, run with that mode.
macro_rules! iv_mode_tests {
    ($($module:ident => $mode:expr;)*) => {$(
        mod $module {
            use super::{Emulation, fixture};

            xks_keymanager::key_manager_battery!(fixture($mode));

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn ivs_are_the_ones_the_module_made() {
                super::ivs_are_the_ones_the_module_made($mode).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn ciphertexts_interoperate_with_caller_mode() {
                super::ciphertexts_interoperate_with_caller_mode($mode).await;
            }
        }
    )*};
}

iv_mode_tests! {
    hsm_writes_back => Emulation::WritesBack;
    hsm_appends => Emulation::Appends;
    hsm_appends_16_byte_ivs => Emulation::Appends16;
}

/// Every IV the key manager returns is one the module made for that
/// encryption (the wrapper records each IV it makes, once), never the zero
/// buffer the proxy passes in `hsm_writes_back`, and decrypts the ciphertext.
async fn ivs_are_the_ones_the_module_made(emulation: Emulation) {
    let f = fixture(emulation).await;
    let km = f.key_manager();
    let key = f.key(KeyRole::Primary);
    for (i, size) in [0usize, 1, 16, 100, 4300].into_iter().enumerate() {
        let pt = vec![u8::try_from(i).unwrap(); size];
        let sealed = km.encrypt(&key, &pt, b"aad").await.unwrap();
        assert_eq!(sealed.iv.len(), emulation.iv_len(), "{size} bytes");
        assert!(sealed.iv.iter().any(|&b| b != 0), "{size} bytes");
        assert_eq!(sealed.ciphertext.len(), size);
        let made = format!("iv {} {}", name(emulation.mode()), hex(&sealed.iv));
        assert_eq!(
            f.emulated.wrap.events(&made),
            1,
            "the module made the IV of the {size}-byte encryption, once: `{made}`"
        );
        let got = km.decrypt(&key, sealed.as_ref(), b"aad").await.unwrap();
        assert_eq!(got.as_bytes(), &pt[..], "{size} bytes");
    }
}

/// The same token and key through plain SoftHSM, with a key manager in
/// `caller` mode: it decrypts what the emulating module encrypted, and the
/// emulating module decrypts what it encrypted. The IV mode changes who makes
/// the IV, not the ciphertext.
async fn ciphertexts_interoperate_with_caller_mode(emulation: Emulation) {
    let f = fixture(emulation).await;
    let token = f.emulated.token;
    let plain = tokio::task::spawn_blocking(move || {
        let config = SoftHsm::shared().config(&[token]);
        assert_eq!(config.iv_mode, IvMode::Caller);
        Pkcs11KeyManager::open(&config, SoftHsm::env())
    })
    .await
    .unwrap()
    .unwrap();
    let emulating = &f.emulated.km;
    let key = f.key(KeyRole::Primary);
    for (size, aad) in [(0usize, &b""[..]), (17, b"aad"), (4300, b"more aad")] {
        let pt = vec![0xa5; size];
        let sealed = emulating.encrypt(&key, &pt, aad).await.unwrap();
        let got = plain.decrypt(&key, sealed.as_ref(), aad).await.unwrap();
        assert_eq!(
            got.as_bytes(),
            &pt[..],
            "{:?} to caller, {size} bytes",
            f.emulated.emulation
        );

        let sealed = plain.encrypt(&key, &pt, aad).await.unwrap();
        let got = emulating.decrypt(&key, sealed.as_ref(), aad).await.unwrap();
        assert_eq!(
            got.as_bytes(),
            &pt[..],
            "caller to {:?}, {size} bytes",
            f.emulated.emulation
        );
    }
}

/// `iv_mode = "caller"` on a module that makes the IV and writes it back
/// (CloudHSM's way), which refuses the proxy's random IV: the startup check
/// fails, saying `C_EncryptInit` returned `CKR_MECHANISM_PARAM_INVALID`. The
/// module encrypted nothing.
#[test]
fn caller_mode_on_a_module_that_writes_the_iv_back_fails_clearly() {
    let _serial = SERIAL.blocking_lock();
    let wrap = FaultWrap::with_conf("caller-on-writes-back", "iv_mode = hsm_writes_back");
    let error = open_misconfigured(&wrap.module(), IvMode::Caller);
    assert_says(&error, "C_EncryptInit returned CKR_MECHANISM_PARAM_INVALID");
    assert!(
        wrap.events("refuse C_EncryptInit hsm_writes_back") >= 1,
        "the module refused the IV"
    );
    assert_eq!(wrap.events("iv "), 0, "the module made no IV");
}

/// `iv_mode = "caller"` on a module that makes the IV and appends it (Luna's
/// way), which refuses the proxy's IV: as above.
#[test]
fn caller_mode_on_a_module_that_appends_the_iv_fails_clearly() {
    let _serial = SERIAL.blocking_lock();
    let wrap = FaultWrap::with_conf("caller-on-appends", "iv_mode = hsm_appends");
    let error = open_misconfigured(&wrap.module(), IvMode::Caller);
    assert_says(&error, "C_EncryptInit returned CKR_MECHANISM_PARAM_INVALID");
    assert!(
        wrap.events("refuse C_EncryptInit hsm_appends") >= 1,
        "the module refused the IV"
    );
    assert_eq!(wrap.events("iv "), 0, "the module made no IV");
}

/// `iv_mode = "hsm_writes_back"` on plain SoftHSM, which encrypts with the
/// IV it is given (here the proxy's zero buffer) and writes nothing back: the
/// proxy sees the buffer still zero and refuses the output, so no ciphertext
/// under an all-zero IV ever leaves it. The startup check fails saying why.
#[test]
fn writes_back_mode_on_a_module_that_takes_the_callers_iv_fails_clearly() {
    let _serial = SERIAL.blocking_lock();
    let error = open_misconfigured(SoftHsm::module_path().as_path(), IvMode::HsmWritesBack);
    assert_says(
        &error,
        "the module did not write an IV back; iv_mode hsm_writes_back does not fit this module",
    );
}

/// `iv_mode = "hsm_appends"` on plain SoftHSM, which appends nothing: the
/// proxy refuses the output for its length. (SoftHSM 2.6 even encrypts with
/// the empty IV; a module that refused it would fail `C_EncryptInit`
/// instead. Either way the startup check fails, and nothing is returned.)
#[test]
fn appends_mode_on_a_module_that_does_not_append_fails_clearly() {
    let _serial = SERIAL.blocking_lock();
    let error = open_misconfigured(SoftHsm::module_path().as_path(), IvMode::HsmAppends);
    let chain = chain(&error);
    assert!(
        chain.contains("the module's GCM output has an unexpected length")
            || chain.contains("C_EncryptInit returned"),
        "{chain}"
    );
}

/// `iv_mode = "hsm_appends"` on a module that writes the IV back instead,
/// and so refuses the empty IV: the startup check fails saying so.
#[test]
fn appends_mode_on_a_module_that_writes_the_iv_back_fails_clearly() {
    let _serial = SERIAL.blocking_lock();
    let wrap = FaultWrap::with_conf("appends-on-writes-back", "iv_mode = hsm_writes_back");
    let error = open_misconfigured(&wrap.module(), IvMode::HsmAppends);
    assert_says(&error, "C_EncryptInit returned CKR_MECHANISM_PARAM_INVALID");
    assert_eq!(wrap.events("iv "), 0, "the module made no IV");
}

/// Opens a key manager with `mode` on `module`, which must fail: no slot
/// passes the startup check (its health probe encrypts and decrypts).
fn open_misconfigured(module: &Path, mode: IvMode) -> Error {
    let mut config = SoftHsm::shared().config(&[MISCONFIGURED_TOKEN]);
    config.module = Some(module.to_owned());
    config.iv_mode = mode;
    let error = Pkcs11KeyManager::open(&config, SoftHsm::env()).unwrap_err();
    assert!(
        matches!(error, Error::NoUsableSlot { .. }),
        "{}",
        chain(&error)
    );
    error
}

/// Asserts that `error`'s cause chain says `what`.
fn assert_says(error: &Error, what: &str) {
    let chain = chain(error);
    assert!(chain.contains(what), "expected `{what}` in: {chain}");
}

/// `error` and its sources, one after the other.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `bytes` in lowercase hex, as the wrapper records IVs.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
