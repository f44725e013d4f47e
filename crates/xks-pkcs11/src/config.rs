//! The backend's configuration: a `[backend]` section with `type = "pkcs11"`.

use std::collections::HashSet;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use xks_protocol::KeyId;

use crate::Error;
use crate::keys::{parse_version_suffix, validate_label};

/// Configuration of the PKCS#11 key manager.
///
/// Deserialize it from the `[backend]` section of the proxy's configuration (the
/// proxy's backend enum consumes `type = "pkcs11"`), then call
/// [`Pkcs11Config::validate`]. Every field but `pin_env`/`pin_file` and `slots`
/// has a default.
///
/// ```toml
/// [backend]
/// type = "pkcs11"
/// module = "/usr/lib/softhsm/libsofthsm2.so"
/// pin_env = "XKS_PKCS11_PIN"          # or: pin_file = "/run/secrets/hsm-pin"
/// iv_mode = "caller"                  # "hsm_writes_back" (CloudHSM, nShield), "hsm_appends" (Luna)
/// sessions_per_slot = 4
/// queue_depth = 256
/// call_timeout = "200ms"
/// module_restart_backoff = "1s"       # after device errors: restart the module, at most this often, doubling
/// module_restart_backoff_max = "60s"
/// canary_label = "xks-health-canary"
///
/// [[backend.slots]]
/// token_label = "xks-a"
///
/// [[backend.slots]]                   # a second token holding the same keys: failover
/// token_serial = "5f1d3a3c8e2b7d10"
/// module = "/opt/other-hsm/lib/libpkcs11.so"
///
/// [[backend.keys]]
/// id = "payments"                     # the XKS external key id
/// label = "payments-aes"              # CKA_LABEL of version 1; `payments-aes.v2`... are later versions
///
/// [[backend.keys]]
/// id = "retired"
/// disabled = true
/// ```
///
/// `Debug` shows where the PIN comes from (a variable name or a path), never the
/// PIN itself.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Pkcs11Config {
    /// The PKCS#11 module (shared library) of every slot that does not name its own.
    #[serde(default)]
    pub module: Option<PathBuf>,

    /// The name of the environment variable holding the user PIN.
    #[serde(default)]
    pub pin_env: Option<String>,

    /// A file holding the user PIN (a trailing newline is not part of it).
    #[serde(default)]
    pub pin_file: Option<PathBuf>,

    /// The tokens to use, in order of preference: the first healthy one serves,
    /// the others take over when it fails. At least 1, at most 10 (the XKS limit
    /// of `ekmFleetDetails`).
    pub slots: Vec<SlotConfig>,

    /// Explicit key mappings from XKS external key ids to object labels, and
    /// keys disabled by configuration.
    #[serde(default)]
    pub keys: Vec<KeyConfig>,

    /// Whether an external key id without a `[[backend.keys]]` entry maps to the
    /// object labelled with the key id itself (default `true`). With `false`,
    /// only listed keys exist.
    #[serde(default = "default_true")]
    pub default_key_mapping: bool,

    /// How the module handles the GCM initialization vector.
    #[serde(default)]
    pub iv_mode: IvMode,

    /// Serve keys that are extractable or not sensitive (default `false`:
    /// such keys are refused).
    #[serde(default)]
    pub allow_extractable_keys: bool,

    /// Use each key through a copy of it that each worker makes in its own
    /// session (`C_CopyObject` with `CKA_TOKEN` false) rather than through the
    /// token object. Default (unset): on for SoftHSM2 (a module whose
    /// `C_GetInfo` manufacturer is `SoftHSM`), off for every other module.
    ///
    /// For modules that read a token object back from storage on every use, as
    /// SoftHSM2's file store does (it opens, locks and reads the object's file
    /// and the token's generation file in every `C_EncryptInit` and
    /// `C_DecryptInit`), this cuts the module's CPU per AES-GCM operation about
    /// threefold. The copy stays inside the module, with the original's
    /// attributes (sensitive, not extractable); it dies with the session. Before
    /// a copy is used, the token object is read again if it was last checked
    /// more than a second ago: a key deleted or changed on the token stops being
    /// used within about a second (without copies, at once). A module that
    /// refuses the copy, or makes one that differs from the original, is used
    /// through the token object. Each worker holds at most 1,024 copies, one per
    /// key version it used, in the module's memory.
    #[serde(default)]
    pub session_key_copies: Option<bool>,

    /// Worker threads, each with its own session, per slot (default 4).
    #[serde(default = "default_sessions_per_slot")]
    pub sessions_per_slot: usize,

    /// Requests that may wait for a worker, per slot (default 256). A request
    /// that finds the queue full fails at once with a throttling error.
    #[serde(default = "default_queue_depth")]
    pub queue_depth: usize,

    /// The longest a key manager call may take, queueing and failover included
    /// (default 200 ms). Past it the call fails with a timeout error.
    #[serde(default = "default_call_timeout", with = "humantime_serde")]
    pub call_timeout: Duration,

    /// How long key versions and attributes are trusted before they are read
    /// from the token again (default 60 s): new versions made by another proxy
    /// are picked up within this time.
    #[serde(default = "default_key_refresh", with = "humantime_serde")]
    pub key_refresh_interval: Duration,

    /// How long a slot that failed is passed over while another serves
    /// (default 5 s). A successful health probe ends it early.
    #[serde(default = "default_failover_backoff", with = "humantime_serde")]
    pub failover_backoff: Duration,

    /// The wait between two restarts of a module (`C_Finalize`,
    /// `C_Initialize`) after device errors that new sessions did not cure
    /// (default 1 s). The first restart of a series runs at once; each further
    /// one waits this long, doubled per restart, after the previous one. A call
    /// that succeeds after the trouble ends the series.
    #[serde(default = "default_module_restart_backoff", with = "humantime_serde")]
    pub module_restart_backoff: Duration,

    /// The longest wait between two restarts of a module (default 60 s).
    #[serde(
        default = "default_module_restart_backoff_max",
        with = "humantime_serde"
    )]
    pub module_restart_backoff_max: Duration,

    /// The label of the health check key on every token (default
    /// `xks-health-canary`). It is never served to KMS.
    #[serde(default = "default_canary_label")]
    pub canary_label: String,

    /// The `ekmVendor` reported by GetHealthStatus (default: the module's
    /// manufacturer, from `C_GetInfo`).
    #[serde(default)]
    pub vendor: Option<String>,
}

/// One token to use: selected by token label or serial number, never by position.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SlotConfig {
    /// The token's label (`CKA_LABEL` of the token, as in `C_GetTokenInfo`).
    #[serde(default)]
    pub token_label: Option<String>,

    /// The token's serial number.
    #[serde(default)]
    pub token_serial: Option<String>,

    /// This slot's module, if not the top-level `module`.
    #[serde(default)]
    pub module: Option<PathBuf>,

    /// This slot's PIN variable, if not the top-level one.
    #[serde(default)]
    pub pin_env: Option<String>,

    /// This slot's PIN file, if not the top-level one.
    #[serde(default)]
    pub pin_file: Option<PathBuf>,
}

/// One external key: its object label and whether it is disabled.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct KeyConfig {
    /// The XKS external key id.
    pub id: KeyId,

    /// The `CKA_LABEL` of the key's version 1 (default: the key id). Version
    /// `n` ≥ 2 is the object labelled `<label>.v<n>`.
    #[serde(default)]
    pub label: Option<String>,

    /// Report the key `DISABLED` and refuse to use it.
    #[serde(default)]
    pub disabled: bool,
}

/// How the module handles the AES-GCM initialization vector.
///
/// The proxy always produces and accepts 96-bit IVs and 128-bit tags, whatever
/// the mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum IvMode {
    /// The proxy draws a 12-byte IV from the token's `C_GenerateRandom` and
    /// passes it in (SoftHSM, most modules).
    #[default]
    Caller,
    /// The proxy passes a zero IV buffer and the module writes the IV it chose
    /// into it (AWS CloudHSM, Entrust nShield).
    HsmWritesBack,
    /// The proxy passes no IV and the module appends the IV it chose after the
    /// tag: 12 bytes, or 16 (Thales Luna in FIPS mode, unless its firmware is
    /// told to make 96-bit IVs). The XKS API allows both.
    HsmAppends,
}

/// Where the PIN of a slot comes from.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum PinSource {
    Env(String),
    File(PathBuf),
}

fn default_true() -> bool {
    true
}

fn default_sessions_per_slot() -> usize {
    4
}

fn default_queue_depth() -> usize {
    256
}

fn default_call_timeout() -> Duration {
    Duration::from_millis(200)
}

fn default_key_refresh() -> Duration {
    Duration::from_secs(60)
}

fn default_failover_backoff() -> Duration {
    Duration::from_secs(5)
}

fn default_module_restart_backoff() -> Duration {
    Duration::from_secs(1)
}

fn default_module_restart_backoff_max() -> Duration {
    Duration::from_secs(60)
}

fn default_canary_label() -> String {
    Pkcs11Config::DEFAULT_CANARY_LABEL.to_owned()
}

// === impl Pkcs11Config ===

impl Pkcs11Config {
    /// The default label of the health check key.
    pub const DEFAULT_CANARY_LABEL: &'static str = "xks-health-canary";

    /// The most slots one key manager may use (the XKS limit of `ekmFleetDetails`).
    pub const MAX_SLOTS: usize = 10;

    /// A configuration with one slot per token label, the PIN in the environment
    /// variable `pin_env`, and defaults for everything else.
    pub fn new(
        module: impl Into<PathBuf>,
        token_labels: impl IntoIterator<Item = impl Into<String>>,
        pin_env: impl Into<String>,
    ) -> Self {
        Self {
            module: Some(module.into()),
            pin_env: Some(pin_env.into()),
            pin_file: None,
            slots: token_labels
                .into_iter()
                .map(|label| SlotConfig::by_label(label))
                .collect(),
            keys: Vec::new(),
            default_key_mapping: true,
            iv_mode: IvMode::default(),
            allow_extractable_keys: false,
            session_key_copies: None,
            sessions_per_slot: default_sessions_per_slot(),
            queue_depth: default_queue_depth(),
            call_timeout: default_call_timeout(),
            key_refresh_interval: default_key_refresh(),
            failover_backoff: default_failover_backoff(),
            module_restart_backoff: default_module_restart_backoff(),
            module_restart_backoff_max: default_module_restart_backoff_max(),
            canary_label: default_canary_label(),
            vendor: None,
        }
    }

    /// Checks everything that can be checked without the HSM: every slot has a
    /// module, one selector and one PIN source; sizes and durations are in
    /// range; key ids are unique and labels well-formed.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] saying what is wrong.
    pub fn validate(&self) -> Result<(), Error> {
        if self.slots.is_empty() {
            return Err(Error::config("at least one [[backend.slots]] is needed"));
        }
        if self.slots.len() > Self::MAX_SLOTS {
            return Err(Error::config(
                "at most 10 slots: GetHealthStatus reports at most 10 key managers",
            ));
        }
        let mut selectors = HashSet::new();
        for slot in &self.slots {
            let selector = slot.selector()?;
            let module = self.module_of(slot)?;
            self.pin_of(slot)?;
            if !selectors.insert((module.clone(), selector)) {
                return Err(Error::config(
                    "two slots select the same token of the same module",
                ));
            }
        }
        if !(1..=256).contains(&self.sessions_per_slot) {
            return Err(Error::config("sessions_per_slot must be between 1 and 256"));
        }
        if !(1..=65_536).contains(&self.queue_depth) {
            return Err(Error::config("queue_depth must be between 1 and 65536"));
        }
        if self.call_timeout.is_zero() {
            return Err(Error::config("call_timeout must be more than zero"));
        }
        if self.module_restart_backoff.is_zero() {
            return Err(Error::config(
                "module_restart_backoff must be more than zero: a dead HSM must not be restarted in a loop",
            ));
        }
        if self.module_restart_backoff_max < self.module_restart_backoff {
            return Err(Error::config(
                "module_restart_backoff_max must be at least module_restart_backoff",
            ));
        }
        validate_label(&self.canary_label)
            .map_err(|what| Error::config(format!("canary_label: {what}")))?;
        let mut ids = HashSet::new();
        for key in &self.keys {
            if !ids.insert(key.id.clone()) {
                return Err(Error::config(format!(
                    "key id `{}` is listed twice in [[backend.keys]]",
                    key.id
                )));
            }
            let label = key.label();
            validate_label(label)
                .map_err(|what| Error::config(format!("key `{}`: {what}", key.id)))?;
            if label == self.canary_label {
                return Err(Error::config(format!(
                    "key `{}` uses the health check key's label",
                    key.id
                )));
            }
        }
        Ok(())
    }

    /// The module of `slot`.
    pub(crate) fn module_of(&self, slot: &SlotConfig) -> Result<PathBuf, Error> {
        slot.module
            .clone()
            .or_else(|| self.module.clone())
            .ok_or_else(|| Error::config("a slot has no module and there is no top-level module"))
    }

    /// The PIN source of `slot`.
    pub(crate) fn pin_of(&self, slot: &SlotConfig) -> Result<PinSource, Error> {
        let (env, file) = if slot.pin_env.is_some() || slot.pin_file.is_some() {
            (&slot.pin_env, &slot.pin_file)
        } else {
            (&self.pin_env, &self.pin_file)
        };
        match (env, file) {
            (Some(var), None) => Ok(PinSource::Env(var.clone())),
            (None, Some(path)) => Ok(PinSource::File(path.clone())),
            (Some(_), Some(_)) => Err(Error::config("set only one of pin_env and pin_file")),
            (None, None) => Err(Error::config("set one of pin_env or pin_file")),
        }
    }

    /// The object label of external key `id`, if it maps to one.
    pub(crate) fn label_of<'a>(&'a self, id: &'a KeyId) -> Option<(&'a str, bool)> {
        if let Some(key) = self.keys.iter().find(|k| &k.id == id) {
            return Some((key.label(), key.disabled));
        }
        if !self.default_key_mapping {
            return None;
        }
        let label = id.as_str();
        // A key id that names a later version, or the canary, is no key of its own.
        if parse_version_suffix(label).is_some() || label == self.canary_label {
            return None;
        }
        Some((label, false))
    }
}

impl fmt::Debug for Pkcs11Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Config")
            .field("module", &self.module)
            .field("pin_env", &self.pin_env)
            .field("pin_file", &self.pin_file)
            .field("slots", &self.slots)
            .field("keys", &self.keys)
            .field("default_key_mapping", &self.default_key_mapping)
            .field("iv_mode", &self.iv_mode)
            .field("allow_extractable_keys", &self.allow_extractable_keys)
            .field("session_key_copies", &self.session_key_copies)
            .field("sessions_per_slot", &self.sessions_per_slot)
            .field("queue_depth", &self.queue_depth)
            .field("call_timeout", &self.call_timeout)
            .field("key_refresh_interval", &self.key_refresh_interval)
            .field("failover_backoff", &self.failover_backoff)
            .field("module_restart_backoff", &self.module_restart_backoff)
            .field(
                "module_restart_backoff_max",
                &self.module_restart_backoff_max,
            )
            .field("canary_label", &self.canary_label)
            .field("vendor", &self.vendor)
            .finish()
    }
}

// === impl SlotConfig ===

impl SlotConfig {
    /// A slot selected by token label, with the top-level module and PIN.
    pub fn by_label(label: impl Into<String>) -> Self {
        Self {
            token_label: Some(label.into()),
            token_serial: None,
            module: None,
            pin_env: None,
            pin_file: None,
        }
    }

    /// A slot selected by token serial number, with the top-level module and PIN.
    pub fn by_serial(serial: impl Into<String>) -> Self {
        Self {
            token_label: None,
            token_serial: Some(serial.into()),
            module: None,
            pin_env: None,
            pin_file: None,
        }
    }

    pub(crate) fn selector(&self) -> Result<TokenSelector, Error> {
        match (&self.token_label, &self.token_serial) {
            (Some(label), None) if !label.is_empty() => Ok(TokenSelector::Label(label.clone())),
            (None, Some(serial)) if !serial.is_empty() => Ok(TokenSelector::Serial(serial.clone())),
            (Some(_), Some(_)) => Err(Error::config(
                "a slot sets both token_label and token_serial; set one",
            )),
            _ => Err(Error::config(
                "a slot needs a non-empty token_label or token_serial",
            )),
        }
    }
}

// === impl KeyConfig ===

impl KeyConfig {
    /// A mapping of `id` to `label`.
    pub fn new(id: KeyId, label: impl Into<String>) -> Self {
        Self {
            id,
            label: Some(label.into()),
            disabled: false,
        }
    }

    /// The label of version 1.
    pub fn label(&self) -> &str {
        self.label.as_deref().unwrap_or(self.id.as_str())
    }
}

/// How a slot's token is found among the module's slots.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum TokenSelector {
    Label(String),
    Serial(String),
}

// === impl TokenSelector ===

impl fmt::Display for TokenSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Label(label) => write!(f, "token label `{label}`"),
            Self::Serial(serial) => write!(f, "token serial `{serial}`"),
        }
    }
}

// === impl PinSource ===

impl fmt::Debug for PinSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Env(var) => write!(f, "Env({var})"),
            Self::File(path) => write!(f, "File({})", path.display()),
        }
    }
}

#[cfg(test)]
mod tests;
