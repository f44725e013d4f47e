//! SoftHSM2 test support: tokens made for this test process, and
//! configurations for them.
//!
//! # How tests find and configure SoftHSM
//!
//! - **The module**: `XKS_TEST_PKCS11_MODULE` if set, else the first of the
//!   usual `libsofthsm2.so` paths that exists. When none does, the test fails
//!   with a message saying how to install SoftHSM2 (`scripts/ensure-softhsm.sh`,
//!   or `apt-get install softhsm2`). Tests never skip.
//! - **The configuration file**: SoftHSM reads the file named by the
//!   `SOFTHSM2_CONF` environment variable when it is initialized, and a process
//!   cannot safely set its own environment. The workspace's
//!   `.cargo/config.toml` therefore sets `SOFTHSM2_CONF` for everything cargo
//!   runs to `.tools/softhsm/softhsm2.conf` under the workspace root (git
//!   ignores `/.tools`; the path does not depend on `CARGO_TARGET_DIR`). This
//!   module writes that file, with `directories.tokendir` beside it, if it is
//!   missing or was written by this module; a file written by anyone else
//!   (`SOFTHSM2_CONF` set by the developer) is used as it is.
//! - **The tokens**: [`SoftHsm::shared`] makes [`SoftHsm::TOKENS`] fresh
//!   tokens with `softhsm2-util --init-token --free`, labelled uniquely for this
//!   process, before anything in the process initializes the module (SoftHSM
//!   sees only the tokens present then). Concurrent test processes therefore
//!   never share a token. Token directories older than a day are deleted.
//! - Every token holds the health check key ([`Pkcs11Config::DEFAULT_CANARY_LABEL`]).
#![expect(
    clippy::expect_used,
    reason = "test support: a failed setup step is a failed test, with its message"
)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use xks_keymanager::Sealed;
use xks_keymanager::testing::KeyRole;
use xks_protocol::KeyId;

use crate::{Pkcs11Admin, Pkcs11Config, Pkcs11KeyManager, SlotConfig, Usage};

/// The first line of a `softhsm2.conf` this module wrote (and may rewrite).
const MARKER: &str = "# Written by xks-pkcs11's test support (xks_pkcs11::testing).";

/// Where SoftHSM2 installs its module on common systems.
const MODULE_CANDIDATES: [&str; 4] = [
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib64/pkcs11/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
];

const INSTALL_HINT: &str = "install SoftHSM2 with `scripts/ensure-softhsm.sh` \
     (Debian/Ubuntu: `apt-get install -y softhsm2`), or point XKS_TEST_PKCS11_MODULE at libsofthsm2.so";

/// Token directories older than this are left-overs of earlier runs.
const STALE_TOKEN_AGE: Duration = Duration::from_secs(24 * 3600);

/// The keys of the shared `KeyManager` battery (`xks_keymanager::testing`): a
/// label and a usage per role. [`create_battery_keys`] makes them on a token.
pub const BATTERY_KEYS: [(KeyRole, &str, Usage); 7] = [
    (KeyRole::Primary, "primary", Usage::ENCRYPT_DECRYPT),
    (KeyRole::Other, "other", Usage::ENCRYPT_DECRYPT),
    (KeyRole::EncryptOnly, "encrypt-only", Usage::ENCRYPT_ONLY),
    (KeyRole::DecryptOnly, "decrypt-only", Usage::DECRYPT_ONLY),
    (KeyRole::NoUsage, "no-usage", Usage::NONE),
    (KeyRole::Disabled, "disabled", Usage::ENCRYPT_DECRYPT),
    (KeyRole::Rotating, "rotating", Usage::ENCRYPT_DECRYPT),
];

/// Makes [`BATTERY_KEYS`] on the token of `admin` with the operator commands;
/// the disabled key is disabled through its `CKA_END_DATE`, as an operator would.
pub fn create_battery_keys(admin: &Pkcs11Admin) {
    for (role, label, usage) in BATTERY_KEYS {
        admin
            .create_key(label, usage)
            .expect("create a battery key");
        if role == KeyRole::Disabled {
            admin
                .set_disabled(label, true)
                .expect("disable the battery's disabled key");
        }
    }
}

/// The key id of `role` among [`BATTERY_KEYS`].
pub fn battery_key(role: KeyRole) -> KeyId {
    let (_, label, _) = BATTERY_KEYS
        .into_iter()
        .find(|(r, ..)| *r == role)
        .expect("every battery role has a key");
    KeyId::new(label).expect("battery labels are valid key ids")
}

/// Rotates `key` as an operator would (a new version on the token, through
/// `admin`) and makes `km` see it at once.
pub async fn rotate_battery_key(
    admin: &Arc<Mutex<Pkcs11Admin>>,
    km: &Pkcs11KeyManager,
    key: &KeyId,
) {
    let admin = Arc::clone(admin);
    let label = key.as_str().to_owned();
    tokio::task::spawn_blocking(move || {
        admin
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .create_version(&label)
            .expect("create a new key version")
    })
    .await
    .expect("the rotation task finished");
    km.refresh_keys();
}

/// Traffic from 16 tasks at once, so that every worker of `km` meets whatever
/// happened to its session or module: each decrypts `old` (a ciphertext of
/// `b"before"` under `key`, with AAD `b"aad"`), then encrypts and decrypts a
/// plaintext of its own. Panics on any failure.
pub async fn traffic_works(km: &Arc<Pkcs11KeyManager>, key: &KeyId, old: &Sealed) {
    use xks_keymanager::KeyManager as _;

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..16u8 {
        let (km, key, old) = (Arc::clone(km), key.clone(), old.clone());
        tasks.spawn(async move {
            let got = km
                .decrypt(&key, old.as_ref(), b"aad")
                .await
                .expect("the old ciphertext decrypts");
            assert_eq!(got.as_bytes(), b"before");
            let plaintext = [i; 40];
            let sealed = km
                .encrypt(&key, &plaintext, b"aad")
                .await
                .expect("encryption works");
            let got = km
                .decrypt(&key, sealed.as_ref(), b"aad")
                .await
                .expect("the new ciphertext decrypts");
            assert_eq!(got.as_bytes(), &plaintext);
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("a traffic task failed");
    }
}

/// SoftHSM2 tokens made for this test process.
#[derive(Debug)]
pub struct SoftHsm {
    module: PathBuf,
    tokens: Vec<String>,
}

// === impl SoftHsm ===

impl SoftHsm {
    /// The number of tokens [`SoftHsm::shared`] makes.
    pub const TOKENS: usize = 4;

    /// The user PIN of every token.
    pub const USER_PIN: &'static str = "1234";

    /// The security officer PIN of every token.
    pub const SO_PIN: &'static str = "5678";

    /// The environment variable name the configurations read the PIN from; see
    /// [`SoftHsm::env`].
    pub const PIN_ENV: &'static str = "XKS_TEST_PKCS11_PIN";

    /// The tokens of this process, made on first use.
    ///
    /// # Panics
    ///
    /// When SoftHSM2 is not installed, `SOFTHSM2_CONF` is not set, or a token
    /// cannot be made, with a message saying what to do.
    pub fn shared() -> &'static Self {
        static SHARED: OnceLock<SoftHsm> = OnceLock::new();
        SHARED.get_or_init(Self::create)
    }

    fn create() -> Self {
        let module = Self::module_path();
        let conf = conf_path();
        prepare_conf(&conf);
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos() ^ u32::try_from(d.as_secs() % 1_000_000).unwrap_or(0))
            .unwrap_or(0);
        let base = format!("x{:x}-{:x}", std::process::id(), stamp % 0xff_ffff);
        let tokens: Vec<String> = (0..Self::TOKENS).map(|i| format!("{base}-{i}")).collect();
        for label in &tokens {
            init_token(&conf, label);
        }
        let hsm = Self { module, tokens };
        for token in 0..Self::TOKENS {
            hsm.admin(token)
                .create_key(Pkcs11Config::DEFAULT_CANARY_LABEL, Usage::ENCRYPT_DECRYPT)
                .expect("create the health check key");
        }
        hsm
    }

    /// The SoftHSM2 module: `XKS_TEST_PKCS11_MODULE`, or the first usual path
    /// that exists.
    ///
    /// # Panics
    ///
    /// When there is none, with a message saying how to install SoftHSM2.
    pub fn module_path() -> PathBuf {
        if let Some(path) = std::env::var_os("XKS_TEST_PKCS11_MODULE") {
            let path = PathBuf::from(path);
            assert!(
                path.exists(),
                "XKS_TEST_PKCS11_MODULE names {}, which does not exist; {INSTALL_HINT}",
                path.display()
            );
            return path;
        }
        MODULE_CANDIDATES
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .unwrap_or_else(|| {
                panic!("libsofthsm2.so not found in {MODULE_CANDIDATES:?}; {INSTALL_HINT}")
            })
    }

    /// The label of token `index` (0 to [`SoftHsm::TOKENS`] − 1).
    pub fn token(&self, index: usize) -> &str {
        &self.tokens[index]
    }

    /// The module's path.
    pub fn module(&self) -> &Path {
        &self.module
    }

    /// Finalizes and initializes the module again through a handle of its own,
    /// as another part of the process might: every session of the process is
    /// closed and the login is gone. Blocking; call it while no PKCS#11 call is
    /// in progress (finalizing during a call is undefined).
    pub fn reinitialize_module(&self) {
        let pkcs11 = cryptoki::context::Pkcs11::new(&self.module).expect("load the module");
        pkcs11.clone().finalize().expect("C_Finalize");
        pkcs11
            .initialize(cryptoki::context::CInitializeArgs::new(
                cryptoki::context::CInitializeFlags::OS_LOCKING_OK,
            ))
            .expect("C_Initialize");
    }

    /// The slot of token `index` in `pkcs11`, a handle on this module.
    pub fn slot_of(
        &self,
        pkcs11: &cryptoki::context::Pkcs11,
        index: usize,
    ) -> cryptoki::slot::Slot {
        pkcs11
            .get_slots_with_token()
            .expect("list the module's slots")
            .into_iter()
            .find(|slot| {
                pkcs11
                    .get_token_info(*slot)
                    .is_ok_and(|info| info.label().trim_end() == self.tokens[index])
            })
            .expect("the test token is in one of the module's slots")
    }

    /// A configuration with one slot per token of `tokens` (indexes, in order
    /// of preference), the PIN in [`SoftHsm::PIN_ENV`], short timeouts, and the
    /// defaults otherwise.
    pub fn config(&self, tokens: &[usize]) -> Pkcs11Config {
        let mut config = Pkcs11Config::new(
            &self.module,
            tokens.iter().map(|&i| self.tokens[i].clone()),
            Self::PIN_ENV,
        );
        config.call_timeout = Duration::from_secs(5);
        config.failover_backoff = Duration::from_secs(1);
        config
    }

    /// A slot configuration for token `index`.
    pub fn slot(&self, index: usize) -> SlotConfig {
        SlotConfig::by_label(self.tokens[index].clone())
    }

    /// The environment lookup to pass to `open`: it knows [`SoftHsm::PIN_ENV`].
    pub fn env() -> impl Fn(&str) -> Option<String> + Clone {
        |name: &str| (name == Self::PIN_ENV).then(|| Self::USER_PIN.to_owned())
    }

    /// Operator access to token `index`.
    pub fn admin(&self, index: usize) -> Pkcs11Admin {
        Pkcs11Admin::open(&self.config(&[index]), Self::env(), None)
            .expect("open an operator session on the test token")
    }

    /// Imports the same AES-256 key `material` as `label` on each token of
    /// `tokens` (replicas for failover tests), extractable and sensitive as
    /// asked (to test refusals).
    pub fn import_key(
        &self,
        tokens: &[usize],
        label: &str,
        material: &[u8; 32],
        extractable: bool,
        sensitive: bool,
    ) {
        for &token in tokens {
            self.admin(token)
                .import(
                    label,
                    material,
                    Usage::ENCRYPT_DECRYPT,
                    extractable,
                    sensitive,
                )
                .expect("import a test key");
        }
    }

    /// A label unique in this process, starting with `prefix`.
    pub fn unique_label(prefix: &str) -> String {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(1);
        format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// The configuration file SoftHSM will read: `SOFTHSM2_CONF`.
fn conf_path() -> PathBuf {
    let conf: OsString = std::env::var_os("SOFTHSM2_CONF").unwrap_or_else(|| {
        panic!(
            "SOFTHSM2_CONF is not set. Run the tests with cargo from the workspace, whose \
             .cargo/config.toml sets it, or set it to a softhsm2.conf path"
        )
    });
    PathBuf::from(conf)
}

/// Writes the configuration file unless someone else's is there, and makes
/// sure the token directory exists; removes stale token directories of ours.
fn prepare_conf(conf: &Path) {
    let existing = std::fs::read_to_string(conf).ok();
    let ours = existing
        .as_deref()
        .is_none_or(|text| text.starts_with(MARKER));
    if !ours {
        return;
    }
    let dir = conf
        .parent()
        .expect("SOFTHSM2_CONF names a file in a directory");
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", tokens.display()));
    let text = format!(
        "{MARKER}\n# SOFTHSM2_CONF points here from .cargo/config.toml. Safe to delete.\n\
         directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
        tokens.display()
    );
    if existing.as_deref() != Some(text.as_str()) {
        // Write and rename, so a concurrent test process never reads half a file.
        let tmp = dir.join(format!(".softhsm2.conf.{}", std::process::id()));
        std::fs::write(&tmp, &text)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", tmp.display()));
        std::fs::rename(&tmp, conf)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", conf.display()));
    }
    prune_stale(&tokens, STALE_TOKEN_AGE);
}

/// Removes the entries of `dir` not modified for `max_age` (what earlier test
/// runs left behind). Best effort.
pub fn prune_stale(dir: &Path, max_age: Duration) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > max_age);
        if stale {
            // Best effort: another process may be pruning too.
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn init_token(conf: &Path, label: &str) {
    let output = Command::new("softhsm2-util")
        .env("SOFTHSM2_CONF", conf)
        .args(["--init-token", "--free", "--label", label])
        .args(["--so-pin", SoftHsm::SO_PIN, "--pin", SoftHsm::USER_PIN])
        .output()
        .unwrap_or_else(|e| panic!("cannot run softhsm2-util ({e}); {INSTALL_HINT}"));
    assert!(
        output.status.success(),
        "softhsm2-util --init-token failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
